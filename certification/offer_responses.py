"""A candidate answering a seat offer through the link of their message: what the public page shows and does.

`OfferResponses.view(token)` reads (never changes) the offer a link points at; `answer(token)` gives
the link's answer once, through `Seats.accept` / `Seats.decline` (so a decline offers the seat to
the next candidate at once, and an acceptance publishes `ExamScheduled`). Every outcome is a
`Response` the page words in the candidate's language; none is an exception, because a link
clicked twice or too late is an everyday case, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import structlog

from certification.errors import OfferClosed, OfferPastDeadline, Unknown
from certification.offer import SeatOffer
from certification.offer_links import BadToken, OfferAction, OfferTokens, TokenExpired
from certification.seating import OfferStatus
from certification.seats import Seats
from certification.sessions import Centre

__all__ = ["OfferResponses", "Outcome", "Response"]

log = structlog.get_logger(__name__)


class Outcome(StrEnum):
    OPEN = "open"
    """The offer waits for an answer: the page shows it and the two buttons."""
    ACCEPTED = "accepted"
    """This request accepted it."""
    DECLINED = "declined"
    """This request declined it."""
    ALREADY_ANSWERED = "already_answered"
    """The offer was answered before (by this link, the other one, or staff) or lapsed: nothing changed."""
    EXPIRED = "expired"
    """The link (the offer's deadline) has passed."""
    INVALID = "invalid"
    """Not a link we signed, or an offer we do not know."""


@dataclass(frozen=True, slots=True)
class Response:
    outcome: Outcome
    offer: SeatOffer | None = None
    centre: Centre | None = None
    action: OfferAction | None = None
    """What the link asked for."""
    tokens: dict[OfferAction, str] | None = None
    """With `OPEN`: a token for each button (the link's own and its twin, same offer, same expiry)."""


class OfferResponses:
    def __init__(self, seats: Seats, tokens: OfferTokens) -> None:
        self.seats = seats
        self.tokens = tokens

    async def _open(self, token: str) -> tuple[Response | None, SeatOffer | None, OfferAction | None]:
        try:
            allowed = self.tokens.verify(token, now=self.seats.clock.now())
        except TokenExpired as expired:
            return Response(Outcome.EXPIRED, action=expired.token.action), None, None
        except BadToken:
            return Response(Outcome.INVALID), None, None
        try:
            offer = await self.seats.offer(allowed.offer_id)
        except Unknown:
            return Response(Outcome.INVALID), None, None
        return None, offer, allowed.action

    async def _centre(self, offer: SeatOffer) -> Centre | None:
        return next((c for c in await self.seats.list_centres() if c.centre_id == offer.centre_id), None)

    async def view(self, token: str) -> Response:
        """What the link shows; changes nothing (a mail scanner may open every link)."""
        refused, offer, action = await self._open(token)
        if refused is not None or offer is None:
            return refused or Response(Outcome.INVALID)
        centre = await self._centre(offer)
        if offer.status is not OfferStatus.OFFERED:
            return Response(Outcome.ALREADY_ANSWERED, offer, centre, action)
        tokens = {a: self.tokens.sign(offer.offer_id, a, offer.expires_at) for a in OfferAction}
        return Response(Outcome.OPEN, offer, centre, action, tokens)

    async def answer(self, token: str) -> Response:
        """Give the link's answer, once; a second use answers `ALREADY_ANSWERED` and changes nothing."""
        refused, offer, action = await self._open(token)
        if refused is not None or offer is None or action is None:
            return refused or Response(Outcome.INVALID)
        centre = await self._centre(offer)
        if offer.status is not OfferStatus.OFFERED:
            return Response(Outcome.ALREADY_ANSWERED, offer, centre, action)
        try:
            if action is OfferAction.ACCEPT:
                answered, event = await self.seats.accept(offer.offer_id)
                changed = event is not None
            else:
                answered, _, changed = await self.seats.decline_once(offer.offer_id)
        except OfferPastDeadline:
            return Response(Outcome.EXPIRED, offer, centre, action)
        except OfferClosed:
            return Response(Outcome.ALREADY_ANSWERED, await self.seats.offer(offer.offer_id), centre, action)
        if not changed:
            # Two clicks racing: the offer's compare-and-set let the other one change it.
            return Response(Outcome.ALREADY_ANSWERED, answered, centre, action)
        log.info("offer.answered_by_link", offer_id=offer.offer_id, outcome=action.value)
        return Response(Outcome.ACCEPTED if action is OfferAction.ACCEPT else Outcome.DECLINED, answered, centre, action)
