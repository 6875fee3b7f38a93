"""What an event means to the person it is about: a `Notice` (which template, with which facts).

Pure translation, no I/O. The facts are JSON-safe (dates as ISO 8601 strings) because they are
stored with each delivery and rendered only when it is sent, in the person's language of that
moment. They hold what the message needs and nothing the person should not read: the routing
explanation and the advisor's notes are for staff, and stay out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas import (
    CallbackSlotChosen,
    CertificateIssued,
    ContactAttempted,
    ContactOutcome,
    Disposition,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamScheduled,
    ExamSeatOffered,
    PartnerInformationReceived,
    RequestKind,
    Target,
    TrainingRequestClosed,
    TrainingRequestRouted,
)

__all__ = ["NOTICE_EVENTS", "Notice", "NoticeKind", "notice_for"]


class NoticeKind(StrEnum):
    """One template per kind (and language); the value is the template's name."""

    REQUEST_ROUTED_ADVISORS = "request_routed_advisors"
    REQUEST_ROUTED_ESPACES_NUMERIQUES = "request_routed_espaces_numeriques"
    REQUEST_ROUTED_DIGITAL_DIVIDE = "request_routed_digital_divide"
    REQUEST_ROUTED_CITE_DES_METIERS = "request_routed_cite_des_metiers"
    CONTACT_NO_ANSWER = "contact_no_answer"
    REQUEST_CLOSED_UNREACHABLE = "request_closed_unreachable"
    REQUEST_WITHDRAWN = "request_withdrawn"
    CALLBACK_SLOT_CHOSEN = "callback_slot_chosen"
    CALLBACK_DEADLINE_MOVED = "callback_deadline_moved"
    ENROLMENT_CONFIRMED = "enrolment_confirmed"
    ENROLMENT_WAITLISTED = "enrolment_waitlisted"
    EXAM_SEAT_OFFERED = "exam_seat_offered"
    EXAM_SCHEDULED = "exam_scheduled"
    CERTIFICATE_ISSUED = "certificate_issued"

    @property
    def is_request_update(self) -> bool:
        """A short update on a request (routed, no answer, withdrawn, a callback slot chosen), as opposed
        to an enrolment, exam or certificate."""
        return self.value.startswith("request_routed") or self in _SHORT_UPDATES

    @property
    def is_acknowledgement(self) -> bool:
        """The first message about a request (it was routed to a team): it carries the status page's link."""
        return self.value.startswith("request_routed")

    @property
    def is_written_account(self) -> bool:
        """An account to keep (the request was closed without reaching the person): one written
        message, by e-mail when the person has an address, else by text."""
        return self is NoticeKind.REQUEST_CLOSED_UNREACHABLE


_SHORT_UPDATES = frozenset({"contact_no_answer", "request_withdrawn", "callback_slot_chosen", "callback_deadline_moved"})

_ROUTED_KIND = {
    Target.ADVISORS: NoticeKind.REQUEST_ROUTED_ADVISORS,
    Target.ESPACES_NUMERIQUES: NoticeKind.REQUEST_ROUTED_ESPACES_NUMERIQUES,
    Target.DIGITAL_DIVIDE: NoticeKind.REQUEST_ROUTED_DIGITAL_DIVIDE,
    Target.CITE_DES_METIERS: NoticeKind.REQUEST_ROUTED_CITE_DES_METIERS,
}

