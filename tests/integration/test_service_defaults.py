"""The service defaults against the genuine broker and mongod: the event round trip, exactly-once
effects under redelivery, commit-after-effect across a crash, and dead letters for poison."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo.asynchronous.client_session import AsyncClientSession

from schemas import Event, Target, TrainingRequestReceived, TrainingRequestRouted
from services import ServiceSettings, subscriber_options
from services.app import Runtime, build_runtime
from services.consumers import dead_letter_topic
from services.kafka import ensure_topics, wire
from services.outbox import Outbox
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_BOOTSTRAP, KAFKA_CLIENT, MONGODB_URI
from tests.factories import make_request

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def routed_after(request: TrainingRequestReceived) -> TrainingRequestRouted:
    return TrainingRequestRouted.following(
        request,
        source="/tests",
        request_id=request.request_id,
        person_id=request.person_id,
        target=Target.ESPACES_NUMERIQUES,
        rule_id="test",
        rule_set_version="t1",
        explanation="test",
        priority=3,
        priority_parts={"qualification": 3},
        callback_deadline=None,
        assignee_id=None,
    )


async def produce(topic: str, *events: Event, raw: tuple[bytes, ...] = ()) -> None:
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True)
    try:
        await producer.start()
        for event in events:
            _, key, value, headers = wire(event)
            await producer.send_and_wait(topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
        for value in raw:
            await producer.send_and_wait(topic, value, key=b"poison")
    finally:
        await producer.stop()


@pytest.fixture
async def runtime(
    unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[Runtime]:
    settings = ServiceSettings(service_name=f"svc-{unique}", kafka=kafka_settings, mongo=mongo_settings)
    rt = build_runtime(settings)
    yield rt
    await rt.broker.stop()
    await rt.mongo.close()


async def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_events_round_trip_through_the_real_broker(runtime: Runtime, unique: str) -> None:
    topic = f"test.roundtrip.{unique}"
    request = make_request()
    sent: list[Event] = [request, routed_after(request)]
    received: list[Event] = []

    @runtime.broker.subscriber(topic, **subscriber_options(runtime.settings.service_name))
    async def handle(event: Event) -> None:
        received.append(event)

    await runtime.broker.start()
    await produce(topic, *sent)

    async def both_arrived() -> bool:
        return len(received) == 2

    await wait_until(both_arrived)
    assert received == sent
    assert isinstance(received[1], TrainingRequestRouted)
    assert received[1].causation_id == request.id
    assert received[1].correlation_id == request.correlation_id


async def test_redelivered_event_has_its_effect_once(runtime: Runtime, unique: str, mongo_db: Any) -> None:
    topic = f"test.idempotency.{unique}"
    await runtime.processed.ensure_indexes()
    deliveries: list[str] = []
    request = make_request()

    async def count(session: AsyncClientSession) -> list[Event]:
        await runtime.db["effects"].update_one({"_id": "counter"}, {"$inc": {"n": 1}}, upsert=True, session=session)
        return []

    @runtime.broker.subscriber(topic, **subscriber_options(runtime.settings.service_name))
    async def handle(event: TrainingRequestReceived) -> None:
        deliveries.append(str(event.id))
        await runtime.processed.run_once(event, count)

    await runtime.broker.start()
    await produce(topic, request, request, request)  # Kafka redelivering, or a replay

    async def all_delivered() -> bool:
        return len(deliveries) == 3

    await wait_until(all_delivered)
    counter = await mongo_db["effects"].find_one({"_id": "counter"})
    assert counter is not None and counter["n"] == 1
    assert await runtime.processed.seen(request.id)


async def test_outputs_go_through_the_outbox_once_and_its_relay_publishes_them(runtime: Runtime, unique: str) -> None:
    """One way out: the effect's events are stored in the outbox in the effect's transaction, so
    a crash before the publish loses nothing and a redelivery adds nothing."""
    await runtime.processed.ensure_indexes()
    outbox = Outbox(runtime.db, f"outbox_{unique}")
    await outbox.ensure_indexes()
    request = make_request()
    produced: list[TrainingRequestRouted] = []

    async def effect(_: AsyncClientSession) -> list[Event]:
        routed = routed_after(request)
        produced.append(routed)
        return [routed]

    first = await runtime.processed.run_once(request, effect, outbox=outbox)  # then the process dies
    second = await runtime.processed.run_once(request, effect, outbox=outbox)
    assert (first.applied, first.published) == (True, 1)
    assert (second.applied, second.published) == (False, 0)
    assert len(produced) == 1 and await outbox.pending_count() == 1

    with pytest.raises(ValueError, match="no outbox"):
        await runtime.processed.run_once(make_request(), effect)

    await runtime.broker.start()
    assert await outbox.relay_once(runtime.broker) == 1
    assert await outbox.pending_count() == 0
    consumer = AIOKafkaConsumer("training.routing.v1", **KAFKA_CLIENT, group_id=f"check-{unique}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        found = None
        deadline = asyncio.get_running_loop().time() + 30
        while found is None and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if str(produced[0].id).encode() in (record.value or b""):
                        found = record
        assert found is not None, "the relay did not publish the stored output"
        assert found.key == request.request_id.encode()
    finally:
        await consumer.stop()


async def test_poison_goes_to_dead_letters_and_the_consumer_goes_on(runtime: Runtime, unique: str) -> None:
    topic = f"test.poison.{unique}"
    handled: list[str] = []

    @runtime.broker.subscriber(topic, **subscriber_options(runtime.settings.service_name))
    async def handle(event: TrainingRequestReceived) -> None:
        handled.append(event.request_id)

    await runtime.broker.start()
    good = make_request()
    await produce(topic, raw=(b"{not json",))
    await produce(topic, good)

    async def good_handled() -> bool:
        return handled == [good.request_id]

    await wait_until(good_handled)

    consumer = AIOKafkaConsumer(
        dead_letter_topic(runtime.settings.service_name),
        **KAFKA_CLIENT,
        group_id=f"dlq-check-{unique}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    headers = {k: v.decode() for k, v in record.headers}
    assert record.value == b"{not json"
    assert headers["dlq_original_topic"] == topic
    assert headers["dlq_exception_type"] == "MalformedEvent"
    assert headers["dlq_consumer"] == runtime.settings.service_name
    assert headers["dlq_original_offset"] == "0"


async def test_consumer_killed_before_storing_gets_the_event_again(
    unique: str, mongo_db: Any, mongo_settings: MongoSettings
) -> None:
    """At-least-once: the offset is committed only after the effect is stored."""
    topic = f"test.crash.{unique}"
    await ensure_topics(KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP), ())
    request = make_request()
    await produce(topic, request)
    script = REPO / "tests" / "integration" / "consumer_process.py"
    # The same servers as this test, wherever KAFKA_PORT / MONGO_PORT put them.
    env = {**os.environ, "PYTHONPATH": str(REPO), "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP, "MONGODB_URI": MONGODB_URI}
    args = [sys.executable, str(script), topic, f"crash-{unique}", mongo_settings.database]

    crashed = await asyncio.to_thread(subprocess.run, [*args, "crash"], env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    assert await mongo_db["stored"].count_documents({}) == 0

    stored = await asyncio.to_thread(subprocess.run, [*args, "store"], env=env, capture_output=True, timeout=120)
    assert stored.returncode == 0, stored.stderr.decode()[-2000:]
    docs = await mongo_db["stored"].find().to_list(None)
    assert [d["_id"] for d in docs] == [request.request_id]
