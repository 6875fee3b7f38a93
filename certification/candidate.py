"""The candidate aggregate: one person on their way to one certification, and the pure decisions that move them.

Lifecycle (`CandidateStatus`)::

    (none) --Register--> preparing --JoinWaitlist--> waiting --Offer--> offered --Schedule--> scheduled
                                         ^             ^  ^                |                     |
                                         |             |  `----Release-----'               RecordResult
                          failed --JoinWaitlist-------'                                   /        \\
                             ^-------------------------------------------------------- failed    passed

`decide(candidate, command)` returns the new candidate and the facts that happened, and does no
I/O; use cases load, decide and save (`certification.repositories`). A command that changes
nothing (a redelivered exam request while waiting, a release of an offer already released)
returns the candidate unchanged and no facts, so at-least-once delivery is harmless. The facts
are internal (they name what changed, for logs and tests); what goes on the wire is built by the
seat offer (`certification.offer`) and by awards.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from certification.errors import NotWaiting
from certification.seating import CandidateStatus, OfferStatus, WaitingCandidate, WaitingReason

__all__ = [
    "BoostPriority",
    "Candidate",
    "CandidateCommand",
    "CandidateFact",
    "ExamOutcome",
    "ExplainWait",
    "JoinWaitlist",
    "Offer",
    "RecordResult",
    "Register",
    "Release",
    "Schedule",
    "SetPriority",
    "Step",
    "Trace",
    "candidate_id",
    "correlation_ids",
    "decide",
    "utc",
]


def utc(at: datetime | None) -> datetime | None:
    """`at` in UTC; a client built without tz_aware=True hands back naive UTC datetimes."""
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def candidate_id(person_id: str, certification_code: str) -> str:
    """One candidate per person and certification."""
    return f"{certification_code.upper()}:{person_id}"


@dataclass(frozen=True, slots=True)
class Trace:
    """The event that started something, and the conversation it belongs to (ids as stored: strings)."""

    event_id: str
    correlation_id: str
    reason: str | None = None
    context: Mapping[str, str] | None = None
    """The W3C trace context (`traceparent`, `tracestate`) the event was handled in: staff's later
    actions on the candidate continue that OpenTelemetry trace (`services.tracing.continued`)."""

    def as_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"event_id": self.event_id, "correlation_id": self.correlation_id}
        if self.reason is not None:
            doc["reason"] = self.reason
        if self.context:
            doc["context"] = dict(self.context)
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> Trace | None:
        if not doc or not doc.get("event_id"):
            return None
        return cls(str(doc["event_id"]), str(doc["correlation_id"]), doc.get("reason"), doc.get("context") or None)


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the candidate's history, as staff read it."""

    at: datetime
    what: str
    details: tuple[tuple[str, Any], ...] = ()

    def as_document(self) -> dict[str, Any]:
        return {"at": self.at, "what": self.what, **dict(self.details)}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Step:
        return cls(doc["at"], doc["what"], tuple((k, v) for k, v in doc.items() if k not in ("at", "what")))


