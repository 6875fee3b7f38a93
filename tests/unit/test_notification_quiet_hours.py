"""Quiet hours in Brussels time: 20:59 sends, 21:00 waits for 08:00, 07:59 waits a minute, 08:00
sends; the same wall-clock times on both sides of the daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from notification.quiet_hours import QuietHours
from services.calendar import BRUSSELS

pytestmark = pytest.mark.unit

QUIET = QuietHours()  # 21:00-08:00


def brussels(y: int, m: int, d: int, hh: int, mm: int) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BRUSSELS)


# A winter day (CET, UTC+1), a summer day (CEST, UTC+2), the night of the switch forward
# (Sunday 29 March 2026, 02:00 -> 03:00) and of the switch back (Sunday 25 October 2026, 03:00 -> 02:00).
DAYS = [(2026, 1, 13), (2026, 7, 14), (2026, 3, 28), (2026, 10, 24)]


@pytest.mark.parametrize("day", DAYS)
def test_the_edges_of_the_quiet_hours(day: tuple[int, int, int]) -> None:
    y, m, d = day
    next_morning = brussels(y, m, d, 8, 0) + timedelta(days=1)
    next_morning = datetime.combine(next_morning.date(), time(8, 0), BRUSSELS)
    assert QUIET.next_allowed(brussels(y, m, d, 20, 59)) == brussels(y, m, d, 20, 59)
    assert QUIET.next_allowed(brussels(y, m, d, 21, 0)) == next_morning
    assert QUIET.next_allowed(brussels(y, m, d, 23, 59)) == next_morning
    assert QUIET.next_allowed(brussels(y, m, d, 7, 59)) == brussels(y, m, d, 8, 0)
    assert QUIET.next_allowed(brussels(y, m, d, 8, 0)) == brussels(y, m, d, 8, 0)
    assert QUIET.next_allowed(brussels(y, m, d, 0, 0)) == brussels(y, m, d, 8, 0)


def test_the_end_of_the_night_is_0800_local_across_the_switch_forward() -> None:
    # Saturday 28 March 2026 22:00 CET = 21:00 UTC; the next 08:00 is CEST, 06:00 UTC.
    until = QUIET.next_allowed(datetime(2026, 3, 28, 21, 0, tzinfo=UTC))
    assert until.astimezone(UTC) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert until.astimezone(BRUSSELS).hour == 8
    # The night lasted 9 hours of wall-clock time but only 8 real hours.
    assert until - datetime(2026, 3, 28, 21, 0, tzinfo=UTC) == timedelta(hours=9)


def test_the_end_of_the_night_is_0800_local_across_the_switch_back() -> None:
    # Saturday 24 October 2026 22:00 CEST = 20:00 UTC; the next 08:00 is CET, 07:00 UTC.
    until = QUIET.next_allowed(datetime(2026, 10, 24, 20, 0, tzinfo=UTC))
    assert until.astimezone(UTC) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
    # The repeated hour (02:00-03:00 twice) is quiet both times.
    for utc_hour in (0, 1):
        at = datetime(2026, 10, 25, utc_hour, 30, tzinfo=UTC)
        assert at.astimezone(BRUSSELS).hour == 2
        assert QUIET.next_allowed(at) == until


@pytest.mark.parametrize(
    ("utc", "quiet"),
    [
        (datetime(2026, 1, 13, 19, 59, tzinfo=UTC), False),  # 20:59 CET
        (datetime(2026, 1, 13, 20, 0, tzinfo=UTC), True),  # 21:00 CET
        (datetime(2026, 7, 14, 18, 59, tzinfo=UTC), False),  # 20:59 CEST
        (datetime(2026, 7, 14, 19, 0, tzinfo=UTC), True),  # 21:00 CEST
        (datetime(2026, 1, 13, 6, 59, tzinfo=UTC), True),  # 07:59 CET
        (datetime(2026, 1, 13, 7, 0, tzinfo=UTC), False),  # 08:00 CET
        (datetime(2026, 7, 14, 5, 59, tzinfo=UTC), True),  # 07:59 CEST
        (datetime(2026, 7, 14, 6, 0, tzinfo=UTC), False),  # 08:00 CEST
    ],
)
def test_the_same_utc_hour_is_quiet_or_not_depending_on_the_season(utc: datetime, quiet: bool) -> None:
    assert QUIET.is_quiet(utc) is quiet


def test_configurable_hours() -> None:
    assert QuietHours(time(22, 0), time(7, 0)).next_allowed(brussels(2026, 1, 13, 21, 30)) == brussels(2026, 1, 13, 21, 30)
    lunch = QuietHours(time(12, 0), time(14, 0))  # a window within one day
    assert lunch.next_allowed(brussels(2026, 1, 13, 12, 30)) == brussels(2026, 1, 13, 14, 0)
    assert lunch.next_allowed(brussels(2026, 1, 13, 23, 0)) == brussels(2026, 1, 13, 23, 0)
    never = QuietHours(time(0, 0), time(0, 0))
    assert not never.is_quiet(brussels(2026, 1, 13, 3, 0))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        QUIET.next_allowed(datetime(2026, 1, 13, 21, 0))
    with pytest.raises(ValueError):
        QuietHours(time(21, 0, tzinfo=UTC), time(8, 0))
