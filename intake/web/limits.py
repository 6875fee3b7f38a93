"""The web channel's abuse brakes: how large a body and how many submissions a client may send.

`WebSettings` holds the limits; `read_body` refuses an oversized body (413) before or while
reading it, `client_hits` and `destination_hits` say what a submission counts against in the
shared `services.ratelimits.RateLimits` (429 beyond), and a request stopped by any of them is a
`Refused`, which the API renders as JSON and the form as a page.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import ClientDisconnect

from intake.identity import normalise_email, normalise_phone
from services.ratelimits import Hit, Limit, client_network

__all__ = [
    "BURST_WINDOW_S",
    "Refused",
    "WebSettings",
    "client_hits",
    "client_network",
    "destination_hits",
    "read_body",
    "require_media_type",
]

BURST_WINDOW_S = 10
"""The short window `burst` counts in; `rate_per_minute` counts in a minute, destinations in a day."""


class WebSettings(BaseSettings):
    """The web channel's limits, from `INTAKE_WEB_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_WEB_", extra="ignore")

    max_body_bytes: int = Field(64 * 1024, gt=0, description="Largest request body accepted (413 beyond).")
    rate_per_minute: int = Field(30, gt=0, description="Submissions per client network and minute (429 beyond).")
    burst: int = Field(10, ge=1, description=f"Submissions per client network in {BURST_WINDOW_S} seconds (429 beyond).")
    destination_per_day: int = Field(
        5, ge=1, description="Submissions per phone number or e-mail address and day (UTC), whatever the client (429 beyond)."
    )
    idempotency_key_hours: int = Field(
        24, ge=1, description="How long an Idempotency-Key stays tied to the body it first came with."
    )


class Refused(Exception):
    """A request stopped before validation; rendered as JSON by the API and as a page by the form."""

    def __init__(self, status: int, error: str, **params: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.params = status, error, params


def client_hits(network: str, settings: WebSettings) -> list[Hit]:
    """The counters one submission from `network` takes from: a burst and a per-minute limit."""
    return [
        Hit("network", network, Limit(settings.burst, BURST_WINDOW_S)),
        Hit("network", network, Limit(settings.rate_per_minute, 60)),
    ]


def destination_hits(phone: str | None, email: str | None, settings: WebSettings) -> list[Hit]:
    """The counters of the people a submission would have us contact: its phone number and e-mail
    address, normalised so that spellings of one destination count together."""
    per_day = Limit(settings.destination_per_day, 86_400)
    hits = []
    if phone:
        # The pipeline's own normal form (so a destination is counted as intake links it); digits when unusable.
        hits.append(
            Hit("destination", normalise_phone(phone) or "".join(ch for ch in phone if ch.isdigit() or ch == "+"), per_day)
        )
    if email:
        hits.append(Hit("destination", normalise_email(email) or email.strip().lower(), per_day))
    return hits


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
