"""OpenTelemetry tracing, the part of the service defaults that follows one request across services.

Each service gets its own `TracerProvider` (resource `service.name` = the service's name) from
`create_tracing`, wired once by `services.app.build_runtime`: the FastStream Kafka middleware
(W3C `traceparent` in every record's headers, a span per publish and per consumed message), the
FastAPI instrumentation (an incoming `traceparent` continues the caller's trace) and a PyMongo
command listener. Nothing connects at import or build time; the exporter sends in the background.

A request's trace crosses what a span cannot: the transactional outbox stores the trace context of
each entry with it (`outgoing_context`) and the relay publishes it under that context; a batch
consumer names each record's own context (`per_cause`) so that a request's events do not join the
batch's trace; a long-running case stores its context (`carrier`) and a later desk action or timer
continues it (`continued`), linked to whatever started it (the staff's HTTP request).

Without `OTEL_EXPORTER_OTLP_ENDPOINT` spans are sampled out (`ALWAYS_OFF`) and the instrumentations
are left out (FastStream's Kafka middleware, the FastAPI one, the MongoDB listener): measured with
`make bench`, their per-message work cost routing about 40 % of its throughput and intake about 20 %
even with every span sampled out. Our own spans (a batch's `routing.route`, desk steps, timers)
still make trace and span ids, so log lines within them carry a `trace_id` and what they publish a
`traceparent`, but nothing is recorded or exported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pymongo import monitoring

__all__ = [
    "TRACER",
    "TRACE_HEADERS",
    "Tracing",
    "attached",
    "carrier",
    "context_of",
    "continued",
    "create_tracing",
    "export_to",
    "headers_carrier",
    "outgoing_context",
    "per_cause",
]

TRACE_HEADERS = ("traceparent", "tracestate")
"""The W3C trace-context headers (and outbox fields) a trace travels in."""

TRACER = "tracer"
"""The broker context key a service's tracer is set under (`Annotated[Tracer, Context(TRACER)]`)."""

_PROPAGATOR = TraceContextTextMapPropagator()
_NAME = "formation-events"

_test_exporter: SpanExporter | None = None


@contextlib.contextmanager
def export_to(exporter: SpanExporter) -> Iterator[None]:
    """Tests: every service built meanwhile records all its spans into `exporter`, synchronously,
    with or without an OTLP endpoint (an in-process test sees each service's spans, resource and all)."""
    global _test_exporter
    previous, _test_exporter = _test_exporter, exporter
    try:
        yield
    finally:
        _test_exporter = previous


@dataclass(frozen=True)
class Tracing:
    """One service's tracing: its provider, and whether its spans are recorded (and exported)."""

    provider: TracerProvider
    recording: bool

    @property
    def tracer(self) -> Tracer:
        return self.provider.get_tracer(_NAME)

    def kafka_middlewares(self) -> tuple[Any, ...]:
        """FastStream's telemetry middleware, when spans are recorded. Without a collector it is left
        out: measured by `make bench`, its per-message spans and attributes cost routing about 40 % of
        its throughput even sampled out; a record a service consumes then carries on the trace context
        its producer stored (the outbox keeps it), and what a consumer publishes starts none."""
        if not self.recording:
            return ()
        # Imported here: FastStream's module pulls the OpenTelemetry SDK in, which only the
        # services need, not every importer of the service defaults.
        from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

        return (KafkaTelemetryMiddleware(tracer_provider=self.provider, include_messages_counters=False),)

    def mongo_listeners(self) -> list[monitoring.CommandListener]:
        """The PyMongo command listener of this service's client: one given to the client rather than
        `PymongoInstrumentor().instrument()`, whose listener is process-wide and would give every
        service of a process (tests run them in one) the spans of the first one's provider."""
        if not self.recording:
            return []
        from opentelemetry.instrumentation.pymongo import CommandTracer

        # Statements are not captured: filters and documents hold personal data.
        return [CommandTracer(self.tracer, capture_statement=False)]

    def instrument_app(self, app: Any) -> None:
        if not self.recording:
            return  # as for Kafka: the ASGI middleware's per-request work, for spans nobody records
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # Health checks and scrapes would make most of the traces and tell nothing.
        FastAPIInstrumentor.instrument_app(app, tracer_provider=self.provider, excluded_urls="health/.*,metrics")

    def shutdown(self) -> None:
        """Export what is buffered, then stop; called once at the end of the lifespan."""
        self.provider.shutdown()


