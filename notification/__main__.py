"""`python -m notification`: run one notification process."""

from notification.app import create_app
from notification.settings import NotificationSettings
from services import serve

settings = NotificationSettings()
serve(create_app(settings), settings)
