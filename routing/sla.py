"""The 48-hour callback promise as arithmetic: when a request's callback is due, when the
deadline falls, and whether it was kept.

Pure (no I/O, no clock): routing asks it when it routes a request and schedules durable
timers (`services.timers`) at the instants it returns; reports measure the SLA with it.

Two readings of "48 hours", chosen by configuration (`SlaPolicy.mode`):

- ``calendar``: 48 hours of elapsed time. Arithmetic is done on absolute time (UTC), so across
  a DST change the Brussels wall clock shows one hour more (March) or less (October).
- ``working_days``: the promise read as working days of the Brussels calendar. Each 24 hours
  of promise counts as one full working day of *opening time*::

      working duration = promise / 24 h x (closing - opening)

  so 48 h is 2 x 8 h 45 = 17 h 30 of opening time (Mon-Fri 08:30-17:15), skipping weekends,
  Belgian public holidays and 8 May. A request that comes in outside opening hours starts
  counting at the next opening: Friday 16:00 gives Tuesday 16:00, Saturday gives Tuesday 17:15.

A kind of request may carry its own promise (`SlaPolicy.kinds`): a learner question (remote
coaching of learners already enrolled) is answered within one working day (`PT24H`, read in the
policy's mode like the main promise: 8 h 45 of opening time in `working_days` mode), on every
channel. `SlaPolicy.for_kind` gives the policy that governs a request of that kind.

Returned instants are aware datetimes in Europe/Brussels.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas import Channel, KnownChannel, RequestKind
from services.calendar import BRUSSELS, BrusselsCalendar

__all__ = [
    "KindPromise",
    "SlaMode",
    "SlaOutcome",
    "SlaPolicy",
    "callback_deadline",
    "due_at",
    "elapsed",
    "later_by",
    "resumed_deadline",
    "sla_outcome",
    "subtract_working_time",
    "working_duration",
]

SlaMode = Literal["calendar", "working_days"]
SlaOutcome = Literal["met", "breached", "pending"]

_DAY = timedelta(hours=24)
_MICROSECOND = timedelta(microseconds=1)
# Same bound as the calendar's: ten years without an opening is a configuration error.
_MAX_SEARCH_DAYS = 3660


def _positive_promise(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("the promise must be a positive duration")
    return value


class KindPromise(BaseModel):
    """A kind of request's own promise: on every channel, counted in the policy's mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    promise: timedelta = Field(
        description="The promised time to the first answer; in `working_days` mode each 24 h is one working day.",
        examples=["PT24H"],
    )
    due_before: timedelta | None = Field(
        default=None,
        description="How long before the deadline `CallbackDue` is published; the policy's `due_before` when absent.",
        examples=["PT2H"],
    )

    @field_validator("promise")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        return _positive_promise(value)

    @field_validator("due_before")
    @classmethod
    def _not_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("due_before must not be negative")
        return value


def _default_kinds() -> dict[RequestKind, KindPromise]:
    # One working day for learners already enrolled: the seed's "short delays" of remote coaching.
    return {RequestKind.LEARNER_QUESTION: KindPromise(promise=timedelta(hours=24), due_before=timedelta(hours=2))}


