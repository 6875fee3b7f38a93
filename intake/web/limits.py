"""The web channel's abuse brakes: how large a body and how many submissions a client may send.

`WebSettings` holds the limits; `read_body` refuses an oversized body (413) before or while
reading it, `RateLimiter` slows a client down (429), and a request stopped by either is a
`Refused`, which the API renders as JSON and the form as a page.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi import Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import ClientDisconnect

__all__ = ["RateLimiter", "Refused", "WebSettings", "client_address", "read_body", "require_media_type"]


class WebSettings(BaseSettings):
    """The web channel's limits, from `INTAKE_WEB_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_WEB_", extra="ignore")

    max_body_bytes: int = Field(64 * 1024, gt=0, description="Largest request body accepted (413 beyond).")
    rate_per_minute: float = Field(30, gt=0, description="Sustained submissions per client and minute.")
    burst: int = Field(10, ge=1, description="Submissions a client may send at once before being slowed down.")
    trust_forwarded_for: bool = Field(
        False,
        description="Identify clients by the address our edge proxy appended to X-Forwarded-For; "
        "only when that proxy is the sole way in.",
    )


class RateLimiter:
    """A token bucket per client: `burst` submissions at once, then `per_minute` on average.

    In memory, so each replica counts on its own and a restart forgets. That is enough for what
    it is: a brake on a script hammering one replica with submissions, not a quota anyone is
    billed against. The global limit is the edge proxy's job; a shared counter (Redis, Mongo)
    would add a network round trip and a failure mode to every submission for little gain.
    At most `max_clients` buckets are kept; the least recently seen client is forgotten first,
    which only ever errs on the lenient side.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Take a token for `client`: None if it may go on, else the seconds to wait (≥ 1)."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return None if allowed else max(1, math.ceil((1.0 - tokens) / self._rate))


class Refused(Exception):
    """A request stopped before validation; rendered as JSON by the API and as a page by the form."""

    def __init__(self, status: int, error: str, **params: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.params = status, error, params


def client_address(request: Request, trust_forwarded_for: bool) -> str:
    """The client's address; behind our edge proxy, the one that proxy appended.

    The *last* X-Forwarded-For entry is the hop nearest to us, written by the proxy itself; the
    earlier ones are whatever the client sent, so trusting the first would let anyone pick a new
    identity per request and walk past the limiter.
    """
    if trust_forwarded_for:
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        nearest = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(nearest))
        except ValueError:
            pass
    return request.client.host if request.client else "unknown"


def require_media_type(request: Request, accepted: tuple[str, ...]) -> None:
    """Refuse (415) a body not sent as one of the `accepted` media types."""
    if _media_type(request) not in accepted:
        raise Refused(415, "unsupported_media_type", expected=", ".join(accepted))


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) as soon as it is known to exceed `limit` bytes: from
    Content-Length before reading anything, else while counting the chunks as they arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise Refused(400, "invalid_content_length")
        if int(declared) > limit:
            raise Refused(413, "too_large", limit=limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "too_large", limit=limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise Refused(400, "client_disconnected") from None
    return b"".join(chunks)
