"""An adapter's request through intake's own pipeline, on the real broker and mongod: intake's app in
process with its lifespan (outbox relay included), signed in by the in-memory identity provider. What
reaches `training.requests.v1` is linked to the person's earlier request and sealed, like any channel's:
the adapter API is a door into the pipeline, never around it. (tests/e2e/test_channel_adapter.py runs
the same with the real Keycloak and the example adapter as a process.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from intake.adapters import ADAPTER_PATH, EXAMPLE_PHONE, adapter_source
from intake.app import create_app
from intake.email_server import EmailInboxSettings
from intake.settings import IntakeSettings
from schemas import Channel, TrainingRequestReceived, decode
from services.auth.roles import CHANNEL_ADAPTER
from services.kafka import delete_topics_with_prefix, use_topic_prefix
from services.privacy import PersonalData, PersonKeys
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_CLIENT
from tests.identity_provider import SignIn

pytestmark = pytest.mark.integration

CLIENT = "callcentre-adapter"


@pytest.fixture
async def intake(
    unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[tuple[FastAPI, str, SignIn]]:
    prefix = f"test_adapter_{unique}."
    settings = IntakeSettings(
        kafka=kafka_settings.model_copy(update={"topic_prefix": prefix}), mongo=mongo_settings, instance_id=f"adapter-{unique}"
    )
    sign_in = SignIn()
    app = sign_in.install(create_app(settings, email=EmailInboxSettings(enabled=False)))
    try:
        async with app.router.lifespan_context(app):
            yield app, f"{prefix}training.requests.v1", sign_in
    finally:
        use_topic_prefix("")
        await delete_topics_with_prefix(kafka_settings, prefix)


def adapter_token(sign_in: SignIn) -> dict[str, str]:
    """A client-credentials token of the adapter's client: its service account holds `channel-adapter`."""
    token = sign_in.provider.token(datetime.now(UTC), roles=(CHANNEL_ADAPTER,), sub="svc", azp=CLIENT, email=None)
    return {"Authorization": f"Bearer {token}"}


async def read(topic: str, keys: set[str], *, timeout: float = 90) -> dict[str, tuple[bytes, TrainingRequestReceived]]:
    found: dict[str, tuple[bytes, TrainingRequestReceived]] = {}
    consumer = AIOKafkaConsumer(topic, **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while set(found) != keys and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in keys:
                        event = decode(record.value, record.headers)
                        assert isinstance(event, TrainingRequestReceived)
                        assert key not in found, f"{key} is on the topic twice"
                        found[key] = (bytes(record.value or b""), event)
    finally:
        await consumer.stop()
    return found


async def test_an_adapters_requests_are_linked_sealed_and_published_once(
    intake: tuple[FastAPI, str, SignIn], mongo_client: Any, mongo_settings: MongoSettings
) -> None:
    app, topic, sign_in = intake
    headers = adapter_token(sign_in)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
        first = await http.post(ADAPTER_PATH, json=EXAMPLE_PHONE, headers={**headers, "Idempotency-Key": "call-1"})
        retried = await http.post(ADAPTER_PATH, json=EXAMPLE_PHONE, headers={**headers, "Idempotency-Key": "call-1"})
        second_call = {**EXAMPLE_PHONE, "reference": "call-2", "need": "Toch liever Word."}
        second = await http.post(ADAPTER_PATH, json=second_call, headers={**headers, "Idempotency-Key": "call-2"})

    assert (first.status_code, retried.status_code, second.status_code) == (202, 200, 202), first.text
    one, two = first.json()["request_id"], second.json()["request_id"]
    assert retried.json()["request_id"] == one

    events = await read(topic, {one, two})
    for raw, event in events.values():
        assert b"Jan Peeters" not in raw and b"3225551212" not in raw and b"call-" not in raw
        assert event.source == adapter_source(CLIENT) and event.channel is Channel.PHONE
        assert event.sealed is not None
    # The same person called twice: the pipeline linked the second request to the first.
    assert events[one][1].person_id == events[two][1].person_id
    assert events[two][1].linked_request_ids == [one]
    opened = await PersonalData(PersonKeys(mongo_client[mongo_settings.database])).unseal(events[two][1])
    assert (opened.contact.name, opened.contact.phone, opened.need) == ("Jan Peeters", "+3225551212", "Toch liever Word.")
