"""Notification's configuration, from `NOTIFICATION_*` environment variables (plus the shared infrastructure ones).

Durations are ISO 8601 (`PT5S`, `PT30M`) or seconds; times of day are `HH:MM` (Brussels).
To send to a local SMTP sink (the demo): `NOTIFICATION_SMTP_HOST=127.0.0.1 NOTIFICATION_SMTP_PORT=1025`,
with e.g. `python -m aiosmtpd -n -l 127.0.0.1:1025` listening.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from notification.policy import SmsCountries
from notification.staff import DEFAULT_DIRECTORY_PATH
from services import production
from services.settings import CommaSeparated, ServiceSettings


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore")

    service_name: str = "notification"
    http_port: int = 8003

    # --- e-mail -------------------------------------------------------------------------
    smtp_host: str = Field("127.0.0.1", description="SMTP server (relay or sink) the e-mails go to.")
    smtp_port: int = Field(1025, ge=1, le=65535)
    smtp_from_address: str = Field(
        "Bruxelles Formation <no-reply@bruxellesformation.brussels>", description="From header and envelope sender."
    )
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "none", description="none, STARTTLS after connecting, or implicit TLS (465)."
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: timedelta = Field(timedelta(seconds=30), description="For connecting and each SMTP reply.")
    message_id_domain: str = Field("notification.bruxellesformation.brussels", description="Right part of each Message-ID.")

    # --- SMS ----------------------------------------------------------------------------
    sms_enabled: bool = Field(True, description="false: nobody counts as having a mobile, every message goes by e-mail.")
    sms_url: str = Field("http://127.0.0.1:8099/v1/messages", description="The provider's endpoint for one text.")
    sms_token: SecretStr | None = Field(None, description="Bearer token for the provider.")
    sms_timeout: timedelta = Field(timedelta(seconds=10))
    sms_allowed_countries: Annotated[frozenset[str], NoDecode, CommaSeparated] = Field(
        frozenset({"BE"}),
        min_length=1,
        description="Countries we send texts to, comma-separated ISO codes (BE,NL) or calling codes (+32); "
        "a mobile number elsewhere gets no SMS (the e-mail is used when there is one).",
    )

    # --- daily budgets (per Brussels day, shared by every replica) ----------------------
    sms_daily_per_destination: int = Field(5, ge=0, description="Texts one number may receive per day.")
    email_daily_per_destination: int = Field(10, ge=0, description="E-mails one address may receive per day.")
    sms_daily_global: int = Field(2_000, ge=0, description="Texts the service sends per day, all numbers together.")
    email_daily_global: int = Field(20_000, ge=0, description="E-mails the service sends per day, all addresses together.")

    # --- when and how often -----------------------------------------------------------
    quiet_hours_start: time = Field(time(21, 0), description="No SMS from this time (Brussels)...")
    quiet_hours_end: time = Field(time(8, 0), description="...until this time; equal times disable quiet hours.")
    max_attempts: int = Field(6, ge=1, description="Attempts per delivery before it fails (an SMS then falls back to e-mail).")
    backoff_base: timedelta = Field(timedelta(seconds=5), description="Wait after the first failure.")
    backoff_factor: float = Field(5.0, ge=1.0, description="Each further wait is this many times the previous one...")
    backoff_max: timedelta = Field(timedelta(minutes=30), description="...up to this.")
    backoff_jitter: float = Field(0.2, ge=0, lt=1, description="Each wait is spread by ± this fraction.")
    sender_poll_interval: timedelta = Field(timedelta(seconds=1), description="How often the sender looks for due deliveries.")
    sender_batch: int = Field(20, ge=1, description="Deliveries claimed at once.")
    sender_concurrency: int = Field(8, ge=1, description="Deliveries sent at the same time.")
    claim_lease: timedelta = Field(
        timedelta(minutes=2),
        description="A claimed delivery is taken over by another replica after this; keep above the send timeouts.",
    )

    # --- staff alerts (callback due, promise broken) ------------------------------------
    staff_directory_path: Path = Field(
        DEFAULT_DIRECTORY_PATH,
        description="The roster YAML (worker id, email, languages) staff alerts are addressed from; the shipped "
        "routing/data/workers.yaml by default. In production, the same roster ConfigMap routing loads.",
    )
    staff_address_pattern: str | None = Field(
        "{worker_id}@example.org",
        description="The work address of a worker the roster file does not list (added through routing's configuration "
        "API while running, whose roster events carry no addresses): `{worker_id}` is replaced. The local default is "
        "the realm's example scheme; empty: such workers get no e-mail (the alert is recorded as skipped).",
    )
    console_url: str = Field(
        "http://127.0.0.1:8002/console",
        description="The routing console's base URL, for the links in staff alerts (`/{lang}/`, `/{lang}/team`).",
    )

    clock: Literal["system", "simulated"] = Field("system", description="`simulated`: time can be started elsewhere (demo only).")
    clock_start: datetime | None = Field(None, description="With the simulated clock: the time it starts at.")

    @field_validator("sms_allowed_countries")
    @classmethod
    def _known_countries(cls, value: frozenset[str]) -> frozenset[str]:
        SmsCountries(value)  # raises on an unknown code: a typo must not silently stop every text
        return value

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> NotificationSettings:
        if self.claim_lease <= max(self.smtp_timeout, self.sms_timeout):
            raise ValueError("claim_lease must be longer than the SMTP and SMS timeouts")
        return self

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.smtp_tls == "none":
            problems.append("NOTIFICATION_SMTP_TLS must be starttls or tls")
        if self.sms_enabled:
            problems += production.https_problems("NOTIFICATION_SMS_URL", self.sms_url)
            problems += production.required_secret_problems("NOTIFICATION_SMS_TOKEN", self.sms_token)
        if self.staff_address_pattern and self.staff_address_pattern.endswith("@example.org"):
            problems.append("NOTIFICATION_STAFF_ADDRESS_PATTERN is the local example; set the organisation's or leave it empty")
        return problems

    def placeholder_problems(self) -> list[str]:
        return [
            *super().placeholder_problems(),
            *production.placeholder_problems("NOTIFICATION_SMTP_PASSWORD", self.smtp_password),
            *production.placeholder_problems("NOTIFICATION_SMS_TOKEN", self.sms_token),
        ]
