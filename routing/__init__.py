"""Routing: decides who handles each training request and keeps the 48-hour callback promise."""
