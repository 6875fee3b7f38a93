"""Non-blocking retries against the genuine broker and mongod: a transient failure goes round the
retry topics while the partition goes on, a message failing every time ends in the dead letters
after the last level, permanent failures go there at once while an unknown event type is skipped,
and MongoDB being down still retries in place. Each test has its own topic prefix and service name."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.structs import RecordMetadata
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import AutoReconnect

from schemas import Event, TrainingRequestReceived, codec
from schemas.topics import TopicSpec
from services import ServiceSettings, subscriber_options
from services.app import Runtime, build_runtime
from services.consumers import dead_letter_topic
from services.kafka import delete_topics_with_prefix, ensure_topics, topic_name, use_topic_prefix
from services.retries import PermanentError, retry_topic
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_CLIENT
from tests.factories import make_request

pytestmark = pytest.mark.integration

MAIN = TopicSpec(
    name="test.requests.v1",
    partitions=1,
    key="request_id",
    events=(TrainingRequestReceived,),
    description="one partition: order is observable",
)
DELAYS = (0.2, 0.5, 1.0)


@pytest.fixture
async def prefix(unique: str, kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    prefix = f"t{unique}."
    use_topic_prefix(prefix)
    yield prefix
    use_topic_prefix("")
    await delete_topics_with_prefix(kafka_settings, prefix)


@pytest.fixture
async def runtime(
    prefix: str, unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[Runtime]:
    settings = ServiceSettings(
        service_name=f"svc-{unique}",
        kafka=kafka_settings.model_copy(update={"topic_prefix": prefix}),
        mongo=mongo_settings,
        retry_delays=tuple(timedelta(seconds=d) for d in DELAYS),
    )
    rt = build_runtime(settings)
    await rt.processed.ensure_indexes()
    yield rt
    await rt.broker.stop()
    await rt.mongo.close()


async def start(runtime: Runtime) -> None:
    """What `create_service_app` and its lifespan do: attach retries, create the topics, start."""
    runtime.error_policy.attach_retries(runtime.broker)
    await ensure_topics(runtime.settings.kafka, (MAIN, *runtime.error_policy.topics()))
    await runtime.broker.start()


async def produce(topic: str, value: bytes, *, key: bytes, headers: dict[str, bytes] | None = None) -> RecordMetadata:
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True)
    await producer.start()
    try:
        metadata: RecordMetadata = await producer.send_and_wait(topic, value, key=key, headers=list((headers or {}).items()))
        return metadata
    finally:
        await producer.stop()


async def produce_event(topic: str, event: Event, *, key: bytes) -> RecordMetadata:
    return await produce(topic, codec.encode(event), key=key, headers=codec.headers(event))


async def read_records(topic: str, count: int, *, timeout: float = 60.0) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` records of `topic` (all partitions), waiting for them to arrive."""
    consumer = AIOKafkaConsumer(topic, **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(records)} of {count} records on {topic}")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def wait_until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if await result if isinstance(result, Awaitable) else result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


def counting_effect(runtime: Runtime, event: Event) -> Callable[[AsyncClientSession], Awaitable[list[Event]]]:
    async def effect(session: AsyncClientSession) -> list[Event]:
        await runtime.db["effects"].update_one({"_id": str(event.id)}, {"$inc": {"n": 1}}, upsert=True, session=session)
        return []

    return effect


async def effects(runtime: Runtime, event: Event) -> int:
    doc = await runtime.db["effects"].find_one({"_id": str(event.id)})
    return int(doc["n"]) if doc else 0


