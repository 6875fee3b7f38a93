"""Who gets the next exam seat: the waitlist order and the seat-offering decisions, as pure functions.

The waitlist of a certification is its candidates who asked for an exam and have no seat yet,
ordered by priority (higher first), then by how long they have waited, then by id so that the
order is total and every replica computes the same one. A session's free seat goes to the first
candidate in that order who wants one of the session's certifications, provided the centre is
open, the certification is open and the candidate has not already turned that session down
(declined, or let the offer expire): otherwise a decline would come straight back to them.
`certification.seats` stores these decisions; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "CandidateStatus",
    "CentreState",
    "NoOffer",
    "OfferStatus",
    "OfferTerms",
    "SessionSeats",
    "WaitingCandidate",
    "WaitingReason",
    "next_candidate",
    "offer_deadline",
    "order_key",
    "passed_over",
    "plan_offers",
    "waiting_reason",
    "waitlist_order",
    "why_no_offer",
]


class CandidateStatus(StrEnum):
    PREPARING = "preparing"
    """Enrolled in a path that prepares for the certification; no exam asked for yet."""
    WAITING = "waiting"
    """On the certification's waitlist."""
    OFFERED = "offered"
    """Holds a seat offer, until they answer or its deadline passes."""
    SCHEDULED = "scheduled"
    """Booked in a session."""
    PASSED = "passed"
    FAILED = "failed"
    """Failed the exam; a new exam request puts them back on the waitlist."""


class OfferStatus(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"


class CentreState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class WaitingReason(StrEnum):
    """Why a candidate on the waitlist has no seat yet, as staff and the candidate read it."""

    CERTIFICATION_NOT_OPEN = "certification_not_open"
    """The certification is announced but not offered yet (technical drawing, web design in 2020)."""
    CENTRES_CLOSED = "training_centres_closed"
    """No training centre is open to the public, so no exam can take place (the 2020 lockdown)."""
    NO_FREE_SEAT = "no_free_seat"
    """Centres are open, but no coming session of the certification has a free seat."""
    AWAITING_OFFER = "awaiting_offer"
    """A coming session has a free seat: the next allocation offers it (unless they turned that session down)."""


class NoOffer(StrEnum):
    """Why a session's seats cannot be offered now."""

    CENTRE_CLOSED = "centre_closed"
    STARTED = "session_started"
    FULL = "session_full"
    TOO_LATE = "too_late_to_answer"
    """The session starts too soon: an offer made now would leave less than the minimum time to answer
    before the margin. The same for every candidate (the deadline depends on the session, not on who),
    so the seat is offered to nobody rather than to someone who could not reasonably answer."""


@dataclass(frozen=True, slots=True)
class WaitingCandidate:
    candidate_id: str
    person_id: str
    certification_code: str
    priority: int
    waiting_since: datetime
    passed_over: frozenset[str] = field(default_factory=frozenset)
    """Sessions the candidate declined or let expire: not offered to them again."""


@dataclass(frozen=True, slots=True)
class SessionSeats:
    session_id: str
    centre_id: str
    certifications: frozenset[str]
    starts_at: datetime
    seats: int
    held: int = 0
    """Seats offered and not answered yet."""
    booked: int = 0

    @property
    def free(self) -> int:
        return max(0, self.seats - self.held - self.booked)


def order_key(candidate: WaitingCandidate) -> tuple[int, datetime, str]:
    """Priority first (higher first), then waiting time (longer first), then id: a total order."""
    return (-candidate.priority, candidate.waiting_since, candidate.candidate_id)


def waitlist_order(candidates: Iterable[WaitingCandidate]) -> list[WaitingCandidate]:
    return sorted(candidates, key=order_key)


@dataclass(frozen=True, slots=True)
class OfferTerms:
    """How long a candidate has to answer a seat offer, all in real (calendar) time.

    Real time, not working time: the candidate answers by a link at any hour, and the margin is
    there for what must happen after an answer (the next candidate offered, the centre's list),
    which a weekend does not stop either; working time would also make a deadline harder to state
    in a text message.
    """

    window: timedelta = timedelta(hours=48)
    """The longest time to answer."""
    margin: timedelta = timedelta(hours=24)
    """An offer's deadline is never later than this before the exam."""
    minimum: timedelta = timedelta(hours=2)
    """The shortest time to answer worth offering: below it, nobody is offered the seat."""

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise ValueError("the offer window must be positive")
        if self.margin < timedelta(0):
            raise ValueError("the offer margin cannot be negative")
        if not timedelta(0) < self.minimum <= self.window:
            raise ValueError("the minimum time to answer must be positive and at most the window")

    def last_offer_before(self, starts_at: datetime) -> datetime:
        """The last moment an offer for a session starting at `starts_at` can be made."""
        return starts_at - self.margin - self.minimum


def why_no_offer(session: SessionSeats, *, centre_open: bool, now: datetime, terms: OfferTerms | None = None) -> NoOffer | None:
    """None if the session can offer a seat now (with `terms`: leaving the candidate time to answer)."""
    if not centre_open:
        return NoOffer.CENTRE_CLOSED
    if session.starts_at <= now:
        return NoOffer.STARTED
    if terms is not None and offer_deadline(now, session.starts_at, terms) is None:
        return NoOffer.TOO_LATE
    if session.free <= 0:
        return NoOffer.FULL
    return None


def next_candidate(
    waiting: Iterable[WaitingCandidate], session: SessionSeats, *, open_certifications: Collection[str]
) -> WaitingCandidate | None:
    """The candidate a free seat of `session` goes to, or None if nobody on the waitlist fits."""
    eligible = [
        c
        for c in waiting
        if c.certification_code in session.certifications
        and c.certification_code in open_certifications
        and session.session_id not in c.passed_over
    ]
    return min(eligible, key=order_key, default=None)


def plan_offers(
    waiting: Iterable[WaitingCandidate], session: SessionSeats, *, open_certifications: Collection[str]
) -> list[WaitingCandidate]:
    """Who the session's free seats go to, in the order they are offered (what a fill would do)."""
    remaining = list(waiting)
    planned: list[WaitingCandidate] = []
    for _ in range(session.free):
        chosen = next_candidate(remaining, session, open_certifications=open_certifications)
        if chosen is None:
            break
        planned.append(chosen)
        remaining.remove(chosen)
    return planned


def passed_over(candidate: WaitingCandidate, session_id: str) -> WaitingCandidate:
    """The candidate back on the waitlist after declining (or letting expire) a seat of `session_id`.

    They keep their place (priority and waiting time) for other sessions; that session's seat goes
    to the next candidate.
    """
    return replace(candidate, passed_over=candidate.passed_over | {session_id})


def offer_deadline(now: datetime, starts_at: datetime, terms: OfferTerms) -> datetime | None:
    """When an offer made `now` for an exam at `starts_at` lapses: after the window, and never later
    than the margin before the exam; None when that leaves less than the minimum time to answer
    (then the seat is offered to nobody: see `NoOffer.TOO_LATE`)."""
    respond_by = min(now + terms.window, starts_at - terms.margin)
    return respond_by if respond_by - now >= terms.minimum else None


def waiting_reason(*, certification_open: bool, centres_open: bool, free_seats: bool) -> WaitingReason:
    """Why a waiting candidate of a certification has no seat, from the most to the least basic cause."""
    if not certification_open:
        return WaitingReason.CERTIFICATION_NOT_OPEN
    if not centres_open:
        return WaitingReason.CENTRES_CLOSED
    return WaitingReason.AWAITING_OFFER if free_seats else WaitingReason.NO_FREE_SEAT
