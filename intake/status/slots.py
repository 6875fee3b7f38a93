"""The callback windows a person may choose: mornings and afternoons of the line's working days.

Pure: the calendar (holidays and closures) and the clock are arguments. The windows are 8:30-12:30
and 13:00-17:15, Brussels time, on working days only; a window that has already started is not
offered (an advisor could not plan for it). Windows ending within the promise come first; later ones
are offered too, marked `late`: the person may prefer them, and routing reports them apart from breaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from services.calendar import BRUSSELS, BrusselsCalendar

__all__ = ["WINDOWS", "Window", "find_window", "offered_windows"]

WINDOWS: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 30)), (time(13, 0), time(17, 15)))

LATER_WORKING_DAYS = 5
"""How many working days after the promise's day are offered too."""


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    late: bool
    """Ends after the promise: allowed, as the person's choice."""

    @property
    def key(self) -> str:
        """What the form sends back: the start, to the minute, in Brussels time."""
        return self.start.astimezone(BRUSSELS).strftime("%Y-%m-%dT%H:%M")


def offered_windows(
    calendar: BrusselsCalendar, now: datetime, deadline: datetime | None, *, max_windows: int = 12
) -> list[Window]:
    """The windows from now on, in time order, up to `LATER_WORKING_DAYS` working days past the
    deadline's (or the first working days when there is no deadline), at most `max_windows`."""
    found: list[Window] = []
    day = now.astimezone(BRUSSELS).date()
    later_days = 0
    for _ in range(60):
        if calendar.is_working_day(day):
            for opening, closing in WINDOWS:
                start, end = datetime.combine(day, opening, BRUSSELS), datetime.combine(day, closing, BRUSSELS)
                if start <= now:
                    continue
                found.append(Window(start, end, late=deadline is not None and end > deadline))
            if deadline is None or datetime.combine(day, time(0), BRUSSELS) > deadline:
                later_days += 1
            if later_days >= LATER_WORKING_DAYS or len(found) >= max_windows:
                break
        day += timedelta(days=1)
    return found[:max_windows]


def find_window(windows: list[Window], key: str) -> Window | None:
    return next((window for window in windows if window.key == key), None)