def sample(runtime: Runtime, name: str, **labels: str) -> float:
    return runtime.metrics.get_sample_value(name, {"service": runtime.settings.service_name, **labels}) or 0.0


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def test_a_transient_failure_is_retried_off_the_partition_and_processed_once(runtime: Runtime) -> None:
    topic = topic_name(MAIN)
    flaky, later = make_request(), make_request()
    calls: Counter[str] = Counter()
    completed: list[str] = []

    @runtime.broker.subscriber(topic, **subscriber_options(runtime.settings.service_name))
    async def on_request(event: TrainingRequestReceived) -> None:
        calls[event.request_id] += 1
        if event.request_id == flaky.request_id and calls[event.request_id] <= 2:
            raise TimeoutError("the calendar did not answer for amina@example.org")
        await runtime.processed.run_once(event, counting_effect(runtime, event))
        completed.append(event.request_id)

    await start(runtime)
    # Same key, same partition: with retries in place the later one would wait behind the flaky one.
    await produce_event(topic, flaky, key=b"person-1")
    await produce_event(topic, later, key=b"person-1")

    await wait_until(lambda: len(completed) == 2)
    assert completed == [later.request_id, flaky.request_id]
    await asyncio.sleep(sum(DELAYS))  # nothing else comes
    assert calls == {flaky.request_id: 3, later.request_id: 1}
    assert await effects(runtime, flaky) == 1 and await effects(runtime, later) == 1

    assert sample(runtime, "consumer_retries_total", reason="TimeoutError", level="1") == 1
    assert sample(runtime, "consumer_retries_total", reason="TimeoutError", level="2") == 1
    assert sample(runtime, "consumer_retries_total", reason="TimeoutError", level="3") == 0
    assert sample(runtime, "consumer_dead_letters_total", reason="TimeoutError", cause="retries_exhausted") == 0

    service = runtime.settings.service_name
    (first,) = await read_records(topic_name(retry_topic(service, 1)), 1)
    (second,) = await read_records(topic_name(retry_topic(service, 2)), 1)
    assert first.key == second.key == b"person-1"
    assert first.value == second.value == codec.encode(flaky)
    h1, h2 = headers_of(first), headers_of(second)
    assert (h1["retry_attempt"], h2["retry_attempt"]) == ("1", "2")
    assert h1["retry_original_topic"] == h2["retry_original_topic"] == topic
    assert h1["retry_original_offset"] == h2["retry_original_offset"] == "0"
    assert h1["retry_first_failure_at"] == h2["retry_first_failure_at"]
    assert h1["ce_id"] == str(flaky.id)
    assert "amina@example.org" not in h1["retry_exception_message"]


async def test_a_message_failing_every_time_is_dead_lettered_after_the_last_level(runtime: Runtime) -> None:
    topic = topic_name(MAIN)
    request = make_request()
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    @runtime.broker.subscriber(topic, **subscriber_options(runtime.settings.service_name))
    async def on_request(event: TrainingRequestReceived) -> None:
        attempts.append(loop.time())
        raise RuntimeError("the partner API refused +32470123456")

    await start(runtime)
    sent = await produce_event(topic, request, key=b"person-2")

    (letter,) = await read_records(dead_letter_topic(runtime.settings.service_name), 1)
    assert letter.value == codec.encode(request)
    assert letter.key == b"person-2"
    headers = headers_of(letter)
    assert headers["dlq_original_topic"] == topic
    assert headers["dlq_original_partition"] == "0"
    assert headers["dlq_original_offset"] == str(sent.offset)
    assert headers["dlq_original_timestamp"] == str(sent.timestamp)
    assert headers["dlq_consumer"] == runtime.settings.service_name
    assert headers["dlq_reason"] == "retries_exhausted"
    assert headers["dlq_exception_type"] == "RuntimeError"
    assert "the partner API refused" in headers["dlq_exception_message"]
    assert "+32470123456" not in headers["dlq_exception_message"]
    assert headers["dlq_attempts"] == "4"
    assert headers["dlq_first_failure_at"] < headers["dlq_last_failure_at"]
    assert {k: v for k, v in headers.items() if k.startswith("ce_")} == {
        k: v.decode() for k, v in codec.headers(request).items() if k.startswith("ce_")
    }
    assert not [k for k in headers if k.startswith("retry_")]

    assert len(attempts) == 4
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(gap >= delay - 0.02 for gap, delay in zip(gaps, DELAYS, strict=True)), gaps
    for level in ("1", "2", "3"):
        assert sample(runtime, "consumer_retries_total", reason="RuntimeError", level=level) == 1
    assert sample(runtime, "consumer_dead_letters_total", reason="RuntimeError", cause="retries_exhausted") == 1


