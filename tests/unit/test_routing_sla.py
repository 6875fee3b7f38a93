"""The 48-hour callback promise: deadlines and due times in both modes, outcomes, elapsed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.sla import (
    SlaPolicy,
    callback_deadline,
    due_at,
    elapsed,
    sla_outcome,
    subtract_working_time,
    working_duration,
)
from schemas import Channel
from services.calendar import BRUSSELS, BrusselsCalendar

pytestmark = pytest.mark.unit

CAL = BrusselsCalendar()
WORKING = SlaPolicy(mode="working_days")
CALENDAR = SlaPolicy(mode="calendar")
PHONE = Channel.PHONE


def bxl(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BRUSSELS)


def wall(at: datetime) -> tuple[int, int, int, int, int, str]:
    """What a Brussels clock on the wall shows, with the UTC offset to tell DST apart."""
    local = at.astimezone(BRUSSELS)
    return (local.year, local.month, local.day, local.hour, local.minute, local.strftime("%z"))


def deadline(received_at: datetime, policy: SlaPolicy = WORKING) -> datetime:
    result = callback_deadline(received_at, policy, CAL, channel=PHONE)
    assert result is not None
    return result


# --- the policy ----------------------------------------------------------------------


def test_policy_defaults() -> None:
    assert WORKING.promise == timedelta(hours=48)
    assert WORKING.due_before == timedelta(hours=4)
    assert WORKING.applies_to == frozenset({Channel.PHONE})
    assert WORKING.escalate_after_breach is True


def test_policy_from_configuration() -> None:
    policy = SlaPolicy.model_validate(
        {"mode": "working_days", "promise": "PT72H", "due_before": "PT2H", "applies_to": ["phone", "email"]}
    )
    assert policy.promise == timedelta(hours=72)
    assert policy.covers(Channel.EMAIL) and not policy.covers(Channel.WEB)


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "hourly"},
        {"mode": "calendar", "promise": timedelta(0)},
        {"mode": "calendar", "due_before": timedelta(hours=-1)},
        {"mode": "calendar", "surprise": True},
    ],
)
def test_policy_rejects_nonsense(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SlaPolicy.model_validate(fields)


def test_policy_is_frozen() -> None:
    with pytest.raises(ValidationError):
        WORKING.promise = timedelta(hours=24)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("promise", "working"),
    [
        (timedelta(hours=48), timedelta(hours=17, minutes=30)),
        (timedelta(hours=24), timedelta(hours=8, minutes=45)),
        (timedelta(hours=72), timedelta(hours=26, minutes=15)),
        (timedelta(hours=36), timedelta(hours=13, minutes=7, seconds=30)),
    ],
)
def test_working_duration_is_one_working_day_per_24_hours(promise: timedelta, working: timedelta) -> None:
    assert working_duration(SlaPolicy(mode="working_days", promise=promise), CAL) == working


def test_working_duration_follows_the_calendars_hours() -> None:
    from datetime import time

    short_days = BrusselsCalendar(opening=time(9, 0), closing=time(16, 0))
    assert working_duration(WORKING, short_days) == timedelta(hours=14)


# --- channels ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["calendar", "working_days"])
def test_channels_not_covered_have_no_deadline(mode: str) -> None:
    policy = SlaPolicy.model_validate({"mode": mode})
    monday = bxl(2026, 6, 15, 10)
    assert callback_deadline(monday, policy, CAL, channel=Channel.EMAIL) is None
    assert callback_deadline(monday, policy, CAL, channel=Channel.WEB) is None
    assert callback_deadline(monday, policy, CAL, channel=Channel.PHONE) is not None


def test_any_channel_can_be_covered_by_configuration() -> None:
    policy = SlaPolicy(mode="working_days", applies_to=frozenset(Channel))
    for channel in Channel:
        assert callback_deadline(bxl(2026, 6, 15, 10), policy, CAL, channel=channel) == bxl(2026, 6, 17, 10)


# --- working-days mode -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "expected", "why"),
    [
        (bxl(2026, 6, 15, 10), bxl(2026, 6, 17, 10), "Monday morning: 7h15 + 8h45 + 1h30"),
        (bxl(2026, 6, 15, 8, 30), bxl(2026, 6, 16, 17, 15), "at the opening: two full days"),
        (bxl(2026, 6, 15, 17, 15), bxl(2026, 6, 17, 17, 15), "at the closing: counts from the next opening"),
        (bxl(2026, 6, 16, 23, 0), bxl(2026, 6, 18, 17, 15), "at night: counts from the next morning"),
        (bxl(2026, 6, 16, 6, 0), bxl(2026, 6, 17, 17, 15), "early morning: counts from 8:30 that day"),
        (bxl(2026, 6, 19, 16, 0), bxl(2026, 6, 23, 16, 0), "Friday 16:00: 1h15 + Monday + 7h30"),
        (bxl(2026, 6, 19, 19, 0), bxl(2026, 6, 23, 17, 15), "Friday evening: Monday and Tuesday"),
        (bxl(2026, 6, 20, 11, 0), bxl(2026, 6, 23, 17, 15), "Saturday: Monday and Tuesday"),
        (bxl(2026, 6, 21, 23, 59), bxl(2026, 6, 23, 17, 15), "Sunday night: Monday and Tuesday"),
        # Easter Sunday 2026 is 5 April; Good Friday (3 April) is a working day, Easter Monday is not.
        (bxl(2026, 4, 2, 16, 0), bxl(2026, 4, 7, 16, 0), "Thursday before Easter: Friday, then Tuesday"),
        (bxl(2026, 4, 3, 16, 0), bxl(2026, 4, 8, 16, 0), "Good Friday: Easter Monday skipped"),
        (bxl(2026, 4, 4, 10, 0), bxl(2026, 4, 8, 17, 15), "Easter Saturday: Tuesday and Wednesday"),
        # 8 May 2026 is a Friday (Iris Day); 1 May, Labour Day, is the Friday before.
        (bxl(2026, 5, 7, 16, 0), bxl(2026, 5, 12, 16, 0), "Thursday before 8 May: 8 May skipped"),
        (bxl(2026, 5, 6, 10, 0), bxl(2026, 5, 11, 10, 0), "Wednesday before 8 May"),
        (bxl(2026, 4, 30, 16, 0), bxl(2026, 5, 5, 16, 0), "Thursday before 1 May"),
        # Ascension (14 May 2026) is a Thursday.
        (bxl(2026, 5, 13, 10, 0), bxl(2026, 5, 18, 10, 0), "Wednesday before Ascension"),
    ],
)
def test_working_days_deadline(received: datetime, expected: datetime, why: str) -> None:
    assert deadline(received) == expected, why


def test_working_days_across_the_march_dst_change() -> None:
    # Summer time starts on Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST.
    result = deadline(bxl(2026, 3, 27, 16, 0))
    assert wall(result) == (2026, 3, 31, 16, 0, "+0200")
    assert result.astimezone(UTC) == datetime(2026, 3, 31, 14, 0, tzinfo=UTC)
    assert CAL.working_time_between(bxl(2026, 3, 27, 16, 0), result) == timedelta(hours=17, minutes=30)


def test_working_days_across_the_october_dst_change() -> None:
    # Summer time ends on Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET.
    result = deadline(bxl(2026, 10, 23, 16, 0))
    assert wall(result) == (2026, 10, 27, 16, 0, "+0100")
    assert result.astimezone(UTC) == datetime(2026, 10, 27, 15, 0, tzinfo=UTC)
    # Received during the repeated hour of the night of the change: Monday and Tuesday.
    for utc_hour in (0, 1):  # 02:30 CEST, then 02:30 CET
        received = datetime(2026, 10, 25, utc_hour, 30, tzinfo=UTC)
        assert wall(deadline(received)) == (2026, 10, 27, 17, 15, "+0100")


def test_working_days_accepts_any_timezone_and_answers_in_brussels() -> None:
    received = datetime(2026, 6, 19, 14, 0, tzinfo=UTC)  # Friday 16:00 in Brussels
    result = deadline(received)
    assert result.tzinfo is BRUSSELS
    assert wall(result) == (2026, 6, 23, 16, 0, "+0200")


def test_extra_closures_are_skipped() -> None:
    bridge = BrusselsCalendar(extra_closures=[datetime(2026, 6, 22).date()])
    result = callback_deadline(bxl(2026, 6, 19, 16, 0), WORKING, bridge, channel=PHONE)
    assert result == bxl(2026, 6, 24, 16, 0)


def test_a_longer_promise_counts_more_working_days() -> None:
    three_days = SlaPolicy(mode="working_days", promise=timedelta(hours=72))
    assert deadline(bxl(2026, 6, 19, 16, 0), three_days) == bxl(2026, 6, 24, 16, 0)


# --- calendar mode -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        (bxl(2026, 6, 15, 10), bxl(2026, 6, 17, 10)),
        (bxl(2026, 6, 19, 16), bxl(2026, 6, 21, 16)),  # over the weekend
        (bxl(2026, 6, 20, 11), bxl(2026, 6, 22, 11)),
        (bxl(2026, 5, 7, 16), bxl(2026, 5, 9, 16)),  # holidays do not stop the clock
        (bxl(2026, 4, 4, 23, 30), bxl(2026, 4, 6, 23, 30)),
    ],
)
def test_calendar_deadline(received: datetime, expected: datetime) -> None:
    assert deadline(received, CALENDAR) == expected


def test_calendar_mode_counts_elapsed_hours_across_the_march_dst_change() -> None:
    # 48 real hours, one of which the clocks skip: the wall clock shows an hour more.
    assert wall(deadline(bxl(2026, 3, 27, 10, 0), CALENDAR)) == (2026, 3, 29, 11, 0, "+0200")
    assert wall(deadline(bxl(2026, 3, 28, 12, 0), CALENDAR)) == (2026, 3, 30, 13, 0, "+0200")


def test_calendar_mode_counts_elapsed_hours_across_the_october_dst_change() -> None:
    # 48 real hours, one of which the clocks repeat: the wall clock shows an hour less.
    assert wall(deadline(bxl(2026, 10, 24, 12, 0), CALENDAR)) == (2026, 10, 26, 11, 0, "+0100")
    first, second = (datetime(2026, 10, 25, h, 30, tzinfo=UTC) for h in (0, 1))  # 02:30 twice
    assert wall(deadline(first, CALENDAR)) == (2026, 10, 27, 1, 30, "+0100")
    assert wall(deadline(second, CALENDAR)) == (2026, 10, 27, 2, 30, "+0100")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        callback_deadline(datetime(2026, 6, 15, 10), CALENDAR, CAL, channel=PHONE)
    with pytest.raises(ValueError, match="timezone-aware"):
        callback_deadline(datetime(2026, 6, 15, 10), WORKING, CAL, channel=PHONE)


# --- due time ---------------------------------------------------------------------------


def test_calendar_due_time_is_four_hours_before() -> None:
    received = bxl(2026, 6, 15, 10)
    assert due_at(deadline(received, CALENDAR), CALENDAR, CAL, received_at=received) == bxl(2026, 6, 17, 6)


def test_calendar_due_time_across_the_march_dst_change() -> None:
    # Deadline Sunday 29 March 05:00 CEST; four real hours before is 00:00 CET.
    assert wall(due_at(bxl(2026, 3, 29, 5, 0), CALENDAR, CAL)) == (2026, 3, 29, 0, 0, "+0100")


@pytest.mark.parametrize(
    ("deadline_at", "expected", "why"),
    [
        (bxl(2026, 6, 23, 16, 0), bxl(2026, 6, 23, 12, 0), "same day"),
        (bxl(2026, 6, 23, 17, 15), bxl(2026, 6, 23, 13, 15), "deadline at closing"),
        (bxl(2026, 6, 23, 12, 30), bxl(2026, 6, 23, 8, 30), "exactly the opening"),
        (bxl(2026, 6, 15, 10, 0), bxl(2026, 6, 12, 14, 45), "Monday 10:00: 1h30 Monday, 2h30 Friday"),
        (bxl(2026, 4, 7, 10, 0), bxl(2026, 4, 3, 14, 45), "Tuesday after Easter: Easter Monday skipped"),
        (bxl(2026, 5, 11, 10, 0), bxl(2026, 5, 7, 14, 45), "Monday after 8 May: 8 May skipped"),
        (bxl(2026, 3, 30, 10, 0), bxl(2026, 3, 27, 14, 45), "across the March DST change"),
        (bxl(2026, 10, 26, 10, 0), bxl(2026, 10, 23, 14, 45), "across the October DST change"),
    ],
)
def test_working_days_due_time_is_opening_time_before(deadline_at: datetime, expected: datetime, why: str) -> None:
    result = due_at(deadline_at, WORKING, CAL)
    assert result == expected, why
    assert CAL.working_time_between(result, deadline_at) == timedelta(hours=4)


def test_working_days_due_time_from_a_request() -> None:
    received = bxl(2026, 6, 11, 10)  # Thursday: deadline Monday 10:00
    assert deadline(received) == bxl(2026, 6, 15, 10)
    assert due_at(deadline(received), WORKING, CAL, received_at=received) == bxl(2026, 6, 12, 14, 45)


@pytest.mark.parametrize(
    "policy",
    [
        SlaPolicy(mode="calendar", due_before=timedelta(hours=60)),
        SlaPolicy(mode="working_days", due_before=timedelta(hours=20)),
    ],
)
def test_due_time_is_never_before_the_request(policy: SlaPolicy) -> None:
    received = bxl(2026, 6, 15, 10)
    result = due_at(deadline(received, policy), policy, CAL, received_at=received)
    assert result == received


def test_zero_due_before_is_the_deadline() -> None:
    for policy in (SlaPolicy(mode="calendar", due_before=timedelta(0)), SlaPolicy(mode="working_days", due_before=timedelta(0))):
        d = deadline(bxl(2026, 6, 19, 16), policy)
        assert due_at(d, policy, CAL) == d


def test_subtract_working_time_from_a_closed_instant() -> None:
    # Saturday noon: counting back starts at Friday's closing.
    assert subtract_working_time(CAL, bxl(2026, 6, 20, 12), timedelta(hours=1)) == bxl(2026, 6, 19, 16, 15)
    # Monday 07:00: the line is not open yet; Friday's closing again.
    assert subtract_working_time(CAL, bxl(2026, 6, 22, 7), timedelta(hours=1)) == bxl(2026, 6, 19, 16, 15)
    # A duration that ends on an opening returns the opening.
    assert subtract_working_time(CAL, bxl(2026, 6, 19, 17, 15), timedelta(hours=8, minutes=45)) == bxl(2026, 6, 19, 8, 30)
    with pytest.raises(ValueError, match="negative"):
        subtract_working_time(CAL, bxl(2026, 6, 19, 12), timedelta(hours=-1))


# --- outcome and elapsed time --------------------------------------------------------------

RECEIVED = bxl(2026, 6, 19, 16)
DEADLINE = bxl(2026, 6, 23, 16)


@pytest.mark.parametrize(
    ("first_contact", "now", "outcome"),
    [
        (bxl(2026, 6, 22, 9), None, "met"),
        (DEADLINE, None, "met"),  # the deadline itself still counts
        (DEADLINE + timedelta(seconds=1), None, "breached"),
        (bxl(2026, 6, 22, 9), bxl(2026, 7, 1), "met"),  # a later `now` changes nothing
        (None, None, "pending"),
        (None, bxl(2026, 6, 22, 9), "pending"),
        (None, DEADLINE, "pending"),
        (None, DEADLINE + timedelta(microseconds=1), "breached"),
    ],
)
def test_sla_outcome(first_contact: datetime | None, now: datetime | None, outcome: str) -> None:
    assert sla_outcome(RECEIVED, first_contact, DEADLINE, now=now) == outcome


def test_sla_outcome_compares_instants_not_wall_clocks() -> None:
    contact_utc = datetime(2026, 6, 23, 14, 0, tzinfo=UTC)  # 16:00 in Brussels
    assert sla_outcome(RECEIVED, contact_utc, DEADLINE) == "met"


def test_a_contact_before_the_request_is_an_error() -> None:
    with pytest.raises(ValueError, match="precede"):
        sla_outcome(RECEIVED, RECEIVED - timedelta(minutes=1), DEADLINE)


def test_elapsed_in_both_modes() -> None:
    assert elapsed(RECEIVED, DEADLINE, WORKING, CAL) == timedelta(hours=17, minutes=30)
    assert elapsed(RECEIVED, DEADLINE, CALENDAR, CAL) == timedelta(hours=96)
    # Across the March change: four calendar days are 95 real hours, still two working days.
    friday, tuesday = bxl(2026, 3, 27, 16), bxl(2026, 3, 31, 16)
    assert elapsed(friday, tuesday, WORKING, CAL) == timedelta(hours=17, minutes=30)
    assert elapsed(friday, tuesday, CALENDAR, CAL) == timedelta(hours=95)


def test_elapsed_at_the_deadline_is_the_promise() -> None:
    for received in (bxl(2026, 6, 15, 10), bxl(2026, 6, 20, 11), bxl(2026, 10, 23, 16)):
        assert elapsed(received, deadline(received), WORKING, CAL) == working_duration(WORKING, CAL)
        assert elapsed(received, deadline(received, CALENDAR), CALENDAR, CAL) == CALENDAR.promise


# --- properties ----------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))
policies = st.builds(
    SlaPolicy,
    mode=st.sampled_from(["calendar", "working_days"]),
    promise=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=10)),
    due_before=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)),
)


@given(received=instants, policy=policies)
def test_deadline_and_due_time_are_ordered(received: datetime, policy: SlaPolicy) -> None:
    result = deadline(received, policy)
    assert result >= received
    due = due_at(result, policy, CAL, received_at=received)
    assert received <= due <= result
    assert due_at(result, policy, CAL) <= result


@given(received=instants)
def test_working_days_deadline_counts_exactly_the_promise(received: datetime) -> None:
    result = deadline(received)
    assert CAL.is_open(result - timedelta(microseconds=1))
    assert CAL.working_time_between(received, result) == timedelta(hours=17, minutes=30)


@given(
    start=instants,
    duration=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=20)),
)
def test_subtract_working_time_inverts_add_working_time(start: datetime, duration: timedelta) -> None:
    end = CAL.add_working_time(start, duration)
    assert subtract_working_time(CAL, end, duration) == CAL.next_opening(start)
