"""Notification: tells job seekers, once and in their language, what happens to their request.

The public surface: the app factory and its settings, and the two ports with their real adapters
(tests subclass the ports with in-memory fakes).
"""

from notification.app import create_app
from notification.ports import MailSender, OutgoingEmail, OutgoingSms, SendResult, SendStatus, SmsSender
from notification.settings import NotificationSettings
from notification.sms_http import HttpSmsSender
from notification.smtp import SmtpMailSender

__all__ = [
    "HttpSmsSender",
    "MailSender",
    "NotificationSettings",
    "OutgoingEmail",
    "OutgoingSms",
    "SendResult",
    "SendStatus",
    "SmsSender",
    "SmtpMailSender",
    "create_app",
]
