"""`python -m notification`: run one notification process."""

from notification.app import create_app
from notification.settings import NotificationSettings
from services import serve
from services.production import settings_or_exit

settings = settings_or_exit(NotificationSettings)
serve(create_app(settings), settings)
