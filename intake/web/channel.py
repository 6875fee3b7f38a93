"""The web channel as its HTTP handlers see it: the pipeline it hands requests to, its limits, the
catalogue submissions are checked against, and the clock that dates them.

One `WebChannel` per app, built where the pipeline is and reached through `get_web_channel`. What
must outlive a request and hold across replicas, the rate counters and the Idempotency-Key claims,
lives behind two ports (`RateLimits`, `IdempotencyKeys`) kept in MongoDB by the intake app.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import Depends, Request

from intake.domain import AcceptedRequest, AcceptRequests, RequestDraft
from intake.web.captcha import CaptchaVerdict, CaptchaVerifier, CaptchaWidget
from intake.web.idempotency import IdempotencyKeys, scoped_key
from intake.web.limits import Refused, WebSettings, client_hits, client_network, destination_hits
from schemas import Language
from services import Runtime, get_runtime
from services.catalogue import Catalogue
from services.ratelimits import Hit, RateLimits

__all__ = ["BRUSSELS", "LANGUAGE_CODES", "WebChannel", "get_web_channel"]

log = structlog.get_logger(__name__)

BRUSSELS = ZoneInfo("Europe/Brussels")
CAPTCHA_RETRY_AFTER_S = 60
LANGUAGE_CODES = frozenset(language.value for language in Language)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebChannel:
    """What the API and the form share: accepting a draft, the limits, and what validation needs.

    `clock` dates the requests (`received_at`), decides what "in the future" means, and places
    each submission in its rate-limit windows (tests pass a clock they move by hand).
    """

    def __init__(
        self,
        pipeline: AcceptRequests,
        settings: WebSettings,
        catalogue: Catalogue,
        clock: Callable[[], datetime] = _utc_now,
        *,
        rate_limits: RateLimits,
        idempotency_keys: IdempotencyKeys,
        captcha: CaptchaVerifier | None = None,
        captcha_widget: CaptchaWidget | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.catalogue = catalogue
        self.clock = clock
        self.rate_limits = rate_limits
        self.idempotency_keys = idempotency_keys
        self.captcha = captcha
        self.captcha_widget = captcha_widget

    def today(self) -> date:
        """Today in Brussels, where the people filling the form are."""
        return self.clock().astimezone(BRUSSELS).date()

    def validation_context(self) -> dict[str, Any]:
        """What `TrainingRequestSubmission` checks course codes and dates against."""
        return {"catalogue": self.catalogue, "today": self.today()}

    async def check_rate(self, request: Request) -> None:
        """Count one submission against the client's network; `Refused` (429) beyond its limits."""
        await self._take(client_hits(client_network(request), self.settings), "network")

    async def check_adapter_rate(self, client_id: str) -> None:
        """Count one submission against a channel adapter (its token's client, wherever it posts
        from); `Refused` (429) beyond the same limits as a client network's."""
        await self._take(client_hits(f"adapter:{client_id}", self.settings), "adapter")

    async def check_destination(self, phone: str | None, email: str | None) -> None:
        """Count one submission against the person it would have us contact, whoever sends it;
        `Refused` (429) beyond the daily limit, so no one can flood a stranger with messages."""
        await self._take(destination_hits(phone, email, self.settings), "destination")

    async def _take(self, hits: list[Hit], scope: str) -> None:
        wait = await self.rate_limits.take(hits, self.clock())
        if wait is not None:
            log.info("web.rate_limited", scope=scope, retry_after_s=wait)
            raise Refused(429, "rate_limited", seconds=wait)

    def scoped_idempotency_key(self, request: Request, key: str) -> str:
        """`key` as this client's own: another client's same key is another key."""
        return scoped_key(client_network(request), key)

    async def claim_idempotency_key(self, scoped: str, body_sha256: str) -> bool:
        """False when the key was claimed first with another body, on any replica."""
        return await self.idempotency_keys.claim(scoped, body_sha256, self.clock())

    async def check_captcha(self, request: Request, token: str | None) -> None:
        """With a CAPTCHA configured: `Refused` 422 for a missing or refused token, 503 when the provider is unreachable."""
        if self.captcha is None:
            return
        # The peer as uvicorn's proxy-headers support resolved it (services.app.server_options).
        verdict = await self.captcha.verify(token, request.client.host if request.client else None)
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


async def get_web_channel(runtime: Annotated[Runtime, Depends(get_runtime)]) -> WebChannel:
    """FastAPI dependency: the web channel of the app serving the request (`runtime.app_state["web"]`).

    An app without a service runtime (a test's) sets it with `app.dependency_overrides`.
    """
    return runtime.app_state["web"]  # type: ignore[no-any-return]
