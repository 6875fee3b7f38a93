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

from routing.attempts import closing_disposition, next_attempt_at, reaches_person
from routing.decision import RouteDecision
from routing.priority import PriorityWeights, priority_of
from routing.sla import SlaPolicy, due_at, resumed_deadline, sla_outcome
from schemas import (
    CallbackDue,
    CallbackSlaBreached,
    Channel,
    Contact,
    ContactAttempted,
    ContactDetailsConfirmed,
    ContactOutcome,
    Disposition,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamRequestReason,
    ExamSchedulingRequested,
    FactSource,
    Language,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    PartnerInformationRequested,
    ProgrammePlace,
    QualificationLevel,
    RequestFactsRecorded,
    Target,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from services.calendar import BRUSSELS, BrusselsCalendar
from services.timers import TimerKind, timer_id

__all__ = [
    "SOURCE",
    "AdmitToProgramme",
    "AskPartner",
    "CallFacts",
    "ChooseSlot",
    "CorrectDetails",
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
    "MarkPartnerOverdue",
    "Opening",
    "RecordContact",
    "RecordFacts",
    "RecordPartnerAnswer",
    "Redirect",
    "ScheduleTimer",
    "Withdraw",
    "decide",
    "following_case",
    "open_case",
    "promise_outcome",
    "received_fact_source",
    "slot_deadline",
    "slot_refusal",
]

SOURCE = "/routing"

SlaState = Literal["pending", "met", "breached"]
"""`pending` until the person is reached or the deadline passes; None for a case without a promise."""
ProgrammeState = Literal["admitted", "waitlisted"]
PartnerWait = Literal["waiting", "answered"]
"""`waiting` from the desk's question to the referring partner until its answer (the callback clock
stops meanwhile), then `answered`; None for a case whose partner was never asked."""

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
    escalated_to: str | None = None
    """Who the breach was escalated to (`CallbackSlaBreached.escalated_to`); None when not escalated,
    or breached before cases kept it."""
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    """When the desk may call again after an unanswered call (the person was told "around" then); an
    unanswered call recorded before it does not count toward `max_attempts` and is refused."""
    closed_by: str | None = None
    unanswered: int = 0
    """Unanswered calls in a row since the request was (re)routed; at `desk.max_attempts` it closes."""
    disposition: Disposition | None = None
    """How the attempts ended (`TrainingRequestClosed`); None while the request is open or redirected."""
    erased: bool = False
    # What is known of the person's situation, where each fact came from, and the score it gives.
    qualification_level: QualificationLevel | None = None
    has_computer: bool | None = None
    has_internet: bool | None = None
    unemployed_since: date | None = None
    fact_sources: dict[str, str] = {}
    priority_parts: dict[str, int] = {}
    # The partner that handed the request over (the Cité des métiers...), and the desk's last question to it.
    partner: str | None = None
    partner_wait: PartnerWait | None = None
    partner_asked_at: datetime | None = None
    partner_answered_at: datetime | None = None
    partner_reminded_at: datetime | None = None
    # The callback window the person chose (status page or phone menu); a later choice replaces it.
    callback_slot_start: datetime | None = None
    callback_slot_end: datetime | None = None
    callback_slot_through: str | None = None
    callback_slot_chosen_at: datetime | None = None
    deadline_by_choice: bool = False
    """The deadline is the end of the window the person chose, later than the promise: a miss is
    the person's window missed, reported apart from breaches of the promise."""
    promised_deadline: datetime | None = None
    """The promise routing made (`TrainingRequestRouted.callback_deadline`) while `deadline` is moved
    to the person's window; None otherwise."""
    # What the person corrected themselves (`RequestDetailsCorrected`): the new contact details are
    # not confirmed by staff yet, so the desk shows them apart, marked unverified.
    corrected_at: datetime | None = None
    corrected_through: str | None = None
    unverified_contact: dict[str, Any] = {}
    withdrawn_at: datetime | None = None
    withdrawn_through: str | None = None
    version: int = 0

    @property
    def awaits_callback(self) -> bool:
        """Nobody reached the person yet and the promise still runs: the callback timers apply."""
        return self.sla == "pending" and self.deadline is not None and not self.waiting_for_partner

    @property
    def waiting_for_partner(self) -> bool:
        """The desk asked the referring partner and waits for the answer: the callback clock is stopped."""
        return self.partner_wait == "waiting"

    @property
    def is_open(self) -> bool:
        """Open for a new request of the same person to join: no outcome yet and not joined itself."""
        return self.outcome is None and self.joined_to is None and self.disposition is None


# --- what a decision implies --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    kind: TimerKind
    key: str
    fire_at: datetime
    payload: dict[str, Any]
    replace: bool = False
    """Re-arm a timer that fired or was cancelled before (`TimerStore.schedule(replace=True)`)."""


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


def late_contact_breach_id(request_id: str) -> uuid.UUID:
    """The id of the breach a late closing records: the id the deadline timer's breach would have had
    (`RoutingService` derives it from the timer `sla_breach:<request id>`), so that the two are one
    event to every reader, whichever is published."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"formation-events:{timer_id(TimerKind.SLA_BREACH.value, request_id)}")


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
        fact_sources={name: request.fact_sources.get(name) or received_fact_source(request) for name in facts},
        priority_parts=dict(decision.priority_parts),
        partner=_partner_of(request),
    )
    schedule: tuple[ScheduleTimer, ...] = ()
    if deadline is not None and due is not None:
        payload = {"request_id": request.request_id, "person_id": request.person_id, "deadline": deadline.isoformat()}
        schedule = (
            ScheduleTimer(TimerKind.CALLBACK_DUE, request.request_id, due, payload),
            ScheduleTimer(TimerKind.SLA_BREACH, request.request_id, deadline, dict(payload)),
        )
    return Opening(case=case, routed=routed, effects=Effects(schedule=schedule))


def _partner_of(request: TrainingRequestReceived) -> str | None:
    """The partner that handed the request over, as the rules' `partner:` condition reads it."""
    partner = request.channel_details.get("partner")
    return partner.strip().casefold() if isinstance(partner, str) and partner.strip() else None


def received_fact_source(request: TrainingRequestReceived) -> FactSource:
    """Where the facts a request arrived with came from, when intake did not say (events published before
    `fact_sources`): the channel's own form of asking."""
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
    """The place the desk took in a course session (`routing.enrolment`), before the decision; or,
    `waitlisted`, the waitlist it put the person on (of `session_id` when named, else of the course)."""

    code: str
    title: str
    starts_on: date | None = None
    session_id: str | None = None
    waitlisted: bool = False
    online: bool = True


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
    max_attempts: int | None = None
    """Unanswered calls in a row that close the request as unreachable (`desk.max_attempts`); None: no limit."""
    calendar: BrusselsCalendar | None = None
    """Retries are spaced in its opening time (`routing.attempts`); None: in elapsed time."""

    @property
    def reaches_person(self) -> bool:
        """Whether the call reached the person: anything but no answer or a wrong number."""
        return reaches_person(self.outcome)


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
    """The call on the request this case joined settled its promise: it settles this case's too.

    With a `disposition` the joined request ends as the one it joined did (`TrainingRequestClosed`,
    caused by `cause`, with that request's `attempts`); without, it only keeps the promise.
    """

    now: datetime
    disposition: Disposition | None = None
    attempts: int = 0
    worker_id: str | None = None
    cause: Event | None = None


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


@dataclass(frozen=True, slots=True)
class AskPartner:
    """The worker holding a handed-over request asks the referring partner for more information;
    `remind_at` is when the desk is reminded without an answer (the policy's delay, computed first)."""

    worker_id: str
    question: str
    now: datetime
    remind_at: datetime


@dataclass(frozen=True, slots=True)
class MarkPartnerOverdue:
    """The partner-reminder timer fired for the question asked at `asked_at`; `event_id` derives from it."""

    now: datetime
    event_id: uuid.UUID
    asked_at: datetime
    assignee_id: str | None


@dataclass(frozen=True, slots=True)
class RecordPartnerAnswer:
    """The partner answered; the callback clock runs again, its deadline moved by the pause,
    counted with `sla` and `calendar` (the rule set's promise and the Brussels calendar)."""

    recorded_by: str
    answer: str
    now: datetime
    sla: SlaPolicy
    calendar: BrusselsCalendar


@dataclass(frozen=True, slots=True)
class ChooseSlot:
    """The person chose the window to be called back in (`CallbackSlotChosen`), checked first
    (`slot_refusal`); the deadline follows with `sla` and `calendar` (`slot_deadline`)."""

    slot_start: datetime
    slot_end: datetime
    chosen_through: str
    now: datetime
    sla: SlaPolicy
    calendar: BrusselsCalendar


@dataclass(frozen=True, slots=True)
class Withdraw:
    """The person withdrew the request (`TrainingRequestWithdrawn`, the `cause` of the closing)."""

    now: datetime
    withdrawn_through: str
    cause: Event


@dataclass(frozen=True, slots=True)
class ConfirmContact:
    """A worker checked with the person the contact details they gave on their status page."""

    worker_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class CorrectDetails:
    """The person corrected their need, the course asked for or their contact details; None: unchanged.
    `contact` is the unsealed new contact, unverified."""

    now: datetime
    corrected_through: str
    need: str | None = None
    requested_course: str | None = None
    contact: dict[str, Any] | None = None


Command = (
    AdmitToProgramme
    | MarkCallbackDue
    | MarkBreached
    | RecordContact
    | RecordFacts
    | KeepPromiseOfJoined
    | Redirect
    | Erase
    | AskPartner
    | MarkPartnerOverdue
    | RecordPartnerAnswer
    | ChooseSlot
    | Withdraw
    | CorrectDetails
    | ConfirmContact
)


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
        case KeepPromiseOfJoined():
            return _keep_promise_of_joined(case, command)
        case Redirect():
            return _redirect(case, command)
        case AskPartner():
            return _ask_partner(case, command)
        case MarkPartnerOverdue():
            return _partner_overdue(case, command)
        case RecordPartnerAnswer():
            return _partner_answered(case, command)
        case ChooseSlot():
            return _choose_slot(case, command)
        case Withdraw():
            return _withdraw(case, command)
        case CorrectDetails():
            return _correct_details(case, command)
        case ConfirmContact():
            return _confirm_contact(case, command)
        case Erase():
            if case.erased and not case.contact and not case.need and not case.unverified_contact:
                return case, NO_EFFECTS
            return case.model_copy(update={"contact": {}, "need": "", "unverified_contact": {}, "erased": True}), NO_EFFECTS


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
    breached = {"sla": "breached", "breached_at": command.now, "escalated_to": breach.escalated_to}
    return case.model_copy(update=breached), Effects(events=(breach,))


def _record_contact(case: Case, command: RecordContact) -> tuple[Case, Effects]:
    outcome, now = command.outcome, command.now
    if outcome is ContactOutcome.ENROLLED and command.enrolment is None:
        raise DeskError("an enrolment needs a course_code from the catalogue", status=422)
    if outcome is ContactOutcome.EXAM_WANTED and command.exam_certification is None:
        raise DeskError("an exam request needs a certification_code from the catalogue", status=422)
    if outcome is ContactOutcome.REDIRECTED and command.redirect_to is None:
        raise DeskError("a redirection needs redirect_to (a target)", status=422)

    if case.disposition is not None:
        raise DeskError(f"request {case.request_id} is closed ({case.disposition.value})")
    if outcome is ContactOutcome.NO_ANSWER and case.next_attempt_at is not None and command.now < case.next_attempt_at:
        # Attempts are spaced so that three of them mean something (and the person was told when we
        # would call again): a second unanswered call minutes after the first is not a new attempt.
        raise DeskError(
            f"the next call is planned from {case.next_attempt_at.isoformat()}; an unanswered call before then "
            "is not recorded as a new attempt"
        )

    attempt = case.attempts + 1
    unanswered = case.unanswered + 1 if outcome is ContactOutcome.NO_ANSWER else 0
    disposition = closing_disposition(outcome, unanswered=unanswered, max_attempts=command.max_attempts)
    retry = None
    if outcome is ContactOutcome.NO_ANSWER and disposition is None:
        retry = next_attempt_at(now, command.retry_after, retry_at=command.retry_at, calendar=command.calendar)
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
        next_attempt_at=retry,
        notes=command.notes,
        **command.facts.learned(),
    )
    events: list[Event] = [attempted]
    if outcome is ContactOutcome.ENROLLED and command.enrolment is not None and command.enrolment.waitlisted:
        # The call is still recorded and closes the request as reached; the place comes later.
        events.append(
            EnrolmentWaitlisted(
                **common,
                **following_case(case, attempted),
                course_code=command.enrolment.code,
                course_title=command.enrolment.title,
                language=case.language,
                session_id=command.enrolment.session_id,
            )
        )
    elif outcome is ContactOutcome.ENROLLED and command.enrolment is not None:
        events.append(
            EnrolmentConfirmed(
                **common,
                **following_case(case, attempted),
                course_code=command.enrolment.code,
                course_title=command.enrolment.title,
                starts_on=command.enrolment.starts_on,
                language=case.language,
                login_instructions=LOGIN_INSTRUCTIONS if command.enrolment.online else None,
                session_id=command.enrolment.session_id,
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

    if disposition is not None:
        events.append(
            TrainingRequestClosed(
                **common,
                **following_case(case, attempted),
                disposition=disposition,
                attempts=attempt,
                worker_id=command.worker_id,
            )
        )

    update: dict[str, Any] = {"attempts": attempt, "last_attempt_at": now, "unanswered": unanswered, "next_attempt_at": retry}
    cancel: tuple[CancelTimer, ...] = ()
    if command.reaches_person:
        update["first_contact_at"] = case.first_contact_at or now
    if disposition is not None or outcome is ContactOutcome.REDIRECTED:
        # The request ends here (or goes to another team, which makes a promise of its own): the
        # callback promise is judged now. A request closed as unreachable, a wrong number or a
        # withdrawal before its deadline kept it - the desk called within it - and one closed
        # after its deadline was already marked breached by the deadline timer.
        update |= {"outcome": outcome, "closed_by": command.worker_id, "disposition": disposition}
        if case.sla == "pending":
            # Reached while the clock is stopped for the partner: it stopped with time left.
            update["sla"] = "met" if case.waiting_for_partner else promise_outcome(case, now)
            if update["sla"] == "breached":
                # Closed after its deadline before the deadline timer fired (timers poll): the breach
                # is recorded all the same, as the timer would have, so that reports count it. Nobody
                # is escalated to: the desk has just dealt with the person.
                update["breached_at"] = now
                events.append(
                    CallbackSlaBreached(**_callback_facts(case, late_contact_breach_id(case.request_id), command.worker_id))
                )
        cancel = _cancel_callback_timers(case.request_id)
        if case.waiting_for_partner:
            cancel += (CancelTimer(TimerKind.PARTNER_REMINDER, case.request_id),)
    return case.model_copy(update=update), Effects(events=tuple(events), cancel=cancel, seal=True)


def _keep_promise_of_joined(case: Case, command: KeepPromiseOfJoined) -> tuple[Case, Effects]:
    if case.sla != "pending" or case.disposition is not None:
        return case, NO_EFFECTS
    disposition, now = command.disposition, command.now
    update: dict[str, Any] = {"sla": promise_outcome(case, now), "disposition": disposition}
    if disposition in (None, Disposition.REACHED, Disposition.WITHDRAWN):
        update["first_contact_at"] = now
    events: tuple[Event, ...] = ()
    if disposition is not None:
        closed = TrainingRequestClosed(
            **following_case(case, command.cause),
            source=f"{SOURCE}/desk",
            subject=case.request_id,
            request_id=case.request_id,
            person_id=case.person_id,
            disposition=disposition,
            attempts=command.attempts,
            worker_id=command.worker_id,
        )
        events = (closed,)
    return case.model_copy(update=update), Effects(events=events, cancel=_cancel_callback_timers(case.request_id))


def _record_facts(case: Case, command: RecordFacts) -> tuple[Case, Effects]:
    learned = command.facts.learned()
    if not learned:
        raise DeskError("no fact given: qualification_level, has_computer, has_internet or unemployed_since", status=422)
    if all(getattr(case, name) == value and case.fact_sources.get(name) == FactSource.DESK for name, value in learned.items()):
        return case, NO_EFFECTS  # said again: nothing new
    sources = {**case.fact_sources, **dict.fromkeys(learned, FactSource.DESK.value)}
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


# --- waiting for the referring partner ------------------------------------------------------


def _partner_facts(case: Case, source: str) -> dict[str, Any]:
    assert case.partner is not None
    return {
        "source": source,
        "subject": case.request_id,
        "request_id": case.request_id,
        "person_id": case.person_id,
        "partner": case.partner,
        **following_case(case),
    }


def _ask_partner(case: Case, command: AskPartner) -> tuple[Case, Effects]:
    if case.partner is None:
        raise DeskError(f"request {case.request_id} was not handed over by a partner: there is nobody to ask")
    if case.outcome is not None or case.joined_to is not None:
        raise DeskError(f"request {case.request_id} is closed")
    if case.waiting_for_partner:
        raise DeskError(f"request {case.request_id} already waits for {case.partner}'s answer")
    asked = PartnerInformationRequested(
        **_partner_facts(case, f"{SOURCE}/desk"),
        worker_id=command.worker_id,
        asked_at=command.now,
        remind_at=command.remind_at,
        callback_deadline=case.deadline if case.awaits_callback else None,
        question=command.question,
    )
    # The clock stops: the callback timers go, and come back with the answer (`_partner_answered`).
    cancel = _cancel_callback_timers(case.request_id) if case.awaits_callback else ()
    reminder = ScheduleTimer(
        TimerKind.PARTNER_REMINDER,
        case.request_id,
        command.remind_at,
        {"request_id": case.request_id, "person_id": case.person_id, "asked_at": command.now.isoformat()},
        replace=True,  # an earlier question's reminder fired or was cancelled
    )
    waiting = case.model_copy(update={"partner_wait": "waiting", "partner_asked_at": command.now})
    return waiting, Effects(events=(asked,), schedule=(reminder,), cancel=cancel, seal=True)


def _same_instant(a: datetime | None, b: datetime) -> bool:
    # MongoDB keeps milliseconds: a stored instant reads back up to 1 ms earlier.
    return a is not None and abs(a - b) < timedelta(milliseconds=1)


def _partner_overdue(case: Case, command: MarkPartnerOverdue) -> tuple[Case, Effects]:
    if not case.waiting_for_partner or not _same_instant(case.partner_asked_at, command.asked_at):
        return case, NO_EFFECTS  # answered meanwhile, or the timer of an earlier question
    reminded, asked = case.partner_reminded_at, case.partner_asked_at
    if reminded is not None and asked is not None and reminded >= asked:
        return case, NO_EFFECTS  # once per question
    overdue = PartnerInformationOverdue(
        **_partner_facts(case, SOURCE),
        id=command.event_id,
        assignee_id=command.assignee_id,
        asked_at=command.asked_at,
    )
    return case.model_copy(update={"partner_reminded_at": command.now}), Effects(events=(overdue,))


def _partner_answered(case: Case, command: RecordPartnerAnswer) -> tuple[Case, Effects]:
    if not case.waiting_for_partner or case.partner_asked_at is None:
        raise DeskError(f"request {case.request_id} does not wait for a partner's answer")
    now = command.now
    update: dict[str, Any] = {"partner_wait": "answered", "partner_answered_at": now}
    schedule: tuple[ScheduleTimer, ...] = ()
    deadline = None
    if case.sla == "pending" and case.deadline is not None:
        deadline = resumed_deadline(case.deadline, case.partner_asked_at, now, command.sla, command.calendar)
        due = max(due_at(deadline, command.sla, command.calendar, received_at=case.received_at), now)
        update |= {"deadline": deadline, "due_at": due}
        payload = {"request_id": case.request_id, "person_id": case.person_id, "deadline": deadline.isoformat()}
        schedule = (ScheduleTimer(TimerKind.SLA_BREACH, case.request_id, deadline, payload, replace=True),)
        if case.due_sent_at is None:
            # A warning already sent is not sent again: its event id derives from the timer's.
            schedule += (ScheduleTimer(TimerKind.CALLBACK_DUE, case.request_id, due, dict(payload), replace=True),)
    received = PartnerInformationReceived(
        **_partner_facts(case, f"{SOURCE}/desk"),
        recorded_by=command.recorded_by,
        asked_at=case.partner_asked_at,
        answered_at=now,
        callback_deadline=deadline,
        answer=command.answer,
    )
    cancel = (CancelTimer(TimerKind.PARTNER_REMINDER, case.request_id),)
    return case.model_copy(update=update), Effects(events=(received,), schedule=schedule, cancel=cancel, seal=True)


# --- what the person does about their request ----------------------------------------------


def slot_refusal(start: datetime, end: datetime, calendar: BrusselsCalendar, now: datetime) -> str | None:
    """Why a chosen callback window cannot be scheduled (a short reason for the log), or None.

    A window lies within one day's opening hours (`calendar`: working days, opening to closing)
    and has not ended yet: nobody can call outside them, and a window already past means nothing.
    """
    if end <= start:
        return "slot_empty"
    if end <= now:
        return "slot_past"
    local_start, local_end = start.astimezone(BRUSSELS), end.astimezone(BRUSSELS)
    if local_start.date() != local_end.date():
        return "slot_spans_days"
    if not calendar.is_working_day(local_start.date()):
        return "slot_on_closed_day"
    if local_start.time() < calendar.opening or local_end.time() > calendar.closing:
        return "slot_outside_opening_hours"
    return None


def slot_deadline(promise: datetime, slot_end: datetime) -> tuple[datetime, bool]:
    """The callback deadline once the person chose a window ending at `slot_end`, and whether it is
    theirs rather than the promise: a window ending within the promise changes nothing (the desk
    calls within both); one ending after it moves the deadline to its end, by the person's choice."""
    if slot_end <= promise:
        return promise, False
    return slot_end, True


def _choose_slot(case: Case, command: ChooseSlot) -> tuple[Case, Effects]:
    if case.disposition is not None or case.erased:
        return case, NO_EFFECTS  # closed: nobody will call
    chosen = (case.callback_slot_start, case.callback_slot_end)
    if _same_instant(chosen[0], command.slot_start) and _same_instant(chosen[1], command.slot_end):
        return case, NO_EFFECTS  # chosen again
    update: dict[str, Any] = {
        "callback_slot_start": command.slot_start,
        "callback_slot_end": command.slot_end,
        "callback_slot_through": command.chosen_through,
        "callback_slot_chosen_at": command.now,
    }
    schedule: tuple[ScheduleTimer, ...] = ()
    if case.awaits_callback and case.deadline is not None:
        # A later choice replaces an earlier one: judged against the promise, not the moved deadline.
        promise = case.promised_deadline or case.deadline
        deadline, by_choice = slot_deadline(promise, command.slot_end)
        update |= {"deadline_by_choice": by_choice, "promised_deadline": promise if by_choice else None}
        if not _same_instant(case.deadline, deadline):
            due = due_at(deadline, command.sla, command.calendar, received_at=case.received_at)
            if by_choice:
                # The advisor is warned before the window ends, not before it opens.
                due = max(due, command.slot_start)
            due = max(due, command.now)
            update |= {"deadline": deadline, "due_at": due}
            payload = {"request_id": case.request_id, "person_id": case.person_id, "deadline": deadline.isoformat()}
            schedule = (ScheduleTimer(TimerKind.SLA_BREACH, case.request_id, deadline, payload, replace=True),)
            if case.due_sent_at is None:
                # A warning already sent is not sent again: its event id derives from the timer's.
                schedule += (ScheduleTimer(TimerKind.CALLBACK_DUE, case.request_id, due, dict(payload), replace=True),)
    return case.model_copy(update=update), Effects(schedule=schedule)


def _withdraw(case: Case, command: Withdraw) -> tuple[Case, Effects]:
    if case.disposition is not None:
        return case, NO_EFFECTS  # closed already: the withdrawal changes nothing
    now = command.now
    closed = TrainingRequestClosed(
        **following_case(case, command.cause),
        source=SOURCE,
        subject=case.request_id,
        request_id=case.request_id,
        person_id=case.person_id,
        disposition=Disposition.WITHDRAWN,
        attempts=case.attempts,
        worker_id=None,
    )
    events: list[Event] = [closed]
    update: dict[str, Any] = {
        "outcome": ContactOutcome.WITHDRAWN,
        "disposition": Disposition.WITHDRAWN,
        "withdrawn_at": now,
        "withdrawn_through": command.withdrawn_through,
    }
    if case.sla == "pending":
        # The person ended it: the promise is judged now, as for a request the desk closed.
        update["sla"] = "met" if case.waiting_for_partner else promise_outcome(case, now)
        if update["sla"] == "breached":
            update["breached_at"] = now
            events.append(CallbackSlaBreached(**_callback_facts(case, late_contact_breach_id(case.request_id), None)))
    cancel = _cancel_callback_timers(case.request_id)
    if case.waiting_for_partner:
        cancel += (CancelTimer(TimerKind.PARTNER_REMINDER, case.request_id),)
    return case.model_copy(update=update), Effects(events=tuple(events), cancel=cancel)


def _correct_details(case: Case, command: CorrectDetails) -> tuple[Case, Effects]:
    if case.erased:
        return case, NO_EFFECTS
    update: dict[str, Any] = {}
    if command.need is not None and command.need != case.need:
        update["need"] = command.need
    if command.requested_course is not None and command.requested_course != case.requested_course:
        update["requested_course"] = command.requested_course
    if command.contact is not None and command.contact != case.unverified_contact:
        update["unverified_contact"] = command.contact
    if not update:
        return case, NO_EFFECTS
    update |= {"corrected_at": command.now, "corrected_through": command.corrected_through}
    return case.model_copy(update=update), NO_EFFECTS


def _confirm_contact(case: Case, command: ConfirmContact) -> tuple[Case, Effects]:
    """The details the person gave on their status page become the ones messages go to; the ones
    they did not give again are kept."""
    given = {name: value for name, value in case.unverified_contact.items() if value}
    if not given:
        raise DeskError(f"request {case.request_id} has no new contact details to confirm")
    confirmed = ContactDetailsConfirmed(
        source=f"{SOURCE}/desk",
        subject=case.request_id,
        request_id=case.request_id,
        person_id=case.person_id,
        confirmed_by=command.worker_id,
        contact=Contact.model_validate(given),
        **following_case(case),
    )
    update = {"contact": {**case.contact, **given}, "unverified_contact": {}}
    return case.model_copy(update=update), Effects(events=(confirmed,), seal=True)
