"""Notification: tells job seekers, once and in their language, what happens to their request."""
