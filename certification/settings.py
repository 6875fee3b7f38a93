"""Certification's configuration, from `CERTIFICATION_*` environment variables (plus the shared infrastructure ones)."""

from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class CertificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CERTIFICATION_", extra="ignore")

    service_name: str = "certification"
    http_port: int = 8004
