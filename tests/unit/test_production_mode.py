"""Production mode (`ENVIRONMENT=production`): each fail-open local default is refused at settings
construction, every problem listed in one message; a complete production configuration loads; local
and test runs keep their defaults; a template's placeholder is never a secret, whatever the environment."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from certification.settings import CertificationSettings
from intake.phone import PhoneWebhookSettings
from intake.settings import IntakeSettings
from notification.settings import NotificationSettings
from routing.settings import RoutingSettings
from services import create_service_app, production
from services.auth import declared_policies
from services.auth.access import RolesRequired
from services.auth.roles import OPERATIONS, may
from services.settings import AuthSettings, KafkaSettings, MongoSettings, ServiceSettings

pytestmark = pytest.mark.unit

WEBHOOK_SECRET = "9f2c4e71b8a05d3e6c1f47a2b9d08e5c3a6f1b7d2e4c8a0f5b9d3e7c1a4f6b2d"
SIGNING_KEY = base64.b64encode(bytes(range(1, 33))).decode()  # 32 distinct bytes
LOG_PEPPER = "3d9a71c0e4b85f26a1c7d03e9b4f8a62c5e1d7b09f3a6c48e2b7d15a0c9f4e83"


def shared() -> dict[str, Any]:
    """The shared settings of a closed deployment."""
    return {
        "environment": "production",
        "kafka": KafkaSettings(
            bootstrap_servers="kafka.example.org:9093",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="formation-events",
            sasl_password=SecretStr("a-kafka-password-from-the-vault"),
        ),
        "mongo": MongoSettings(uri=SecretStr("mongodb://app:pw@mongo.example.org:27017/?replicaSet=rs0&tls=true")),
        "auth": AuthSettings(issuer="https://sso.example.org/realms/formation"),
        "LOG_PEPPER": SecretStr(LOG_PEPPER),
    }


def complete(cls: type[ServiceSettings], **overrides: Any) -> ServiceSettings:
    """`cls` configured for production, with `overrides` replacing (or, as None, removing) settings."""
    per_service: dict[type[ServiceSettings], dict[str, Any]] = {
        IntakeSettings: {
            "phone": PhoneWebhookSettings(
                secret=SecretStr(WEBHOOK_SECRET), public_base_url="https://intake.example.org", twilio_auth_token=None
            )
        },
        NotificationSettings: {
            "smtp_tls": "starttls",
            "sms_url": "https://sms.example.org/v1/messages",
            "sms_token": SecretStr("a-token-the-sms-provider-issued"),
            "staff_address_pattern": "{worker_id}@bruxellesformation.brussels",
        },
        CertificationSettings: {
            "signing_key": SecretStr(SIGNING_KEY),
            "offer_token_key": SecretStr("7c4e1a9f3b2d8e05a6c1f4b7d9e2a3c8f0b5d1e6a4c7f2b9e3d0a8c5f1b6e4d2"),
            "public_base_url": "https://certification.example.org",
        },
        RoutingSettings: {},
    }
    values = {**shared(), **per_service[cls], **overrides}
    return cls(**{k: v for k, v in values.items() if v is not None})


def refusal_of(cls: type[ServiceSettings], **overrides: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        complete(cls, **overrides)
    return str(refused.value)


@pytest.mark.parametrize("cls", [IntakeSettings, RoutingSettings, NotificationSettings, CertificationSettings])
def test_a_complete_production_configuration_is_accepted(cls: type[ServiceSettings]) -> None:
    assert complete(cls).environment == "production"


@pytest.mark.parametrize("cls", [IntakeSettings, RoutingSettings, NotificationSettings, CertificationSettings])
def test_local_defaults_still_load_outside_production(cls: type[ServiceSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    assert cls().environment == "local"
    assert cls(environment="test").environment == "test"


def kafka(**changes: Any) -> KafkaSettings:
    return shared()["kafka"].model_copy(update=changes)  # type: ignore[no-any-return]


def phone(**changes: Any) -> PhoneWebhookSettings:
    base = {"secret": SecretStr(WEBHOOK_SECRET), "public_base_url": "https://intake.example.org", "twilio_auth_token": None}
    return PhoneWebhookSettings(**{**base, **changes})


REFUSALS: list[tuple[str, type[ServiceSettings], dict[str, Any], str]] = [
    # rule, settings class, what is broken, the variable the message must name
    ("kafka without TLS and SASL", RoutingSettings, {"kafka": kafka(security_protocol="PLAINTEXT")}, "KAFKA_SECURITY_PROTOCOL"),
    ("kafka SASL without TLS", RoutingSettings, {"kafka": kafka(security_protocol="SASL_PLAINTEXT")}, "KAFKA_SECURITY_PROTOCOL"),
    ("kafka without a SASL mechanism", RoutingSettings, {"kafka": kafka(sasl_mechanism=None)}, "KAFKA_SASL_MECHANISM"),
    ("kafka without a SASL user", RoutingSettings, {"kafka": kafka(sasl_username=None)}, "KAFKA_SASL_USERNAME"),
    ("kafka without a SASL password", RoutingSettings, {"kafka": kafka(sasl_password=None)}, "KAFKA_SASL_PASSWORD"),
    ("no pepper for the log pseudonyms", RoutingSettings, {"LOG_PEPPER": None}, "LOG_PEPPER is not set"),
    ("a short log pepper", RoutingSettings, {"LOG_PEPPER": SecretStr("short-pepper")}, "LOG_PEPPER is shorter"),
    (
        "mongo without credentials",
        RoutingSettings,
        {"mongo": MongoSettings(uri=SecretStr("mongodb://mongo.example.org/?replicaSet=rs0&tls=true"))},
        "MONGODB_URI has no credentials",
    ),
    (
        "mongo without TLS",
        RoutingSettings,
        {"mongo": MongoSettings(uri=SecretStr("mongodb://app:pw@mongo.example.org/?replicaSet=rs0"))},
        "MONGODB_URI does not turn TLS on",
    ),
    ("the local issuer by default", RoutingSettings, {"auth": AuthSettings()}, "OIDC_ISSUER is not set"),
    ("an http issuer", RoutingSettings, {"auth": AuthSettings(issuer="http://sso.example.org/realms/f")}, "OIDC_ISSUER must"),
    ("no signing key", CertificationSettings, {"signing_key": None}, "CERTIFICATION_SIGNING_KEY is not set"),
    ("no offer token key", CertificationSettings, {"offer_token_key": None}, "CERTIFICATION_OFFER_TOKEN_KEY is not set"),
    (
        "a short offer token key",
        CertificationSettings,
        {"offer_token_key": SecretStr("short-key")},
        "CERTIFICATION_OFFER_TOKEN_KEY is shorter",
    ),
    ("a signing key not base64", CertificationSettings, {"signing_key": SecretStr("not base64!")}, "CERTIFICATION_SIGNING_KEY"),
    (
        "an all-zero signing key",
        CertificationSettings,
        {"signing_key": SecretStr(base64.b64encode(bytes(32)).decode())},
        "CERTIFICATION_SIGNING_KEY is not random",
    ),
    (
        "an http credential URL",
        CertificationSettings,
        {"public_base_url": "http://certification.example.org"},
        "CERTIFICATION_PUBLIC_BASE_URL",
    ),
    ("an http issuer page", CertificationSettings, {"issuer_url": "http://www.example.org"}, "CERTIFICATION_ISSUER_URL"),
    ("SMTP without TLS", NotificationSettings, {"smtp_tls": "none"}, "NOTIFICATION_SMTP_TLS"),
    ("an http SMS provider", NotificationSettings, {"sms_url": "http://sms.example.org/v1"}, "NOTIFICATION_SMS_URL"),
    ("no SMS token", NotificationSettings, {"sms_token": None}, "NOTIFICATION_SMS_TOKEN is not set"),
    (
        "staff alerts to the local example's addresses",
        NotificationSettings,
        {"staff_address_pattern": "{worker_id}@example.org"},
        "NOTIFICATION_STAFF_ADDRESS_PATTERN",
    ),
    ("no webhook secret", IntakeSettings, {"phone": phone(secret=None)}, "INTAKE_PHONE_WEBHOOK_SECRET is not set"),
    ("a short webhook secret", IntakeSettings, {"phone": phone(secret=SecretStr("s3cr3t!"))}, "shorter than 32 bytes"),
    (
        "a repeated-character webhook secret",
        IntakeSettings,
        {"phone": phone(secret=SecretStr("ab" * 32))},
        "INTAKE_PHONE_WEBHOOK_SECRET is not random enough",
    ),
    (
        "a placeholder webhook secret padded to length",
        IntakeSettings,
        {"phone": phone(secret=SecretStr("REPLACE_ME" * 4))},
        "INTAKE_PHONE_WEBHOOK_SECRET is a placeholder",
    ),
    (
        "a weak previous webhook secret",
        IntakeSettings,
        {"phone": phone(previous_secret=SecretStr("old"))},
        "INTAKE_PHONE_WEBHOOK_PREVIOUS_SECRET is shorter",
    ),
    (
        "an http webhook URL",
        IntakeSettings,
        {"phone": phone(public_base_url="http://intake.example.org")},
        "INTAKE_PHONE_PUBLIC_BASE_URL",
    ),
]


@pytest.mark.parametrize(("cls", "broken", "named"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_production_refuses_at_start(cls: type[ServiceSettings], broken: dict[str, Any], named: str) -> None:
    message = refusal_of(cls, **broken)
    assert "refuses to start in production" in message
    assert named in message


def test_every_problem_is_listed_at_once() -> None:
    message = refusal_of(
        NotificationSettings, kafka=kafka(security_protocol="PLAINTEXT"), smtp_tls="none", sms_url="http://sms.example.org"
    )
    assert all(name in message for name in ("KAFKA_SECURITY_PROTOCOL", "NOTIFICATION_SMTP_TLS", "NOTIFICATION_SMS_URL"))


def test_the_refusal_does_not_print_the_secrets_it_was_given() -> None:
    message = refusal_of(IntakeSettings, phone=phone(secret=SecretStr("short-but-secret")))
    assert "short-but-secret" not in message and "a-kafka-password-from-the-vault" not in message


def test_twilio_alone_is_enough_for_the_phone_webhooks() -> None:
    twilio = phone(secret=None, twilio_auth_token=SecretStr("0123456789abcdef0123456789abcdef"))
    assert isinstance(complete(IntakeSettings, phone=twilio), IntakeSettings)


def test_a_privacy_only_intake_needs_no_webhook_secret() -> None:
    settings = complete(IntakeSettings, surfaces=frozenset({"privacy"}), phone=phone(secret=None, public_base_url="http://x"))
    assert isinstance(settings, IntakeSettings)


def test_sms_switched_off_needs_no_sms_provider() -> None:
    assert isinstance(complete(NotificationSettings, sms_enabled=False, sms_url="http://x", sms_token=None), NotificationSettings)


@pytest.mark.parametrize("environment", ["local", "test", "production"])
@pytest.mark.parametrize("placeholder", ["REPLACE_ME", "change-me", "CHANGEME", "changeit"])
def test_a_template_placeholder_is_never_a_secret(environment: production.Environment, placeholder: str) -> None:
    with pytest.raises(ValidationError, match="INTAKE_PHONE_WEBHOOK_SECRET is a placeholder"):
        IntakeSettings(environment=environment, phone=phone(secret=SecretStr(placeholder)))
    with pytest.raises(ValidationError, match="CERTIFICATION_SIGNING_KEY is a placeholder"):
        CertificationSettings(environment=environment, signing_key=SecretStr(placeholder))


def test_random_secrets_of_32_bytes_pass_whatever_their_encoding() -> None:
    for value in (secrets.token_hex(32), secrets.token_urlsafe(32), base64.b64encode(secrets.token_bytes(32)).decode()):
        assert production.hmac_secret_problems("S", SecretStr(value)) == []
    assert production.hmac_secret_problems("S", SecretStr(secrets.token_hex(15))) != []  # 30 characters


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [
        ("mongodb+srv://app:pw@cluster.example.org/formation", True),
        ("mongodb+srv://app:pw@cluster.example.org/?tls=false", False),
        ("mongodb://a.example.org,b.example.org/?authMechanism=MONGODB-X509&tls=true", True),
        ("mongodb://app:pw@a.example.org/?ssl=true", True),
        ("mongodb://app:pw@a.example.org/?tls=false", False),
    ],
)
def test_mongo_uri_needs_credentials_and_tls(uri: str, accepted: bool) -> None:
    assert (production.mongo_uri_problems("MONGODB_URI", SecretStr(uri)) == []) is accepted


async def served(settings: ServiceSettings, path: str) -> int:
    app = create_service_app(settings, title="t", description="d", register=lambda runtime: [])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        return (await client.get(path)).status_code


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
async def test_the_api_description_is_not_published_in_production(path: str) -> None:
    assert await served(complete(RoutingSettings), path) == 404
    assert await served(RoutingSettings(environment="local"), path) == 200


@pytest.mark.parametrize("environment", ["local", "production"])
def test_metrics_need_the_ops_role_in_every_environment(environment: str) -> None:
    settings = complete(RoutingSettings) if environment == "production" else RoutingSettings(environment="local")
    app = create_service_app(settings, title="t", description="d", register=lambda runtime: [])
    assert declared_policies(app)["GET /metrics"] == RolesRequired(frozenset(may(OPERATIONS)))
