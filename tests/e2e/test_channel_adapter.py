"""The adapter kit end to end: intake as ops run it (`python -m intake`) on the real broker and mongod,
the real Keycloak, and docs/adapters/example_adapter.py run as a partner would run it. The adapter signs
in with its client's credentials, submits the phone example, and the request is on
`training.requests.v1`, sealed: nothing of the person in clear on Kafka, all of it under their key.

The example adapter's client (`example-channel-adapter`) and its secret come with the realm as
scripts/infra.sh imports it (deploy/keycloak/formation-realm.json, the secret from .local/secrets/):
a Keycloak started before the realm had the client must be restarted (`scripts/infra.sh
restart-keycloak`) for the tests that sign the adapter in."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from intake.adapters import ADAPTER_PATH, EXAMPLE_PHONE, adapter_source
from schemas import Channel, TrainingRequestReceived, decode
from scripts.launch import ServiceProcess, oidc_issuer, start_service
from scripts.principals import local_password
from scripts.tokens import Tokens
from services.privacy import PersonalData, PersonKeys
from tests.conftest import KAFKA_CLIENT, MONGODB_URI, drop_database, require_identity_provider
from tests.realm import EXAMPLE_ADAPTER_CLIENT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        bool(os.environ.get("OIDC_ISSUER")), reason="OIDC_ISSUER names a provider without the local realm's clients"
    ),
]

KIT = Path(__file__).resolve().parents[2] / "docs" / "adapters"
PORT = 18231


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    require_identity_provider()
    database = f"e2e_adapter_{uuid.uuid4().hex[:12]}"
    process = start_service(
        "intake",
        port=PORT,
        env={"MONGODB_DATABASE": database, "KAFKA_TOPIC_PREFIX": f"{database}."},
        log_dir=tmp_path_factory.mktemp("logs"),
    )
    try:
        process.wait_ready()
        process.env["topic"] = f"{database}.training.requests.v1"
        process.env["database"] = database
        yield process
    finally:
        process.stop()
        drop_database(database)


@pytest.fixture(scope="module")
def adapter_secret() -> str:
    """The example adapter's client secret, once Keycloak imported the realm that has its client."""
    require_identity_provider()
    secret = local_password("keycloak", EXAMPLE_ADAPTER_CLIENT)
    problem = None
    if secret is None:
        problem = "no .local/secrets/keycloak-example-channel-adapter: `make up` makes it"
    else:
        tokens = Tokens()
        grant = {"grant_type": "client_credentials", "client_id": EXAMPLE_ADAPTER_CLIENT, "client_secret": secret}
        response = httpx.post(tokens.token_endpoint(), data=grant, timeout=30)
        if response.status_code != 200:
            problem = f"Keycloak refuses the example adapter's client ({response.status_code} {response.text[:200]})"
    if problem is not None:
        reason = f"{problem}: restart Keycloak so that it imports the realm (`scripts/infra.sh restart-keycloak`)"
        if os.environ.get("KEYCLOAK_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert secret is not None
    return secret


def run_example_adapter(intake: ServiceProcess, secret: str, request: Path) -> subprocess.CompletedProcess[str]:
    """docs/adapters/example_adapter.py as a partner runs it: a process of its own, configured by its environment."""
    env = {
        **os.environ,
        "INTAKE_URL": intake.url,
        "OIDC_ISSUER": oidc_issuer(),
        "ADAPTER_CLIENT_ID": EXAMPLE_ADAPTER_CLIENT,
        "ADAPTER_CLIENT_SECRET": secret,
    }
    return subprocess.run(
        [sys.executable, str(KIT / "example_adapter.py"), str(request)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def records_on(topic: str, key: str, *, timeout: float = 90) -> list[Any]:
    """Every record of `topic` keyed `key`, as any Kafka client reads them (raw, undecoded)."""
    consumer = AIOKafkaConsumer(topic, **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest")
    found: list[Any] = []
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not found and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [record for record in records if (record.key or b"").decode() == key]
        # Whatever else is already there for this key: a second copy would be a duplicate.
        for records in (await consumer.getmany(timeout_ms=2000)).values():
            found += [record for record in records if (record.key or b"").decode() == key]
    finally:
        await consumer.stop()
    return found


async def test_the_example_adapter_submits_a_request_that_reaches_kafka_sealed(
    intake: ServiceProcess, adapter_secret: str
) -> None:
    example = KIT / "examples" / "requests" / "phone.json"

    first = run_example_adapter(intake, adapter_secret, example)
    again = run_example_adapter(intake, adapter_secret, example)

    assert first.returncode == 0, first.stderr
    request_id = first.stdout.strip()
    assert again.returncode == 0 and again.stdout.strip() == request_id, "the same key and body is one request"

    [record] = await records_on(intake.env["topic"], request_id)
    raw = record.value.decode()
    for personal in ("Jan Peeters", "+3225551212", "555 12 12", EXAMPLE_PHONE["need"], EXAMPLE_PHONE["reference"]):
        assert str(personal) not in raw, f"{personal!r} is on Kafka in clear"
    event = decode(record.value, record.headers)
    assert isinstance(event, TrainingRequestReceived)
    assert event.source == adapter_source(EXAMPLE_ADAPTER_CLIENT) == f"/intake/adapters/{EXAMPLE_ADAPTER_CLIENT}"
    assert dict(record.headers)["ce_source"].decode() == event.source
    assert event.channel is Channel.PHONE and event.channel_details["adapter"] == EXAMPLE_ADAPTER_CLIENT
    assert event.sealed is not None and event.contact.phone is None and event.need == ""

    # Intake linked and sealed it: under the person's key, the details are all there.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    try:
        opened = await PersonalData(PersonKeys(client[intake.env["database"]])).unseal(event)
    finally:
        await client.close()
    assert (opened.contact.name, opened.contact.phone) == ("Jan Peeters", "+3225551212")
    assert opened.need == EXAMPLE_PHONE["need"]
    assert opened.channel_details["adapter_reference"] == EXAMPLE_PHONE["reference"]


def test_without_a_token_the_adapter_api_answers_401(intake: ServiceProcess) -> None:
    response = httpx.post(f"{intake.url}{ADAPTER_PATH}", json=EXAMPLE_PHONE, headers={"Idempotency-Key": "e2e-anonymous"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_staff_token_without_the_adapter_role_is_403(intake: ServiceProcess, tokens: Tokens) -> None:
    headers = {**tokens.headers("adv-1"), "Idempotency-Key": "e2e-advisor"}
    response = httpx.post(f"{intake.url}{ADAPTER_PATH}", json=EXAMPLE_PHONE, headers=headers)

    assert response.status_code == 403
    assert "channel-adapter" in response.json()["detail"]


def test_the_adapters_token_opens_no_staff_route(adapter_secret: str, tokens: Tokens) -> None:
    # The service account holds `channel-adapter` alone: its token is refused where staff work.
    grant = {"grant_type": "client_credentials", "client_id": EXAMPLE_ADAPTER_CLIENT, "client_secret": adapter_secret}
    token = httpx.post(tokens.token_endpoint(), data=grant, timeout=30).raise_for_status().json()["access_token"]
    claims = json.loads(_segment(token.split(".")[1]))

    assert claims["azp"] == EXAMPLE_ADAPTER_CLIENT
    assert "formation-events" in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    assert (
        set(claims["realm_access"]["roles"]) & {"advisor", "en-team", "supervisor", "certification-staff", "dpo", "ops"} == set()
    )
    assert "channel-adapter" in claims["realm_access"]["roles"]


def _segment(part: str) -> bytes:
    """A JWT segment's bytes (base64url without padding): the claims as Keycloak issued them."""
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
