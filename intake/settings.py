"""Intake's configuration, from `INTAKE_*` environment variables (plus the shared infrastructure ones)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")

    service_name: str = "intake"
    http_port: int = 8001
    link_window_days: int = Field(14, ge=0, description="Requests of one person within this many days are linked.")
