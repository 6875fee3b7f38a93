"""The routing case's pure decisions: opening a case, every transition of `decide` and every
refusal the desk sees, without a database or a clock."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from routing.case import (
    AdmitToProgramme,
    CallFacts,
    CancelTimer,
    Case,
    DeskError,
    Effects,
    EnrolledCourse,
    Erase,
    KeepPromiseOfJoined,
    MarkBreached,
    MarkCallbackDue,
    RecordContact,
    Redirect,
    decide,
    following_case,
    open_case,
    promise_outcome,
)
from routing.decision import decide_route
from schemas import (
    CallbackDue,
    CallbackSlaBreached,
    ContactAttempted,
    ContactOutcome,
    Disposition,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    ExamRequestReason,
    ExamSchedulingRequested,
    QualificationLevel,
    Target,
    TrainingRequestClosed,
    TrainingRequestRouted,
)
from services.timers import TimerKind
from tests.factories import make_request
from tests.routing_case_contract import RECEIVED, a_case

pytestmark = pytest.mark.unit

NOW = RECEIVED + timedelta(hours=5)
RETRY_AFTER = timedelta(hours=2)
CALLBACK_TIMERS = (CancelTimer(TimerKind.CALLBACK_DUE, "r-1"), CancelTimer(TimerKind.SLA_BREACH, "r-1"))


def call(outcome: ContactOutcome, **fields: Any) -> RecordContact:
    return replace(RecordContact(worker_id="adv-1", outcome=outcome, now=NOW, retry_after=RETRY_AFTER), **fields)


# --- opening ------------------------------------------------------------------------------


def test_a_case_opens_with_its_promise_timers_and_the_routed_event_that_announces_it() -> None:
    request = make_request(requested_course="EXCEL")
    decision = decide_route(request, now=request.received_at)
    deadline, due = request.received_at + timedelta(days=2), request.received_at + timedelta(days=1)

    opening = open_case(request, decision, joined_to=None, deadline=deadline, due=due)

    case, routed = opening.case, opening.routed
    assert (case.request_id, case.person_id, case.target, case.priority) == (
        request.request_id,
        request.person_id,
        decision.target,
        decision.priority,
    )
    assert (case.sla, case.deadline, case.due_at, case.attempts, case.outcome, case.version) == (
        "pending",
        deadline,
        due,
        0,
        None,
        0,
    )
    assert case.contact == request.contact.model_dump(mode="json") and case.requested_course == "EXCEL"
    assert isinstance(routed, TrainingRequestRouted)
    assert (routed.rule_id, routed.explanation, routed.callback_deadline) == (decision.rule_id, decision.explanation, deadline)
    assert (routed.correlation_id, routed.causation_id) == (request.correlation_id, request.id)
    assert (case.correlation_id, case.routed_event_id) == (str(request.correlation_id), str(routed.id))
    payload = {"request_id": request.request_id, "person_id": request.person_id, "deadline": deadline.isoformat()}
    assert [(t.kind, t.key, t.fire_at, t.payload) for t in opening.effects.schedule] == [
        (TimerKind.CALLBACK_DUE, request.request_id, due, payload),
        (TimerKind.SLA_BREACH, request.request_id, deadline, payload),
    ]
    assert opening.effects.events == () and opening.effects.cancel == ()


def test_a_request_that_joins_an_open_one_says_so_and_one_without_a_deadline_makes_no_promise() -> None:
    request = make_request()
    decision = decide_route(request, now=request.received_at)
    joined_to = "0123456789abcdef"

    opening = open_case(request, decision, joined_to=joined_to, deadline=None, due=None)

    assert opening.case.joined_to == joined_to and opening.case.sla is None
    assert opening.routed.rule_id == "joins-open-request"
    assert opening.routed.explanation.startswith("Rejoint la demande 01234567 déjà en cours")
    assert opening.routed.explanation.endswith(decision.explanation_fr)
    assert not opening.effects


# --- the programme ------------------------------------------------------------------------


def test_the_programme_admits_or_waitlists_and_saying_it_twice_changes_nothing() -> None:
    case = a_case(target=Target.DIGITAL_DIVIDE)
    waitlisted, effects = decide(case, AdmitToProgramme(admitted=False))
    assert waitlisted.programme == "waitlisted" and not effects
    admitted, _ = decide(waitlisted, AdmitToProgramme(admitted=True))
    assert admitted.programme == "admitted"
    assert decide(admitted, AdmitToProgramme(admitted=True)) == (admitted, effects)


# --- the callback timers ------------------------------------------------------------------


def test_the_due_timer_announces_the_callback_with_the_timers_event_id() -> None:
    case = a_case()
    event_id = uuid.uuid4()

    due, effects = decide(case, MarkCallbackDue(now=NOW, event_id=event_id, assignee_id="adv-1"))

    assert due.due_sent_at == NOW and due.sla == "pending"
    [event] = effects.events
    assert isinstance(event, CallbackDue)
    assert (event.id, event.request_id, event.person_id, event.assignee_id, event.deadline, event.subject) == (
        event_id,
        "r-1",
        "p-1",
        "adv-1",
        case.deadline,
        "r-1",
    )
    assert (str(event.correlation_id), str(event.causation_id)) == (case.correlation_id, case.routed_event_id)
    assert not effects.seal and not effects.cancel


@pytest.mark.parametrize(
    ("escalate", "supervisor", "escalated_to"),
    [(True, "adv-sup", "adv-sup"), (True, None, "advisors:supervisor"), (False, "adv-sup", None)],
)
def test_the_deadline_timer_breaches_the_promise_and_escalates_to_the_named_supervisor_by_policy(
    escalate: bool, supervisor: str | None, escalated_to: str | None
) -> None:
    case = a_case()
    event_id = uuid.uuid4()

    command = MarkBreached(now=NOW, event_id=event_id, assignee_id=None, escalate=escalate, supervisor=supervisor)
    breached, effects = decide(case, command)

    assert (breached.sla, breached.breached_at, breached.escalated_to) == ("breached", NOW, escalated_to)
    [event] = effects.events
    assert isinstance(event, CallbackSlaBreached)
    assert (event.id, event.assignee_id, event.escalated_to) == (event_id, None, escalated_to)


@pytest.mark.parametrize("sla", ["met", "breached", None])
def test_a_timer_firing_once_the_promise_is_settled_is_a_no_op(sla: str | None) -> None:
    case = a_case(sla=sla)
    for command in (
        MarkCallbackDue(now=NOW, event_id=uuid.uuid4(), assignee_id=None),
        MarkBreached(now=NOW, event_id=uuid.uuid4(), assignee_id=None, escalate=True),
    ):
        unchanged, effects = decide(case, command)
        assert unchanged is case and not effects


def test_a_case_stored_before_it_kept_its_chain_starts_a_conversation_of_its_own() -> None:
    case = a_case(correlation_id=None, routed_event_id=None)
    assert following_case(case) == {}
    _, effects = decide(case, MarkCallbackDue(now=NOW, event_id=uuid.uuid4(), assignee_id=None))
    assert effects.events[0].causation_id is None


# --- the desk -----------------------------------------------------------------------------


def test_the_facts_learned_on_a_call_travel_on_the_attempt_and_only_those() -> None:
    facts = CallFacts(
        qualification_level=QualificationLevel.UPPER_SECONDARY, has_computer=False, unemployed_since=date(2025, 3, 1)
    )

    _, effects = decide(a_case(), call(ContactOutcome.ADVICE_GIVEN, facts=facts))

    [attempted] = [e for e in effects.events if isinstance(e, ContactAttempted)]
    learned = (attempted.qualification_level, attempted.has_computer, attempted.has_internet, attempted.unemployed_since)
    assert learned == (QualificationLevel.UPPER_SECONDARY, False, None, date(2025, 3, 1))
    [plain] = [e for e in decide(a_case(), call(ContactOutcome.ADVICE_GIVEN))[1].events if isinstance(e, ContactAttempted)]
    assert "has_computer" not in plain.model_dump(exclude_none=True)


def test_no_answer_counts_the_attempt_plans_the_retry_and_keeps_the_promise_running() -> None:
    case = a_case(attempts=1)

    tried, effects = decide(case, call(ContactOutcome.NO_ANSWER, notes="répondeur"))

    assert (tried.attempts, tried.last_attempt_at, tried.outcome, tried.sla, tried.first_contact_at) == (
        2,
        NOW,
        None,
        "pending",
        None,
    )
    assert tried.closed_by is None and effects.cancel == ()
    [attempted] = effects.events
    assert isinstance(attempted, ContactAttempted)
    assert (attempted.attempt, attempted.next_attempt_at, attempted.notes, attempted.worker_id) == (
        2,
        NOW + RETRY_AFTER,
        "répondeur",
        "adv-1",
    )
    assert attempted.source == "/routing/desk" and str(attempted.causation_id) == case.routed_event_id
    assert effects.seal, "notes may hold personal data: the events are sealed on the way out"

    retry_at = NOW + timedelta(days=1)
    _, effects = decide(case, call(ContactOutcome.NO_ANSWER, retry_at=retry_at))
    assert isinstance(attempted := effects.events[0], ContactAttempted) and attempted.next_attempt_at == retry_at


def test_reaching_the_person_closes_the_case_keeps_the_promise_and_cancels_the_timers() -> None:
    case = a_case()

    closed, effects = decide(case, call(ContactOutcome.ADVICE_GIVEN))

    assert (closed.outcome, closed.first_contact_at, closed.closed_by, closed.sla, closed.attempts) == (
        ContactOutcome.ADVICE_GIVEN,
        NOW,
        "adv-1",
        "met",
        1,
    )
    assert effects.cancel == CALLBACK_TIMERS
    assert isinstance(attempted := effects.events[0], ContactAttempted) and attempted.next_attempt_at is None


def test_a_late_call_misses_the_promise_and_a_settled_promise_stays_as_it_was() -> None:
    late = NOW + timedelta(days=3)
    closed, _ = decide(a_case(), call(ContactOutcome.ADVICE_GIVEN, now=late))
    assert closed.sla == "breached"

    first_contact = RECEIVED + timedelta(hours=1)
    already = a_case(sla="breached", first_contact_at=first_contact)
    closed, _ = decide(already, call(ContactOutcome.ADVICE_GIVEN))
    assert (closed.sla, closed.first_contact_at) == ("breached", first_contact)


def test_the_promise_of_a_case_without_a_deadline_is_met_and_an_early_stamp_counts_on_receipt() -> None:
    assert promise_outcome(a_case(deadline=None, sla=None), NOW) == "met"
    assert promise_outcome(a_case(), RECEIVED - timedelta(minutes=5)) == "met"


def test_an_enrolment_is_confirmed_as_caused_by_the_call() -> None:
    case = a_case()

    closed, effects = decide(case, call(ContactOutcome.ENROLLED, enrolment=EnrolledCourse(code="EXCEL", title="Excel")))

    attempted, confirmed, _closed = effects.events
    assert isinstance(confirmed, EnrolmentConfirmed)
    assert (confirmed.course_code, confirmed.course_title, confirmed.language) == ("EXCEL", "Excel", case.language)
    assert (confirmed.causation_id, str(confirmed.correlation_id)) == (attempted.id, case.correlation_id)
    assert closed.outcome is ContactOutcome.ENROLLED


def test_an_enrolment_in_a_session_says_when_it_starts_and_a_centre_session_needs_no_login() -> None:
    enrolment = EnrolledCourse(code="EXCEL", title="Excel", starts_on=date(2026, 4, 1), session_id="EXCEL-1", online=False)

    _, effects = decide(a_case(), call(ContactOutcome.ENROLLED, enrolment=enrolment))

    confirmed = effects.events[1]
    assert isinstance(confirmed, EnrolmentConfirmed)
    assert (confirmed.starts_on, confirmed.session_id, confirmed.login_instructions) == (date(2026, 4, 1), "EXCEL-1", None)


def test_a_full_course_puts_the_person_on_the_waitlist_and_still_closes_the_call_as_reached() -> None:
    case = a_case()
    enrolment = EnrolledCourse(code="EXCEL", title="Excel", session_id="EXCEL-1", waitlisted=True)

    closed, effects = decide(case, call(ContactOutcome.ENROLLED, enrolment=enrolment))

    attempted, waitlisted, ended = effects.events
    assert isinstance(waitlisted, EnrolmentWaitlisted) and isinstance(ended, TrainingRequestClosed)
    assert (waitlisted.course_code, waitlisted.session_id, waitlisted.language) == ("EXCEL", "EXCEL-1", case.language)
    assert waitlisted.causation_id == attempted.id
    assert not any(isinstance(e, EnrolmentConfirmed) for e in effects.events)
    assert (closed.outcome, ended.disposition) == (ContactOutcome.ENROLLED, Disposition.REACHED)


def test_an_exam_request_names_the_certification_in_capitals() -> None:
    _, effects = decide(a_case(), call(ContactOutcome.EXAM_WANTED, exam_certification="icdl-base"))

    attempted, requested, _closed = effects.events
    assert isinstance(requested, ExamSchedulingRequested)
    assert (requested.certification_code, requested.reason, requested.causation_id) == (
        "ICDL-BASE",
        ExamRequestReason.DESK,
        attempted.id,
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (call(ContactOutcome.ENROLLED), "an enrolment needs a course_code from the catalogue"),
        (call(ContactOutcome.EXAM_WANTED), "an exam request needs a certification_code from the catalogue"),
        (call(ContactOutcome.REDIRECTED), r"a redirection needs redirect_to \(a target\)"),
    ],
)
def test_a_call_the_desk_cannot_record_is_refused_as_unprocessable(command: RecordContact, message: str) -> None:
    with pytest.raises(DeskError, match=message) as refused:
        decide(a_case(), command)
    assert refused.value.status == 422


def test_a_redirected_request_is_routed_again_as_caused_by_the_call() -> None:
    case = a_case()
    closed, effects = decide(case, call(ContactOutcome.REDIRECTED, redirect_to=Target.CITE_DES_METIERS))
    attempted = effects.events[0]

    redirected, effects = decide(
        closed, Redirect(target=Target.CITE_DES_METIERS, worker_id="adv-1", rule_set_version="2026.1", cause=attempted)
    )

    [routed] = effects.events
    assert isinstance(routed, TrainingRequestRouted)
    assert (routed.target, routed.rule_id, routed.priority, routed.explanation) == (
        Target.CITE_DES_METIERS,
        "desk-redirect",
        case.priority,
        "Redirected by adv-1 after a call.",
    )
    assert (routed.causation_id, str(routed.correlation_id), routed.source) == (
        attempted.id,
        case.correlation_id,
        "/routing/desk",
    )
    assert (redirected.target, redirected.outcome, redirected.redirected_from, redirected.routed_event_id) == (
        Target.CITE_DES_METIERS,
        None,
        Target.ADVISORS,
        str(routed.id),
    )


# --- joined cases and erasure -------------------------------------------------------------


def test_a_joined_case_keeps_its_promise_when_the_call_it_waited_for_reaches_the_person() -> None:
    joined = a_case("r-1", joined_to="r-0")

    kept, effects = decide(joined, KeepPromiseOfJoined(now=NOW))

    assert (kept.sla, kept.first_contact_at) == ("met", NOW)
    assert effects.cancel == CALLBACK_TIMERS and effects.events == ()
    assert decide(kept, KeepPromiseOfJoined(now=NOW)) == (kept, Effects())


def test_erasure_blanks_the_personal_fields_once() -> None:
    case = a_case()

    erased, effects = decide(case, Erase())

    assert (erased.contact, erased.need, erased.erased) == ({}, "", True)
    assert (erased.person_id, erased.requested_course) == (case.person_id, case.requested_course)
    assert not effects
    again, _ = decide(erased, Erase())
    assert again is erased


def test_a_case_is_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        Case.__setattr__(a_case(), "attempts", 3)


def test_a_call_closing_the_request_after_its_deadline_records_the_breach_the_timer_has_not_yet() -> None:
    case = a_case()
    assert case.deadline is not None
    late = case.deadline + timedelta(minutes=3)

    closed, effects = decide(case, replace(call(ContactOutcome.ADVICE_GIVEN), now=late))

    breaches = [e for e in effects.events if isinstance(e, CallbackSlaBreached)]
    assert [(b.id, b.assignee_id, b.escalated_to, b.deadline) for b in breaches] == [
        (uuid.uuid5(uuid.NAMESPACE_URL, f"formation-events:sla_breach:{case.request_id}"), "adv-1", None, case.deadline)
    ]
    assert (closed.sla, closed.breached_at) == ("breached", late)
    # In time: no breach.
    _, kept = decide(case, replace(call(ContactOutcome.ADVICE_GIVEN), now=case.deadline - timedelta(minutes=1)))
    assert not [e for e in kept.events if isinstance(e, CallbackSlaBreached)]
