"""Configuration shared by every service: where Kafka, MongoDB and the identity provider are, how to log, where to listen.

Each service subclasses `ServiceSettings` once, with its own environment prefix
(`ROUTING_`, `INTAKE_`, ...). Infrastructure settings are read from unprefixed
variables (`KAFKA_BOOTSTRAP_SERVERS`, `MONGODB_URI`, `OIDC_ISSUER`, ...) because every service
of one deployment talks to the same cluster; secrets come from the environment only.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services import production


def _comma_separated(value: object) -> object:
    """An environment value `a, b` as the set of its non-blank parts; anything else as it is."""
    return frozenset(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value


CommaSeparated = BeforeValidator(_comma_separated)
"""For a set-valued setting given in the environment as a comma-separated list (with pydantic-settings' NoDecode)."""


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster, including SASL/TLS for production."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certificates.")
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    topic_prefix: str = Field(
        "",
        description="Prepended to every topic name, so that environments (or test runs) can share one cluster.",
        pattern=r"^[A-Za-z0-9._-]*$",
    )
    topic_replication_factor: int = Field(1, ge=1, description="For topics the services create at start-up.")


class MongoSettings(BaseSettings):
    """How to reach MongoDB; credentials belong in the URI, which comes from the environment."""

    model_config = SettingsConfigDict(env_prefix="MONGODB_", extra="ignore")

    uri: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27017/?replicaSet=rs0"),
        description="A replica-set URI: transactions and change streams need one.",
    )
    database: str = Field("formation", description="Database holding every service's collections.")
    server_selection_timeout_ms: int = 10_000


# Asymmetric signatures only: an HMAC algorithm would let anyone holding the (public) key sign, and
# `none` signs nothing. The allow-list below is what `AuthSettings.algorithms` may choose from.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)


def local_issuer(port: int | str = 8180) -> str:
    """The realm of the Keycloak scripts/infra.sh runs on this machine."""
    return f"http://127.0.0.1:{port}/realms/formation"


