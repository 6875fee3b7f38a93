"""How urgent a request is: the most vulnerable are called back first, and nobody starves.

`priority_of` scores a request as a plain sum of named parts (`{"qualification": 40,
"no_computer": 15}`) so an advisor can read why; the points are data (`PriorityWeights`, the
`priority:` section of the rule set). `effective_priority` adds an ageing bonus that grows with
waiting time, so a low-priority request eventually overtakes fresh high-priority ones; queues
order requests past their deadline first, then by effective priority, then by callback deadline
(`queue_order`, the one queue order of the dispatcher, the desk and the what-if simulation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Literal, Protocol

from routing.text import months_between
from routing.weights import PriorityWeights, QualificationWeights
from schemas import Channel, Language, QualificationLevel

__all__ = [
    "DEFAULT_WEIGHTS",
    "PART_FACTS",
    "Band",
    "Priority",
    "PriorityWeights",
    "QualificationWeights",
    "Scored",
    "band",
    "effective_priority",
    "is_vulnerable",
    "priority_of",
    "queue_order",
]

DEFAULT_WEIGHTS = PriorityWeights()
"""The built-in points; the shipped rule set repeats them under `priority:`."""

Band = Literal["high", "medium", "low"]

PART_FACTS: Mapping[str, str] = MappingProxyType(
    {
        "qualification": "qualification_level",
        "no_computer": "has_computer",
        "no_internet": "has_internet",
        "long_unemployment": "unemployed_since",
    }
)
"""The situation fact each part of `priority_of` reads, whose source a case keeps (`fact_sources`);
`language_need` and `phone` read the request itself."""


class Scored(Protocol):
    """What a score reads: a received request, or a routing case once the desk learned more."""

    @property
    def channel(self) -> Channel: ...
    @property
    def language(self) -> Language: ...
    @property
    def need(self) -> str: ...
    @property
    def qualification_level(self) -> QualificationLevel | None: ...
    @property
    def has_computer(self) -> bool | None: ...
    @property
    def has_internet(self) -> bool | None: ...
    @property
    def unemployed_since(self) -> date | None: ...


@dataclass(frozen=True)
class Priority:
    """A priority score and the parts it adds up from (only parts that count are listed)."""

    score: int
    parts: Mapping[str, int]


def priority_of(request: Scored, *, now: datetime, weights: PriorityWeights = DEFAULT_WEIGHTS) -> Priority:
    """Score `request` as of `now` (for the length of unemployment); pure in its arguments.

    Parts: `qualification` (none > primary > lower secondary > unknown > CESS or more),
    `no_computer`, `no_internet`, `long_unemployment` (12 months, more from 24),
    `language_need` (the need mentions learning French or Dutch, or the person is served in
    another language than the advisors' main one), `phone` (callers were promised a call) and
    `vulnerable` (the seed's particular attention: no CESS, or no computer or internet at home),
    which outweighs the small parts together. Unknown facts add nothing, except an unknown
    qualification, which gets a middle value.
    """
    parts: dict[str, int] = {
        "qualification": weights.qualification.points(request.qualification_level),
        "no_computer": weights.no_computer if request.has_computer is False else 0,
        "no_internet": weights.no_internet if request.has_internet is False else 0,
        "long_unemployment": _unemployment_points(request, now, weights),
        "language_need": (
            weights.language_need
            if request.language != weights.main_language or weights.mentions_language_need(request.need)
            else 0
        ),
        "phone": weights.phone if request.channel is Channel.PHONE else 0,
        "vulnerable": weights.vulnerable if is_vulnerable(request) else 0,
    }
    counted = {name: points for name, points in parts.items() if points}
    return Priority(score=sum(counted.values()), parts=MappingProxyType(counted))


def is_vulnerable(request: Scored) -> bool:
    """No secondary-school certificate, or no computer or no internet at home: as far as is known."""
    qualification = request.qualification_level
    return (
        (qualification is not None and not qualification.has_secondary_certificate)
        or request.has_computer is False
        or request.has_internet is False
    )


def _unemployment_points(request: Scored, now: datetime, weights: PriorityWeights) -> int:
    if request.unemployed_since is None:
        return 0
    months = months_between(request.unemployed_since, now)
    if months >= 24:
        return weights.unemployed_24_months
    if months >= 12:
        return weights.unemployed_12_months
    return 0


def effective_priority(base: int, waiting: timedelta, *, per_hour: float, cap: int | None) -> int:
    """`base` plus an ageing bonus that grows with the time waited, so that nobody starves.

    The bonus is `floor(hours waited x per_hour)`, at most `cap` (None: unbounded); a negative
    wait (clock skew) counts as none. Linear ageing is the simplest rule that prevents
    starvation and that an advisor can check by hand: with the shipped +2/hour capped at 100
    (the largest possible score), a request of priority 0 ties a fresh request of priority 100
    after 50 hours and, with the earlier deadline, goes first. Hours are wall-clock hours, not
    working hours: waiting over a weekend is still waiting.
    """
    hours = max(waiting.total_seconds(), 0.0) / 3600
    bonus = math.floor(hours * per_hour)
    if cap is not None:
        bonus = min(bonus, cap)
    return base + bonus


def queue_order(
    priority: int,
    *,
    waiting_since: datetime,
    deadline: datetime | None,
    now: datetime,
    weights: PriorityWeights = DEFAULT_WEIGHTS,
    tiebreak: str = "",
) -> tuple[bool, int, bool, datetime, datetime, str]:
    """The one sort key of a team's queue, ascending: the first is offered first.

    1. Requests already past their callback deadline: a broken promise keeps its place at the
       head of the queue, with the team's own workers (the supervisor is alerted by
       `CallbackSlaBreached`, not handed the backlog).
    2. Highest effective priority (`priority` plus ageing since `waiting_since`).
    3. Earliest deadline, requests without one after those with one.
    4. Longest waiting, then `tiebreak` (the request id) so the order is total and replayable.

    The dispatcher, the desk's effective-priority column and the analysts' what-if simulation
    all sort with this function and the ageing weights of the same policy document.
    """
    overdue = deadline is not None and deadline <= now
    effective = effective_priority(priority, now - waiting_since, per_hour=weights.ageing_per_hour, cap=weights.ageing_cap)
    return (not overdue, -effective, deadline is None, deadline or waiting_since, waiting_since, tiebreak)


def band(score: int, *, weights: PriorityWeights = DEFAULT_WEIGHTS) -> Band:
    """The report band of a score: `high` from `high_band_from`, `medium` from `medium_band_from`."""
    if score >= weights.high_band_from:
        return "high"
    if score >= weights.medium_band_from:
        return "medium"
    return "low"
