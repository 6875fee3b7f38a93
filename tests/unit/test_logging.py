"""Personal data never reaches the logs in clear, whatever logger emitted it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from services.logging import configure_logging, mask_personal_data, pseudonym, scrub

pytestmark = pytest.mark.unit


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    configure_logging(service="test", instance="t-1", level="INFO", fmt="json")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_events_come_out_as_json_with_personal_fields_pseudonymised(captured: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "request.received",
        request_id="0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11",
        phone="+32470123456",
        email="Amina.Test@example.org",
        name="Amina Test",
        received_at="2026-11-27 10:30:00",
    )
    [record] = lines(captured)
    assert record["event"] == "request.received"
    assert record["service"] == "test" and record["instance"] == "t-1"
    assert record["request_id"] == "0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11"
    assert record["received_at"] == "2026-11-27 10:30:00"
    text = captured.getvalue()
    for secret in ("+32470123456", "Amina.Test@example.org", "Amina Test", "470123456"):
        assert secret not in text
    assert record["phone"] == pseudonym("+32470123456")


def test_free_text_and_stdlib_loggers_are_scrubbed(captured: io.StringIO) -> None:
    logging.getLogger("aiosmtpd").warning("mail from jan.peeters@voorbeeld.be, bel 0470 12 34 56 of 02/555.66.77")
    structlog.get_logger("t").info("triage.note", note="appelez-moi au 0032 470 12 34 56 svp")
    text = captured.getvalue()
    for secret in ("jan.peeters@voorbeeld.be", "0470 12 34 56", "02/555.66.77", "0032 470 12 34 56"):
        assert secret not in text
    assert "<pii:" in text


def test_nested_contact_and_exceptions_are_masked() -> None:
    event = mask_personal_data(
        None,
        "info",
        {
            "event": "x",
            "contact": {"phone": "+32470123456", "email": "a@b.be"},
            "error": ValueError("bad address a@b.be"),
            "count": 3,
        },
    )
    assert "+32470123456" not in str(event) and "a@b.be" not in str(event)
    assert event["count"] == 3


def test_pseudonym_is_stable_and_case_insensitive() -> None:
    assert pseudonym("A@B.be") == pseudonym(" a@b.be ")
    assert scrub("no personal data here, 3 courses") == "no personal data here, 3 courses"
