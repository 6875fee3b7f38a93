"""Routing's Kafka handlers: each translates one event into one call on the routing use case.

The use case reaches the handlers through the broker's context (`include`), not a closure, so the
same handlers run on the real broker and in `TestKafkaBroker` around a fake.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from faststream import Context
from faststream.kafka import KafkaBroker, KafkaRouter

from schemas import PersonDataErased, TrainingRequestReceived
from schemas.topics import PRIVACY, TRAINING_REQUESTS
from services import subscriber_options
from services.kafka import topic_name

USE_CASE = "routing"
"""The broker context key the routing use case is set under."""


class RoutingUseCase(Protocol):
    """What the handlers call: `routing.service.RoutingService` in the service, a fake in tests."""

    async def route(self, request: TrainingRequestReceived, /) -> object: ...

    async def erase_person(self, person_id: str, /) -> object: ...


Routing = Annotated[RoutingUseCase, Context(USE_CASE)]


def router() -> KafkaRouter:
    """Routing's subscribers, with the groups and options they have always had.

    A new router each call: a router belongs to one broker, and tests build many.
    """
    router = KafkaRouter()

    @router.subscriber(topic_name(TRAINING_REQUESTS), **subscriber_options("routing"))
    async def on_training_request_received(event: TrainingRequestReceived, routing: Routing) -> None:
        await routing.route(event)

    @router.subscriber(topic_name(PRIVACY), **subscriber_options("routing.privacy"))
    async def on_person_data_erased(event: PersonDataErased, routing: Routing) -> None:
        await routing.erase_person(event.person_id)

    return router


def include(broker: KafkaBroker, routing: RoutingUseCase) -> None:
    """Subscribe `broker` to routing's topics, the handlers calling `routing`."""
    broker.context.set_global(USE_CASE, routing)
    broker.include_router(router())
