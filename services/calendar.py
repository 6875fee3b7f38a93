"""The Brussels working calendar: when the free line is staffed, and how much working time
lies between two instants.

Pure (no I/O, no clock): intake asks whether the line was open when a call came in, routing
counts the 48-hour callback in working time, reports measure SLAs with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

__all__ = ["BRUSSELS", "BrusselsCalendar", "LiveCalendar", "easter_sunday"]

BRUSSELS = ZoneInfo("Europe/Brussels")

EXTRA_CLOSURE = "Closure"
"""Name of an extra closure day given without a name."""

# Ten years of closures in a row would be a configuration error, not a calendar.
_MAX_SEARCH_DAYS = 3660


def easter_sunday(year: int) -> date:
    """Easter Sunday of the Gregorian calendar (the anonymous algorithm of Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's own name
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return date(year, month, day + 1)


@cache
def _public_holidays(year: int) -> Mapping[date, str]:
    """The ten Belgian legal holidays plus the Brussels-Capital Region's 8 May, for one year.

    A holiday that falls on a weekend is not moved: Belgian employers choose a replacement day
    themselves, which is an extra closure day of the calendar.
    """
    easter = easter_sunday(year)
    days: dict[date, str] = {}
    for day, name in (
        (date(year, 1, 1), "New Year's Day"),
        (easter + timedelta(days=1), "Easter Monday"),
        (date(year, 5, 1), "Labour Day"),
        (date(year, 5, 8), "Iris Day"),
        (easter + timedelta(days=39), "Ascension Day"),
        (easter + timedelta(days=50), "Whit Monday"),
        (date(year, 7, 21), "National Day"),
        (date(year, 8, 15), "Assumption Day"),
        (date(year, 11, 1), "All Saints' Day"),
        (date(year, 11, 11), "Armistice Day"),
        (date(year, 12, 25), "Christmas Day"),
    ):
        # Ascension can fall on 1 or 8 May (it did in 2008): keep both names.
        days[day] = f"{days[day]}, {name}" if day in days else name
    return dict(sorted(days.items()))


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return at


def _utc(at: datetime) -> datetime:
    # Arithmetic and comparisons go through UTC: between two datetimes that share a tzinfo,
    # Python subtracts wall-clock times, which is one hour off across a DST change.
    return at.astimezone(UTC)


def _plain_date(d: date) -> date:
    if isinstance(d, datetime):
        # A datetime's own date need not be its Brussels date; make the caller choose.
        raise TypeError("pass a date, not a datetime (use .astimezone(BRUSSELS).date())")
    return d


class BrusselsCalendar:
    """Working days and opening hours in Brussels.

    Working days are Monday to Friday except the Belgian legal holidays, the Brussels-Capital
    Region's holiday (8 May) and the `extra_closures` (26 December, bridge days…), given as
    dates or as a mapping of date to name. The line is open from `opening` (inclusive) to
    `closing` (exclusive), local time; both must lie outside the 02:00-03:00 DST change.
    Every method taking a datetime requires an aware one and raises `ValueError` otherwise;
    returned datetimes are in Europe/Brussels.
    """

    def __init__(
        self,
        extra_closures: Iterable[date] | Mapping[date, str] = (),
        *,
        opening: time = time(8, 30),
        closing: time = time(17, 15),
    ) -> None:
        if opening.tzinfo is not None or closing.tzinfo is not None:
            raise ValueError("opening and closing are local Brussels times, without tzinfo")
        if opening >= closing:
            raise ValueError("opening must be before closing")
        self.opening = opening
        self.closing = closing
        if isinstance(extra_closures, Mapping):
            self._extra: dict[date, str] = {_plain_date(d): name for d, name in extra_closures.items()}
        else:
            self._extra = {_plain_date(d): EXTRA_CLOSURE for d in extra_closures}

    def __repr__(self) -> str:
        return f"BrusselsCalendar(extra_closures={sorted(self._extra)!r}, opening={self.opening!r}, closing={self.closing!r})"

    # --- days ------------------------------------------------------------------------

    def holidays(self, year: int) -> dict[date, str]:
        """Every closure day of `year` (legal, regional and extra) with its name, in date order."""
        days = dict(_public_holidays(year))
        for day, name in self._extra.items():
            if day.year == year:
                days[day] = f"{days[day]}, {name}" if day in days and days[day] != name else name
        return dict(sorted(days.items()))

    def holiday_name(self, d: date) -> str | None:
        """The name of the holiday or closure on `d`, or None (weekends are not holidays)."""
        d = _plain_date(d)
        public = _public_holidays(d.year).get(d)
        extra = self._extra.get(d)
        if public and extra and extra != public:
            return f"{public}, {extra}"
        return public or extra

    def is_holiday(self, d: date) -> bool:
        return self.holiday_name(d) is not None

    def is_working_day(self, d: date) -> bool:
        return _plain_date(d).weekday() < 5 and not self.is_holiday(d)

    # --- instants --------------------------------------------------------------------

    def _window(self, d: date) -> tuple[datetime, datetime]:
        """Opening and closing of day `d` as aware Brussels datetimes (whether or not it works)."""
        return datetime.combine(d, self.opening, BRUSSELS), datetime.combine(d, self.closing, BRUSSELS)

    def is_open(self, at: datetime) -> bool:
        """Whether the line is staffed at `at`."""
        local = _aware(at).astimezone(BRUSSELS)
        return self.is_working_day(local.date()) and self.opening <= local.time() < self.closing

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself (in Brussels time) if the line is open then, else the next opening."""
        local = _aware(at).astimezone(BRUSSELS)
        day = local.date()
        if self.is_working_day(day):
            start, end = self._window(day)
            if _utc(local) < _utc(start):
                return start
            if _utc(local) < _utc(end):
                return local
        for _ in range(_MAX_SEARCH_DAYS):
            day += timedelta(days=1)
            if self.is_working_day(day):
                return self._window(day)[0]
        raise ValueError(f"no working day within {_MAX_SEARCH_DAYS} days after {at.isoformat()}")

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when `duration` of opening time has passed since `start`.

        Counting starts at `next_opening(start)`. A duration that ends exactly at a closing
        returns that closing, not the next opening. `duration` must not be negative.
        """
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        remaining = duration
        cursor = self.next_opening(start)
        while True:
            closing = self._window(cursor.date())[1]
            available = _utc(closing) - _utc(cursor)
            if remaining <= available:
                return (_utc(cursor) + remaining).astimezone(BRUSSELS)
            remaining -= available
            cursor = self.next_opening(closing)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Opening time between `a` and `b`; negative when `b` is before `a`."""
        if _utc(_aware(b)) < _utc(_aware(a)):
            return -self.working_time_between(b, a)
        first, last = _utc(a), _utc(b)
        total = timedelta(0)
        day, last_day = first.astimezone(BRUSSELS).date(), last.astimezone(BRUSSELS).date()
        while day <= last_day:
            if self.is_working_day(day):
                opening, closing = self._window(day)
                lo, hi = max(_utc(opening), first), min(_utc(closing), last)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total


class LiveCalendar(BrusselsCalendar):
    """A `BrusselsCalendar` whose extra closure days staff change while the service runs.

    `replace_closures` swaps the whole mapping in one assignment, and every method is synchronous,
    so a computation (a deadline counted over several days) sees either the old closures or the
    new ones, never a mix: nothing can run between its reads on the event loop.
    """

    def replace_closures(self, closures: Mapping[date, str]) -> None:
        self._extra = {_plain_date(d): name or EXTRA_CLOSURE for d, name in closures.items()}

    @property
    def closures(self) -> dict[date, str]:
        """The extra closure days now in force, with their names."""
        return dict(sorted(self._extra.items()))
