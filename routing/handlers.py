"""Routing's Kafka handlers: each translates events into one call on the routing use case.

Requests are consumed in batches (`batch_max_records` above 1): whatever is waiting, up to the
bound, goes to `RoutingUseCase.route_batch` at once, and a request it could not route meets the
failure policy on its own (retried later or dead-lettered, as if consumed alone); its retries are
routed one at a time. With a bound of 1 each request is consumed and routed alone.

The use case reaches the handlers through the broker's context (`include`), not a closure, so the
same handlers run on the real broker and in `TestKafkaBroker` around a fake.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Protocol

from aiokafka import ConsumerRecord
from faststream import Context
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter
from opentelemetry import trace
from opentelemetry.context import Context as TraceContext
from opentelemetry.trace import Link, Tracer

from routing.batches import FailedRequest, RequestNotRoutedYet
from schemas import (
    CallbackSlotChosen,
    ContractError,
    Event,
    PersonDataErased,
    RequestDetailsCorrected,
    TrainingRequestReceived,
    TrainingRequestWithdrawn,
)
from schemas.topics import PRIVACY, TRAINING_REQUESTS
from services import subscriber_options
from services.consumers import RecordsFailed, batch_subscriber_options, decode_each, retried_one_at_a_time
from services.kafka import topic_name
from services.retries import Disposition as RetryDisposition
from services.retries import classify
from services.tracing import TRACER, context_of, headers_carrier, per_cause

USE_CASE = "routing"
"""The broker context key the routing use case is set under."""


class RoutingUseCase(Protocol):
    """What the handlers call: `routing.service.RoutingService` in the service, a fake in tests."""

    async def route(self, request: TrainingRequestReceived, /) -> object: ...

    async def route_batch(self, requests: Sequence[TrainingRequestReceived], /) -> list[FailedRequest]:
        """Route each request once (as `route` does); the ones that failed, with their error."""
        ...

    async def erase_person(self, person_id: str, /) -> object: ...

    async def apply_person_event(self, event: PersonEvent, /) -> object:
        """A slot chosen, a withdrawal or a correction, applied once to the request's case."""
        ...


PersonEvent = CallbackSlotChosen | TrainingRequestWithdrawn | RequestDetailsCorrected
"""What the person does about their request; on the requests topic, keyed by request, after it."""
PERSON_EVENTS = (CallbackSlotChosen, TrainingRequestWithdrawn, RequestDetailsCorrected)


Routing = Annotated[RoutingUseCase, Context(USE_CASE)]
ServiceTracer = Annotated[Tracer | None, Context(TRACER, default=None)]


def router(*, batch_max_records: int = 1, batch_timeout_ms: int = 10) -> KafkaRouter:
    """Routing's subscribers, with the groups and options they have always had; requests in batches
    of up to `batch_max_records`, waiting at most `batch_timeout_ms` for them to come.

    A new router each call: a router belongs to one broker, and tests build many.
    """
    router = KafkaRouter()
    requests = topic_name(TRAINING_REQUESTS)

    async def on_training_request_received(event: TrainingRequestReceived | PersonEvent, routing: Routing) -> None:
        if isinstance(event, TrainingRequestReceived):
            await routing.route(event)
        else:
            await routing.apply_person_event(event)

    if batch_max_records > 1:
        options = batch_subscriber_options("routing", max_records=batch_max_records, timeout_ms=batch_timeout_ms)

        @router.subscriber(requests, **options)
        @retried_one_at_a_time(on_training_request_received)
        async def on_training_requests_received(message: KafkaMessage, routing: Routing, tracer: ServiceTracer) -> None:
            decoded, failed = decode_each(message.raw_message)
            failed += await route_records(routing, decoded, tracer or trace.get_tracer(__name__))
            if failed:
                raise RecordsFailed(failed)
    else:
        router.subscriber(requests, **subscriber_options("routing"))(on_training_request_received)

    @router.subscriber(topic_name(PRIVACY), **subscriber_options("routing.privacy"))
    async def on_person_data_erased(event: PersonDataErased, routing: Routing) -> None:
        await routing.erase_person(event.person_id)

    return router


