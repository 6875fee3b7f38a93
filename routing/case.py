"""The routing case: what routing knows of one request between its routing and its closing call,
as a frozen typed aggregate whose every change is a pure decision.

`open_case` starts a case from a routed request; `decide(case, command)` returns the case after
the command and the `Effects` it implies (events to publish, timers to schedule or cancel),
or raises a `DeskError` when the command is refused. Nothing here reads a clock or a
database: the service loads a case, decides and saves the result with its effects in one
transaction (`routing.case_repository`), so every transition is tested without I/O.

A command that does not apply any more (a timer firing after the person was reached, an
erasure of a case already erased) returns the case unchanged and no effects, so that the
service saves nothing: redeliveries and late timers are no-ops by construction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from routing.decision import RouteDecision
from routing.priority import PriorityWeights, priority_of
from routing.sla import sla_outcome
from schemas import (
    CallbackDue,
    CallbackSlaBreached,
    Channel,
    ContactAttempted,
    ContactOutcome,
    EnrolmentConfirmed,
    Event,
    ExamRequestReason,
    ExamSchedulingRequested,
    FactSource,
    Language,
    ProgrammePlace,
    QualificationLevel,
    RequestFactsRecorded,
    Target,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from services.timers import TimerKind

__all__ = [
    "SOURCE",
    "AdmitToProgramme",
    "CallFacts",
    "CancelTimer",
    "Case",
    "Command",
    "DeskError",
    "EnrolledCourse",
    "Effects",
    "Erase",
    "KeepPromiseOfJoined",
    "MarkBreached",
    "MarkCallbackDue",
    "Opening",
    "RecordContact",
    "RecordFacts",
    "Redirect",
    "ScheduleTimer",
    "decide",
    "following_case",
    "open_case",
    "promise_outcome",
    "received_fact_source",
]

SOURCE = "/routing"

SlaState = Literal["pending", "met", "breached"]
"""`pending` until the person is reached or the deadline passes; None for a case without a promise."""
ProgrammeState = Literal["admitted", "waitlisted"]

LOGIN_INSTRUCTIONS = "https://formation.bruxellesformation.brussels — identifiant envoyé par e-mail"

_CALLBACK_TIMERS = (TimerKind.CALLBACK_DUE, TimerKind.SLA_BREACH)


class DeskError(Exception):
    """A desk action that cannot be done, with the reason the advisor sees."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Case(BaseModel):
    """One request's case, as stored in `routing_cases` (the document's `_id` is `request_id`).

    `version` counts the saves, for optimistic concurrency; a document stored before cases had
    one loads as version 0. The fields after `routed_event_id` appear in the document only once
    set, as they always did.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str
    person_id: str
    channel: Channel
    language: Language
    target: Target
    received_at: datetime
    deadline: datetime | None
    due_at: datetime | None
    sla: SlaState | None
    first_contact_at: datetime | None = None
    attempts: int = 0
    outcome: ContactOutcome | None = None
    joined_to: str | None = None
    contact: dict[str, Any] = {}
    need: str = ""
    requested_course: str | None = None
    needs_triage: bool = False
    priority: int
    programme: ProgrammeState | None = None
    # Cases stored before they kept the chain have neither (see `following_case`).
    correlation_id: str | None = None
    routed_event_id: str | None = None
    # Set by later transitions only.
    redirected_from: Target | None = None
    due_sent_at: datetime | None = None
    breached_at: datetime | None = None
    last_attempt_at: datetime | None = None
    closed_by: str | None = None
    erased: bool = False
    # What is known of the person's situation, where each fact came from, and the score it gives.
    qualification_level: QualificationLevel | None = None
    has_computer: bool | None = None
    has_internet: bool | None = None
    unemployed_since: date | None = None
    fact_sources: dict[str, FactSource] = {}
    priority_parts: dict[str, int] = {}
    version: int = 0

    @property
    def awaits_callback(self) -> bool:
        """Nobody reached the person yet and the promise still runs: the callback timers apply."""
        return self.sla == "pending" and self.deadline is not None

    @property
    def is_open(self) -> bool:
        """Open for a new request of the same person to join: no outcome yet and not joined itself."""
        return self.outcome is None and self.joined_to is None


# --- what a decision implies --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    kind: TimerKind
    key: str
    fire_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CancelTimer:
    kind: TimerKind
    key: str


@dataclass(frozen=True, slots=True)
class Effects:
    """What a decision asks the unit of work to do in the same transaction as saving the case.

    `seal` says the events may carry personal data (an advisor's notes) and are sealed with the
    person's key on the way out.
    """

    events: tuple[Event, ...] = ()
    schedule: tuple[ScheduleTimer, ...] = ()
    cancel: tuple[CancelTimer, ...] = ()
    seal: bool = False

    def __bool__(self) -> bool:
        return bool(self.events or self.schedule or self.cancel)


NO_EFFECTS = Effects()


def following_case(case: Case, cause: Event | None = None) -> dict[str, Any]:
    """The envelope of an event about a case: the request's correlation, caused by `cause`, else by
    the event that routed the request.

    A case keeps both ids so that desk actions, timers and redirects - which have no event in hand -
    carry one person's request from the phone call to the certificate. Cases stored before they
    kept them have neither, and their events start a conversation of their own.
    """
    chain: dict[str, Any] = {}
    if case.correlation_id:
        chain["correlation_id"] = uuid.UUID(case.correlation_id)
    if cause is not None:
        chain["causation_id"] = cause.id
    elif case.routed_event_id:
        chain["causation_id"] = uuid.UUID(case.routed_event_id)
    return chain


def promise_outcome(case: Case, contacted_at: datetime) -> SlaState:
    """Whether a case's callback promise was kept by a contact at `contacted_at` (`routing.sla`).

    A case without a deadline had no promise to break. A contact stamped before the request
    (intake's clock ahead of routing's) counts as made on receipt rather than failing the desk.
    """
    if case.deadline is None:
        return "met"
    return sla_outcome(case.received_at, max(contacted_at, case.received_at), case.deadline)


def _cancel_callback_timers(request_id: str) -> tuple[CancelTimer, ...]:
    return tuple(CancelTimer(kind, request_id) for kind in _CALLBACK_TIMERS)


# --- opening ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opening:
    """A new case, the event that announces its routing and the callback timers it starts."""

    case: Case
    routed: TrainingRequestRouted
    effects: Effects


def open_case(
    request: TrainingRequestReceived,
    decision: RouteDecision,
    *,
    joined_to: str | None,
    deadline: datetime | None,
    due: datetime | None,
    programme: ProgrammePlace | None = None,
) -> Opening:
    """The case of a request just routed by `decision`; `joined_to` is an open request of the same
    person that this one joins (one advisor per person), `deadline`/`due` the callback promise,
    `programme` the person's place in the digital-divide programme when the decision sends them there."""
    routed = TrainingRequestRouted.following(
        request,
        source=SOURCE,
        request_id=request.request_id,
        person_id=request.person_id,
        target=decision.target,
        rule_id="joins-open-request" if joined_to else decision.rule_id,
        rule_set_version=decision.rule_set_version,
        explanation=(
            f"Rejoint la demande {joined_to[:8]} déjà en cours pour la même personne. {decision.explanation_fr}"
            if joined_to
            else decision.explanation
        ),
        priority=decision.priority,
        priority_parts=dict(decision.priority_parts),
        callback_deadline=deadline,
        assignee_id=None,
        programme=programme,
        kind=request.kind,
    )
    facts = CallFacts(
        qualification_level=request.qualification_level,
        has_computer=request.has_computer,
        has_internet=request.has_internet,
        unemployed_since=request.unemployed_since,
    ).learned()
    case = Case(
        request_id=request.request_id,
        person_id=request.person_id,
        channel=request.channel,
        language=request.language,
        target=decision.target,
        received_at=request.received_at,
        deadline=deadline,
        due_at=due,
        sla="pending" if deadline else None,
        joined_to=joined_to,
        contact=request.contact.model_dump(mode="json"),
        need=request.need,
        requested_course=request.requested_course,
        needs_triage=request.needs_triage,
        priority=decision.priority,
        programme=None if programme is None else ("admitted" if programme.admitted else "waitlisted"),
        correlation_id=str(request.correlation_id),
        routed_event_id=str(routed.id),
        **facts,
        fact_sources=dict.fromkeys(facts, received_fact_source(request)),
        priority_parts=dict(decision.priority_parts),
    )
    schedule: tuple[ScheduleTimer, ...] = ()
    if deadline is not None and due is not None:
        payload = {"request_id": request.request_id, "person_id": request.person_id, "deadline": deadline.isoformat()}
        schedule = (
            ScheduleTimer(TimerKind.CALLBACK_DUE, request.request_id, due, payload),
            ScheduleTimer(TimerKind.SLA_BREACH, request.request_id, deadline, dict(payload)),
        )
    return Opening(case=case, routed=routed, effects=Effects(schedule=schedule))


def received_fact_source(request: TrainingRequestReceived) -> FactSource:
    """Where the facts a request arrived with came from: the channel's own form of asking."""
    return {Channel.PHONE: FactSource.PHONE_IVR, Channel.EMAIL: FactSource.EMAIL_TEXT}.get(request.channel, FactSource.WEB_FORM)


# --- commands -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdmitToProgramme:
    """The digital-divide programme admitted the request, or put it on its waitlist."""

    admitted: bool


@dataclass(frozen=True, slots=True)
class MarkCallbackDue:
    """The callback-due timer fired. `event_id` derives from the timer, so a timer fired again
    after a crash publishes the same event; `assignee_id` is who holds the request now."""

    now: datetime
    event_id: uuid.UUID
    assignee_id: str | None


@dataclass(frozen=True, slots=True)
class MarkBreached:
    """The deadline timer fired; `escalate` is the policy's `escalate_after_breach`, `supervisor`
    the roster's supervisor of the team holding the request (None: the team has none on the roster)."""

    now: datetime
    event_id: uuid.UUID
    assignee_id: str | None
    escalate: bool
    supervisor: str | None = None


@dataclass(frozen=True, slots=True)
class EnrolledCourse:
    """The seat the desk took in a course (`routing.enrolment`), before the decision."""

    code: str
    title: str


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the person told the worker on the call about their situation; None: not learned."""

    qualification_level: QualificationLevel | None = None
    has_computer: bool | None = None
    has_internet: bool | None = None
    unemployed_since: date | None = None

    def learned(self) -> dict[str, Any]:
        """The facts learned, as `ContactAttempted`'s fields of the same names."""
        return {name: value for name in self.__slots__ if (value := getattr(self, name)) is not None}


@dataclass(frozen=True, slots=True)
class RecordContact:
    """An advisor's call and what came of it.

    The I/O the desk does first is in the command: `enrolment` is the seat taken for an
    `enrolled` outcome (None when no course was given), `exam_certification` the certification
    code when the catalogue knows it (None otherwise).
    """

    worker_id: str
    outcome: ContactOutcome
    now: datetime
    retry_after: timedelta
    notes: str | None = None
    retry_at: datetime | None = None
    redirect_to: Target | None = None
    enrolment: EnrolledCourse | None = None
    exam_certification: str | None = None
    facts: CallFacts = CallFacts()

    @property
    def reaches_person(self) -> bool:
        """Whether the call reached the person: anything but no answer closes the callback promise."""
        return self.outcome is not ContactOutcome.NO_ANSWER


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """A worker recorded (or corrected) what the person said of their situation; the case is scored
    again with `weights`, the rule set's priority points."""

    facts: CallFacts
    recorded_by: str
    now: datetime
    weights: PriorityWeights


@dataclass(frozen=True, slots=True)
class KeepPromiseOfJoined:
    """The call on the request this case joined reached the person: it keeps this case's promise too."""

    now: datetime


@dataclass(frozen=True, slots=True)
class Redirect:
    """After a call, the request goes to another team and is announced as routed again, caused by the call."""

    target: Target
    worker_id: str
    rule_set_version: str
    cause: Event


@dataclass(frozen=True, slots=True)
class Erase:
    """The person asked for erasure: blank the contact details and the free text."""


Command = AdmitToProgramme | MarkCallbackDue | MarkBreached | RecordContact | RecordFacts | KeepPromiseOfJoined | Redirect | Erase


def decide(case: Case, command: Command) -> tuple[Case, Effects]:
    """The case after `command` and what it implies; raises `DeskError` on a refused desk action."""
    match command:
        case AdmitToProgramme(admitted=admitted):
            programme: ProgrammeState = "admitted" if admitted else "waitlisted"
            if case.programme == programme:
                return case, NO_EFFECTS
            return case.model_copy(update={"programme": programme}), NO_EFFECTS
        case MarkCallbackDue():
            return _callback_due(case, command)
        case MarkBreached():
            return _breached(case, command)
        case RecordContact():
            return _record_contact(case, command)
        case RecordFacts():
            return _record_facts(case, command)
        case KeepPromiseOfJoined(now=now):
            if case.sla != "pending":
                return case, NO_EFFECTS
            kept = case.model_copy(update={"sla": promise_outcome(case, now), "first_contact_at": now})
            return kept, Effects(cancel=_cancel_callback_timers(case.request_id))
        case Redirect():
            return _redirect(case, command)
        case Erase():
            if case.erased and not case.contact and not case.need:
                return case, NO_EFFECTS
            return case.model_copy(update={"contact": {}, "need": "", "erased": True}), NO_EFFECTS


def _callback_facts(case: Case, event_id: uuid.UUID, assignee_id: str | None) -> dict[str, Any]:
    """The envelope and payload both callback events share."""
    return {
        "id": event_id,
        "source": SOURCE,
        "subject": case.request_id,
        "request_id": case.request_id,
        "person_id": case.person_id,
        "assignee_id": assignee_id,
        "deadline": case.deadline,
        **following_case(case),
    }


def _callback_due(case: Case, command: MarkCallbackDue) -> tuple[Case, Effects]:
    if not case.awaits_callback:
        return case, NO_EFFECTS
    due = CallbackDue(**_callback_facts(case, command.event_id, command.assignee_id))
    return case.model_copy(update={"due_sent_at": command.now}), Effects(events=(due,))


def _breached(case: Case, command: MarkBreached) -> tuple[Case, Effects]:
    if not case.awaits_callback:
        return case, NO_EFFECTS
    breach = CallbackSlaBreached(
        **_callback_facts(case, command.event_id, command.assignee_id),
        escalated_to=(command.supervisor or f"{case.target.value}:supervisor") if command.escalate else None,
    )
    return case.model_copy(update={"sla": "breached", "breached_at": command.now}), Effects(events=(breach,))


def _record_contact(case: Case, command: RecordContact) -> tuple[Case, Effects]:
    outcome, now = command.outcome, command.now
    if outcome is ContactOutcome.ENROLLED and command.enrolment is None:
        raise DeskError("an enrolment needs a course_code from the catalogue", status=422)
    if outcome is ContactOutcome.EXAM_WANTED and command.exam_certification is None:
        raise DeskError("an exam request needs a certification_code from the catalogue", status=422)
    if outcome is ContactOutcome.REDIRECTED and command.redirect_to is None:
        raise DeskError("a redirection needs redirect_to (a target)", status=422)

    attempt = case.attempts + 1
    next_attempt_at = (command.retry_at or now + command.retry_after) if outcome is ContactOutcome.NO_ANSWER else None
    common: dict[str, Any] = {
        "source": f"{SOURCE}/desk",
        "subject": case.request_id,
        "request_id": case.request_id,
        "person_id": case.person_id,
    }
    # The call is the cause of what it leads to: an enrolment, an exam request, a redirection.
    attempted = ContactAttempted(
        **common,
        **following_case(case),
        worker_id=command.worker_id,
        outcome=outcome,
        attempt=attempt,
        next_attempt_at=next_attempt_at,
        notes=command.notes,
        **command.facts.learned(),
    )
    events: list[Event] = [attempted]
    if outcome is ContactOutcome.ENROLLED and command.enrolment is not None:
        events.append(
            EnrolmentConfirmed(
                **common,
                **following_case(case, attempted),
                course_code=command.enrolment.code,
                course_title=command.enrolment.title,
                starts_on=None,
                language=case.language,
                login_instructions=LOGIN_INSTRUCTIONS,
            )
        )
    if outcome is ContactOutcome.EXAM_WANTED and command.exam_certification is not None:
        events.append(
            ExamSchedulingRequested(
                **common,
                **following_case(case, attempted),
                certification_code=command.exam_certification.upper(),
                reason=ExamRequestReason.DESK,
            )
        )

    update: dict[str, Any] = {"attempts": attempt, "last_attempt_at": now}
    cancel: tuple[CancelTimer, ...] = ()
    if command.reaches_person:
        update |= {"outcome": outcome, "first_contact_at": case.first_contact_at or now, "closed_by": command.worker_id}
        if case.sla == "pending":
            update["sla"] = promise_outcome(case, now)
        cancel = _cancel_callback_timers(case.request_id)
    return case.model_copy(update=update), Effects(events=tuple(events), cancel=cancel, seal=True)


def _record_facts(case: Case, command: RecordFacts) -> tuple[Case, Effects]:
    learned = command.facts.learned()
    if not learned:
        raise DeskError("no fact given: qualification_level, has_computer, has_internet or unemployed_since", status=422)
    if all(getattr(case, name) == value and case.fact_sources.get(name) is FactSource.DESK for name, value in learned.items()):
        return case, NO_EFFECTS  # said again: nothing new
    sources = {**case.fact_sources, **dict.fromkeys(learned, FactSource.DESK)}
    informed = case.model_copy(update={**learned, "fact_sources": sources})
    score = priority_of(informed, now=command.now, weights=command.weights)
    rescored = informed.model_copy(update={"priority": score.score, "priority_parts": dict(score.parts)})
    recorded = RequestFactsRecorded(
        **following_case(case),
        source=f"{SOURCE}/desk",
        subject=case.request_id,
        request_id=case.request_id,
        person_id=case.person_id,
        recorded_by=command.recorded_by,
        **learned,
        fact_sources=sources,
        priority=score.score,
        priority_parts=dict(score.parts),
    )
    return rescored, Effects(events=(recorded,))


def _redirect(case: Case, command: Redirect) -> tuple[Case, Effects]:
    routed = TrainingRequestRouted(
        **following_case(case, command.cause),
        source=f"{SOURCE}/desk",
        subject=case.request_id,
        request_id=case.request_id,
        person_id=case.person_id,
        target=command.target,
        rule_id="desk-redirect",
        rule_set_version=command.rule_set_version,
        explanation=f"Redirected by {command.worker_id} after a call.",
        priority=case.priority,
        priority_parts={},
        callback_deadline=None,
        assignee_id=None,
    )
    redirected = case.model_copy(
        update={
            "target": command.target,
            "outcome": None,
            "redirected_from": case.target,
            "routed_event_id": str(routed.id),
        }
    )
    return redirected, Effects(events=(routed,))
