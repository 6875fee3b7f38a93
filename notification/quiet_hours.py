"""Quiet hours: no text message at night, Brussels time; e-mail is not bound by them.

Pure. Times are wall-clock times in Europe/Brussels, so "21:00" stays 21:00 on both sides of a
daylight-saving change (19:00 UTC in summer, 20:00 UTC in winter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from services.calendar import BRUSSELS

__all__ = ["QuietHours"]


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Quiet from `start` (inclusive) to `end` (exclusive), local time; may span midnight.

    `start == end` means no quiet hours at all. Both must lie outside 02:00-03:00, the hour a
    DST change skips or repeats.
    """

    start: time = time(21, 0)
    end: time = time(8, 0)

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are local Brussels times, without tzinfo")

    def is_quiet(self, at: datetime) -> bool:
        return self.next_allowed(at) != at

    def next_allowed(self, at: datetime) -> datetime:
        """`at` itself if a text may go out then, else the end of the quiet period (in Brussels time)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("a timezone-aware datetime is required")
        if self.start == self.end:
            return at
        local = at.astimezone(BRUSSELS)
        now = local.time().replace(tzinfo=None)
        today = local.date()
        if self.start < self.end:  # e.g. 12:00-14:00, within one day
            if self.start <= now < self.end:
                return datetime.combine(today, self.end, BRUSSELS)
            return at
        if now >= self.start:  # evening: quiet until tomorrow's end
            return datetime.combine(today + timedelta(days=1), self.end, BRUSSELS)
        if now < self.end:  # small hours: quiet until this morning's end
            return datetime.combine(today, self.end, BRUSSELS)
        return at
