"""scripts.tracing's pure parts, and the collector's files agreeing with each other.

The `traceparent` it makes is one that W3C Trace Context accepts and the OpenTelemetry propagator
reads; a recorded answer of Jaeger's `GET /api/traces/{id}` is summarized as the demo prints it; the
collector's configuration, scripts/infra.sh and scripts.tracing name the same loopback ports and
the same pinned Jaeger.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from scripts.tracing import (
    HEALTH_URL,
    OTLP_HTTP_ENDPOINT,
    QUERY_URL,
    TRACEPARENT,
    TraceSummary,
    new_traceparent,
    otlp_env,
    summarize,
    trace_url,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
JAEGER_DIR = REPO / "deploy" / "jaeger"
INFRA_SH = REPO / "scripts" / "infra.sh"
SAMPLE = Path(__file__).parent / "data" / "jaeger_api_trace.json"
SAMPLE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_traceparent_has_the_w3c_version_00_form_and_is_sampled() -> None:
    trace_id, header = new_traceparent()

    match = TRACEPARENT.fullmatch(header)
    assert match is not None, header
    assert match["trace_id"] == trace_id
    assert match["trace_id"] != "0" * 32
    assert match["parent_id"] != "0" * 16
    assert match["flags"] == "01"


def test_each_traceparent_starts_another_trace() -> None:
    made = [new_traceparent() for _ in range(100)]

    assert len({trace_id for trace_id, _ in made}) == 100
    assert len({header.split("-")[2] for _, header in made}) == 100


def test_opentelemetry_reads_the_traceparent_as_a_remote_sampled_parent() -> None:
    trace_id, header = new_traceparent()

    context = TraceContextTextMapPropagator().extract({"traceparent": header})
    parent = get_current_span(context).get_span_context()

    assert parent.is_valid and parent.is_remote
    assert format(parent.trace_id, "032x") == trace_id
    assert format(parent.span_id, "016x") == header.split("-")[2]
    assert parent.trace_flags.sampled


def test_the_pattern_refuses_what_the_standard_refuses() -> None:
    valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert TRACEPARENT.fullmatch(valid)
    for invalid in (
        valid.upper(),  # upper-case hex
        valid.replace("00-", "0-", 1),  # version of one digit
        valid[:-1],  # flags of one digit
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # trace id of 31 digits
    ):
        assert TRACEPARENT.fullmatch(invalid) is None, invalid


def _sample() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SAMPLE.read_text())
    return document


def test_a_recorded_answer_is_summarized_by_service_and_span() -> None:
    summary = summarize(SAMPLE_TRACE_ID, _sample())

    assert summary == TraceSummary(
        trace_id=SAMPLE_TRACE_ID,
        services=("intake", "routing"),
        span_count=3,
        operations=("intake: POST /requests", "intake: request.stored", "routing: request.routed"),
    )
    assert summary.url == f"{QUERY_URL}/trace/{SAMPLE_TRACE_ID}"


def test_an_upper_case_trace_id_finds_the_same_trace() -> None:
    summary = summarize(SAMPLE_TRACE_ID.upper(), _sample())

    assert summary is not None and summary.span_count == 3


def test_an_answer_without_the_trace_summarizes_to_nothing() -> None:
    not_found = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": 404, "msg": "trace not found"}]}

    assert summarize(SAMPLE_TRACE_ID, not_found) is None
    assert summarize("0" * 31 + "1", _sample()) is None


def test_a_trace_id_with_leading_zeros_matches_jaegers_shortened_form() -> None:
    # Jaeger's UI format writes a trace id whose high 64 bits are zero in 16 digits.
    document = _sample()
    document["data"][0]["traceID"] = "a3ce929d0e0e4736"

    assert summarize("0" * 16 + "a3ce929d0e0e4736", document) is not None


def test_the_ui_link_names_the_trace() -> None:
    assert trace_url(SAMPLE_TRACE_ID) == f"http://127.0.0.1:16686/trace/{SAMPLE_TRACE_ID}"


def test_the_services_export_over_otlp_http_to_the_local_collector() -> None:
    env = otlp_env()

    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"


def _port(endpoint: str) -> int:
    host, _, port = endpoint.rpartition(":")
    assert host == "127.0.0.1", f"{endpoint}: the collector is for this machine only"
    return int(port)


def _infra_value(name: str) -> str:
    match = re.search(rf'^{name}="?([^"\n]+)"?$', INFRA_SH.read_text(), re.MULTILINE)
    assert match, f"{name} not set in scripts/infra.sh"
    return match[1]


def test_the_configuration_listens_on_the_loopback_ports_the_scripts_use() -> None:
    config = yaml.safe_load((JAEGER_DIR / "config.yaml").read_text())
    otlp = config["receivers"]["otlp"]["protocols"]
    query = config["extensions"]["jaeger_query"]

    ports = {
        "JAEGER_OTLP_GRPC_PORT": _port(otlp["grpc"]["endpoint"]),
        "JAEGER_OTLP_HTTP_PORT": _port(otlp["http"]["endpoint"]),
        "JAEGER_QUERY_PORT": _port(query["http"]["endpoint"]),
        "JAEGER_QUERY_GRPC_PORT": _port(query["grpc"]["endpoint"]),
        "JAEGER_HEALTH_PORT": _port(config["extensions"]["healthcheckv2"]["http"]["endpoint"]),
    }

    assert {name: int(_infra_value(name)) for name in ports} == ports
    assert f"http://127.0.0.1:{ports['JAEGER_OTLP_HTTP_PORT']}" == OTLP_HTTP_ENDPOINT
    assert f"http://127.0.0.1:{ports['JAEGER_QUERY_PORT']}" == QUERY_URL
    assert f"http://127.0.0.1:{ports['JAEGER_HEALTH_PORT']}/status" == HEALTH_URL
    # The collector's own metrics would open another port (8888 on every interface by default).
    assert config["service"]["telemetry"]["metrics"]["level"] == "none"


def test_the_storage_is_bounded_in_memory() -> None:
    config = yaml.safe_load((JAEGER_DIR / "config.yaml").read_text())
    backends = config["extensions"]["jaeger_storage"]["backends"]
    storage = config["extensions"]["jaeger_query"]["storage"]["traces"]

    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == storage
    assert 0 < backends[storage]["memory"]["max_traces"] <= 100_000


def test_the_build_module_pins_the_jaeger_that_infra_sh_names() -> None:
    go_mod = (JAEGER_DIR / "build" / "go.mod").read_text()
    version = _infra_value("JAEGER_MODULE_VERSION")

    assert re.search(r"^tool github\.com/jaegertracing/jaeger/cmd/jaeger$", go_mod, re.MULTILINE)
    assert re.search(rf"^\s+github\.com/jaegertracing/jaeger {re.escape(version)}( //.*)?$", go_mod, re.MULTILINE)
    # Jaeger's own go.mod replaces sarama; a tool module must say so itself, or it builds another one.
    assert "replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0" in go_mod
    assert f"github.com/jaegertracing/jaeger {version} h1:" in (JAEGER_DIR / "build" / "go.sum").read_text()
