"""The local trace collector of `make up TRACING=1` (Jaeger v2, deploy/jaeger/config.yaml), as its clients see it.

What the demo and the tests need of it: whether it runs, the environment that makes a service export
its spans there, a W3C `traceparent` that puts a request in a trace whose id is known in advance,
and what the collector recorded of that trace (read back through Jaeger's query API).

    if collector_running():
        env |= otlp_env()                        # for the service processes
        trace_id, header = new_traceparent()     # sent as the `traceparent` header of one request
        summary = await trace_summary(trace_id, timeout=30, services={"intake", "routing"})
        print(summary.trace_id, summary.services, summary.span_count, trace_url(trace_id))
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

OTLP_HTTP_ENDPOINT = "http://127.0.0.1:4318"
"""OTLP over HTTP (protobuf) of deploy/jaeger/config.yaml; its gRPC receiver is 127.0.0.1:4317."""
QUERY_URL = "http://127.0.0.1:16686"
"""Jaeger's UI and query API."""
HEALTH_URL = "http://127.0.0.1:13133/status"
"""The collector's health (healthcheckv2): 200 once every component is up."""

TRACE_ID = re.compile(r"[0-9a-f]{32}")
TRACEPARENT = re.compile(r"00-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})")
"""A version-00 `traceparent` (W3C Trace Context, section 3.2), lower-case hex as the standard requires."""
_INVALID_TRACE_ID = "0" * 32
_INVALID_PARENT_ID = "0" * 16
_SAMPLED = "01"


def collector_running(timeout: float = 2.0) -> bool:
    """True if the collector reports itself healthy and its query API answers (so `trace_summary` can work)."""
    try:
        with httpx.Client(timeout=timeout) as http:
            return http.get(HEALTH_URL).status_code == 200 and http.get(f"{QUERY_URL}/api/services").status_code == 200
    except httpx.HTTPError:
        return False


def otlp_env() -> dict[str, str]:
    """Environment variables for a service process that should export its spans to the local collector.

    Give them only when `collector_running()`: without a collector the exporter would retry and log
    its failures. The services export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporters add
    `/v1/traces`).
    """
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": OTLP_HTTP_ENDPOINT,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # The batch span processor waits 5 s by default before it sends: half a second, so that a
        # demo finds a request's spans while it still runs.
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }


def new_traceparent() -> tuple[str, str]:
    """A new trace id and the `traceparent` header that starts a sampled trace with it.

    The parent id names a span that no one records: the first service's server span becomes the
    trace's entry, a child of that absent caller, which Jaeger shows as the trace's root.
    """
    trace_id = _random_hex(16, invalid=_INVALID_TRACE_ID)
    parent_id = _random_hex(8, invalid=_INVALID_PARENT_ID)
    return trace_id, f"00-{trace_id}-{parent_id}-{_SAMPLED}"


def _random_hex(size: int, *, invalid: str) -> str:
    # All zeros is the one invalid value (W3C Trace Context 3.2.2.3 and 3.2.2.4); 2**-64 at worst, still checked.
    while (value := secrets.token_hex(size)) == invalid:
        pass
    return value


def trace_url(trace_id: str) -> str:
    """The trace's page in Jaeger's UI."""
    return f"{QUERY_URL}/trace/{trace_id}"


@dataclass(frozen=True)
class TraceSummary:
    """What the collector holds of one trace: the services that recorded spans in it, and how many spans."""

    trace_id: str
    services: tuple[str, ...]
    """Service names (the spans' `service.name` resource attribute), sorted, each once."""
    span_count: int
    operations: tuple[str, ...]
    """`service: span name` of each distinct operation, sorted."""

    @property
    def url(self) -> str:
        return trace_url(self.trace_id)


def summarize(trace_id: str, document: Mapping[str, Any]) -> TraceSummary | None:
    """The summary of a response of `GET /api/traces/{trace_id}` (Jaeger's UI format), or None if it holds no span.

    That format lists, per trace, its spans, each naming a process (`processID`), and the processes,
    each with its `serviceName`: a service is counted when one of its spans is there.
    """
    trace_id = trace_id.lower()
    spans = 0
    services: set[str] = set()
    operations: set[str] = set()
    for trace in document.get("data") or ():
        if str(trace.get("traceID", "")).lower().rjust(32, "0") != trace_id:
            continue
        processes: Mapping[str, Any] = trace.get("processes") or {}
        for span in trace.get("spans") or ():
            spans += 1
            service = (processes.get(span.get("processID")) or {}).get("serviceName") or "?"
            services.add(service)
            operations.add(f"{service}: {span.get('operationName', '?')}")
    if not spans:
        return None
    return TraceSummary(trace_id, tuple(sorted(services)), spans, tuple(sorted(operations)))


async def trace_summary(
    trace_id: str,
    timeout: float = 30.0,
    *,
    services: Collection[str] = (),
    min_spans: int = 1,
    poll_interval: float = 0.5,
) -> TraceSummary | None:
    """What the collector recorded of `trace_id`, polled from its query API until spans of every one of
    `services` are there (of any service if none are named), at least `min_spans` of them, or `timeout`
    seconds have passed.

    Spans reach the collector in batches, one per exporting process, so a trace fills in over a
    second or two: at the timeout, whatever is there by then is returned, None if nothing is.
    """
    if not TRACE_ID.fullmatch(trace_id.lower()):
        raise ValueError(f"not a trace id (32 hex digits): {trace_id!r}")
    wanted = set(services)
    deadline = time.monotonic() + timeout
    latest: TraceSummary | None = None
    async with httpx.AsyncClient(base_url=QUERY_URL, timeout=5.0) as http:
        while True:
            try:
                response = await http.get(f"/api/traces/{trace_id.lower()}")
            except httpx.HTTPError:
                response = None
            # 404 until the first span of the trace is stored.
            if response is not None and response.status_code == 200:
                latest = summarize(trace_id, response.json()) or latest
            if latest is not None and wanted <= set(latest.services) and latest.span_count >= min_spans:
                return latest
            if time.monotonic() >= deadline:
                return latest
            await asyncio.sleep(poll_interval)
