"""A retry and a dead letter as the genuine broker holds them match what the routing document says
of its retry levels and dead letters: the records are written by the real `ErrorPolicy` through
FastStream's producer (its own headers included), read back raw, and checked with the helper the
unit tests use (tests/asyncapi_checks.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from schemas import TrainingRequestReceived
from schemas.topics import TRAINING_REQUESTS
from services import ServiceSettings, subscriber_options
from services.app import Runtime, build_runtime
from services.consumers import dead_letter_topic
from services.kafka import ensure_topics, publish, topic_name
from services.retries import PermanentError, retry_topic
from services.settings import KafkaSettings, MongoSettings
from tests.asyncapi_checks import Record, publisher_errors
from tests.factories import make_request
from tests.integration.test_retries import prefix, read_records

pytestmark = pytest.mark.integration
__all__ = ["prefix"]  # the fixture: topics of this test only, deleted after it

SERVICE = "routing"
"""The service whose document is checked; its topics and consumer group carry this test's prefix."""


@pytest.fixture
async def runtime(
    prefix: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[Runtime]:
    settings = ServiceSettings(
        service_name=SERVICE,
        kafka=kafka_settings.model_copy(update={"topic_prefix": prefix}),
        mongo=mongo_settings,
        retry_delays=(timedelta(seconds=0.2), timedelta(seconds=0.5), timedelta(seconds=1)),
    )
    rt = build_runtime(settings)
    await rt.processed.ensure_indexes()
    yield rt
    await rt.broker.stop()
    await rt.mongo.close()


async def test_a_retry_and_a_dead_letter_on_the_broker_match_the_routing_document(runtime: Runtime, prefix: str) -> None:
    requests = topic_name(TRAINING_REQUESTS)
    failures = [TimeoutError("the partner API took too long"), PermanentError("the course no longer exists")]

    @runtime.broker.subscriber(requests, **subscriber_options(SERVICE))
    async def on_request(event: TrainingRequestReceived) -> None:
        raise failures.pop(0)

    runtime.error_policy.attach_retries(runtime.broker)
    await ensure_topics(runtime.settings.kafka, (TRAINING_REQUESTS, *runtime.error_policy.topics()))
    await runtime.broker.start()
    # Published the way intake publishes: services.kafka.publish, through FastStream.
    await publish(runtime.broker, make_request())

    (original,) = await read_records(requests, 1)
    (retried,) = await read_records(topic_name(retry_topic(SERVICE, 1)), 1)
    (letter,) = await read_records(dead_letter_topic(SERVICE), 1)

    records = [Record.read(r.topic, r.key, r.value, r.headers, prefix=prefix) for r in (original, retried, letter)]
    assert [r.topic for r in records] == [TRAINING_REQUESTS.name, f"{SERVICE}.retry.1.v1", f"{SERVICE}.dead-letters.v1"]
    assert {r.value for r in records} == {original.value} and {r.key for r in records} == {original.key}
    assert "correlation_id" in records[1].headers and records[2].headers["dlq_reason"] == "permanent"
    for record in records:
        assert publisher_errors(record) == [], record.topic
