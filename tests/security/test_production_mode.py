"""Fail-open defaults: a production deployment that forgot a key, kept the secret template's placeholder or
an http URL. Each service is started as a process (`python -m <service>`) the way its Deployment starts it;
it must refuse to start, say why on stderr, and exit before it connects anywhere (the brokers and the
database named here do not exist, so a process that went further would hang, not exit)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.security.conftest import Attacks

pytestmark = pytest.mark.security

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_PLACEHOLDER = yaml.safe_load((REPO / "deploy" / "secret.template.yaml").read_text())["stringData"][
    "INTAKE_PHONE_WEBHOOK_SECRET"
]
UNREACHABLE = "unreachable.invalid"  # RFC 2606: never resolves

PRODUCTION = {
    "ENVIRONMENT": "production",
    "KAFKA_BOOTSTRAP_SERVERS": f"{UNREACHABLE}:9093",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "formation-events",
    "KAFKA_SASL_PASSWORD": "a-kafka-password-from-the-vault",
    "MONGODB_URI": f"mongodb://app:pw@{UNREACHABLE}:27017/?replicaSet=rs0&tls=true",
    "OIDC_ISSUER": f"https://{UNREACHABLE}/realms/formation",
    "INTAKE_PHONE_WEBHOOK_SECRET": "9f2c4e71b8a05d3e6c1f47a2b9d08e5c3a6f1b7d2e4c8a0f5b9d3e7c1a4f6b2d",
    "INTAKE_PHONE_PUBLIC_BASE_URL": f"https://intake.{UNREACHABLE}",
    "CERTIFICATION_SIGNING_KEY": base64.b64encode(bytes(range(1, 33))).decode(),
    "CERTIFICATION_OFFER_TOKEN_KEY": "7c4e1a9f3b2d8e05a6c1f4b7d9e2a3c8f0b5d1e6a4c7f2b9e3d0a8c5f1b6e4d2",
    "CERTIFICATION_PUBLIC_BASE_URL": f"https://certification.{UNREACHABLE}",
    "NOTIFICATION_SMTP_HOST": f"smtp.{UNREACHABLE}",
    "NOTIFICATION_SMTP_TLS": "starttls",
    "NOTIFICATION_SMS_URL": f"https://sms.{UNREACHABLE}/v1/messages",
    "NOTIFICATION_SMS_TOKEN": "a-token-the-sms-provider-issued",
    "LOG_PEPPER": "3d9a71c0e4b85f26a1c7d03e9b4f8a62c5e1d7b09f3a6c48e2b7d15a0c9f4e83",
}
OURS = ("ENVIRONMENT", "LOG_PEPPER", "KAFKA_", "MONGODB_", "OIDC_", "INTAKE_", "ROUTING_", "NOTIFICATION_", "CERTIFICATION_")


def start(service: str, **changes: str | None) -> tuple[int, str, float]:
    """Run `python -m service` with the production environment changed by `changes` (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    env.update({k: v for k, v in {**PRODUCTION, **changes}.items() if v is not None})
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", service], capture_output=True, text=True, timeout=60, cwd=REPO, env=env, check=False
    )
    return proc.returncode, proc.stderr, time.monotonic() - started


def assert_refused_before_connecting(code: int, stderr: str, named: str) -> None:
    assert code == 2, stderr[-2000:]
    assert "refuses to start in production" in stderr and named in stderr
    assert "Traceback" not in stderr, "a clear message, not a stack trace"
    assert "service.started" not in stderr and "kafka.connected" not in stderr


def test_unsigned_credentials_in_production(attacks: Attacks) -> None:
    code, stderr, elapsed = start("certification", CERTIFICATION_SIGNING_KEY=None)
    assert_refused_before_connecting(code, stderr, "CERTIFICATION_SIGNING_KEY is not set")
    print(f"certification refused in {elapsed:.1f} s")
    attacks.record(
        "unsigned credentials in production",
        tried="certification started with ENVIRONMENT=production and no CERTIFICATION_SIGNING_KEY",
        refused=True,
        nothing_lost=True,
    )


def test_placeholder_webhook_secret(attacks: Attacks) -> None:
    assert TEMPLATE_PLACEHOLDER == "REPLACE_ME"
    code, stderr, _ = start("intake", INTAKE_PHONE_WEBHOOK_SECRET=TEMPLATE_PLACEHOLDER)
    assert_refused_before_connecting(code, stderr, "INTAKE_PHONE_WEBHOOK_SECRET is a placeholder")
    assert TEMPLATE_PLACEHOLDER not in stderr.replace("placeholder", ""), "the refusal does not echo the secret"
    # Long enough, but still guessable: the template's value repeated.
    code, stderr, _ = start("intake", INTAKE_PHONE_WEBHOOK_SECRET=TEMPLATE_PLACEHOLDER * 4)
    assert_refused_before_connecting(code, stderr, "INTAKE_PHONE_WEBHOOK_SECRET is a placeholder")
    attacks.record(
        "placeholder webhook secret",
        tried="intake started with the secret template's REPLACE_ME (and REPLACE_ME x4) as the HMAC secret",
        refused=True,
        nothing_lost=True,
    )


def test_http_public_url(attacks: Attacks) -> None:
    code, stderr, _ = start("intake", INTAKE_PHONE_PUBLIC_BASE_URL=f"http://intake.{UNREACHABLE}")
    assert_refused_before_connecting(code, stderr, "INTAKE_PHONE_PUBLIC_BASE_URL must be an https URL")
    code, stderr, _ = start("certification", CERTIFICATION_PUBLIC_BASE_URL=f"http://certification.{UNREACHABLE}")
    assert_refused_before_connecting(code, stderr, "CERTIFICATION_PUBLIC_BASE_URL must be an https URL")
    code, stderr, _ = start("notification", NOTIFICATION_SMS_URL=f"http://sms.{UNREACHABLE}/v1/messages")
    assert_refused_before_connecting(code, stderr, "NOTIFICATION_SMS_URL must be an https URL")
    attacks.record(
        "http public URL",
        tried="intake, certification and notification started with http public / provider URLs",
        refused=True,
        nothing_lost=True,
    )


def test_local_defaults_everywhere_in_production(attacks: Attacks) -> None:
    env_free = {name: None for name in PRODUCTION if name != "ENVIRONMENT"}
    code, stderr, _ = start("notification", **env_free)
    for named in ("KAFKA_SECURITY_PROTOCOL", "MONGODB_URI", "OIDC_ISSUER", "NOTIFICATION_SMTP_TLS", "NOTIFICATION_SMS_URL"):
        assert_refused_before_connecting(code, stderr, named)
    attacks.record(
        "local defaults in production",
        tried="notification started with ENVIRONMENT=production and nothing else: plain Kafka, no OIDC issuer, SMTP without TLS",
        refused=True,
        nothing_lost=True,
    )


def test_the_complete_production_environment_gets_past_the_checks() -> None:
    """The control: with nothing missing, the process goes on to connect (and fails on the fake hosts)."""
    code, stderr, _ = start("routing", MONGODB_SERVER_SELECTION_TIMEOUT_MS="500")
    assert code != 0 and "refuses to start" not in stderr and "invalid settings" not in stderr, stderr[-2000:]
