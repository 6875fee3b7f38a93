"""Who may take a request, and who should: staff, their attributes and the choice among them.

Pure (no I/O, no clock): the model is Twilio TaskRouter's core - workers with attributes and
an activity, a request offered to one eligible worker at a time - plus what a public service
needs: working hours in Brussels time, a capacity per worker, fairness (least load, then
longest idle) and an escalation pool when a team has no one for too long.
`routing.assignment` stores all of this in MongoDB and reserves atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas import Language, Target
from schemas.values import NonEmptyStr
from services.calendar import BRUSSELS

__all__ = [
    "Availability",
    "ClosedOn",
    "EscalationLevel",
    "EscalationPool",
    "OfferRequest",
    "Worker",
    "WorkingHours",
    "choose_worker",
    "escalation_pool",
    "in_pool",
    "is_eligible",
    "rank_candidates",
    "why_not",
    "worker_hours",
]

WorkingHours = dict[int, list[tuple[time, time]]]
"""Weekday (Monday 0 - Sunday 6) to local Europe/Brussels intervals, start inclusive, end exclusive."""

ClosedOn = Callable[[date], bool]
"""Whether the service is closed on a (Brussels) date whatever the weekly hours: a public holiday or
an extra closure day (`BrusselsCalendar.is_holiday`)."""


class Availability(StrEnum):
    """A worker's activity, set by the worker (or a supervisor) at the desk."""

    AVAILABLE = "available"
    BUSY = "busy"
    """At work but taking no new requests (a long call, a workshop)."""
    BREAK = "break"
    OFFLINE = "offline"


class EscalationLevel(StrEnum):
    """How wide the pool of workers for a request is; each level includes the narrower ones."""

    TEAM = "team"
    """The target team's workers, supervisors excepted."""
    BACKUP = "backup"
    """Plus other teams' workers with the skill named after the team or marked as its backup."""
    SUPERVISOR = "supervisor"
    """Plus the target team's supervisors: the last resort."""

    @property
    def rank(self) -> int:
        return _LEVELS.index(self)

    def wider_than(self, other: EscalationLevel) -> bool:
        return self.rank > other.rank


_LEVELS = tuple(EscalationLevel)


