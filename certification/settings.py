"""Certification's configuration, from `CERTIFICATION_*` environment variables (plus the shared infrastructure ones)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from certification.seating import OfferTerms
from services import production
from services.settings import CommaSeparated, ServiceSettings


class CertificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CERTIFICATION_", extra="ignore")

    service_name: str = "certification"
    http_port: int = 8004

    surfaces: Annotated[frozenset[Literal["public", "staff"]], NoDecode, CommaSeparated] = Field(
        frozenset({"public", "staff"}),
        min_length=1,
        description=(
            "What this process serves, comma-separated: `public` (credential verification, open to anyone) and/or "
            "`staff` (centres, sessions, candidates, offers, results, revocation) with the service's work (consumers, "
            "offer timers, the seat sweep, the outbox relay). Both by default; deployed apart, the public surface "
            "needs no Kafka and holds no staff route."
        ),
    )

    offer_window: timedelta = Field(
        timedelta(hours=48),
        description=(
            "How long a candidate has to accept an exam seat (ISO 8601 duration, e.g. PT48H); the seat is held meanwhile."
        ),
    )
    offer_margin: timedelta = Field(
        timedelta(hours=24),
        description=(
            "An offer's deadline is never later than this before the exam (ISO 8601 duration, real time: "
            "nights and weekends count). A session starting sooner than this plus `offer_minimum` is offered to nobody."
        ),
    )
    offer_minimum: timedelta = Field(
        timedelta(hours=2),
        description="The shortest time to answer an offer worth giving (ISO 8601 duration); at most `offer_window`.",
    )
    offer_token_key: SecretStr | None = Field(
        None,
        description=(
            "HMAC-SHA256 key of the signed accept/decline links of seat offers (32 random bytes or more, e.g. "
            "`openssl rand -hex 32`), the same in every replica. Required in production; unset in a local or test "
            "run, a public local-only key is used."
        ),
    )
    offer_page_rate_per_minute: int = Field(
        30, gt=0, description="Views and answers of the public seat-offer page per client network and minute (429 beyond)."
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8004",
        description="Public URL of this service: credential, achievement, issuer and revocation-list ids start with it.",
        pattern=r"^https?://\S+[^/]$",
    )
    issuer_url: str = Field(
        "https://www.bruxellesformation.brussels", description="Home page of the issuer, in the credentials' issuer profile."
    )
    signing_key: SecretStr | None = Field(
        None,
        description=(
            "Ed25519 private key (32-byte seed, base64) that signs credentials with a DataIntegrityProof "
            "(eddsa-rdfc-2022). Required in production; unset in a local or test run, credentials are issued "
            "without a proof (and a warning is logged)."
        ),
    )
    certifications_path: Path | None = Field(
        None, description="A certifications YAML (pairings, recognising bodies); the shipped one when unset."
    )
    what_to_bring: list[str] = Field(
        default_factory=lambda: ["Carte d'identité", "Convocation (imprimée ou sur smartphone)"],
        description="Listed in every ExamScheduled (JSON list).",
    )
    high_priority_routed_from: int | None = Field(
        50,
        description=(
            "A person routed with at least this priority score (routing's high band) gets `high_priority_boost` "
            "as candidate priority; unset to ignore routing's priority."
        ),
    )
    high_priority_boost: int = Field(1, ge=0, description="Candidate priority given to people routed with high priority.")

    console_client_id: str = Field(
        "formation-console",
        description="The identity provider's public client the staff's browser console signs in with (staff surface).",
    )

    clock: Literal["system", "simulated"] = Field(
        "system", description="`simulated` lets POST /admin/clock/advance move time (demo only)."
    )
    clock_start: datetime | None = Field(None, description="With the simulated clock: the time it starts at.")
    timer_poll_interval: timedelta = Field(timedelta(milliseconds=500), description="How often offer deadlines are checked.")
    allocation_interval: timedelta = Field(
        timedelta(seconds=30),
        description="How often a sweep offers free seats to waiting candidates (a safety net: changes trigger offers at once).",
    )

    def production_problems(self) -> list[str]:
        return [
            *super().production_problems(),
            *production.ed25519_seed_problems("CERTIFICATION_SIGNING_KEY", self.signing_key),
            *production.hmac_secret_problems("CERTIFICATION_OFFER_TOKEN_KEY", self.offer_token_key),
            *production.https_problems("CERTIFICATION_PUBLIC_BASE_URL", self.public_base_url),
            *production.https_problems("CERTIFICATION_ISSUER_URL", self.issuer_url),
        ]

    def placeholder_problems(self) -> list[str]:
        return [
            *super().placeholder_problems(),
            *production.placeholder_problems("CERTIFICATION_SIGNING_KEY", self.signing_key),
            # Once given, checked everywhere: a short or guessable key lets anyone answer anyone's offer.
            *production.hmac_secret_problems("CERTIFICATION_OFFER_TOKEN_KEY", self.offer_token_key, required=False),
        ]

    @property
    def offer_terms(self) -> OfferTerms:
        return OfferTerms(window=self.offer_window, margin=self.offer_margin, minimum=self.offer_minimum)

    @model_validator(mode="after")
    def _offer_terms_hold(self) -> CertificationSettings:
        self.offer_terms  # noqa: B018 - raises ValueError (a validation error) when the three do not fit
        return self
