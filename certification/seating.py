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


def why_no_offer(session: SessionSeats, *, centre_open: bool, now: datetime) -> NoOffer | None:
    """None if the session can offer a seat now."""
    if not centre_open:
        return NoOffer.CENTRE_CLOSED
    if session.starts_at <= now:
        return NoOffer.STARTED
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


def offer_deadline(now: datetime, window: timedelta, starts_at: datetime) -> datetime:
    """When an offer made `now` lapses: after the acceptance window, and never after the exam starts."""
    return min(now + window, starts_at)


def waiting_reason(*, certification_open: bool, centres_open: bool, free_seats: bool) -> WaitingReason:
    """Why a waiting candidate of a certification has no seat, from the most to the least basic cause."""
    if not certification_open:
        return WaitingReason.CERTIFICATION_NOT_OPEN
    if not centres_open:
        return WaitingReason.CENTRES_CLOSED
    return WaitingReason.AWAITING_OFFER if free_seats else WaitingReason.NO_FREE_SEAT
