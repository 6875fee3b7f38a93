"""Notification's configuration, from `NOTIFICATION_*` environment variables (plus the shared infrastructure ones)."""

from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore")

    service_name: str = "notification"
    http_port: int = 8003
