"""The Brussels working calendar: holidays, opening hours and working-time arithmetic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.calendar import BRUSSELS, EXTRA_CLOSURE, BrusselsCalendar, easter_sunday

pytestmark = pytest.mark.unit

CAL = BrusselsCalendar()
TWO_WORKING_DAYS = timedelta(hours=17, minutes=30)  # 2 x 8h45


def bxl(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BRUSSELS)


# --- holidays ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2008, date(2008, 3, 23)),
        (2019, date(2019, 4, 21)),
        (2020, date(2020, 4, 12)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2038, date(2038, 4, 25)),
    ],
)
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_holidays_2020() -> None:
    assert CAL.holidays(2020) == {
        date(2020, 1, 1): "New Year's Day",
        date(2020, 4, 13): "Easter Monday",
        date(2020, 5, 1): "Labour Day",
        date(2020, 5, 8): "Iris Day",
        date(2020, 5, 21): "Ascension Day",
        date(2020, 6, 1): "Whit Monday",
        date(2020, 7, 21): "National Day",
        date(2020, 8, 15): "Assumption Day",
        date(2020, 11, 1): "All Saints' Day",
        date(2020, 11, 11): "Armistice Day",
        date(2020, 12, 25): "Christmas Day",
    }


@pytest.mark.parametrize(
    ("year", "easter_monday", "ascension", "whit_monday"),
    [
        (2025, date(2025, 4, 21), date(2025, 5, 29), date(2025, 6, 9)),
        (2026, date(2026, 4, 6), date(2026, 5, 14), date(2026, 5, 25)),
    ],
)
def test_movable_holidays(year: int, easter_monday: date, ascension: date, whit_monday: date) -> None:
    days = CAL.holidays(year)
    assert len(days) == 11
    assert days[easter_monday] == "Easter Monday"
    assert days[ascension] == "Ascension Day"
    assert days[whit_monday] == "Whit Monday"
    assert days[date(year, 5, 8)] == "Iris Day"


def test_coinciding_holidays_keep_both_names() -> None:
    assert CAL.holiday_name(date(2008, 5, 1)) == "Labour Day, Ascension Day"


def test_extra_closures_named_or_not() -> None:
    unnamed = BrusselsCalendar({date(2025, 12, 26)})
    named = BrusselsCalendar({date(2025, 12, 26): "Boxing Day closure", date(2025, 12, 25): "Office party"})
    assert unnamed.holiday_name(date(2025, 12, 26)) == EXTRA_CLOSURE
    assert named.holiday_name(date(2025, 12, 26)) == "Boxing Day closure"
    assert named.holidays(2025)[date(2025, 12, 26)] == "Boxing Day closure"
    assert named.holiday_name(date(2025, 12, 25)) == "Christmas Day, Office party"
    assert not CAL.is_holiday(date(2025, 12, 26)) and CAL.is_working_day(date(2025, 12, 26))
    assert not unnamed.is_working_day(date(2025, 12, 26))
    assert date(2025, 12, 26) not in unnamed.holidays(2026)


def test_weekends_are_not_holidays_but_not_working_days() -> None:
    saturday = date(2025, 3, 8)
    assert CAL.holiday_name(saturday) is None and not CAL.is_holiday(saturday)
    assert not CAL.is_working_day(saturday)
    assert not CAL.is_working_day(date(2026, 11, 1))  # All Saints' Day on a Sunday


def test_datetimes_are_not_dates_here() -> None:
    with pytest.raises(TypeError):
        CAL.is_working_day(bxl(2025, 3, 7, 12))


def test_bad_opening_hours_are_refused() -> None:
    with pytest.raises(ValueError):
        BrusselsCalendar(opening=time(17), closing=time(9))


# --- opening hours -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        (bxl(2025, 3, 7, 8, 29, 59), False),
        (bxl(2025, 3, 7, 8, 30), True),
        (bxl(2025, 3, 7, 17, 14, 59), True),
        (bxl(2025, 3, 7, 17, 15), False),  # closing is exclusive
        (bxl(2025, 3, 7, 20, 0), False),
        (bxl(2025, 3, 8, 11, 0), False),  # Saturday
        (bxl(2026, 4, 6, 11, 0), False),  # Easter Monday
        (bxl(2026, 5, 8, 11, 0), False),  # Iris Day
        (datetime(2026, 7, 1, 6, 45, tzinfo=UTC), True),  # 08:45 CEST
        (datetime(2026, 1, 15, 7, 45, tzinfo=UTC), True),  # 08:45 CET
        (datetime(2026, 1, 15, 7, 15, tzinfo=UTC), False),  # 08:15 CET
    ],
)
def test_is_open(at: datetime, is_open: bool) -> None:
    assert CAL.is_open(at) is is_open


def test_custom_opening_hours() -> None:
    cal = BrusselsCalendar(opening=time(9), closing=time(12))
    assert not cal.is_open(bxl(2025, 3, 7, 8, 45)) and cal.is_open(bxl(2025, 3, 7, 11, 59))
    assert cal.add_working_time(bxl(2025, 3, 7, 11), timedelta(hours=2)) == bxl(2025, 3, 10, 10)


def test_next_opening_is_the_same_instant_when_open() -> None:
    at = datetime(2025, 3, 7, 10, 0, tzinfo=UTC)
    opening = CAL.next_opening(at)
    assert opening == at and opening.tzinfo is BRUSSELS


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (bxl(2025, 3, 11, 23, 40), bxl(2025, 3, 12, 8, 30)),  # night arrival
        (bxl(2025, 3, 12, 2, 0), bxl(2025, 3, 12, 8, 30)),  # small hours, same day
        (bxl(2025, 3, 7, 17, 15), bxl(2025, 3, 10, 8, 30)),  # Friday closing
        (bxl(2025, 12, 24, 17, 20), bxl(2025, 12, 26, 8, 30)),  # Christmas Eve
        (bxl(2025, 12, 31, 18, 0), bxl(2026, 1, 2, 8, 30)),  # New Year's Eve
        (bxl(2026, 4, 30, 18, 0), bxl(2026, 5, 4, 8, 30)),  # eve of Labour Day (a Friday)
        (bxl(2026, 5, 7, 19, 0), bxl(2026, 5, 11, 8, 30)),  # eve of Iris Day (a Friday)
        (bxl(2026, 4, 3, 18, 0), bxl(2026, 4, 7, 8, 30)),  # Good Friday evening, Easter Monday
    ],
)
def test_next_opening(at: datetime, expected: datetime) -> None:
    assert CAL.next_opening(at) == expected


def test_christmas_eve_is_a_full_day_unless_closed() -> None:
    assert CAL.is_open(bxl(2025, 12, 24, 17, 0))
    cal = BrusselsCalendar({date(2025, 12, 26): "Closure"})
    assert cal.next_opening(bxl(2025, 12, 24, 17, 20)) == bxl(2025, 12, 29, 8, 30)


# --- working time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (bxl(2025, 3, 7, 16, 0), bxl(2025, 3, 11, 16, 0)),  # Friday 16:00 -> Tuesday 16:00
        (bxl(2025, 3, 8, 0, 0), bxl(2025, 3, 11, 17, 15)),  # Saturday, any time -> Tuesday 17:15
        (bxl(2025, 3, 8, 13, 37), bxl(2025, 3, 11, 17, 15)),
        (bxl(2025, 3, 8, 23, 59, 59), bxl(2025, 3, 11, 17, 15)),
        (bxl(2025, 3, 11, 23, 40), bxl(2025, 3, 13, 17, 15)),  # night arrival
        (bxl(2026, 4, 3, 16, 0), bxl(2026, 4, 8, 16, 0)),  # across Easter Monday
        (bxl(2026, 5, 7, 16, 0), bxl(2026, 5, 12, 16, 0)),  # across Iris Day (Friday 8 May)
        (bxl(2025, 12, 24, 16, 0), bxl(2025, 12, 29, 16, 0)),  # across Christmas
        (bxl(2026, 3, 27, 16, 0), bxl(2026, 3, 31, 16, 0)),  # across the March DST change
        (bxl(2026, 10, 23, 16, 0), bxl(2026, 10, 27, 16, 0)),  # across the October DST change
    ],
)
def test_two_working_days(start: datetime, expected: datetime) -> None:
    result = CAL.add_working_time(start, TWO_WORKING_DAYS)
    assert result == expected
    assert result.tzinfo is BRUSSELS
    assert (result.hour, result.minute) == (expected.hour, expected.minute)
    assert CAL.working_time_between(start, result) == TWO_WORKING_DAYS


def test_christmas_with_boxing_day_closed() -> None:
    cal = BrusselsCalendar({date(2025, 12, 26)})
    assert cal.add_working_time(bxl(2025, 12, 24, 16), TWO_WORKING_DAYS) == bxl(2025, 12, 30, 16)


@pytest.mark.parametrize(
    ("friday", "offset_before", "offset_after"),
    [(date(2026, 3, 27), timedelta(hours=1), timedelta(hours=2)), (date(2026, 10, 23), timedelta(hours=2), timedelta(hours=1))],
)
def test_dst_weekends_keep_wall_clock_hours(friday: date, offset_before: timedelta, offset_after: timedelta) -> None:
    start = bxl(friday.year, friday.month, friday.day, 16)
    monday = friday + timedelta(days=3)
    closing = CAL.add_working_time(start, timedelta(hours=1, minutes=15))
    after = CAL.add_working_time(start, timedelta(hours=1, minutes=16))
    assert closing == bxl(friday.year, friday.month, friday.day, 17, 15)
    assert closing.utcoffset() == offset_before
    assert after == bxl(monday.year, monday.month, monday.day, 8, 31)
    assert after.utcoffset() == offset_after
    # The weekend holds no working time, however long it is in hours.
    assert CAL.working_time_between(closing, after - timedelta(minutes=1)) == timedelta(0)


def test_zero_duration_starts_at_the_next_opening() -> None:
    assert CAL.add_working_time(bxl(2025, 3, 8, 12), timedelta(0)) == bxl(2025, 3, 10, 8, 30)
    assert CAL.add_working_time(bxl(2025, 3, 7, 12), timedelta(0)) == bxl(2025, 3, 7, 12)


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError):
        CAL.add_working_time(bxl(2025, 3, 7, 12), timedelta(minutes=-1))


def test_working_time_between() -> None:
    assert CAL.working_time_between(bxl(2025, 3, 7, 8, 0), bxl(2025, 3, 7, 20, 0)) == timedelta(hours=8, minutes=45)
    assert CAL.working_time_between(bxl(2025, 3, 7, 17, 0), bxl(2025, 3, 10, 9, 0)) == timedelta(minutes=45)
    assert CAL.working_time_between(bxl(2025, 3, 10, 9, 0), bxl(2025, 3, 7, 17, 0)) == -timedelta(minutes=45)
    assert CAL.working_time_between(bxl(2025, 3, 8, 9), bxl(2025, 3, 9, 18)) == timedelta(0)
    # A whole week with Easter Monday: four working days.
    assert CAL.working_time_between(bxl(2026, 4, 6), bxl(2026, 4, 13)) == 4 * timedelta(hours=8, minutes=45)


@pytest.mark.parametrize(
    "call",
    [
        lambda: CAL.is_open(datetime(2025, 3, 7, 12)),
        lambda: CAL.next_opening(datetime(2025, 3, 7, 12)),
        lambda: CAL.add_working_time(datetime(2025, 3, 7, 12), TWO_WORKING_DAYS),
        lambda: CAL.working_time_between(datetime(2025, 3, 7, 12), bxl(2025, 3, 8)),
        lambda: CAL.working_time_between(bxl(2025, 3, 7), datetime(2025, 3, 8, 12)),
    ],
)
def test_naive_datetimes_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


# --- properties ----------------------------------------------------------------------

instants = st.one_of(
    st.datetimes(datetime(2019, 1, 1), datetime(2031, 12, 31), timezones=st.just(UTC)),
    st.datetimes(datetime(2019, 1, 1), datetime(2031, 12, 31), timezones=st.just(BRUSSELS), allow_imaginary=False),
)
durations = st.timedeltas(timedelta(0), timedelta(days=20))


@settings(deadline=None)
@given(start=instants, duration=durations)
def test_add_working_time_is_undone_by_working_time_between(start: datetime, duration: timedelta) -> None:
    end = CAL.add_working_time(start, duration)
    assert end >= start
    assert end.tzinfo is BRUSSELS
    assert CAL.working_time_between(start, end) == duration
    # Within opening hours, or exactly at a closing.
    assert CAL.is_open(end) or (CAL.is_working_day(end.date()) and end.time() == CAL.closing)


@settings(deadline=None)
@given(at=instants)
def test_next_opening_is_open_and_nothing_is_open_before_it(at: datetime) -> None:
    opening = CAL.next_opening(at)
    assert opening >= at and CAL.is_open(opening)
    assert CAL.working_time_between(at, opening) == timedelta(0)


def test_the_tests_last_working_morning_skips_weekends_holidays_and_the_future() -> None:
    from tests.factories import last_working_morning

    # Monday 28 December 2026 at 8:00, before 9:15: Christmas (Friday 25) and the weekend are skipped.
    monday_early = datetime(2026, 12, 28, 8, 0, tzinfo=BRUSSELS)
    assert last_working_morning(monday_early) == datetime(2026, 12, 24, 9, 15, tzinfo=BRUSSELS)
    # Later that Monday: that very morning.
    assert last_working_morning(monday_early.replace(hour=11)) == datetime(2026, 12, 28, 9, 15, tzinfo=BRUSSELS)
    # On the real clock: in the past, within a fortnight, inside the line's hours.
    now = datetime.now(UTC)
    recent = last_working_morning()
    assert now - timedelta(days=14) < recent <= now and BrusselsCalendar().is_open(recent)
