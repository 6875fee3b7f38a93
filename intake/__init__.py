"""Intake: turns phone calls, e-mails and web forms into `TrainingRequestReceived` events."""