NOTICE_EVENTS: tuple[type[Event], ...] = (
    TrainingRequestRouted,
    ContactAttempted,
    TrainingRequestClosed,
    CallbackSlotChosen,
    PartnerInformationReceived,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    ExamSeatOffered,
    ExamScheduled,
    CertificateIssued,
)
"""The events that can tell a person something (a `ContactAttempted` only when nobody answered and
another call is planned; a `TrainingRequestClosed` only when the person could not be reached, or
withdrew the request themselves; a `PartnerInformationReceived` only when it moved a promised deadline;
an `ExamSeatOffered` only unsealed, with its two answer links)."""


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    about_event_id: str
    about_event_type: str
    correlation_id: str
    person_id: str
    request_id: str | None
    facts: dict[str, Any]

    @property
    def purpose(self) -> str:
        """What the message says, whatever event it is about: its template and facts. Two notices of one
        person with the same purpose are one message (two linked requests keeping one promise)."""
        said = json.dumps([self.kind.value, self.facts], sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(said.encode()).hexdigest()

    def to_document(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "about_event_id": self.about_event_id,
            "about_event_type": self.about_event_type,
            "correlation_id": self.correlation_id,
            "person_id": self.person_id,
            "request_id": self.request_id,
            "facts": self.facts,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Notice:
        return cls(
            kind=NoticeKind(doc["kind"]),
            about_event_id=doc["about_event_id"],
            about_event_type=doc["about_event_type"],
            correlation_id=doc["correlation_id"],
            person_id=doc["person_id"],
            request_id=doc.get("request_id"),
            facts=dict(doc.get("facts") or {}),
        )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _is_web_link(url: str | None) -> bool:
    return url is not None and url.lower().startswith(("https://", "http://"))


def notice_for(event: Event) -> Notice | None:
    """The notice `event` gives its person, or None when it tells them nothing."""
    kind: NoticeKind
    facts: dict[str, Any]
    request_id: str | None = getattr(event, "request_id", None)
    match event:
        case TrainingRequestRouted():
            kind = _ROUTED_KIND[event.target]
            facts = {"target": event.target.value, "deadline": _iso(event.callback_deadline)}
            if event.programme is not None:
                facts["programme"] = event.programme.value
            if event.kind is RequestKind.LEARNER_QUESTION:
                facts["learner_question"] = True
        case ContactAttempted(outcome=ContactOutcome.NO_ANSWER, next_attempt_at=None):
            # The last attempt: no call is planned, and `TrainingRequestClosed` tells the person.
            return None
        case ContactAttempted(outcome=ContactOutcome.NO_ANSWER):
            kind = NoticeKind.CONTACT_NO_ANSWER
            facts = {"attempt": event.attempt, "next_attempt_at": _iso(event.next_attempt_at)}
        case TrainingRequestClosed(disposition=Disposition.UNREACHABLE):
            kind = NoticeKind.REQUEST_CLOSED_UNREACHABLE
            facts = {"attempts": event.attempts}
        case TrainingRequestClosed(disposition=Disposition.WITHDRAWN, worker_id=None):
            # The person withdrew it from their status page or the phone menu: a confirmation, so a
            # withdrawal by mistake (or by someone else holding the link) does not go unnoticed. A
            # withdrawal an advisor recorded during a call was said to the person on the phone.
            kind = NoticeKind.REQUEST_WITHDRAWN
            facts = {}
        case CallbackSlotChosen():
            kind = NoticeKind.CALLBACK_SLOT_CHOSEN
            facts = {"slot_start": _iso(event.slot_start), "slot_end": _iso(event.slot_end)}
        case PartnerInformationReceived(callback_deadline=None):
            return None
        case PartnerInformationReceived():
            # The person was told "before <deadline>"; waiting for the partner moved it later. Telling
            # them the new one keeps every message true to what the desk will do.
            kind = NoticeKind.CALLBACK_DEADLINE_MOVED
            facts = {"deadline": _iso(event.callback_deadline)}
        case EnrolmentConfirmed():
            kind = NoticeKind.ENROLMENT_CONFIRMED
            facts = {
                "course_code": event.course_code,
                "course_title": event.course_title,
                "starts_on": _iso(event.starts_on),
                "course_language": event.language.value,
                "login_instructions": event.login_instructions,
            }
        case EnrolmentWaitlisted():
            kind = NoticeKind.ENROLMENT_WAITLISTED
            facts = {
                "course_code": event.course_code,
                "course_title": event.course_title,
                "course_language": event.language.value,
            }
        case ExamSeatOffered():
            if not (_is_web_link(event.accept_url) and _is_web_link(event.decline_url)):
                # Still sealed (the person's key was erased) or not ours: an offer without its links
                # would only say "answer" with no way to; staff see the offer and can call.
                return None
            kind = NoticeKind.EXAM_SEAT_OFFERED
            # The links are bearer capabilities, kept with the delivery until it is sent (like the address).
            facts = {
                "certification_code": event.certification_code,
                "centre_name": event.centre_name,
                "exam_at": _iso(event.exam_at),
                "respond_by": _iso(event.respond_by),
                "accept_url": event.accept_url,
                "decline_url": event.decline_url,
            }
        case ExamScheduled():
            kind = NoticeKind.EXAM_SCHEDULED
            facts = {
                "certification_code": event.certification_code,
                "centre_name": event.centre_name,
                "exam_at": _iso(event.exam_at),
                "what_to_bring": list(event.what_to_bring),
            }
        case CertificateIssued():
            kind = NoticeKind.CERTIFICATE_ISSUED
            facts = {
                "certification_code": event.certification_code,
                "credential_id": event.credential_id,
                # Only a web link goes into an <a href>: never a javascript: or data: URL.
                "credential_url": event.credential_url if _is_web_link(event.credential_url) else None,
                "issued_at": _iso(event.issued_at),
            }
        case _:
            return None
    return Notice(
        kind=kind,
        about_event_id=str(event.id),
        about_event_type=event.type,
        correlation_id=str(event.correlation_id),
        person_id=str(getattr(event, "person_id")),  # noqa: B009 - every notice event has one
        request_id=request_id,
        facts=facts,
    )