def create_tracing(service_name: str, *, instance: str | None = None, endpoint: str | None = None) -> Tracing:
    """The provider of one service: exporting over OTLP/HTTP to `endpoint` (`http://host:4318`) when
    given, propagating only (spans sampled out) otherwise; no I/O here."""
    attributes = {"service.name": service_name, "service.namespace": "formation-events"}
    if instance:
        attributes["service.instance.id"] = instance
    resource = Resource.create(attributes)
    if _test_exporter is not None:
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(SimpleSpanProcessor(_test_exporter))
        return Tracing(provider, recording=True)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The SDK's default sampler (`OTEL_TRACES_SAMPLER`, parent-based always-on unless set): a
        # trace sampled where it started is kept whole in every service.
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
        return Tracing(provider, recording=True)
    return Tracing(TracerProvider(resource=resource, sampler=ALWAYS_OFF), recording=False)


def headers_carrier(headers: Iterable[tuple[str, bytes | str]] | Mapping[str, bytes | str] | None) -> dict[str, str]:
    """The trace-context headers of a Kafka record (aiokafka pairs or a FastStream mapping)."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in pairs if k in TRACE_HEADERS}


def context_of(stored: Mapping[str, str] | None) -> Context | None:
    """The context a stored or received carrier names; None without a valid `traceparent`."""
    if not stored or "traceparent" not in stored:
        return None
    extracted = _PROPAGATOR.extract(stored)
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


def carrier(ctx: Context | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`) of `ctx`, or of the current context; empty when there is no trace."""
    out: dict[str, str] = {}
    _PROPAGATOR.inject(out, context=ctx)
    return out


_causes: ContextVar[Mapping[str, Context] | None] = ContextVar("trace_causes", default=None)


@contextlib.contextmanager
def per_cause(contexts: Mapping[str, Context]) -> Iterator[None]:
    """While handling a batch: the trace context of each consumed event, by event id, so that what an
    event causes goes out in its own trace and not in the batch's (see `outgoing_context`)."""
    token = _causes.set(contexts)
    try:
        yield
    finally:
        _causes.reset(token)


def outgoing_context(cause_id: object | None = None) -> Context | None:
    """The context an effect of event `cause_id` goes out in: that event's own within a batch
    (`per_cause`), else the current one (None: the current one)."""
    causes = _causes.get()
    if causes and cause_id is not None:
        return causes.get(str(cause_id))
    return None


@contextlib.contextmanager
def continued(tracer: Tracer, name: str, stored: Mapping[str, str] | None, **attributes: Any) -> Iterator[Span]:
    """A span for a later step of a long-running flow (a desk action, a fired timer) in the trace of
    the request it belongs to, `stored` at the request's time; linked to the span that started the
    step (a staff's HTTP request), which stays in its own trace. Without a stored context the step
    simply continues the current trace."""
    parent = context_of(stored)
    current = trace.get_current_span().get_span_context()
    links = [Link(current)] if parent is not None and current.is_valid else None
    with tracer.start_as_current_span(name, context=parent, links=links, attributes=attributes or None) as span:
        yield span


def attached(ctx: Context | None) -> contextlib.AbstractContextManager[Any]:
    """Make `ctx` current for a block (nothing to do for None)."""
    if ctx is None:
        return contextlib.nullcontext()
    return _Attached(ctx)


class _Attached(contextlib.AbstractContextManager[Any]):
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._token: object | None = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._ctx)

    def __exit__(self, *_: object) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]
