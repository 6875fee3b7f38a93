"""Intake's configuration, from `INTAKE_*` environment variables (plus the shared infrastructure ones)."""

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from intake.phone import PhoneWebhookSettings
from services import production
from services.settings import CommaSeparated, ServiceSettings

PRIVACY_HTTP_PORT = 8011
"""Where a process serving only the privacy surface listens unless `INTAKE_HTTP_PORT` says otherwise."""


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")

    service_name: str = "intake"
    http_port: int = 8001
    link_window_days: int = Field(14, ge=0, description="Requests of one person within this many days are linked.")
    surfaces: Annotated[frozenset[Literal["public", "privacy"]], NoDecode, CommaSeparated] = Field(
        frozenset({"public"}),
        min_length=1,
        description=(
            "What this process serves, comma-separated: `public` (the web form and API, the phone webhooks, the SMTP "
            "inbox) and/or `privacy` (the DPOs' erasures, on a port of its own: 8011 unless INTAKE_HTTP_PORT is set). "
            "`public` by default: the public app never carries the erasure routes."
        ),
    )

    public_base_url: str = Field(
        "http://127.0.0.1:8001",
        description="Scheme and host job seekers reach the public app at: the status links sent to them start with it.",
    )
    status_link_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of the status links (at least 32 random bytes); local runs use a public "
        "local-only key, production refuses to start without one.",
    )
    status_link_ttl_days: int = Field(90, ge=1, description="How long a status link works after the request.")

    phone: PhoneWebhookSettings = Field(
        default_factory=PhoneWebhookSettings,
        description="How the telephony platform signs its webhooks (INTAKE_PHONE_* variables).",
    )

    @model_validator(mode="after")
    def _privacy_alone_listens_elsewhere(self) -> "IntakeSettings":
        if "public" not in self.surfaces and "http_port" not in self.model_fields_set:
            self.http_port = PRIVACY_HTTP_PORT
        return self

    def production_problems(self) -> list[str]:
        """The phone webhooks are the public surface's: a process serving privacy alone needs no secret."""
        problems = super().production_problems()
        if "public" not in self.surfaces:
            return problems
        phone = self.phone
        if phone.twilio_auth_token is None:
            problems += production.hmac_secret_problems("INTAKE_PHONE_WEBHOOK_SECRET", phone.secret)
        else:
            problems += production.hmac_secret_problems("INTAKE_PHONE_WEBHOOK_SECRET", phone.secret, required=False)
            problems += production.required_secret_problems("INTAKE_PHONE_TWILIO_AUTH_TOKEN", phone.twilio_auth_token)
        problems += production.hmac_secret_problems("INTAKE_PHONE_WEBHOOK_PREVIOUS_SECRET", phone.previous_secret, required=False)
        problems += production.https_problems("INTAKE_PHONE_PUBLIC_BASE_URL", phone.public_base_url)
        problems += production.hmac_secret_problems("INTAKE_STATUS_LINK_KEY", self.status_link_key)
        problems += production.https_problems("INTAKE_PUBLIC_BASE_URL", self.public_base_url)
        return problems

    def placeholder_problems(self) -> list[str]:
        return [
            *super().placeholder_problems(),
            *production.placeholder_problems("INTAKE_PHONE_WEBHOOK_SECRET", self.phone.secret),
            *production.placeholder_problems("INTAKE_PHONE_WEBHOOK_PREVIOUS_SECRET", self.phone.previous_secret),
            *production.placeholder_problems("INTAKE_PHONE_TWILIO_AUTH_TOKEN", self.phone.twilio_auth_token),
            *production.placeholder_problems("INTAKE_STATUS_LINK_KEY", self.status_link_key),
        ]
