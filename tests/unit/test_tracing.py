"""Tracing in the service defaults: the outbox keeps each entry's trace context and the relay
publishes in it, a batch's events go out in their own request's trace, a later step continues a
stored trace, log lines carry the ids, and without a collector ids still propagate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schemas import Target, TrainingRequestRouted
from services.logging import add_trace_ids
from services.outbox import Outbox
from services.tracing import carrier, context_of, continued, create_tracing, export_to, per_cause
from tests.factories import make_request

pytestmark = pytest.mark.unit


class FakeCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self._docs = docs

    def sort(self, *_: Any) -> FakeCursor:
        return self

    async def to_list(self, limit: int) -> list[dict[str, Any]]:
        return sorted(self._docs, key=lambda d: d["seq"])[:limit]


class FakeCollection:
    """What `Outbox` asks of its collection, in memory."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    async def insert_many(self, docs: list[dict[str, Any]], **_: Any) -> None:
        self.docs += docs

    def find(self, query: dict[str, Any]) -> FakeCursor:
        return FakeCursor([d for d in self.docs if d["sent_at"] is None])

    async def update_many(self, query: dict[str, Any], update: dict[str, Any]) -> None:
        for doc in self.docs:
            if doc["_id"] in query["_id"]["$in"]:
                doc.update(update["$set"])


class FakeBroker:
    """Records each publish with the span current when it was made."""

    def __init__(self) -> None:
        self.published: list[tuple[dict[str, str], trace.SpanContext]] = []

    async def publish(self, value: bytes, *, headers: dict[str, str], **_: Any) -> Any:
        self.published.append((dict(headers), trace.get_current_span().get_span_context()))

        async def acknowledged() -> None:
            return None

        return acknowledged()


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "routing"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def outbox(tracer: trace.Tracer) -> tuple[Outbox, FakeCollection]:
    collection = FakeCollection()
    return Outbox({"outbox": collection}, tracer=tracer), collection  # type: ignore[arg-type]


def routed_after(request: Any) -> TrainingRequestRouted:
    return TrainingRequestRouted.following(
        request,
        source="/routing",
        request_id=request.request_id,
        person_id=request.person_id,
        target=Target.ADVISORS,
        rule_id="phone-no-secondary-certificate",
        rule_set_version="test",
        explanation="staff only",
        priority=60,
        callback_deadline=request.received_at,
    )


async def test_an_entry_keeps_the_trace_it_was_added_in_and_is_published_in_it(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    box, collection = outbox(tracer)
    request = make_request()
    with tracer.start_as_current_span("consume") as consuming:
        await box.add([routed_after(request)])
    added = consuming.get_span_context()
    [doc] = collection.docs
    assert doc["headers"]["traceparent"].split("-")[1:3] == [f"{added.trace_id:032x}", f"{added.span_id:016x}"]

    broker = FakeBroker()
    assert await box.relay_once(broker) == 1  # type: ignore[arg-type]

    [(_, publishing)] = broker.published
    [relay] = [s for s in exporter.get_finished_spans() if s.name == "outbox.relay"]
    assert relay.parent is not None and relay.parent.span_id == added.span_id
    assert publishing.trace_id == added.trace_id and publishing.span_id == relay.context.span_id


async def test_in_a_batch_each_request_s_events_go_out_in_that_request_s_trace(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = spans
    tracer = provider.get_tracer("test")
    box, collection = outbox(tracer)
    first, second = make_request(), make_request()
    own = {}
    for request in (first, second):
        with tracer.start_as_current_span("request") as span:
            own[str(request.id)] = trace.set_span_in_context(span)
    with tracer.start_as_current_span("batch") as batch, per_cause(own):
        await box.add([routed_after(first), routed_after(second)])

    trace_ids = [context_of(doc["headers"]) for doc in collection.docs]
    expected = [trace.get_current_span(own[str(r.id)]).get_span_context().trace_id for r in (first, second)]
    assert [trace.get_current_span(c).get_span_context().trace_id for c in trace_ids if c] == expected
    assert batch.get_span_context().trace_id not in expected


def test_a_later_step_continues_the_stored_trace_linked_to_what_started_it(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("routed") as routed:
        stored = carrier()
    with tracer.start_as_current_span("POST /desk") as http, continued(tracer, "desk.record_outcome", stored):
        pass
    [step] = [s for s in exporter.get_finished_spans() if s.name == "desk.record_outcome"]
    assert step.context.trace_id == routed.get_span_context().trace_id
    assert step.parent is not None and step.parent.span_id == routed.get_span_context().span_id
    assert [link.context.span_id for link in step.links] == [http.get_span_context().span_id]


def test_without_a_stored_trace_a_step_continues_the_current_one(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /desk") as http, continued(tracer, "desk.accept", {}):
        pass
    [step] = [s for s in exporter.get_finished_spans() if s.name == "desk.accept"]
    assert step.parent is not None and step.parent.span_id == http.get_span_context().span_id
    assert not step.links


def test_log_lines_in_a_span_carry_its_trace_and_span_ids(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, _ = spans
    assert add_trace_ids(None, "info", {"event": "outside"}) == {"event": "outside"}
    with provider.get_tracer("test").start_as_current_span("work") as span:
        line = add_trace_ids(None, "info", {"event": "inside"})
    ids = span.get_span_context()
    assert line == {"event": "inside", "trace_id": f"{ids.trace_id:032x}", "span_id": f"{ids.span_id:016x}"}


def test_without_a_collector_ids_propagate_but_nothing_is_recorded() -> None:
    tracing = create_tracing("intake")
    assert not tracing.recording and tracing.mongo_listeners() == []
    incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    with tracing.tracer.start_as_current_span("consume", context=context_of(incoming)) as span:
        outgoing = carrier()
    assert not span.is_recording()
    assert outgoing["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    with tracing.tracer.start_as_current_span("root"):
        flags = int(carrier()["traceparent"].split("-")[3], 16)
    assert not flags & 0x01  # a trace of its own, not sampled
    tracing.shutdown()


def test_without_a_collector_no_instrumentation_is_installed() -> None:
    # They cost the hot paths even with every span sampled out (make bench): only when recording.
    tracing = create_tracing("routing")
    app = FastAPI()
    tracing.instrument_app(app)
    assert tracing.kafka_middlewares() == ()
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    tracing.shutdown()


def test_with_a_collector_kafka_and_http_are_instrumented() -> None:
    with export_to(InMemorySpanExporter()):
        tracing = create_tracing("routing")
    app = FastAPI()
    tracing.instrument_app(app)
    assert len(tracing.kafka_middlewares()) == 1
    assert getattr(app, "_is_instrumented_by_opentelemetry", False)
    tracing.shutdown()