class SlaPolicy(BaseModel):
    """How the callback promise is counted, and which requests it covers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: SlaMode = Field(
        description="`calendar`: elapsed hours; `working_days`: each 24 h is one working day of opening time.",
        examples=["working_days"],
    )
    promise: timedelta = Field(
        default=timedelta(hours=48), description="The promised time to the first callback.", examples=["PT48H"]
    )
    due_before: timedelta = Field(
        default=timedelta(hours=4),
        description=(
            "How long before the deadline `CallbackDue` is published; opening time in "
            "`working_days` mode, elapsed time in `calendar` mode."
        ),
        examples=["PT4H"],
    )
    applies_to: frozenset[KnownChannel] = Field(
        default=frozenset({Channel.PHONE}),
        description="Channels whose requests carry the promise.",
        examples=[["phone"]],
    )
    escalate_after_breach: bool = Field(
        default=True, description="Whether a breached request is escalated (see `CallbackSlaBreached.escalated_to`)."
    )
    kinds: dict[RequestKind, KindPromise] = Field(
        default_factory=_default_kinds,
        description="Kinds of request with their own promise, on every channel (not only `applies_to`); "
        "a kind not listed has the main promise. Default: a learner question within one working day (PT24H).",
        examples=[{"learner_question": {"promise": "PT24H", "due_before": "PT2H"}}],
    )

    @field_validator("promise")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        return _positive_promise(value)

    @field_validator("due_before")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("due_before must not be negative")
        return value

    def covers(self, channel: Channel) -> bool:
        return channel in self.applies_to

    def for_kind(self, kind: RequestKind) -> SlaPolicy:
        """The policy governing requests of `kind`: its own promise on every channel, else this one."""
        own = self.kinds.get(kind)
        if own is None:
            return self
        return self.model_copy(
            update={
                "promise": own.promise,
                "due_before": own.due_before if own.due_before is not None else self.due_before,
                "applies_to": frozenset(Channel),
            }
        )


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return at


def _brussels(at: datetime) -> datetime:
    return _aware(at).astimezone(BRUSSELS)


def working_duration(policy: SlaPolicy, calendar: BrusselsCalendar) -> timedelta:
    """The promise as opening time: promise / 24 h x (closing - opening), to the microsecond."""
    return _as_opening_time(policy.promise, calendar)


def _as_opening_time(duration: timedelta, calendar: BrusselsCalendar) -> timedelta:
    """`duration` read as working days: duration / 24 h x (closing - opening), to the microsecond."""
    day = date(2000, 1, 3)  # any date: opening and closing are naive local times, outside DST changes
    span = datetime.combine(day, calendar.closing) - datetime.combine(day, calendar.opening)
    # Integer arithmetic: a float ratio would be off by a microsecond for some promises.
    micros = (span // _MICROSECOND) * (duration // _MICROSECOND) // (_DAY // _MICROSECOND)
    return timedelta(microseconds=micros)


def later_by(start: datetime, duration: timedelta, policy: SlaPolicy, calendar: BrusselsCalendar) -> datetime:
    """`duration` after `start`, read as the promise is: elapsed time in `calendar` mode; in
    `working_days` mode each 24 h is one working day of opening time (P1D from Friday 16:00 is
    Monday 16:00), so that a reminder set in days falls when somebody is there to read it."""
    if policy.mode == "calendar":
        return (_aware(start).astimezone(UTC) + duration).astimezone(BRUSSELS)
    return calendar.add_working_time(_aware(start), _as_opening_time(duration, calendar))


def resumed_deadline(
    deadline: datetime, paused_at: datetime, resumed_at: datetime, policy: SlaPolicy, calendar: BrusselsCalendar
) -> datetime:
    """The deadline of a promise whose clock stopped from `paused_at` to `resumed_at` (the desk
    waited for a partner's answer): later by the time the pause would have counted, i.e. by the
    opening time it spans in `working_days` mode (Friday 16:00 to Monday 10:00 is 1 h 15 + 1 h 30),
    by the elapsed time in `calendar` mode. A pause that counted nothing leaves it unchanged."""
    paused = elapsed(paused_at, resumed_at, policy, calendar) if resumed_at > paused_at else timedelta(0)
    if paused <= timedelta(0):
        return _brussels(deadline)
    if policy.mode == "calendar":
        return (_aware(deadline).astimezone(UTC) + paused).astimezone(BRUSSELS)
    return calendar.add_working_time(_aware(deadline), paused)


def callback_deadline(
    received_at: datetime,
    policy: SlaPolicy,
    calendar: BrusselsCalendar,
    *,
    channel: Channel,
    kind: RequestKind = RequestKind.TRAINING_REQUEST,
) -> datetime | None:
    """When the person must have been called back; None when neither `kind` nor `channel` carries a promise."""
    if kind not in policy.kinds and not policy.covers(channel):
        return None
    policy = policy.for_kind(kind)
    if policy.mode == "calendar":
        # Through UTC: Python subtracts wall-clock times between datetimes sharing a tzinfo.
        return (_aware(received_at).astimezone(UTC) + policy.promise).astimezone(BRUSSELS)
    return calendar.add_working_time(_aware(received_at), working_duration(policy, calendar))


def _last_working_point(calendar: BrusselsCalendar, at: datetime) -> datetime:
    """`at` if it lies within a working day's (opening, closing], else the closing before it.

    The mirror of `BrusselsCalendar.next_opening`: where counting opening time backwards starts.
    """
    local = _brussels(at)
    day = local.date()
    for _ in range(_MAX_SEARCH_DAYS):
        if calendar.is_working_day(day):
            opening = datetime.combine(day, calendar.opening, BRUSSELS)
            closing = datetime.combine(day, calendar.closing, BRUSSELS)
            if local.astimezone(UTC) > closing.astimezone(UTC):
                return closing
            if local.astimezone(UTC) > opening.astimezone(UTC):
                return local
        # Before this day's opening, or not a working day: the previous day's closing is next.
        day -= timedelta(days=1)
        local = datetime.combine(day, calendar.closing, BRUSSELS) + timedelta(microseconds=1)
    raise ValueError(f"no working day within {_MAX_SEARCH_DAYS} days before {at.isoformat()}")


def subtract_working_time(calendar: BrusselsCalendar, end: datetime, duration: timedelta) -> datetime:
    """The latest instant from which `duration` of opening time runs until `end`.

    The inverse of `BrusselsCalendar.add_working_time` for an `end` within opening hours:
    ``add_working_time(subtract_working_time(c, end, d), d) == end``. Counting goes back
    from `end`, or from the last closing before it when the line is closed then. A duration
    that ends exactly at an opening returns that opening, not the previous closing.
    """
    if duration < timedelta(0):
        raise ValueError("duration must not be negative")
    if duration == timedelta(0):
        return _brussels(end)
    remaining = duration
    cursor = _last_working_point(calendar, end)
    while True:
        opening = datetime.combine(cursor.date(), calendar.opening, BRUSSELS)
        available = cursor.astimezone(UTC) - opening.astimezone(UTC)
        if remaining <= available:
            return (cursor.astimezone(UTC) - remaining).astimezone(BRUSSELS)
        remaining -= available
        cursor = _last_working_point(calendar, opening)


def due_at(
    deadline: datetime,
    policy: SlaPolicy,
    calendar: BrusselsCalendar,
    *,
    received_at: datetime | None = None,
    kind: RequestKind = RequestKind.TRAINING_REQUEST,
) -> datetime:
    """When `CallbackDue` is published: `due_before` ahead of `deadline`, never before `received_at`.

    In `working_days` mode `due_before` is opening time: a deadline at Tuesday 10:00 is due
    Monday 14:45 with 4 h (1 h 30 on Tuesday, 2 h 30 on Monday), not at Tuesday 06:00 when
    nobody is there to call. A `kind` with its own promise uses its own `due_before`.
    """
    policy = policy.for_kind(kind)
    if policy.mode == "calendar":
        due = (_aware(deadline).astimezone(UTC) - policy.due_before).astimezone(BRUSSELS)
    else:
        due = subtract_working_time(calendar, deadline, policy.due_before)
    if received_at is not None and due.astimezone(UTC) < _aware(received_at).astimezone(UTC):
        return _brussels(received_at)
    return due


def sla_outcome(
    received_at: datetime,
    first_contact_at: datetime | None,
    deadline: datetime,
    *,
    now: datetime | None = None,
) -> SlaOutcome:
    """`met` if the first contact came by the deadline (inclusive), `breached` if it came later
    or if `now` is past the deadline without one, else `pending`.

    Without `now`, a request not yet contacted is `pending` whatever the time: the caller
    that knows the time (a timer firing at the deadline, a report) passes it.
    """
    deadline_utc = _aware(deadline).astimezone(UTC)
    if first_contact_at is not None:
        if _aware(first_contact_at).astimezone(UTC) < _aware(received_at).astimezone(UTC):
            raise ValueError("the first contact cannot precede the request")
        return "met" if first_contact_at.astimezone(UTC) <= deadline_utc else "breached"
    if now is not None and _aware(now).astimezone(UTC) > deadline_utc:
        return "breached"
    return "pending"


def elapsed(received_at: datetime, until: datetime, policy: SlaPolicy, calendar: BrusselsCalendar) -> timedelta:
    """Time counted against the promise between `received_at` and `until`, in the policy's mode.

    In `working_days` mode this is opening time, to be compared with `working_duration(policy, calendar)`.
    """
    if policy.mode == "calendar":
        return _aware(until).astimezone(UTC) - _aware(received_at).astimezone(UTC)
    return calendar.working_time_between(received_at, until)