async def test_contract_and_permanent_errors_go_straight_to_the_dead_letters_and_unknown_types_are_skipped(
    runtime: Runtime,
) -> None:
    topic = topic_name(MAIN)
    refused = make_request()
    handled: list[str] = []

    @runtime.broker.subscriber(topic, **subscriber_options(runtime.settings.service_name))
    async def on_request(event: TrainingRequestReceived) -> None:
        handled.append(event.request_id)
        raise PermanentError("the course no longer exists")

    await start(runtime)
    teleported = "be.bruxellesformation.training.request.teleported"
    unknown = json.loads(codec.encode(make_request())) | {"type": teleported}
    invalid = json.loads(codec.encode(make_request()))
    invalid["data"]["request_id"] = ""
    poison = json.dumps(invalid).encode()
    await produce(topic, json.dumps(unknown).encode(), key=b"person-2")
    await produce(topic, poison, key=b"person-3")
    await produce_event(topic, refused, key=b"person-4")

    first, second = await read_records(dead_letter_topic(runtime.settings.service_name), 2)
    assert (first.value, first.key) == (poison, b"person-3")
    assert (second.value, second.key) == (codec.encode(refused), b"person-4")
    h1, h2 = headers_of(first), headers_of(second)
    assert (h1["dlq_exception_type"], h1["dlq_attempts"], h1["dlq_reason"], h1["dlq_original_offset"]) == (
        "InvalidEvent",
        "1",
        "permanent",
        "1",
    )
    assert (h2["dlq_exception_type"], h2["dlq_attempts"], h2["dlq_reason"], h2["dlq_original_offset"]) == (
        "PermanentError",
        "1",
        "permanent",
        "2",
    )
    assert handled == [refused.request_id]
    assert sample(runtime, "consumer_retries_total", reason="PermanentError", level="1") == 0
    assert sample(runtime, "consumer_dead_letters_total", reason="InvalidEvent", cause="permanent") == 1
    assert sample(runtime, "consumer_dead_letters_total", reason="UnknownEventType", cause="permanent") == 0
    skipped = {"consumer": runtime.settings.service_name, "topic": topic, "type": teleported}
    assert runtime.metrics.get_sample_value("consumer_skipped_events_total", skipped) == 1


async def test_mongodb_unavailable_is_retried_in_place_without_committing(runtime: Runtime) -> None:
    """Through the retry topics, a MongoDB outage would send everything to the dead letters."""
    topic = topic_name(MAIN)
    first, second = make_request(), make_request()
    calls: Counter[str] = Counter()
    completed: list[str] = []

    @runtime.broker.subscriber(topic, **subscriber_options(runtime.settings.service_name))
    async def on_request(event: TrainingRequestReceived) -> None:
        calls[event.request_id] += 1
        if event.request_id == first.request_id and calls[event.request_id] <= 2:
            raise AutoReconnect("connection refused")
        completed.append(event.request_id)

    await start(runtime)
    await produce_event(topic, first, key=b"person-5")
    await produce_event(topic, second, key=b"person-5")

    await wait_until(lambda: len(completed) == 2)
    assert completed == [first.request_id, second.request_id]  # the partition waited
    assert calls[first.request_id] == 3
    assert sample(runtime, "consumer_retries_total", reason="AutoReconnect", level="in_place") == 2
    assert sample(runtime, "consumer_retries_total", reason="AutoReconnect", level="1") == 0
