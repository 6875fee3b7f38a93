"""The trace collector of `make up TRACING=1` takes spans over OTLP/HTTP and gives them back by trace id.

A span is exported with the OpenTelemetry SDK's OTLP/HTTP exporter, the one the services use, in a
trace started by a `traceparent` of scripts.tracing, then found through Jaeger's query API with
scripts.tracing.trace_summary. Skipped when no collector runs (`make up` without TRACING=1).
"""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from scripts.tracing import OTLP_HTTP_ENDPOINT, collector_running, new_traceparent, trace_summary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not collector_running(),
        reason="no trace collector answers at 127.0.0.1:13133 and :16686: `make up TRACING=1` starts one",
    ),
]

# Generous: the collector stores spans in batches, and the machine may be busy.
FOUND_TIMEOUT_S = 60.0


async def test_an_exported_span_is_found_by_its_trace_id(unique: str) -> None:
    service = f"collector-check-{unique}"
    trace_id, traceparent = new_traceparent()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    # Simple, not batched: each span is sent as it ends, so what is asserted is the collector, not a timer.
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{OTLP_HTTP_ENDPOINT}/v1/traces")))
    tracer = provider.get_tracer(__name__)
    context = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    try:
        with tracer.start_as_current_span("request.received", context=context) as outer:
            assert format(outer.get_span_context().trace_id, "032x") == trace_id
            with tracer.start_as_current_span("request.stored"):
                pass
    finally:
        provider.shutdown()

    summary = await trace_summary(trace_id, timeout=FOUND_TIMEOUT_S, services={service}, min_spans=2)

    assert summary is not None, f"trace {trace_id} not found in the collector within {FOUND_TIMEOUT_S}s"
    assert summary.trace_id == trace_id
    assert summary.services == (service,)
    assert summary.span_count == 2
    assert summary.operations == (f"{service}: request.received", f"{service}: request.stored")


async def test_a_trace_nobody_sent_is_not_found() -> None:
    trace_id, _ = new_traceparent()

    assert await trace_summary(trace_id, timeout=1.0) is None