@dataclass(frozen=True, slots=True)
class ExamOutcome:
    """The exam a candidate sat and how it went: Bruxelles Formation's certification and, when it is
    paired with one, the vendor's exam (from the catalogue, `certification.certifications`)."""

    session_id: str
    passed: bool
    score: float | None
    bf_certification: str
    """Bruxelles Formation's certification the exam is for (its title)."""
    vendor_exam: str | None = None
    """The private certification's exam sat with it (its title); None when it has no private pair."""
    vendor_programme: str | None = None
    vendor: str | None = None

    def as_document(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "passed": self.passed,
            "score": self.score,
            "bf_certification": self.bf_certification,
            "vendor_exam": self.vendor_exam,
            "vendor_programme": self.vendor_programme,
            "vendor": self.vendor,
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> ExamOutcome | None:
        if not doc:
            return None
        return cls(
            session_id=doc["session_id"],
            passed=bool(doc["passed"]),
            score=doc.get("score"),
            bf_certification=doc["bf_certification"],
            vendor_exam=doc.get("vendor_exam"),
            vendor_programme=doc.get("vendor_programme"),
            vendor=doc.get("vendor"),
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    candidate_id: str
    person_id: str
    certification_code: str
    status: CandidateStatus
    created_at: datetime
    version: int = 0
    """Bumped by every save; a stored document without one is version 0."""
    priority: int = 0
    waiting_since: datetime | None = None
    waiting_reason: WaitingReason | None = None
    passed_over_sessions: tuple[str, ...] = ()
    offer_id: str | None = None
    session_id: str | None = None
    exam_at: datetime | None = None
    courses: tuple[str, ...] = ()
    enrolled_by: Trace | None = None
    requested_by: Trace | None = None
    scheduled_event_id: str | None = None
    result_id: str | None = None
    credential_id: str | None = None
    missed_offers: int = 0
    declined_offers: int = 0
    updated_at: datetime | None = None
    exam: ExamOutcome | None = None
    """The last exam result recorded (None before any)."""
    history: tuple[Step, ...] = field(default=(), repr=False)

    def waiting(self) -> WaitingCandidate:
        """The candidate as `certification.seating` orders and offers it (only meaningful while waiting)."""
        return WaitingCandidate(
            candidate_id=self.candidate_id,
            person_id=self.person_id,
            certification_code=self.certification_code,
            priority=self.priority,
            waiting_since=self.waiting_since or self.created_at,
            passed_over=frozenset(self.passed_over_sessions),
        )

    def as_document(self) -> dict[str, Any]:
        """The candidate as stored and as the API reads it (`_id`, ids as strings, history as dicts)."""
        return {
            "_id": self.candidate_id,
            "person_id": self.person_id,
            "certification_code": self.certification_code,
            "status": self.status.value,
            "version": self.version,
            "priority": self.priority,
            "waiting_since": self.waiting_since,
            "waiting_reason": self.waiting_reason.value if self.waiting_reason else None,
            "passed_over_sessions": list(self.passed_over_sessions),
            "offer_id": self.offer_id,
            "session_id": self.session_id,
            "exam_at": self.exam_at,
            "courses": list(self.courses),
            "enrolled_by": self.enrolled_by.as_document() if self.enrolled_by else None,
            "requested_by": self.requested_by.as_document() if self.requested_by else None,
            "scheduled_event_id": self.scheduled_event_id,
            "result_id": self.result_id,
            "credential_id": self.credential_id,
            "missed_offers": self.missed_offers,
            "declined_offers": self.declined_offers,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "exam": self.exam.as_document() if self.exam else None,
            "history": [step.as_document() for step in self.history],
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Candidate:
        """A stored candidate; documents written before versions (no `version`) are version 0."""
        reason = doc.get("waiting_reason")
        return cls(
            candidate_id=doc["_id"],
            person_id=doc["person_id"],
            certification_code=doc["certification_code"],
            status=CandidateStatus(doc["status"]),
            created_at=utc(doc.get("created_at")) or utc(doc.get("waiting_since")) or datetime.min.replace(tzinfo=UTC),
            version=int(doc.get("version", 0)),
            priority=int(doc.get("priority", 0)),
            waiting_since=utc(doc.get("waiting_since")),
            waiting_reason=WaitingReason(reason) if reason else None,
            passed_over_sessions=tuple(doc.get("passed_over_sessions") or ()),
            offer_id=doc.get("offer_id"),
            session_id=doc.get("session_id"),
            exam_at=utc(doc.get("exam_at")),
            courses=tuple(doc.get("courses") or ()),
            enrolled_by=Trace.from_document(doc.get("enrolled_by")),
            requested_by=Trace.from_document(doc.get("requested_by")),
            scheduled_event_id=doc.get("scheduled_event_id"),
            result_id=doc.get("result_id"),
            credential_id=doc.get("credential_id"),
            missed_offers=int(doc.get("missed_offers", 0)),
            declined_offers=int(doc.get("declined_offers", 0)),
            updated_at=utc(doc.get("updated_at")),
            exam=ExamOutcome.from_document(doc.get("exam")),
            history=tuple(Step.from_document(step) for step in doc.get("history") or ()),
        )

    def _with(self, step: Step | None = None, **changes: Any) -> Candidate:
        history = (*self.history, step) if step is not None else self.history
        return replace(self, history=history, **changes)


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register:
    """An enrolment or an exam request names the person as a candidate (created at the first one)."""

    person_id: str
    certification_code: str
    at: datetime
    event_type: str
    event_id: str
    course: str | None = None
    enrolled_by: Trace | None = None
    """Set by an enrolment: the request an exam request from outside then continues."""
    priority_hint: int = 0
    """The person's boost (routed with high priority), used only when the candidate is new."""


@dataclass(frozen=True, slots=True)
class JoinWaitlist:
    """An exam request: a preparing (or failed) candidate joins the waitlist; anyone else stays as they are."""

    at: datetime
    reason: WaitingReason
    event_id: str
    correlation_id: str
    request_reason: str
    trace_context: Mapping[str, str] | None = None
    """The W3C trace context the request was handled in, kept with the candidate (`Trace.context`)."""


@dataclass(frozen=True, slots=True)
class SetPriority:
    """Staff set the priority."""

    priority: int
    at: datetime


@dataclass(frozen=True, slots=True)
class BoostPriority:
    """Routed with high priority: a preparing or waiting candidate's priority is raised to at least `boost`."""

    boost: int


@dataclass(frozen=True, slots=True)
class ExplainWait:
    """Centres, sessions or seats changed: say again why a waiting candidate waits."""

    reason: WaitingReason


@dataclass(frozen=True, slots=True)
class Offer:
    """A seat of `session_id` is offered to the candidate (refused unless they wait and did not turn it down)."""

    offer_id: str
    session_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Schedule:
    """The candidate accepted their offer: booked in its session."""

    offer_id: str
    session_id: str
    exam_at: datetime
    event_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Release:
    """The candidate's offer was declined or expired: back on the waitlist (same place), not offered that session again."""

    offer_id: str
    session_id: str
    outcome: OfferStatus
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The exam result of a scheduled candidate."""

    passed: bool
    result_id: str
    credential_id: str | None
    at: datetime
    exam: ExamOutcome | None = None
    """The exam and its score, recorded on the candidate and in their history."""


CandidateCommand = Register | JoinWaitlist | SetPriority | BoostPriority | ExplainWait | Offer | Schedule | Release | RecordResult


# --- facts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandidateFact:
    """Something that happened to a candidate: `what` is the name its history and logs use."""

    candidate_id: str
    what: str


# --- decisions ------------------------------------------------------------------------------


def decide(candidate: Candidate | None, command: CandidateCommand) -> tuple[Candidate, list[CandidateFact]]:
    """The candidate after `command`, and what happened; `candidate` is None only for a `Register`."""
    if isinstance(command, Register):
        return _register(candidate, command)
    if candidate is None:
        raise ValueError(f"{type(command).__name__} needs a candidate")
    match command:
        case JoinWaitlist():
            return _join_waitlist(candidate, command)
        case SetPriority(priority=priority, at=at):
            changed = candidate._with(Step(at, "priority", (("priority", priority),)), priority=priority, updated_at=at)
            return changed, [CandidateFact(candidate.candidate_id, "priority")]
        case BoostPriority(boost=boost):
            if candidate.status not in (CandidateStatus.PREPARING, CandidateStatus.WAITING) or candidate.priority >= boost:
                return candidate, []
            return replace(candidate, priority=boost), [CandidateFact(candidate.candidate_id, "priority_boosted")]
        case ExplainWait(reason=reason):
            if candidate.status is not CandidateStatus.WAITING or candidate.waiting_reason is reason:
                return candidate, []
            return replace(candidate, waiting_reason=reason), [CandidateFact(candidate.candidate_id, "waiting_reason")]
        case Offer():
            return _offer(candidate, command)
        case Schedule():
            return _schedule(candidate, command)
        case Release():
            return _release(candidate, command)
        case RecordResult():
            return _record_result(candidate, command)


def _register(candidate: Candidate | None, command: Register) -> tuple[Candidate, list[CandidateFact]]:
    cid = candidate_id(command.person_id, command.certification_code)
    facts: list[CandidateFact] = []
    if candidate is None:
        candidate = Candidate(
            candidate_id=cid,
            person_id=command.person_id,
            certification_code=command.certification_code,
            status=CandidateStatus.PREPARING,
            created_at=command.at,
            priority=command.priority_hint,
        )
        facts.append(CandidateFact(cid, "registered"))
    courses = candidate.courses
    if command.course and command.course not in courses:
        courses = (*courses, command.course)
    changed = candidate._with(
        Step(command.at, command.event_type, (("event_id", command.event_id),)),
        courses=courses,
        enrolled_by=command.enrolled_by or candidate.enrolled_by,
    )
    return changed, facts


def _join_waitlist(candidate: Candidate, command: JoinWaitlist) -> tuple[Candidate, list[CandidateFact]]:
    if candidate.status not in (CandidateStatus.PREPARING, CandidateStatus.FAILED):
        return candidate, []  # already waiting, offered or booked: they keep their place
    # An exam request that starts no conversation of its own (a root event from an e-learning
    # platform that knows nothing of ours) continues the enrolment's, so the certificate can be
    # traced back to the person's first call.
    correlation = command.correlation_id
    if command.correlation_id == command.event_id and candidate.enrolled_by is not None:
        correlation = candidate.enrolled_by.correlation_id
    changed = candidate._with(
        Step(command.at, "joined_waitlist", (("reason", command.request_reason),)),
        status=CandidateStatus.WAITING,
        waiting_since=command.at,
        waiting_reason=command.reason,
        offer_id=None,
        session_id=None,
        requested_by=Trace(command.event_id, correlation, command.request_reason, command.trace_context),
        updated_at=command.at,
    )
    return changed, [CandidateFact(candidate.candidate_id, "joined_waitlist")]


def _offer(candidate: Candidate, command: Offer) -> tuple[Candidate, list[CandidateFact]]:
    if candidate.status is not CandidateStatus.WAITING:
        raise NotWaiting(f"candidate {candidate.candidate_id} is {candidate.status.value}, not waiting")
    if command.session_id in candidate.passed_over_sessions:
        raise NotWaiting(f"candidate {candidate.candidate_id} turned session {command.session_id} down")
    changed = candidate._with(
        Step(command.at, "offered", (("offer_id", command.offer_id), ("session_id", command.session_id))),
        status=CandidateStatus.OFFERED,
        offer_id=command.offer_id,
        waiting_reason=None,
        updated_at=command.at,
    )
    return changed, [CandidateFact(candidate.candidate_id, "offered")]


def _schedule(candidate: Candidate, command: Schedule) -> tuple[Candidate, list[CandidateFact]]:
    if candidate.status is not CandidateStatus.OFFERED or candidate.offer_id != command.offer_id:
        raise NotWaiting(f"candidate {candidate.candidate_id} holds no offer {command.offer_id}")
    changed = candidate._with(
        Step(command.at, "accepted", (("offer_id", command.offer_id), ("session_id", command.session_id))),
        status=CandidateStatus.SCHEDULED,
        session_id=command.session_id,
        exam_at=command.exam_at,
        scheduled_event_id=command.event_id,
        updated_at=command.at,
    )
    return changed, [CandidateFact(candidate.candidate_id, "scheduled")]


def _release(candidate: Candidate, command: Release) -> tuple[Candidate, list[CandidateFact]]:
    if candidate.status is not CandidateStatus.OFFERED or candidate.offer_id != command.offer_id:
        return candidate, []
    passed_over = candidate.passed_over_sessions
    if command.session_id not in passed_over:
        passed_over = (*passed_over, command.session_id)
    expired = command.outcome is OfferStatus.EXPIRED
    changed = candidate._with(
        Step(command.at, command.outcome.value, (("offer_id", command.offer_id), ("session_id", command.session_id))),
        status=CandidateStatus.WAITING,
        offer_id=None,
        passed_over_sessions=passed_over,
        missed_offers=candidate.missed_offers + expired,
        declined_offers=candidate.declined_offers + (not expired),
        updated_at=command.at,
    )
    return changed, [CandidateFact(candidate.candidate_id, command.outcome.value)]


def _record_result(candidate: Candidate, command: RecordResult) -> tuple[Candidate, list[CandidateFact]]:
    if candidate.status is not CandidateStatus.SCHEDULED:
        raise NotWaiting(f"candidate {candidate.candidate_id} is {candidate.status.value}, not scheduled")
    status = CandidateStatus.PASSED if command.passed else CandidateStatus.FAILED
    details: tuple[tuple[str, Any], ...] = (("session_id", candidate.session_id),)
    if command.exam is not None:
        exam = command.exam.as_document()
        details += tuple(
            (key, exam[key]) for key in ("score", "bf_certification", "vendor_exam", "vendor") if exam[key] is not None
        )
    changed = candidate._with(
        Step(command.at, status.value, details),
        status=status,
        result_id=command.result_id,
        credential_id=command.credential_id,
        exam=command.exam or candidate.exam,
        updated_at=command.at,
    )
    return changed, [CandidateFact(candidate.candidate_id, status.value)]


def correlation_ids(trace: Trace | None) -> dict[str, Any]:
    """Correlation of an event caused by the exam request (if the candidate came through one)."""
    if trace is None:
        return {}
    return {"correlation_id": uuid.UUID(trace.correlation_id), "causation_id": uuid.UUID(trace.event_id)}
