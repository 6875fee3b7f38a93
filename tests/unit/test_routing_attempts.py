"""Attempts with an end: retries spaced in opening hours, the last unanswered call closing the
request as unreachable, wrong numbers and withdrawals, and nobody offered a call on a holiday -
all pure, without a database or a clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from routing.assignment import Assignments
from routing.attempts import closing_disposition, next_attempt_at, reaches_person
from routing.case import (
    CancelTimer,
    Case,
    DeskError,
    KeepPromiseOfJoined,
    RecordContact,
    Redirect,
    decide,
)
from routing.rules import RuleSetError, load_rules, parse_rules
from routing.workers import Availability, OfferRequest, why_not
from schemas import ContactAttempted, ContactOutcome, Disposition, Language, Target, TrainingRequestClosed
from services.calendar import BRUSSELS, BrusselsCalendar, easter_sunday
from services.timers import TimerKind
from tests.factories import STAFF_TEAM, SteppingClock, staff
from tests.routing_case_contract import RECEIVED, a_case
from tests.routing_fakes import in_memory_assignments

pytestmark = pytest.mark.unit

CALENDAR = BrusselsCalendar()
TWO_HOURS = timedelta(hours=2)
NOW = RECEIVED + timedelta(hours=5)  # Tuesday 3 March 2026, 15:00 in Brussels, before the case's deadline
CALLBACK_TIMERS = (CancelTimer(TimerKind.CALLBACK_DUE, "r-1"), CancelTimer(TimerKind.SLA_BREACH, "r-1"))


def bxl(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BRUSSELS)


def weekday_before(day: date, weekday: int) -> date:
    """The last `weekday` (0 = Monday) strictly before `day`."""
    back = (day.weekday() - weekday) % 7 or 7
    return day - timedelta(days=back)


def call(outcome: ContactOutcome, **fields: Any) -> RecordContact:
    command = RecordContact(worker_id="adv-1", outcome=outcome, now=NOW, retry_after=TWO_HOURS, max_attempts=3)
    return replace(command, **fields)


def no_answers(case: Case, count: int, **fields: Any) -> tuple[Case, list[Any]]:
    """`count` unanswered calls in a row; the case after them and the effects of each."""
    all_effects = []
    for _ in range(count):
        # Each call at the earliest the previous one planned (an earlier unanswered call is refused).
        now = max(fields.get("now", NOW), case.next_attempt_at or NOW)
        case, effects = decide(case, call(ContactOutcome.NO_ANSWER, **(fields | {"now": now})))
        all_effects.append(effects)
    return case, all_effects


def test_an_unanswered_call_before_the_planned_retry_is_refused_and_counts_nothing() -> None:
    once, _ = no_answers(a_case(), 1)
    assert once.next_attempt_at is not None and once.next_attempt_at > NOW

    with pytest.raises(DeskError, match="next call is planned"):
        decide(once, call(ContactOutcome.NO_ANSWER, now=NOW + timedelta(minutes=5)))

    # The person reached before then (they called back, say) is recorded at once and plans nothing.
    reached, _ = decide(once, call(ContactOutcome.ADVICE_GIVEN, now=NOW + timedelta(minutes=5)))
    assert reached.disposition is Disposition.REACHED and reached.next_attempt_at is None
    # At the planned time the second attempt counts.
    twice, _ = decide(once, call(ContactOutcome.NO_ANSWER, now=once.next_attempt_at))
    assert (twice.attempts, twice.unanswered) == (2, 2)


# --- the policy ---------------------------------------------------------------------------


def test_the_shipped_policy_allows_three_attempts_two_hours_apart() -> None:
    desk = load_rules().desk
    assert (desk.max_attempts, desk.retry_after_no_answer) == (3, TWO_HOURS)


@pytest.mark.parametrize("bad", [0, -1, "many"])
def test_max_attempts_must_be_a_positive_number(bad: object) -> None:
    rules = {"version": "t", "default": {"target": "advisors", "explanation": {"fr": "f", "nl": "n", "en": "e"}}}
    assert parse_rules(rules | {"desk": {"max_attempts": 5}}).desk.max_attempts == 5
    with pytest.raises(RuleSetError, match="max_attempts"):
        parse_rules(rules | {"desk": {"max_attempts": bad}})


# --- spacing ------------------------------------------------------------------------------


def test_a_retry_is_two_hours_of_opening_time_later_within_a_day() -> None:
    tuesday = date(2026, 3, 3)
    assert next_attempt_at(bxl(tuesday, 10), TWO_HOURS, calendar=CALENDAR) == bxl(tuesday, 12)


def test_a_retry_late_on_a_friday_carries_the_rest_over_the_weekend() -> None:
    friday = date(2026, 3, 6)
    assert CALENDAR.is_working_day(friday + timedelta(days=3))
    # 45 minutes left on Friday, 1 h 15 on Monday from 8:30.
    assert next_attempt_at(bxl(friday, 16, 30), TWO_HOURS, calendar=CALENDAR) == bxl(friday + timedelta(days=3), 9, 45)


def test_a_retry_skips_easter_monday_as_the_calendar_computes_it() -> None:
    easter_monday = easter_sunday(2027) + timedelta(days=1)
    assert CALENDAR.holiday_name(easter_monday) == "Easter Monday"
    friday_before = easter_monday - timedelta(days=3)
    retry = next_attempt_at(bxl(friday_before, 16, 30), TWO_HOURS, calendar=CALENDAR)
    assert retry == bxl(easter_monday + timedelta(days=1), 9, 45)


def test_a_retry_skips_new_years_day_and_the_weekend_after_it() -> None:
    new_year = date(2027, 1, 1)
    assert CALENDAR.is_holiday(new_year) and new_year.weekday() == 4  # a Friday
    eve = new_year - timedelta(days=1)
    # 30 minutes on the 31st, then the holiday and the weekend, then 1 h 30 on Monday 4 January.
    assert next_attempt_at(bxl(eve, 16, 45), TWO_HOURS, calendar=CALENDAR) == bxl(date(2027, 1, 4), 10)


def test_a_retry_skips_an_extra_closure_day_of_the_calendar() -> None:
    tuesday = date(2026, 3, 3)
    closed_wednesday = BrusselsCalendar({tuesday + timedelta(days=1): "Staff training"})
    retry = next_attempt_at(bxl(tuesday, 16, 15), TWO_HOURS, calendar=closed_wednesday)
    assert retry == bxl(tuesday + timedelta(days=2), 9, 30)


def test_a_retry_that_would_fall_on_the_closing_time_goes_to_the_next_opening() -> None:
    tuesday = date(2026, 3, 3)
    retry = next_attempt_at(bxl(tuesday, 15, 15), TWO_HOURS, calendar=CALENDAR)
    assert retry == bxl(tuesday + timedelta(days=1), 8, 30) and CALENDAR.is_open(retry)


def test_a_time_the_worker_chose_is_kept_in_opening_hours_and_moved_to_the_next_opening_otherwise() -> None:
    friday = date(2026, 3, 6)
    monday = friday + timedelta(days=3)
    now = bxl(friday, 10)
    assert next_attempt_at(now, TWO_HOURS, retry_at=bxl(friday, 14, 20), calendar=CALENDAR) == bxl(friday, 14, 20)
    assert next_attempt_at(now, TWO_HOURS, retry_at=bxl(friday, 19), calendar=CALENDAR) == bxl(monday, 8, 30)
    assert next_attempt_at(now, TWO_HOURS, retry_at=bxl(friday + timedelta(days=1), 11), calendar=CALENDAR) == bxl(monday, 8, 30)
    easter_monday = easter_sunday(2027) + timedelta(days=1)
    on_the_holiday = next_attempt_at(bxl(easter_monday - timedelta(days=3), 10), TWO_HOURS, retry_at=bxl(easter_monday, 10))
    assert on_the_holiday == bxl(easter_monday, 10), "without a calendar the worker's time stands"
    moved = next_attempt_at(
        bxl(easter_monday - timedelta(days=3), 10), TWO_HOURS, retry_at=bxl(easter_monday, 10), calendar=CALENDAR
    )
    assert moved == bxl(easter_monday + timedelta(days=1), 8, 30)
    assert next_attempt_at(now, TWO_HOURS, retry_at=now - timedelta(days=1), calendar=CALENDAR) == now, "never in the past"


def test_without_a_calendar_a_retry_is_elapsed_time_as_before() -> None:
    friday = date(2026, 3, 6)
    assert next_attempt_at(bxl(friday, 16, 30), TWO_HOURS) == bxl(friday, 18, 30)


def test_the_case_plans_its_retry_in_opening_hours() -> None:
    eve = date(2026, 12, 31)
    _, effects = decide(a_case(), call(ContactOutcome.NO_ANSWER, now=bxl(eve, 16, 45), calendar=CALENDAR))
    [attempted] = effects.events
    assert isinstance(attempted, ContactAttempted) and attempted.next_attempt_at == bxl(date(2027, 1, 4), 10)


# --- dispositions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "disposition"),
    [
        (ContactOutcome.ADVICE_GIVEN, Disposition.REACHED),
        (ContactOutcome.ENROLLED, Disposition.REACHED),
        (ContactOutcome.EXAM_WANTED, Disposition.REACHED),
        (ContactOutcome.WRONG_NUMBER, Disposition.WRONG_NUMBER),
        (ContactOutcome.WITHDRAWN, Disposition.WITHDRAWN),
        (ContactOutcome.REDIRECTED, None),
    ],
)
def test_which_outcome_ends_a_request_and_how(outcome: ContactOutcome, disposition: Disposition | None) -> None:
    assert closing_disposition(outcome, unanswered=0, max_attempts=3) is disposition


def test_no_answer_ends_a_request_only_at_the_limit() -> None:
    counts = [closing_disposition(ContactOutcome.NO_ANSWER, unanswered=n, max_attempts=3) for n in (1, 2, 3)]
    assert counts == [None, None, Disposition.UNREACHABLE]
    assert closing_disposition(ContactOutcome.NO_ANSWER, unanswered=99, max_attempts=None) is None
    assert [o for o in ContactOutcome if not reaches_person(o)] == [ContactOutcome.NO_ANSWER, ContactOutcome.WRONG_NUMBER]


def test_attempts_are_counted_and_a_retry_planned_until_the_last_one() -> None:
    case, effects = no_answers(a_case(), 2)

    assert (case.attempts, case.unanswered, case.disposition, case.outcome, case.sla) == (2, 2, None, None, "pending")
    assert case.is_open
    for number, each in enumerate(effects, start=1):
        [attempted] = each.events
        assert isinstance(attempted, ContactAttempted) and attempted.attempt == number
        # Each call two hours after the one before (the earliest it may be), each planning the next.
        assert attempted.next_attempt_at == NOW + number * TWO_HOURS and not each.cancel
    assert case.next_attempt_at == NOW + 2 * TWO_HOURS


def test_the_last_unanswered_attempt_closes_the_request_as_unreachable() -> None:
    case, effects = no_answers(a_case(), 3)

    assert (case.attempts, case.unanswered, case.disposition, case.outcome, case.closed_by) == (
        3,
        3,
        Disposition.UNREACHABLE,
        ContactOutcome.NO_ANSWER,
        "adv-1",
    )
    # Closed before its deadline: the desk called within the promise, which is not a breach;
    # nobody was reached, so there is no first contact.
    assert (case.sla, case.first_contact_at) == ("met", None)
    assert not case.is_open
    last = effects[-1]
    attempted, closed = last.events
    assert isinstance(attempted, ContactAttempted) and attempted.next_attempt_at is None and attempted.attempt == 3
    assert isinstance(closed, TrainingRequestClosed)
    assert (closed.disposition, closed.attempts, closed.worker_id, closed.request_id, closed.person_id) == (
        Disposition.UNREACHABLE,
        3,
        "adv-1",
        "r-1",
        "p-1",
    )
    assert (closed.causation_id, str(closed.correlation_id), closed.source) == (
        attempted.id,
        case.correlation_id,
        "/routing/desk",
    )
    assert last.cancel == CALLBACK_TIMERS


def test_a_request_closed_after_its_deadline_stays_breached() -> None:
    breached = a_case(sla="breached", attempts=2, unanswered=2)
    closed, _ = decide(breached, call(ContactOutcome.NO_ANSWER))
    assert (closed.disposition, closed.sla) == (Disposition.UNREACHABLE, "breached")


def test_a_closed_request_takes_no_more_calls() -> None:
    closed, _ = no_answers(a_case(), 3)
    with pytest.raises(DeskError, match="closed \\(unreachable\\)"):
        decide(closed, call(ContactOutcome.NO_ANSWER))


@pytest.mark.parametrize(("outcome", "reached"), [(ContactOutcome.WRONG_NUMBER, False), (ContactOutcome.WITHDRAWN, True)])
def test_a_wrong_number_or_a_withdrawal_closes_the_request_at_once(outcome: ContactOutcome, reached: bool) -> None:
    case, effects = decide(a_case(), call(outcome))

    assert (case.disposition, case.outcome, case.attempts, case.sla) == (Disposition(outcome.value), outcome, 1, "met")
    assert (case.first_contact_at is not None) is reached
    attempted, closed = effects.events
    assert isinstance(attempted, ContactAttempted) and attempted.next_attempt_at is None
    assert isinstance(closed, TrainingRequestClosed) and closed.disposition is Disposition(outcome.value)
    assert effects.cancel == CALLBACK_TIMERS


def test_reaching_the_person_after_unanswered_calls_closes_it_as_reached() -> None:
    tried, _ = no_answers(a_case(), 2)
    case, effects = decide(tried, call(ContactOutcome.ADVICE_GIVEN))
    assert (case.disposition, case.unanswered, case.attempts, case.first_contact_at) == (Disposition.REACHED, 0, 3, NOW)
    assert isinstance(closed := effects.events[-1], TrainingRequestClosed) and closed.attempts == 3


def test_a_redirection_ends_nothing_and_the_other_team_has_its_own_attempts() -> None:
    tried, _ = no_answers(a_case(), 2)
    redirected, effects = decide(tried, call(ContactOutcome.REDIRECTED, redirect_to=Target.CITE_DES_METIERS))
    assert not [e for e in effects.events if isinstance(e, TrainingRequestClosed)]
    assert (redirected.disposition, redirected.unanswered) == (None, 0)
    moved, _ = decide(
        redirected, Redirect(target=Target.CITE_DES_METIERS, worker_id="adv-1", rule_set_version="t", cause=effects.events[0])
    )

    again, _ = no_answers(moved, 2)
    assert (again.disposition, again.unanswered, again.attempts) == (None, 2, 5)
    closed, _ = no_answers(again, 1)
    assert closed.disposition is Disposition.UNREACHABLE


def test_without_a_limit_a_request_is_never_closed_for_want_of_an_answer() -> None:
    case, _ = no_answers(a_case(), 10, max_attempts=None)
    assert (case.disposition, case.attempts) == (None, 10)


def test_a_joined_request_ends_as_the_one_it_joined() -> None:
    joined = a_case("r-1", joined_to="r-0")
    _, effects = no_answers(a_case("r-0"), 3)
    cause = effects[-1].events[0]

    ended, joined_effects = decide(
        joined,
        KeepPromiseOfJoined(now=NOW, disposition=Disposition.UNREACHABLE, attempts=3, worker_id="adv-1", cause=cause),
    )

    assert (ended.sla, ended.disposition, ended.first_contact_at) == ("met", Disposition.UNREACHABLE, None)
    [closed] = joined_effects.events
    assert isinstance(closed, TrainingRequestClosed)
    assert (closed.request_id, closed.disposition, closed.attempts, closed.causation_id) == (
        "r-1",
        Disposition.UNREACHABLE,
        3,
        cause.id,
    )
    assert joined_effects.cancel == CALLBACK_TIMERS
    assert decide(ended, KeepPromiseOfJoined(now=NOW, disposition=Disposition.UNREACHABLE))[0] is ended


# --- nobody works on a holiday ------------------------------------------------------------


def test_a_worker_is_not_offered_anything_on_a_holiday_whatever_their_hours() -> None:
    easter_monday = easter_sunday(2027) + timedelta(days=1)
    holiday_morning = bxl(easter_monday, 10)
    worker = staff("w1", availability=Availability.AVAILABLE)
    offer = OfferRequest(request_id="r1", team=STAFF_TEAM, language=Language.FR)

    assert worker.works_at(holiday_morning), "the weekly hours alone say Monday 10:00 is a working time"
    assert not worker.works_at(holiday_morning, CALENDAR.is_holiday)
    why = why_not(worker, offer, holiday_morning, closed_on=CALENDAR.is_holiday)
    assert why is not None and "closed" in why
    assert why_not(worker, offer, bxl(easter_monday + timedelta(days=1), 10), closed_on=CALENDAR.is_holiday) is None


async def test_the_dispatcher_offers_nothing_on_a_closure_day_and_offers_the_next_working_day() -> None:
    closure = date(2026, 6, 15)  # a Monday the calendar closes for the day
    calendar = BrusselsCalendar({closure: "Staff day"})
    clock = SteppingClock(bxl(closure, 10))
    wired = in_memory_assignments(clock=clock)
    assignments = Assignments(
        wired.requests,
        wired.workers,
        wired.transactions,
        reservation_timeout=timedelta(minutes=2),
        clock=clock,
        closed_on=calendar.is_holiday,
    )
    await assignments.upsert_worker(staff("w1"))
    await assignments.add_request("r1", STAFF_TEAM, Language.FR)

    assert await assignments.offer_next("r1") is None
    clock.now = bxl(closure + timedelta(days=1), 10)
    offered = await assignments.offer_next("r1")
    assert offered is not None and offered.worker_id == "w1"
