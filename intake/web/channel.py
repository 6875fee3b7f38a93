"""The web channel as its HTTP handlers see it: the pipeline it hands requests to, its limits, the
catalogue submissions are checked against, and the clock that dates them.

One `WebChannel` per app, built where the pipeline is and reached through `get_web_channel`; it
keeps what must outlive a request (the rate limiter's buckets, the idempotency keys seen lately).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import Depends, Request

from intake.domain import AcceptedRequest, AcceptRequests, RequestDraft
from intake.web.captcha import CaptchaVerdict, CaptchaVerifier, CaptchaWidget
from intake.web.limits import RateLimiter, Refused, WebSettings, client_address
from schemas import Language
from services import Runtime, get_runtime
from services.catalogue import Catalogue

__all__ = ["BRUSSELS", "LANGUAGE_CODES", "RecentKeys", "WebChannel", "get_web_channel"]

log = structlog.get_logger(__name__)

BRUSSELS = ZoneInfo("Europe/Brussels")
CAPTCHA_RETRY_AFTER_S = 60
LANGUAGE_CODES = frozenset(language.value for language in Language)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RecentKeys:
    """Idempotency keys seen lately by this replica, with the hash of the body they came with.

    Only for telling a client that it reused a key for another request (422). That is
    best effort: another replica, or this one after a restart, does not know the key, and then
    the other body becomes a new request, which is what `dedup_key = web:{key}:{body hash}` says.
    The guarantee that matters, a retried POST is stored once, rests on the pipeline's durable
    dedup key and holds across replicas.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._hashes: OrderedDict[str, str] = OrderedDict()

    def conflicts(self, key: str, body_hash: str) -> bool:
        known = self._hashes.get(key)
        return known is not None and known != body_hash

    def remember(self, key: str, body_hash: str) -> None:
        self._hashes.pop(key, None)
        self._hashes[key] = body_hash
        while len(self._hashes) > self._size:
            self._hashes.popitem(last=False)


class WebChannel:
    """What the API and the form share: accepting a draft, the rate limit, and what validation needs.

    `clock` dates the requests (`received_at`) and decides what "in the future" means;
    `monotonic` drives the rate limiter (tests pass a fake one).
    """

    def __init__(
        self,
        pipeline: AcceptRequests,
        settings: WebSettings,
        catalogue: Catalogue,
        clock: Callable[[], datetime] = _utc_now,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        captcha: CaptchaVerifier | None = None,
        captcha_widget: CaptchaWidget | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.catalogue = catalogue
        self.clock = clock
        self.limiter = RateLimiter(settings.rate_per_minute, settings.burst, clock=monotonic)
        self.recent_keys = RecentKeys()
        self.captcha = captcha
        self.captcha_widget = captcha_widget

    def today(self) -> date:
        """Today in Brussels, where the people filling the form are."""
        return self.clock().astimezone(BRUSSELS).date()

    def validation_context(self) -> dict[str, Any]:
        """What `TrainingRequestSubmission` checks course codes and dates against."""
        return {"catalogue": self.catalogue, "today": self.today()}

    def check_rate(self, request: Request) -> None:
        """Take one submission from the client's allowance; `Refused` (429) when it has none left."""
        wait = self.limiter.retry_after(client_address(request, self.settings.trust_forwarded_for))
        if wait is not None:
            raise Refused(429, "rate_limited", seconds=wait)

    async def check_captcha(self, request: Request, token: str | None) -> None:
        """With a CAPTCHA configured: `Refused` 422 for a missing or refused token, 503 when the provider is unreachable."""
        if self.captcha is None:
            return
        verdict = await self.captcha.verify(token, client_address(request, self.settings.trust_forwarded_for))
        if verdict is CaptchaVerdict.FAILED:
            raise Refused(422, "captcha_failed")
        if verdict is CaptchaVerdict.UNAVAILABLE:
            raise Refused(503, "captcha_unavailable", seconds=CAPTCHA_RETRY_AFTER_S)

    async def accept(self, draft: RequestDraft, *, partner: str | None = None) -> AcceptedRequest | None:
        """Hand `draft` to the pipeline: what it stored, or None when it failed (the client retries)."""
        try:
            accepted = await self.pipeline.accept(draft)
        except Exception:
            # The client is told to retry (503); nothing was acknowledged, so nothing is lost.
            log.exception("web.accept_failed", source=draft.source)
            return None
        log.info(
            "web.request_accepted",
            request_id=accepted.request_id,
            duplicate=accepted.duplicate,
            source=draft.source,
            language=draft.language.value,
            campaign=draft.campaign.utm_campaign if draft.campaign else None,
            partner=partner,
        )
        return accepted


def get_web_channel(runtime: Annotated[Runtime, Depends(get_runtime)]) -> WebChannel:
    """FastAPI dependency: the web channel of the app serving the request (`runtime.app_state["web"]`).

    An app without a service runtime (a test's) sets it with `app.dependency_overrides`.
    """
    return runtime.app_state["web"]  # type: ignore[no-any-return]
