"""Routing's configuration, from `ROUTING_*` environment variables (plus the shared infrastructure ones)."""

from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTING_", extra="ignore")

    service_name: str = "routing"
    http_port: int = 8002
