"""Tolerant readers on the genuine broker and mongod: routing, as it runs (its lifespan and
subscribers), skips an event type it does not know on `training.requests.v1` - counted, nothing
dead-lettered - and routes the request behind it, which comes from a channel it does not know."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from routing.app import create_app
from routing.settings import RoutingSettings
from schemas import TrainingRequestReceived, codec
from services.app import Runtime
from services.kafka import delete_topics_with_prefix, use_topic_prefix
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_CLIENT
from tests.factories import make_request

pytestmark = pytest.mark.integration

TELEPORTED = "be.bruxellesformation.training.request.teleported"


@pytest.fixture
async def routing(
    unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[tuple[Runtime, str]]:
    prefix = f"test_tolerant_{unique}."
    settings = RoutingSettings(
        kafka=kafka_settings.model_copy(update={"topic_prefix": prefix}),
        mongo=mongo_settings,
        instance_id=f"routing-{unique}",
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            yield app.state.runtime, prefix
    finally:
        use_topic_prefix("")
        await delete_topics_with_prefix(kafka_settings, prefix)


async def produce(topic: str, *records: tuple[bytes, bytes, dict[str, bytes]]) -> None:
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True)
    try:
        await producer.start()
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=list(headers.items()))
    finally:
        await producer.stop()


async def dead_letters_of(prefix: str, service: str) -> int:
    """How many records the service's dead-letter topic holds (it has one partition)."""
    consumer = AIOKafkaConsumer(**KAFKA_CLIENT)
    await consumer.start()
    try:
        tp = TopicPartition(f"{prefix}{service}.dead-letters.v1", 0)
        offsets: dict[TopicPartition, int] = await consumer.end_offsets([tp])
        return offsets[tp]
    finally:
        await consumer.stop()


async def test_an_unknown_event_type_is_skipped_and_the_request_behind_it_is_routed(routing: tuple[Runtime, str]) -> None:
    runtime, prefix = routing
    topic = f"{prefix}training.requests.v1"
    # A request from a channel added to intake after this routing was built, on the real clock.
    request = TrainingRequestReceived.model_validate(
        make_request(received_at=datetime.now(UTC)).model_dump() | {"channel": "whatsapp"}
    )
    # A kind of event routing does not know, about the same request: same key, same partition, just before it.
    unknown = json.loads(codec.encode(make_request(request_id=request.request_id))) | {"type": TELEPORTED}
    key = request.request_id.encode()
    await produce(
        topic,
        (key, json.dumps(unknown).encode(), {"content-type": codec.CONTENT_TYPE.encode()}),
        (key, codec.encode(request), codec.headers(request)),
    )

    decisions = runtime.db["routing_decisions"]
    for _ in range(300):
        if (decision := await decisions.find_one({"_id": request.request_id})) is not None:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the request behind the unknown event was not routed")

    assert decision["channel"] == "whatsapp"
    assert (decision["rule_id"], decision["target"]) == ("default", "advisors")
    assert "whatsapp" in decision["explanation_fr"]
    skipped = runtime.metrics.get_sample_value(
        "consumer_skipped_events_total", {"consumer": "routing", "topic": topic, "type": TELEPORTED}
    )
    assert skipped == 1
    assert await dead_letters_of(prefix, "routing") == 0
    assert await runtime.db["processed_events"].count_documents({"consumer": "routing"}) == 1