class Worker(BaseModel):
    """A member of staff who calls job seekers back, as routing sees them.

    `open_count` and `last_assigned_at` are live state: `routing.assignment` changes them
    atomically with each reservation, never from a profile update.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    worker_id: NonEmptyStr = Field(description="Stable staff identifier.", examples=["w-0042"])
    display_name: str = Field(description="Shown at the desk; never logged.", examples=["Sofia P."])
    team: Target
    languages: frozenset[Language] = Field(min_length=1)
    skills: frozenset[str] = Field(
        default=frozenset(),
        description='Free tags such as "orientation", "enrolment", "basic_skills", "office", "graphics"; '
        'a skill named after a team ("digital_divide") makes the worker a backup for that team.',
    )
    backup_for: frozenset[Target] = Field(
        default=frozenset(), description="Other teams this worker stands in for when they have no one."
    )
    working_hours: WorkingHours = Field(
        default_factory=dict,
        description="Weekday (0 = Monday) to local Brussels intervals [start, end).",
        examples=[{0: [("08:30", "12:30"), ("13:15", "16:30")]}],
    )
    availability: Availability = Availability.OFFLINE
    capacity: Annotated[int, Field(ge=0)] = 1
    """How many requests the worker holds at once (reserved plus assigned)."""
    open_count: Annotated[int, Field(ge=0)] = 0
    last_assigned_at: AwareDatetime | None = None
    supervisor: bool = False
    supervises: frozenset[Target] = Field(
        default=frozenset(),
        description="Other teams this supervisor answers for: their breaches escalate to them too (a small "
        "team need not have a supervisor of its own).",
    )
    email: str | None = Field(
        default=None,
        description="Work e-mail, for notification's staff alerts; routing keeps it but does not use it.",
        examples=["adv-1@example.org"],
    )

    def answers_for(self, team: Target) -> bool:
        """Whether this worker is a supervisor of `team`: its own, or one it supervises besides."""
        return self.supervisor and (self.team == team or team in self.supervises)

    @field_validator("working_hours")
    @classmethod
    def _check_hours(cls, value: WorkingHours) -> WorkingHours:
        for weekday, intervals in value.items():
            if not 0 <= weekday <= 6:
                raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday}")
            for start, end in intervals:
                if start.tzinfo is not None or end.tzinfo is not None:
                    raise ValueError("working hours are local Brussels times, without tzinfo")
                if start >= end:
                    raise ValueError(f"interval {start}-{end} must start before it ends")
        return value

    def works_at(self, now: datetime, closed_on: ClosedOn | None = None) -> bool:
        """Whether `now` (aware) falls within this worker's hours, in Brussels local time, on a day
        the service is not closed (`closed_on`: holidays and closures; None: every day is open)."""
        local = _aware(now).astimezone(BRUSSELS)
        if closed_on is not None and closed_on(local.date()):
            return False
        moment = local.time()
        return any(start <= moment < end for start, end in self.working_hours.get(local.weekday(), ()))

    @property
    def load(self) -> Fraction:
        return Fraction(self.open_count, self.capacity) if self.capacity else Fraction(1)


@dataclass(frozen=True, slots=True)
class OfferRequest:
    """What eligibility needs to know about a request waiting for a worker."""

    request_id: str
    team: Target
    language: Language
    required_skills: frozenset[str] = frozenset()
    declined_by: frozenset[str] = frozenset()
    """Workers who declined it or let an offer time out: it is not offered to them again."""
    escalation: EscalationLevel = EscalationLevel.TEAM


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return at


def in_pool(worker: Worker, team: Target, level: EscalationLevel) -> bool:
    """Whether `worker` belongs to `team`'s pool at `level` (levels are cumulative)."""
    if worker.supervisor:
        # Supervisors take requests of their own team only, and only as the last resort.
        return level is EscalationLevel.SUPERVISOR and worker.team == team
    if worker.team == team:
        return True
    return level.rank >= EscalationLevel.BACKUP.rank and (team.value in worker.skills or team in worker.backup_for)


def why_not(worker: Worker, request: OfferRequest, now: datetime, *, closed_on: ClosedOn | None = None) -> str | None:
    """Why `worker` may not be offered `request` at `now`, or None when they may; nobody works on a
    day `closed_on` says the service is closed.

    The first failing rule is given, in a fixed order, so a log line explains the choice.
    Worker ids appear; display names never do.
    """
    if not in_pool(worker, request.team, request.escalation):
        return f"not in the {request.team.value} pool at level {request.escalation.value}"
    if worker.worker_id in request.declined_by:
        return "already declined this request or let its offer time out"
    if worker.availability is not Availability.AVAILABLE:
        return f"is {worker.availability.value}"
    if worker.open_count >= worker.capacity:
        return f"at capacity ({worker.open_count}/{worker.capacity})"
    if closed_on is not None and closed_on(_aware(now).astimezone(BRUSSELS).date()):
        return f"the service is closed on {_aware(now).astimezone(BRUSSELS):%a %d/%m} (holiday or closure)"
    if not worker.works_at(now):
        return f"outside working hours at {_aware(now).astimezone(BRUSSELS):%a %H:%M} Brussels time"
    if request.language not in worker.languages:
        return f"does not speak {request.language.value}"
    missing = request.required_skills - worker.skills
    if missing:
        return f"lacks skills {', '.join(sorted(missing))}"
    return None


def is_eligible(worker: Worker, request: OfferRequest, now: datetime, *, closed_on: ClosedOn | None = None) -> bool:
    return why_not(worker, request, now, closed_on=closed_on) is None


_NEVER = datetime.min.replace(tzinfo=UTC)


