"""Asking the referring partner for more information, as pure decisions: the callback clock stops
while the desk waits, the deadline moves by the working time the wait lasted, the reminder comes
once, and the question and answer are sealed. No database, no clock: the dates are this test's."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta

import pytest

from routing.case import (
    AskPartner,
    CancelTimer,
    Case,
    DeskError,
    Effects,
    MarkBreached,
    MarkCallbackDue,
    MarkPartnerOverdue,
    RecordContact,
    RecordPartnerAnswer,
    ScheduleTimer,
    decide,
    open_case,
)
from routing.decision import decide_route
from routing.rules import load_rules
from routing.sla import SlaPolicy, later_by, resumed_deadline
from schemas import (
    Channel,
    ContactOutcome,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    PartnerInformationRequested,
    Target,
)
from services.calendar import BRUSSELS, BrusselsCalendar
from services.privacy import seal, unseal
from services.timers import TimerKind
from tests.factories import make_request
from tests.routing_case_contract import a_case

pytestmark = pytest.mark.unit

CALENDAR = BrusselsCalendar()
WORKING_DAYS = load_rules().sla
ELAPSED = SlaPolicy(mode="calendar")

# A week of March 2027 without public holidays.
FRIDAY_16 = datetime(2027, 3, 5, 16, 0, tzinfo=BRUSSELS)
MONDAY_10 = datetime(2027, 3, 8, 10, 0, tzinfo=BRUSSELS)
MONDAY_16 = datetime(2027, 3, 8, 16, 0, tzinfo=BRUSSELS)
TUESDAY_16 = datetime(2027, 3, 9, 16, 0, tzinfo=BRUSSELS)
WEDNESDAY_10 = datetime(2027, 3, 10, 10, 0, tzinfo=BRUSSELS)
PAUSED = timedelta(hours=1, minutes=15) + timedelta(hours=1, minutes=30)
"""Friday 16:00 to Monday 10:00: 1 h 15 before Friday's closing, 1 h 30 after Monday's opening."""

QUESTION = "M. Dupont (0470 00 00 00) a-t-il déjà suivi un module de bureautique ?"
ANSWER = "Oui, en 2025 ; il préfère être appelé le matin."


def handed_over(**fields: object) -> Case:
    """A Cité des métiers hand-over due Tuesday 16:00, held by the online team."""
    values: dict[str, object] = {
        "target": Target.ESPACES_NUMERIQUES,
        "partner": "cite-des-metiers",
        "received_at": FRIDAY_16 - timedelta(days=4),
        "deadline": TUESDAY_16,
        "due_at": TUESDAY_16 - timedelta(hours=4),
    }
    return a_case("r-1", **(values | fields))


def ask(now: datetime = FRIDAY_16) -> AskPartner:
    return AskPartner(
        worker_id="en-fr-1", question=QUESTION, now=now, remind_at=later_by(now, timedelta(days=1), WORKING_DAYS, CALENDAR)
    )


def answer(now: datetime = MONDAY_10, policy: SlaPolicy = WORKING_DAYS) -> RecordPartnerAnswer:
    return RecordPartnerAnswer(recorded_by="en-fr-1", answer=ANSWER, now=now, sla=policy, calendar=CALENDAR)


# --- the arithmetic -----------------------------------------------------------------------


def test_a_pause_from_friday_16_to_monday_10_moves_the_deadline_by_2_h_45_of_working_time() -> None:
    assert CALENDAR.working_time_between(FRIDAY_16, MONDAY_10) == PAUSED
    # Tuesday 16:00 + 2 h 45: 1 h 15 to Tuesday's closing, 1 h 30 from Wednesday's opening.
    assert resumed_deadline(TUESDAY_16, FRIDAY_16, MONDAY_10, WORKING_DAYS, CALENDAR) == WEDNESDAY_10


def test_in_calendar_mode_a_pause_moves_the_deadline_by_the_elapsed_time() -> None:
    assert resumed_deadline(TUESDAY_16, FRIDAY_16, MONDAY_10, ELAPSED, CALENDAR) == TUESDAY_16 + (MONDAY_10 - FRIDAY_16)


def test_a_pause_outside_opening_hours_moves_nothing() -> None:
    saturday, sunday = FRIDAY_16 + timedelta(days=1), FRIDAY_16 + timedelta(days=2)
    assert resumed_deadline(TUESDAY_16, saturday, sunday, WORKING_DAYS, CALENDAR) == TUESDAY_16


def test_the_reminder_delay_counts_working_days() -> None:
    assert later_by(FRIDAY_16, timedelta(days=1), WORKING_DAYS, CALENDAR) == MONDAY_16
    assert later_by(FRIDAY_16, timedelta(days=1), ELAPSED, CALENDAR) == FRIDAY_16 + timedelta(days=1)


# --- opening --------------------------------------------------------------------------------


def test_a_case_remembers_the_partner_that_handed_it_over() -> None:
    request = make_request(channel=Channel.WEB, channel_details={"partner": " Cite-des-Metiers ", "handover": True})
    opening = open_case(request, decide_route(request, now=request.received_at), joined_to=None, deadline=None, due=None)
    assert opening.case.partner == "cite-des-metiers"
    assert opening.case.target is Target.ESPACES_NUMERIQUES
    assert open_case(make_request(), decide_route(make_request()), joined_to=None, deadline=None, due=None).case.partner is None


# --- asking -----------------------------------------------------------------------------


def test_asking_stops_the_clock_and_sets_a_reminder() -> None:
    case = handed_over()

    waiting, effects = decide(case, ask())

    assert waiting.waiting_for_partner and waiting.partner_asked_at == FRIDAY_16
    assert not waiting.awaits_callback and waiting.deadline == TUESDAY_16
    assert effects.cancel == (CancelTimer(TimerKind.CALLBACK_DUE, "r-1"), CancelTimer(TimerKind.SLA_BREACH, "r-1"))
    (reminder,) = effects.schedule
    assert (reminder.kind, reminder.key, reminder.fire_at, reminder.replace) == (
        TimerKind.PARTNER_REMINDER,
        "r-1",
        MONDAY_16,
        True,
    )
    (asked,) = effects.events
    assert isinstance(asked, PartnerInformationRequested)
    assert (asked.partner, asked.worker_id, asked.asked_at, asked.remind_at, asked.callback_deadline) == (
        "cite-des-metiers",
        "en-fr-1",
        FRIDAY_16,
        MONDAY_16,
        TUESDAY_16,
    )
    assert asked.question == QUESTION and effects.seal, "free text goes out sealed"
    assert str(asked.correlation_id) == case.correlation_id


def test_while_waiting_the_callback_timers_are_no_ops() -> None:
    waiting, _ = decide(handed_over(), ask())
    assert decide(waiting, MarkCallbackDue(now=MONDAY_10, event_id=uuid.uuid4(), assignee_id="en-fr-1"))[1].events == ()
    assert decide(waiting, MarkBreached(now=MONDAY_10, event_id=uuid.uuid4(), assignee_id=None, escalate=True))[1].events == ()


def test_a_case_without_a_promise_or_past_it_waits_without_timers_to_stop() -> None:
    for case in (handed_over(deadline=None, due_at=None, sla=None), handed_over(sla="breached")):
        waiting, effects = decide(case, ask())
        assert waiting.waiting_for_partner and effects.cancel == ()
        assert [t.kind for t in effects.schedule] == [TimerKind.PARTNER_REMINDER]
        assert effects.events[0].callback_deadline is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (a_case(), "not handed over by a partner"),
        (handed_over(outcome=ContactOutcome.ENROLLED), "closed"),
        (handed_over(joined_to="r-0"), "closed"),
        (decide(handed_over(), ask())[0], "already waits"),
    ],
)
def test_asking_is_refused_when_there_is_nobody_to_ask_or_nothing_to_ask_for(case: Case, reason: str) -> None:
    with pytest.raises(DeskError, match=reason) as refused:
        decide(case, ask())
    assert refused.value.status == 409


# --- the reminder ---------------------------------------------------------------------------


def test_the_reminder_comes_once_per_question() -> None:
    waiting, _ = decide(handed_over(), ask())
    event_id = uuid.uuid4()
    fired = MarkPartnerOverdue(now=MONDAY_16, event_id=event_id, asked_at=FRIDAY_16, assignee_id="en-fr-1")

    reminded, effects = decide(waiting, fired)

    (overdue,) = effects.events
    assert isinstance(overdue, PartnerInformationOverdue)
    assert (overdue.id, overdue.partner, overdue.assignee_id, overdue.asked_at) == (
        event_id,
        "cite-des-metiers",
        "en-fr-1",
        FRIDAY_16,
    )
    assert reminded.partner_reminded_at == MONDAY_16 and reminded.waiting_for_partner
    assert decide(reminded, fired) == (reminded, Effects())


def test_a_reminder_after_the_answer_or_for_an_earlier_question_is_a_no_op() -> None:
    waiting, _ = decide(handed_over(), ask())
    answered, _ = decide(waiting, answer())
    late = MarkPartnerOverdue(now=MONDAY_16, event_id=uuid.uuid4(), asked_at=FRIDAY_16, assignee_id=None)
    assert not decide(answered, late)[1]
    asked_again, _ = decide(answered, ask(MONDAY_16))
    assert not decide(asked_again, late)[1]


# --- the answer -----------------------------------------------------------------------------


def test_the_answer_restarts_the_clock_with_the_deadline_moved_by_the_pause() -> None:
    waiting, _ = decide(handed_over(), ask())

    resumed, effects = decide(waiting, answer())

    assert resumed.partner_wait == "answered" and resumed.partner_answered_at == MONDAY_10
    assert resumed.awaits_callback and resumed.deadline == WEDNESDAY_10
    # Four working hours before Wednesday 10:00: 1 h 30 on Wednesday, 2 h 30 on Tuesday.
    due = datetime(2027, 3, 9, 14, 45, tzinfo=BRUSSELS)
    assert resumed.due_at == due
    payload = {"request_id": "r-1", "person_id": "p-1", "deadline": WEDNESDAY_10.isoformat()}
    assert effects.schedule == (
        ScheduleTimer(TimerKind.SLA_BREACH, "r-1", WEDNESDAY_10, payload, replace=True),
        ScheduleTimer(TimerKind.CALLBACK_DUE, "r-1", due, payload, replace=True),
    )
    assert effects.cancel == (CancelTimer(TimerKind.PARTNER_REMINDER, "r-1"),)
    (received,) = effects.events
    assert isinstance(received, PartnerInformationReceived)
    assert (received.asked_at, received.answered_at, received.callback_deadline, received.recorded_by) == (
        FRIDAY_16,
        MONDAY_10,
        WEDNESDAY_10,
        "en-fr-1",
    )
    assert received.answer == ANSWER and effects.seal


def test_a_warning_already_sent_is_not_sent_again_after_the_answer() -> None:
    waiting, _ = decide(handed_over(due_sent_at=FRIDAY_16 - timedelta(hours=1)), ask())
    _, effects = decide(waiting, answer())
    assert [t.kind for t in effects.schedule] == [TimerKind.SLA_BREACH]


def test_an_answer_without_a_question_is_refused() -> None:
    with pytest.raises(DeskError, match="does not wait") as refused:
        decide(handed_over(), answer())
    assert refused.value.status == 409


def test_reaching_the_person_while_waiting_keeps_the_promise_and_drops_the_reminder() -> None:
    waiting, _ = decide(handed_over(), ask())
    # Thursday: past the old deadline, but the clock stopped on Friday with time left.
    reached_at = TUESDAY_16 + timedelta(days=2)
    call = RecordContact(worker_id="en-fr-1", outcome=ContactOutcome.ADVICE_GIVEN, now=reached_at, retry_after=timedelta(hours=2))
    closed, effects = decide(waiting, call)
    assert closed.sla == "met" and closed.outcome is ContactOutcome.ADVICE_GIVEN
    assert CancelTimer(TimerKind.PARTNER_REMINDER, "r-1") in effects.cancel


# --- sealing --------------------------------------------------------------------------------


def test_the_question_and_the_answer_are_sealed_with_the_persons_key() -> None:
    key = os.urandom(32)
    waiting, asked = decide(handed_over(), ask())
    _, answered = decide(waiting, answer())
    for event, field in ((asked.events[0], "question"), (answered.events[0], "answer")):
        sealed = seal(event, key)
        assert getattr(sealed, field) is None and sealed.sealed is not None  # type: ignore[attr-defined]
        assert getattr(unseal(sealed, key), field) == getattr(event, field)
        assert getattr(unseal(sealed, None), field) is None, "an erased key leaves the text blank"