class AuthSettings(BaseSettings):
    """Which identity provider issues the access tokens the services accept, and how strictly.

    Unprefixed per service (`OIDC_ISSUER`, `OIDC_AUDIENCE`, ...): every service of one deployment
    trusts the same realm."""

    model_config = SettingsConfigDict(env_prefix="OIDC_", extra="ignore")

    issuer: str = Field(
        # The local Keycloak of scripts/infra.sh, which KEYCLOAK_PORT moves (as scripts.launch.oidc_issuer).
        default_factory=lambda: local_issuer(os.environ.get("KEYCLOAK_PORT") or 8180),
        description="The `iss` of accepted tokens; its discovery document is `<issuer>/.well-known/openid-configuration`.",
    )
    audience: str = Field("formation-events", description="A value the token's `aud` must contain.")
    algorithms: tuple[str, ...] = Field(
        ("RS256", "ES256"), min_length=1, description="Signature algorithms accepted; asymmetric ones only."
    )
    leeway_s: int = Field(30, ge=0, le=300, description="Clock skew tolerated on `exp`, `nbf` and `iat`.")
    jwks_cache_ttl_s: float = Field(900.0, gt=0, description="How long the provider's keys are used before refetching.")
    jwks_min_refetch_interval_s: float = Field(
        10.0, ge=0, description="At most one fetch of the keys per interval, however many unknown `kid`s arrive."
    )
    http_timeout_s: float = Field(5.0, gt=0, description="Timeout of each call to the provider (discovery, keys).")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: tuple[str, ...]) -> tuple[str, ...]:
        refused = [name for name in algorithms if name not in ASYMMETRIC_ALGORITHMS]
        if refused:
            raise ValueError(f"not an asymmetric signature algorithm: {', '.join(refused)} (never `none` or HS*)")
        return algorithms

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses set `env_prefix` and add their own fields.

    With `ENVIRONMENT=production` construction fails, listing every problem at once, unless the
    deployment is closed (`production_problems`; subclasses add their own with `super()`)."""

    # populate_by_name: `environment=` in code, ENVIRONMENT (unprefixed) in the environment.
    # hide_input_in_errors: a refusal must not print the secrets it was given.
    model_config = SettingsConfigDict(env_prefix="SERVICE_", extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    environment: production.Environment = Field(
        "local",
        validation_alias="ENVIRONMENT",
        description="`production` refuses to start with any local default (services/production.py); local and test keep them.",
    )

    service_name: str = "service"
    instance_id: str | None = Field(None, description="Distinguishes replicas in logs; defaults to host:pid.")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    forwarded_allow_ips: str = Field(
        "",
        description="Comma-separated addresses or networks of the proxies whose X-Forwarded-For uvicorn believes "
        "(its --forwarded-allow-ips); empty (the default) believes no one, so clients are who connects.",
    )
    otlp_endpoint: str | None = Field(
        None,
        # Unprefixed, the OpenTelemetry standard name: one collector for every service of a deployment.
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OTLP/HTTP collector base URL (`http://127.0.0.1:4318`; traces go to `/v1/traces`); unset: "
        "trace context is propagated (headers, log lines) but no span is recorded or exported.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field("auto", description="auto: console on a terminal, JSON otherwise.")
    log_pepper: SecretStr | None = Field(
        None,
        # Unprefixed: every service of a deployment must give one person the same pseudonym.
        validation_alias="LOG_PEPPER",
        description="Secret key of the pseudonyms in logs (HMAC-SHA256), 32 random bytes or more; unset: random per "
        "process (refused in production).",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    graceful_timeout_s: float = Field(15.0, description="How long shutdown waits for in-flight messages.")
    max_body_bytes: int = Field(
        256 * 1024, gt=0, description="Largest HTTP request body any route accepts (413 beyond); channels may set less."
    )
    max_concurrency: int = Field(
        200, gt=0, description="HTTP connections and requests served at once by one process; more are answered 503."
    )
    retry_delays: tuple[timedelta, ...] = Field(
        (timedelta(seconds=1), timedelta(seconds=10), timedelta(seconds=60)),
        min_length=1,
        max_length=10,
        description=(
            "Wait before each retry level of a failed message, then dead letters (JSON list of seconds or "
            'ISO 8601 durations, e.g. [1, 10, 60] or ["PT1S", "PT10S", "PT1M"]).'
        ),
    )

    def production_problems(self) -> list[str]:
        """What production mode refuses in the shared settings: Kafka without SASL_SSL, MongoDB without
        credentials or TLS, an identity provider left to the local default or not on https."""
        kafka, auth = self.kafka, self.auth
        problems = []
        if kafka.security_protocol != "SASL_SSL":
            problems.append("KAFKA_SECURITY_PROTOCOL must be SASL_SSL")
        if kafka.sasl_mechanism is None:
            problems.append("KAFKA_SASL_MECHANISM is not set")
        if not kafka.sasl_username:
            problems.append("KAFKA_SASL_USERNAME is not set")
        problems += production.required_secret_problems("KAFKA_SASL_PASSWORD", kafka.sasl_password)
        problems += production.mongo_uri_problems("MONGODB_URI", self.mongo.uri)
        # Without it each replica pseudonymises one person differently, and logs cannot be correlated.
        problems += production.hmac_secret_problems("LOG_PEPPER", self.log_pepper)
        if "issuer" not in auth.model_fields_set:
            problems.append("OIDC_ISSUER is not set (the local Keycloak is the default)")
        else:
            problems += production.https_problems("OIDC_ISSUER", auth.issuer)
        return problems

    def placeholder_problems(self) -> list[str]:
        """In every environment: a secret still holding a template's placeholder. Subclasses add theirs."""
        return [
            *production.placeholder_problems("KAFKA_SASL_PASSWORD", self.kafka.sasl_password),
            # A pepper, once given, is checked everywhere: a short or guessable one lets anyone rebuild the
            # pseudonym of every mobile number.
            *production.hmac_secret_problems("LOG_PEPPER", self.log_pepper, required=False),
        ]

    @model_validator(mode="after")
    def _closed_in_production(self) -> ServiceSettings:
        problems = self.placeholder_problems()
        if self.environment == "production":
            problems = list(dict.fromkeys([*problems, *self.production_problems()]))
        if problems:
            raise ValueError(production.refusal(self.service_name, problems))
        return self
