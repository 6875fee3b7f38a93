"""Time as a dependency: services ask a `Clock`, so tests and the demo can move it.

`SystemClock` is the real one. `SimulatedClock` runs at real speed from an offset that can be
advanced (the demo shows a 48-hour deadline passing in a second); it is only enabled by
configuration, never by default.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock only moves forward")
        self.offset += delta
        return self.now()


class FixedClock:
    """For unit tests: time stands still until the test moves it."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at
