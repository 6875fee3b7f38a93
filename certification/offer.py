"""The seat offer aggregate: a seat of a session held for one candidate until they answer or its deadline passes.

Lifecycle (`OfferStatus`)::

    (none) --MakeOffer--> offered --Accept--> accepted   (ExamSeatOfferAccepted, ExamScheduled)
          (ExamSeatOffered)       --Decline-> declined   (ExamSeatOfferDeclined)
                                  --Expire--> expired    (ExamSeatOfferExpired: its deadline timer fired)

`decide(offer, command)` is pure and returns the new offer and the events to publish (through the
outbox, in the transaction that saves the offer). Answering the same again is no change and no
event (a retried click, a redelivered timer); any other answer to a closed offer is refused with
a typed error. Who gets a seat and when an offer lapses come from `certification.seating`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from certification.candidate import Trace, correlation_ids, utc
from certification.errors import OfferClosed, OfferPastDeadline, OfferTooLate
from certification.seating import OfferStatus, OfferTerms, offer_deadline
from schemas import (
    Event,
    ExamScheduled,
    ExamSeatOfferAccepted,
    ExamSeatOfferDeclined,
    ExamSeatOffered,
    ExamSeatOfferExpired,
)

__all__ = ["SOURCE", "Accept", "Decline", "Expire", "MakeOffer", "OfferCommand", "SeatOffer", "decide"]

SOURCE = "/certification"
"""The CloudEvents `source` of what certification publishes."""


@dataclass(frozen=True, slots=True)
class SeatOffer:
    offer_id: str
    candidate_id: str
    person_id: str
    certification_code: str
    session_id: str
    centre_id: str
    status: OfferStatus
    offered_at: datetime
    expires_at: datetime
    exam_at: datetime
    answered_at: datetime | None = None
    event_id: str | None = None
    """The `ExamScheduled` an acceptance published."""
    version: int = 0

    def as_document(self) -> dict[str, Any]:
        return {
            "_id": self.offer_id,
            "candidate_id": self.candidate_id,
            "person_id": self.person_id,
            "certification_code": self.certification_code,
            "session_id": self.session_id,
            "centre_id": self.centre_id,
            "status": self.status.value,
            "offered_at": self.offered_at,
            "expires_at": self.expires_at,
            "exam_at": self.exam_at,
            "answered_at": self.answered_at,
            "event_id": self.event_id,
            "version": self.version,
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SeatOffer:
        return cls(
            offer_id=doc["_id"],
            candidate_id=doc["candidate_id"],
            person_id=doc["person_id"],
            certification_code=doc["certification_code"],
            session_id=doc["session_id"],
            centre_id=doc["centre_id"],
            status=OfferStatus(doc["status"]),
            offered_at=utc(doc["offered_at"]) or doc["offered_at"],
            expires_at=utc(doc["expires_at"]) or doc["expires_at"],
            exam_at=utc(doc["exam_at"]) or doc["exam_at"],
            answered_at=utc(doc.get("answered_at")),
            event_id=doc.get("event_id"),
            version=int(doc.get("version", 0)),
        )


@dataclass(frozen=True, slots=True)
class MakeOffer:
    offer_id: str
    candidate_id: str
    person_id: str
    certification_code: str
    session_id: str
    centre_id: str
    exam_at: datetime
    at: datetime
    terms: OfferTerms
    """How long the candidate has to answer: the window, but never later than the margin before the exam."""
    centre_name: str = ""
    requested_by: Trace | None = None
    """The exam request the candidate came through: the offer's events continue its conversation."""


@dataclass(frozen=True, slots=True)
class Accept:
    at: datetime
    centre_name: str
    what_to_bring: Sequence[str] = ()
    requested_by: Trace | None = None
    """The exam request the candidate came through: `ExamScheduled` continues its conversation."""


@dataclass(frozen=True, slots=True)
class Decline:
    at: datetime
    requested_by: Trace | None = None


@dataclass(frozen=True, slots=True)
class Expire:
    at: datetime
    requested_by: Trace | None = None


OfferCommand = MakeOffer | Accept | Decline | Expire


