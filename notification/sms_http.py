"""The SMS adapter: a provider's HTTP API, `POST {to, text, reference}` as JSON with a bearer token.

How the provider's answers are read:

| answer | result |
|---|---|
| 2xx | sent (the provider's message id is kept if the body has an `id`) |
| 429 | transient, retry at the `Retry-After` time (seconds or an HTTP date) |
| 5xx, timeout, connection error | transient (a `Retry-After` on a 503 is honoured too) |
| 401, 403 | transient: our token is wrong or expired, not the person's number; an operator must act |
| 408, 425 | transient (the request timed out / came too early) |
| other 4xx (400 invalid number, 422...) | permanent: no retry, the text falls back to e-mail |
| (not sent) a number that is not E.164 | permanent, without calling the provider |

401/403 stay transient although they are 4xx: the fault is ours (a token), and the bounded
retries give an operator time to fix it before each text falls back to e-mail.

The delivery id travels as `reference`, so a provider that deduplicates on it drops the second
copy of a text resent after a crash.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

from notification.ports import OutgoingSms, SendResult, SmsSender
from services.clock import Clock, SystemClock
from services.logging import scrub

__all__ = ["HttpSmsSender", "parse_retry_after"]

log = structlog.get_logger(__name__)

_TRANSIENT_4XX = frozenset({401, 403, 408, 425, 429})
# Intake stores numbers in E.164; anything else did not come from it and would be refused each time.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """The instant a `Retry-After` header names: delay-seconds or an HTTP date; None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:  # an HTTP date is GMT even when written "-0000"
        at = at.replace(tzinfo=UTC)
    return max(at, now)


def _provider_error(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body = body.get("error") or body.get("message") or body.get("detail") or ""
    return scrub(str(body))[:200]


class HttpSmsSender(SmsSender):
    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        timeout_s: float = 10.0,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self._clock: Clock = clock or SystemClock()
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, sms: OutgoingSms) -> SendResult:
        if not _E164.fullmatch(sms.to):
            return SendResult.permanent("invalid number: not E.164")
        try:
            response = await self._client.post(self.url, json={"to": sms.to, "text": sms.text, "reference": sms.reference})
        except httpx.TimeoutException as error:
            return SendResult.transient(f"SMS provider timeout: {type(error).__name__}")
        except httpx.TransportError as error:
            return SendResult.transient(f"SMS provider unreachable: {type(error).__name__}")
        status = response.status_code
        if 200 <= status < 300:
            provider_id = None
            try:
                body = response.json()
                provider_id = str(body["id"]) if isinstance(body, dict) and body.get("id") is not None else None
            except ValueError:
                pass
            return SendResult.sent(provider_message_id=provider_id)
        reason = f"HTTP {status} {_provider_error(response)}".strip()
        if status >= 500 or status in _TRANSIENT_4XX:
            if status in (401, 403):
                log.error("sms.provider_refused_credentials", status=status)
            retry_at = parse_retry_after(response.headers.get("Retry-After"), self._clock.now().astimezone(UTC))
            return SendResult.transient(reason, retry_at=retry_at)
        return SendResult.permanent(reason)
