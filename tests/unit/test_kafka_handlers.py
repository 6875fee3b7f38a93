"""Each service's Kafka handlers, in memory (`TestKafkaBroker`): an event on a topic becomes one
call on the service's use case, and an event of an unknown type is skipped and counted.

The broker is built as the services build theirs (`create_broker` with the `ErrorPolicy`
middleware and its retry subscribers), so what is asserted here is what runs on the real broker;
the use cases are small recording fakes of our own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from prometheus_client import CollectorRegistry

from routing import handlers as routing_handlers
from schemas import Event, PersonDataErased, TrainingRequestReceived, codec
from schemas.topics import PRIVACY, TRAINING_REQUESTS, TopicSpec
from services import ErrorPolicy
from services.kafka import create_broker, topic_name
from services.settings import KafkaSettings
from tests.factories import make_request

pytestmark = pytest.mark.unit

TELEPORTED = "be.bruxellesformation.tests.person.teleported"
"""An event type no reader knows."""


@asynccontextmanager
async def in_memory(service: str, include: Callable[[KafkaBroker], None]) -> AsyncIterator[tuple[KafkaBroker, CollectorRegistry]]:
    """A broker wired like `services.app.build_runtime` builds it, running in memory, and its metrics."""
    metrics = CollectorRegistry()
    policy = ErrorPolicy(service, registry=metrics)
    broker = create_broker(KafkaSettings(), client_id=f"{service}-tests", middlewares=(policy,))
    policy.bind(broker)
    include(broker)
    policy.attach_retries(broker)
    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker, metrics


async def publish(broker: KafkaBroker, topic: TopicSpec, event: Event) -> None:
    headers = {name: value.decode() for name, value in codec.headers(event).items()}
    await broker.publish(codec.encode(event), topic=topic_name(topic), key=(event.subject or "").encode(), headers=headers)


async def publish_unknown(broker: KafkaBroker, topic: TopicSpec, like: Event) -> None:
    """A well-formed CloudEvent of a type nobody knows, made from a known one."""
    value = json.loads(codec.encode(like)) | {"type": TELEPORTED}
    await broker.publish(json.dumps(value).encode(), topic=topic_name(topic), headers={"content-type": codec.CONTENT_TYPE})


def skipped(metrics: CollectorRegistry, service: str, topic: TopicSpec) -> float:
    """`consumer_skipped_events_total` for the unknown type on `topic`."""
    value = metrics.get_sample_value(
        "consumer_skipped_events_total", {"consumer": service, "topic": topic_name(topic), "type": TELEPORTED}
    )
    return value or 0.0


def erased(person_id: str) -> PersonDataErased:
    return PersonDataErased(
        source="/tests", subject=person_id, person_id=person_id, erased_at=datetime.now(UTC), requested_by="data_subject"
    )


# -- routing ---------------------------------------------------------------------------


class RecordingRouting:
    """The routing use case as the handlers see it, recording each call."""

    def __init__(self) -> None:
        self.routed: list[TrainingRequestReceived] = []
        self.erased: list[str] = []

    async def route(self, request: TrainingRequestReceived, /) -> None:
        self.routed.append(request)

    async def erase_person(self, person_id: str, /) -> int:
        self.erased.append(person_id)
        return 1


async def test_routing_routes_a_received_request() -> None:
    routing = RecordingRouting()
    request = make_request()
    async with in_memory("routing", lambda broker: routing_handlers.include(broker, routing)) as (broker, _):
        await publish(broker, TRAINING_REQUESTS, request)
    assert routing.routed == [request]
    assert routing.erased == []


async def test_routing_erases_an_erased_person() -> None:
    routing = RecordingRouting()
    person_id = f"p-{uuid.uuid4().hex[:8]}"
    async with in_memory("routing", lambda broker: routing_handlers.include(broker, routing)) as (broker, _):
        await publish(broker, PRIVACY, erased(person_id))
    assert routing.erased == [person_id]
    assert routing.routed == []


async def test_routing_skips_an_unknown_event_type() -> None:
    routing = RecordingRouting()
    async with in_memory("routing", lambda broker: routing_handlers.include(broker, routing)) as (broker, metrics):
        await publish_unknown(broker, TRAINING_REQUESTS, make_request())
        assert skipped(metrics, "routing", TRAINING_REQUESTS) == 1
    assert routing.routed == []
