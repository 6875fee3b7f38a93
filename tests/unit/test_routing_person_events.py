"""What the person does about their request, as routing's pure decisions: a chosen callback window
(`routing.case.ChooseSlot`, `slot_deadline`, `slot_refusal`), a withdrawal, a correction, and what
they do to the request's place in the queue (`routing.reservation.Schedule`, `Cancel`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from routing.case import (
    ChooseSlot,
    ConfirmContact,
    CorrectDetails,
    DeskError,
    Erase,
    MarkBreached,
    Withdraw,
    decide,
    slot_deadline,
    slot_refusal,
)
from routing.case_repository import case_to_document
from routing.reservation import Cancel, Offer, Refused, RequestStatus, Schedule, queue_request
from routing.reservation import decide as decide_reservation
from routing.rules import load_rules
from schemas import (
    ContactDetailsConfirmed,
    ContactOutcome,
    Disposition,
    Language,
    Target,
    TrainingRequestClosed,
    TrainingRequestWithdrawn,
)
from services.calendar import BRUSSELS, BrusselsCalendar
from services.timers import TimerKind
from tests.routing_case_contract import RECEIVED, a_case

pytestmark = pytest.mark.unit

CALENDAR = BrusselsCalendar()
SLA = load_rules().sla
PROMISE = RECEIVED + timedelta(days=2)  # `a_case`'s deadline: Thursday 5 March 2026, 10:00 in Brussels
WEDNESDAY_MORNING = (datetime(2026, 3, 4, 9, 0, tzinfo=BRUSSELS), datetime(2026, 3, 4, 12, 0, tzinfo=BRUSSELS))
FRIDAY_MORNING = (datetime(2026, 3, 6, 9, 0, tzinfo=BRUSSELS), datetime(2026, 3, 6, 12, 30, tzinfo=BRUSSELS))


def choose(window: tuple[datetime, datetime], now: datetime = RECEIVED + timedelta(hours=1)) -> ChooseSlot:
    return ChooseSlot(window[0], window[1], "status_page", now, SLA, CALENDAR)


def test_a_window_ending_within_the_promise_is_recorded_and_changes_no_deadline() -> None:
    case, effects = decide(a_case(), choose(WEDNESDAY_MORNING))
    assert (case.callback_slot_start, case.callback_slot_end, case.callback_slot_through) == (*WEDNESDAY_MORNING, "status_page")
    assert (case.deadline, case.deadline_by_choice, case.promised_deadline) == (PROMISE, False, None)
    assert not effects


def test_a_window_ending_after_the_promise_moves_the_deadline_and_its_timers_by_the_persons_choice() -> None:
    case, effects = decide(a_case(), choose(FRIDAY_MORNING))
    start, end = FRIDAY_MORNING
    assert (case.deadline, case.deadline_by_choice, case.promised_deadline) == (end, True, PROMISE)
    assert case.due_at is not None and start <= case.due_at < end, "warned within the window, not before it opens"
    timers = {t.kind: (t.fire_at, t.replace) for t in effects.schedule}
    assert timers == {TimerKind.SLA_BREACH: (end, True), TimerKind.CALLBACK_DUE: (case.due_at, True)}
    assert effects.events == ()


def test_a_later_choice_replaces_the_earlier_and_is_judged_against_the_promise() -> None:
    later, _ = decide(a_case(), choose(FRIDAY_MORNING))
    case, effects = decide(later, choose(WEDNESDAY_MORNING))
    assert (case.callback_slot_start, case.deadline, case.deadline_by_choice, case.promised_deadline) == (
        WEDNESDAY_MORNING[0],
        PROMISE,
        False,
        None,
    )
    assert [(t.kind, t.fire_at) for t in effects.schedule if t.kind is TimerKind.SLA_BREACH] == [(TimerKind.SLA_BREACH, PROMISE)]
    again, effects = decide(case, choose(WEDNESDAY_MORNING))
    assert again == case and not effects, "the same window chosen twice changes nothing"


def test_a_warning_already_sent_is_not_armed_again_and_a_closed_case_takes_no_window() -> None:
    warned = a_case(due_sent_at=RECEIVED + timedelta(days=1))
    _, effects = decide(warned, choose(FRIDAY_MORNING))
    assert [t.kind for t in effects.schedule] == [TimerKind.SLA_BREACH]
    closed = a_case(outcome=ContactOutcome.ADVICE_GIVEN, disposition=Disposition.REACHED, sla="met")
    unchanged, effects = decide(closed, choose(FRIDAY_MORNING))
    assert unchanged == closed and not effects


def test_missing_a_window_chosen_beyond_the_promise_is_a_breach_of_the_persons_deadline() -> None:
    case, _ = decide(a_case(), choose(FRIDAY_MORNING))
    breached, effects = decide(case, MarkBreached(now=FRIDAY_MORNING[1], event_id=uuid.uuid4(), assignee_id=None, escalate=False))
    assert breached.sla == "breached" and breached.deadline_by_choice
    assert [e.deadline for e in effects.events] == [FRIDAY_MORNING[1]]  # type: ignore[attr-defined]


def test_the_end_of_a_window_is_the_deadline_only_when_later_than_the_promise() -> None:
    assert slot_deadline(PROMISE, PROMISE) == (PROMISE, False)
    assert slot_deadline(PROMISE, PROMISE - timedelta(hours=3)) == (PROMISE, False)
    assert slot_deadline(PROMISE, PROMISE + timedelta(minutes=1)) == (PROMISE + timedelta(minutes=1), True)


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        (FRIDAY_MORNING, None),
        ((datetime(2026, 3, 6, 13, 0, tzinfo=BRUSSELS), datetime(2026, 3, 6, 17, 15, tzinfo=BRUSSELS)), None),
        ((datetime(2026, 3, 7, 9, 0, tzinfo=BRUSSELS), datetime(2026, 3, 7, 12, 0, tzinfo=BRUSSELS)), "slot_on_closed_day"),
        ((datetime(2026, 4, 6, 9, 0, tzinfo=BRUSSELS), datetime(2026, 4, 6, 12, 0, tzinfo=BRUSSELS)), "slot_on_closed_day"),
        (
            (datetime(2026, 3, 6, 7, 0, tzinfo=BRUSSELS), datetime(2026, 3, 6, 9, 0, tzinfo=BRUSSELS)),
            "slot_outside_opening_hours",
        ),
        (
            (datetime(2026, 3, 6, 16, 0, tzinfo=BRUSSELS), datetime(2026, 3, 6, 18, 0, tzinfo=BRUSSELS)),
            "slot_outside_opening_hours",
        ),
        ((datetime(2026, 3, 5, 16, 0, tzinfo=BRUSSELS), datetime(2026, 3, 6, 9, 0, tzinfo=BRUSSELS)), "slot_spans_days"),
        ((FRIDAY_MORNING[1], FRIDAY_MORNING[0]), "slot_empty"),
        (WEDNESDAY_MORNING, "slot_past"),
    ],
)
def test_a_window_is_taken_within_one_days_opening_hours_only(window: tuple[datetime, datetime], reason: str | None) -> None:
    now = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)  # Thursday: Wednesday's window is past
    assert slot_refusal(*window, CALENDAR, now) == reason


def withdrawal() -> TrainingRequestWithdrawn:
    return TrainingRequestWithdrawn(source="/intake", request_id="r-1", person_id="p-1", withdrawn_through="status_page")


def test_a_withdrawal_closes_the_request_as_withdrawn_by_nobody_and_cancels_its_timers() -> None:
    cause = withdrawal()
    case, effects = decide(
        a_case(attempts=1), Withdraw(now=RECEIVED + timedelta(hours=2), withdrawn_through="status_page", cause=cause)
    )
    assert (case.disposition, case.outcome, case.withdrawn_through, case.sla) == (
        Disposition.WITHDRAWN,
        ContactOutcome.WITHDRAWN,
        "status_page",
        "met",
    )
    [closed] = effects.events
    assert isinstance(closed, TrainingRequestClosed)
    assert (closed.disposition, closed.worker_id, closed.attempts, closed.causation_id) == (
        Disposition.WITHDRAWN,
        None,
        1,
        cause.id,
    )
    assert {(c.kind, c.key) for c in effects.cancel} == {(TimerKind.CALLBACK_DUE, "r-1"), (TimerKind.SLA_BREACH, "r-1")}


def test_withdrawing_a_closed_request_changes_nothing() -> None:
    closed = a_case(outcome=ContactOutcome.ENROLLED, disposition=Disposition.REACHED, sla="met")
    unchanged, effects = decide(closed, Withdraw(now=RECEIVED, withdrawn_through="status_page", cause=withdrawal()))
    assert unchanged == closed and not effects


def test_a_correction_shows_the_new_need_and_course_and_keeps_the_new_contact_apart_unverified() -> None:
    command = CorrectDetails(
        now=RECEIVED + timedelta(hours=1),
        corrected_through="status_page",
        need="Plutôt Excel avancé.",
        requested_course="EXCEL",
        contact={"name": "A. Person", "phone": "+32470111111", "email": None},
    )
    case, effects = decide(a_case(), command)
    assert (case.need, case.requested_course, case.corrected_through) == ("Plutôt Excel avancé.", "EXCEL", "status_page")
    assert case.contact["phone"] == "+32470000000", "the confirmed contact stays until staff confirm the new one"
    assert case.unverified_contact["phone"] == "+32470111111"
    assert not effects
    assert (case.priority, case.target) == (a_case().priority, a_case().target)
    assert decide(case, command)[0] == case, "said again: nothing new"


def test_staff_confirming_the_new_contact_makes_it_the_one_messages_go_to() -> None:
    corrected, _ = decide(
        a_case(),
        CorrectDetails(
            now=RECEIVED + timedelta(hours=1),
            corrected_through="status_page",
            contact={"name": None, "phone": "+32470111111", "email": None},
        ),
    )

    confirmed, effects = decide(corrected, ConfirmContact(worker_id="adv-1", now=RECEIVED + timedelta(hours=2)))

    assert confirmed.contact["phone"] == "+32470111111" and confirmed.unverified_contact == {}
    assert confirmed.contact["email"] == a_case().contact.get("email"), "what the person did not give again is kept"
    [event] = effects.events
    assert isinstance(event, ContactDetailsConfirmed) and effects.seal, "the details leave sealed"
    assert (event.confirmed_by, event.contact and event.contact.phone) == ("adv-1", "+32470111111")
    assert event.correlation_id is not None
    with pytest.raises(DeskError, match="no new contact details"):
        decide(confirmed, ConfirmContact(worker_id="adv-1", now=RECEIVED + timedelta(hours=3)))


def test_a_scheduled_request_keeps_its_place_and_a_cancelled_one_frees_its_worker() -> None:
    now = RECEIVED
    queued, _ = queue_request("r-1", Target.ADVISORS, Language.FR, now)
    offered, _ = decide_reservation(queued, Offer("adv-1", now, timedelta(minutes=5)))
    scheduled, [moved] = decide_reservation(offered, Schedule(FRIDAY_MORNING[0], FRIDAY_MORNING[1], now))
    assert (scheduled.status, scheduled.not_before, scheduled.deadline, moved.event) == (
        RequestStatus.RESERVED,
        FRIDAY_MORNING[0],
        FRIDAY_MORNING[1],
        "scheduled",
    )
    assert scheduled.scheduled_after(now) and not scheduled.scheduled_after(FRIDAY_MORNING[0])
    with pytest.raises(Refused):
        decide_reservation(scheduled, Schedule(FRIDAY_MORNING[0], FRIDAY_MORNING[1], now))
    cancelled, [withdrawn] = decide_reservation(scheduled, Cancel(now))
    assert (cancelled.status, cancelled.reservation, withdrawn.worker_id, withdrawn.worker_delta) == (
        RequestStatus.CLOSED,
        None,
        "adv-1",
        -1,
    )
    with pytest.raises(Refused):
        decide_reservation(cancelled, Cancel(now))
    never_held, [dropped] = decide_reservation(queued, Cancel(now))
    assert (never_held.status, dropped.worker_delta) == (RequestStatus.CLOSED, 0)


def test_erasure_blanks_the_contact_the_person_corrected_too() -> None:
    command = CorrectDetails(
        now=RECEIVED, corrected_through="status_page", contact={"name": None, "phone": "+32470111111", "email": None}
    )
    corrected, _ = decide(a_case(), command)
    erased, _ = decide(corrected, Erase())
    assert (erased.unverified_contact, erased.contact, erased.need, erased.erased) == ({}, {}, "", True)
    assert case_to_document(erased)["unverified_contact"] == {}, "the stored document is blanked as well"


def test_a_case_without_a_promise_keeps_the_window_and_moves_no_timer() -> None:
    case, effects = decide(a_case(deadline=None, due_at=None, sla=None), choose(FRIDAY_MORNING))
    assert (case.callback_slot_start, case.deadline, case.deadline_by_choice) == (FRIDAY_MORNING[0], None, False)
    assert not effects
