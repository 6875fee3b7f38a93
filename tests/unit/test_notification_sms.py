"""The SMS adapter against an in-process fake of the provider's side (httpx.MockTransport):
what it sends, and how each answer is read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from notification.ports import OutgoingSms, SendStatus
from notification.sms_http import HttpSmsSender, parse_retry_after
from services.clock import FixedClock

pytestmark = pytest.mark.unit

URL = "https://sms.example.test/v1/messages"
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
TEXT = OutgoingSms(
    reference="0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11:sms", to="+32470123456", text="Bruxelles Formation : à bientôt."
)


def sender(handler: httpx.MockTransport | None = None, **answer: Any) -> tuple[HttpSmsSender, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(**answer)

    transport = handler or httpx.MockTransport(respond)
    return HttpSmsSender(URL, token="s3cret", clock=FixedClock(NOW), transport=transport), seen


async def test_200_is_sent_with_json_body_bearer_token_and_reference() -> None:
    sms, seen = sender(status_code=200, json={"id": "msg-123", "status": "queued"})
    result = await sms.send(TEXT)
    await sms.aclose()
    assert result.status is SendStatus.SENT and result.provider_message_id == "msg-123"
    (request,) = seen
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "to": "+32470123456",
        "text": "Bruxelles Formation : à bientôt.",
        "reference": TEXT.reference,
    }


async def test_202_without_a_body_is_sent() -> None:
    sms, _ = sender(status_code=202)
    assert (await sms.send(TEXT)).status is SendStatus.SENT


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_4xx_is_permanent_and_the_reason_has_no_number(status: int) -> None:
    sms, _ = sender(status_code=status, json={"error": "invalid destination +32470123456"})
    result = await sms.send(TEXT)
    assert result.status is SendStatus.PERMANENT and not result.bounced
    assert result.reason.startswith(f"HTTP {status}") and "invalid destination" in result.reason
    assert "+32470123456" not in result.reason and "470123456" not in result.reason


async def test_429_with_retry_after_in_seconds_retries_at_that_time() -> None:
    sms, _ = sender(status_code=429, headers={"Retry-After": "120"}, json={"error": "slow down"})
    result = await sms.send(TEXT)
    assert result.status is SendStatus.TRANSIENT and result.retry_at == NOW + timedelta(seconds=120)


async def test_429_with_retry_after_as_an_http_date_retries_at_that_date() -> None:
    sms, _ = sender(status_code=429, headers={"Retry-After": "Tue, 03 Mar 2026 10:05:00 GMT"})
    result = await sms.send(TEXT)
    assert result.status is SendStatus.TRANSIENT and result.retry_at == datetime(2026, 3, 3, 10, 5, tzinfo=UTC)


async def test_429_without_retry_after_is_transient_on_the_usual_schedule() -> None:
    sms, _ = sender(status_code=429)
    result = await sms.send(TEXT)
    assert result.status is SendStatus.TRANSIENT and result.retry_at is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_transient(status: int) -> None:
    sms, _ = sender(status_code=status, text="upstream down")
    result = await sms.send(TEXT)
    assert result.status is SendStatus.TRANSIENT and result.reason.startswith(f"HTTP {status}")


async def test_503_with_retry_after_is_honoured() -> None:
    sms, _ = sender(status_code=503, headers={"Retry-After": "30"})
    assert (await sms.send(TEXT)).retry_at == NOW + timedelta(seconds=30)


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_token_is_transient_because_the_number_is_not_at_fault(status: int) -> None:
    sms, _ = sender(status_code=status)
    assert (await sms.send(TEXT)).status is SendStatus.TRANSIENT


async def test_a_timeout_is_transient() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("provider too slow", request=request)

    sms, _ = sender(httpx.MockTransport(time_out))
    result = await sms.send(TEXT)
    assert result.status is SendStatus.TRANSIENT and "timeout" in result.reason


async def test_a_refused_connection_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sms, _ = sender(httpx.MockTransport(refuse))
    assert (await sms.send(TEXT)).status is SendStatus.TRANSIENT


def test_retry_after_parsing() -> None:
    assert parse_retry_after("0", NOW) == NOW
    assert parse_retry_after(" 7 ", NOW) == NOW + timedelta(seconds=7)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == NOW  # in the past: now
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after(None, NOW) is None


@pytest.mark.parametrize("to", ["0470 12 34 56", "+32470123456\r\n", "+32 470 12 34 56", "", "+0470123456"])
async def test_a_number_not_in_e164_is_permanent_without_calling_the_provider(to: str) -> None:
    sms, seen = sender(status_code=200, json={"id": "msg-1"})
    result = await sms.send(OutgoingSms(reference=TEXT.reference, to=to, text=TEXT.text))
    await sms.aclose()
    assert result.status is SendStatus.PERMANENT and result.reason == "invalid number: not E.164"
    assert seen == []