def decide(offer: SeatOffer | None, command: OfferCommand) -> tuple[SeatOffer, list[Event]]:
    """The offer after `command` and the events to publish; `offer` is None only for `MakeOffer`.

    `ExamSeatOffered` leaves here without its links: they are signed and sealed by the caller, who
    holds the key (`certification.offer_links`)."""
    if isinstance(command, MakeOffer):
        return _make(offer, command)
    if offer is None:
        raise ValueError(f"{type(command).__name__} needs an offer")
    match command:
        case Accept():
            return _accept(offer, command)
        case Decline(at=at):
            if offer.status is OfferStatus.DECLINED:
                return offer, []
            if offer.status is not OfferStatus.OFFERED:
                raise OfferClosed(f"offer {offer.offer_id} is {offer.status.value}")
            declined = replace(offer, status=OfferStatus.DECLINED, answered_at=at)
            return declined, [_closed(ExamSeatOfferDeclined, declined, at, command.requested_by)]
        case Expire(at=at):
            if offer.status is not OfferStatus.OFFERED:
                return offer, []
            expired = replace(offer, status=OfferStatus.EXPIRED, answered_at=at)
            return expired, [_closed(ExamSeatOfferExpired, expired, at, command.requested_by)]


def _make(offer: SeatOffer | None, command: MakeOffer) -> tuple[SeatOffer, list[Event]]:
    if offer is not None:
        raise ValueError(f"offer {offer.offer_id} exists already")
    expires_at = offer_deadline(command.at, command.exam_at, command.terms)
    if expires_at is None:
        raise OfferTooLate(f"session {command.session_id} starts too soon to offer a seat")
    made = SeatOffer(
        offer_id=command.offer_id,
        candidate_id=command.candidate_id,
        person_id=command.person_id,
        certification_code=command.certification_code,
        session_id=command.session_id,
        centre_id=command.centre_id,
        status=OfferStatus.OFFERED,
        offered_at=command.at,
        expires_at=expires_at,
        exam_at=command.exam_at,
    )
    event = ExamSeatOffered(
        source=SOURCE,
        subject=made.person_id,
        person_id=made.person_id,
        offer_id=made.offer_id,
        certification_code=made.certification_code,
        session_id=made.session_id,
        centre_id=made.centre_id,
        centre_name=command.centre_name or made.centre_id,
        exam_at=made.exam_at,
        respond_by=made.expires_at,
        **correlation_ids(command.requested_by),
    )
    return made, [event]


def _closed(
    cls: type[ExamSeatOfferAccepted | ExamSeatOfferDeclined | ExamSeatOfferExpired],
    offer: SeatOffer,
    at: datetime,
    requested_by: Trace | None,
) -> Event:
    return cls(
        source=SOURCE,
        subject=offer.person_id,
        person_id=offer.person_id,
        offer_id=offer.offer_id,
        certification_code=offer.certification_code,
        session_id=offer.session_id,
        closed_at=at,
        **correlation_ids(requested_by),
    )


def _accept(offer: SeatOffer, command: Accept) -> tuple[SeatOffer, list[Event]]:
    if offer.status is OfferStatus.ACCEPTED:
        return offer, []
    if offer.status is not OfferStatus.OFFERED:
        raise OfferClosed(f"offer {offer.offer_id} is {offer.status.value}")
    if command.at >= offer.expires_at:
        raise OfferPastDeadline(f"offer {offer.offer_id} is past its deadline")
    scheduled = ExamScheduled(
        source=SOURCE,
        subject=offer.person_id,
        person_id=offer.person_id,
        certification_code=offer.certification_code,
        session_id=offer.session_id,
        centre_id=offer.centre_id,
        centre_name=command.centre_name,
        exam_at=offer.exam_at,
        what_to_bring=list(command.what_to_bring),
        **correlation_ids(command.requested_by),
    )
    accepted = replace(offer, status=OfferStatus.ACCEPTED, answered_at=command.at, event_id=str(scheduled.id))
    return accepted, [_closed(ExamSeatOfferAccepted, accepted, command.at, command.requested_by), scheduled]