async def route_records(
    routing: RoutingUseCase, decoded: Sequence[tuple[ConsumerRecord[Any, Any], Event]], tracer: Tracer
) -> list[tuple[ConsumerRecord[Any, Any], Exception]]:
    """Handle a batch's decoded records: its requests routed together (`route_batch`), then the
    person's events one by one in the batch's order; the records that failed, with their error,
    for the failure policy. An infrastructure failure (MongoDB unreachable) is raised: the whole
    batch comes again."""
    failed: list[tuple[ConsumerRecord[Any, Any], Exception]] = []
    received: list[TrainingRequestReceived] = []
    person: list[tuple[ConsumerRecord[Any, Any], PersonEvent]] = []
    record_of: dict[str, ConsumerRecord[Any, Any]] = {}
    for record, event in decoded:
        if isinstance(event, TrainingRequestReceived):
            received.append(event)
            record_of.setdefault(str(event.id), record)
        elif isinstance(event, PERSON_EVENTS):
            person.append((record, event))
        else:
            failed.append((record, ContractError(f"{event.type} is no training request")))
    mine = [(event, record_of[str(event.id)]) for event in received]
    not_routed: set[str] = set()
    with _per_request_spans(tracer, mine) as contexts, per_cause(contexts):
        for failure in (await routing.route_batch(received)) if received else []:
            failed.append((record_of[str(failure.request.id)], failure.error))
            not_routed.add(failure.request.request_id)
    # The person's events after every request of the batch: one of theirs follows its request
    # on the partition (same key), so it applies after the request is routed. One by one, in
    # the batch's order, so that a later choice replaces an earlier one.
    for record, event in person:
        if event.request_id in not_routed:
            # Its request waits for a retry: the event does too, and applies after it.
            failed.append((record, RequestNotRoutedYet(event.request_id)))
            continue
        try:
            await routing.apply_person_event(event)
        except Exception as error:  # each record meets the failure policy on its own
            if classify(error) is RetryDisposition.RETRY_IN_PLACE:
                raise
            failed.append((record, error))
            not_routed.add(event.request_id)  # the request's later events wait behind it
    return failed


@contextlib.contextmanager
def _per_request_spans(
    tracer: Tracer, received: Sequence[tuple[TrainingRequestReceived, ConsumerRecord[Any, Any]]]
) -> Iterator[dict[str, TraceContext]]:
    """A `routing.route` span per request of a batch, in the trace its record came in (linked to the
    batch's span, which has no single parent): what routing a request writes - its events, its
    decision, its timers - goes in that request's trace. Yields the context of each span by request
    event id and by request id, for `per_cause`."""
    batch = trace.get_current_span().get_span_context()
    links = [Link(batch)] if batch.is_valid else None
    spans: list[trace.Span] = []
    contexts: dict[str, TraceContext] = {}
    try:
        for event, record in received:
            if str(event.id) in contexts:
                continue  # the same record twice in a batch: one span
            parent = context_of(headers_carrier(record.headers))
            # No trace upstream: the request's own root, not the batch's child, for the same reason.
            span = tracer.start_span("routing.route", context=parent or TraceContext(), links=links)
            spans.append(span)
            contexts[str(event.id)] = contexts[event.request_id] = trace.set_span_in_context(span)
        yield contexts
    finally:
        for span in spans:
            span.end()


def include(broker: KafkaBroker, routing: RoutingUseCase, *, batch_max_records: int = 1, batch_timeout_ms: int = 10) -> None:
    """Subscribe `broker` to routing's topics, the handlers calling `routing`."""
    broker.context.set_global(USE_CASE, routing)
    broker.include_router(router(batch_max_records=batch_max_records, batch_timeout_ms=batch_timeout_ms))