def _preference(worker: Worker) -> tuple[int, Fraction, datetime, str]:
    # Least load first (absolute, then relative to capacity), then longest idle - a worker
    # never assigned counts as idle the longest - then the id, so that replicas agree.
    return (worker.open_count, worker.load, worker.last_assigned_at or _NEVER, worker.worker_id)


def rank_candidates(
    workers: Iterable[Worker], request: OfferRequest, now: datetime, *, closed_on: ClosedOn | None = None
) -> list[Worker]:
    """The eligible workers, best first (the order `choose_worker` picks from)."""
    eligible = [w for w in workers if is_eligible(w, request, now, closed_on=closed_on)]
    return sorted(eligible, key=_preference)


def choose_worker(
    workers: Iterable[Worker], request: OfferRequest, now: datetime, *, closed_on: ClosedOn | None = None
) -> Worker | None:
    """The eligible worker with the least load, then idle the longest, then the smallest id."""
    ranked = rank_candidates(workers, request, now, closed_on=closed_on)
    return ranked[0] if ranked else None


@dataclass(frozen=True, slots=True)
class EscalationPool:
    """The pool a request is offered from, and why that one."""

    level: EscalationLevel
    candidates: tuple[Worker, ...]
    """Eligible workers at `level`, best first; empty when no one is."""
    description: str
    escalated: bool = False
    """True when `level` is wider than the request's own level: the caller should record it."""


def escalation_pool(
    workers: Iterable[Worker],
    request: OfferRequest,
    now: datetime,
    *,
    waiting_since: datetime,
    escalate_after: timedelta | None,
    closed_on: ClosedOn | None = None,
) -> EscalationPool:
    """The narrowest pool, from the request's own level up, that has an eligible worker.

    The pool widens beyond the request's level only once the request has waited
    `escalate_after` since `waiting_since` with no one eligible at that level: first to
    other teams' backups for the team, then to the team's supervisors. With
    `escalate_after=None` it never widens by itself (only an explicit escalation does).
    """
    pool = list(workers)
    waited = _aware(now) - _aware(waiting_since)
    due = escalate_after is not None and waited >= escalate_after
    team = request.team.value
    for level in _LEVELS[request.escalation.rank :]:
        candidates = tuple(rank_candidates(pool, replace(request, escalation=level), now, closed_on=closed_on))
        escalated = level.wider_than(request.escalation)
        if candidates:
            return EscalationPool(level, candidates, _describe(level, team, len(candidates), waited), escalated)
        if not due:
            then = (
                "never widens by itself"
                if escalate_after is None
                else f"widens at {(waiting_since + escalate_after).astimezone(BRUSSELS):%H:%M} if still so"
            )
            description = f"no one eligible in the {team} pool at level {level.value}; {then}"
            return EscalationPool(level, (), description, escalated)
    return EscalationPool(
        EscalationLevel.SUPERVISOR,
        (),
        f"no one eligible in the {team} pool even with backups and supervisors after {_minutes(waited)}",
        EscalationLevel.SUPERVISOR.wider_than(request.escalation),
    )


def _minutes(waited: timedelta) -> str:
    return f"{int(waited.total_seconds() // 60)} min"


def _describe(level: EscalationLevel, team: str, count: int, waited: timedelta) -> str:
    if level is EscalationLevel.TEAM:
        return f"{count} eligible in the {team} team"
    if level is EscalationLevel.BACKUP:
        return f"widened to backups for {team} after {_minutes(waited)}: {count} eligible"
    return f"widened to the {team} supervisors after {_minutes(waited)}: {count} eligible"


def worker_hours(spec: Mapping[int, Iterable[tuple[str, str]]]) -> WorkingHours:
    """Working hours from "HH:MM" strings, for configuration files and tests."""
    return {
        day: [(time.fromisoformat(start), time.fromisoformat(end)) for start, end in intervals] for day, intervals in spec.items()
    }
