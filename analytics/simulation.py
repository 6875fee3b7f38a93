"""A deterministic queue simulation of the callback teams: when would each request be contacted?

Pure (no I/O, no clock, no randomness): the same requests and model give the same answer. The
model is deliberately small, so that an advisor can check a case by hand:

- each team has N interchangeable workers (`QueueModel.team_sizes`); a team missing from it, or
  of size 0, contacts nobody;
- workers work the opening hours of the Brussels calendar (`services.calendar`: Monday to Friday
  08:30-17:15 except public holidays);
- every contact takes `handling_time` of a worker, and a worker does not start one that would run
  past closing: they start it at the next opening instead (so the handling time must fit in a day);
- when a worker is free, they take the first waiting request in routing's own queue order
  (`routing.priority.queue_order`, with the ageing weights of the same rule set): requests past
  their deadline, then the highest *effective* priority (the decision's score plus ageing), then
  the earliest deadline, then the earliest arrival, then the smallest request id (ties never
  depend on order);
- the first contact is when a worker starts the contact. Everyone is reached at the first
  attempt: the simulation measures capacity, not whether people pick up.

`simulate` gives the first-contact instant of every request; `sla_summary` counts how many met
their callback deadline (`routing.sla`, in either mode).
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

from routing.priority import DEFAULT_WEIGHTS, PriorityWeights, queue_order
from routing.sla import SlaMode, SlaPolicy, callback_deadline, sla_outcome
from schemas import Channel
from services.calendar import BRUSSELS, BrusselsCalendar

__all__ = ["QueueModel", "SimRequest", "SlaSummary", "callback_deadlines", "simulate", "sla_policy", "sla_summary"]

ALL_CHANNELS = frozenset(Channel)


@dataclass(frozen=True, slots=True)
class SimRequest:
    """What the simulation needs of a routed request."""

    request_id: str
    team: str
    priority: int
    """The decision's priority score, before ageing."""
    received_at: datetime
    channel: Channel = Channel.PHONE


@dataclass(frozen=True)
class QueueModel:
    """Teams, how long a contact takes, when people work and how waiting raises priority."""

    team_sizes: Mapping[str, int]
    handling_time: timedelta = timedelta(minutes=20)
    calendar: BrusselsCalendar = field(default_factory=BrusselsCalendar)
    weights: PriorityWeights = DEFAULT_WEIGHTS
    """The rule set's priority section: its ageing is what the dispatcher applies."""
    order_mode: SlaMode = "working_days"
    """Deadline used to break ties between equal effective priorities (routing's default mode)."""
    promise: timedelta = timedelta(hours=48)

    def __post_init__(self) -> None:
        object.__setattr__(self, "team_sizes", MappingProxyType({str(k): int(v) for k, v in self.team_sizes.items()}))
        if any(size < 0 for size in self.team_sizes.values()):
            raise ValueError("a team cannot have fewer than 0 people")
        if self.handling_time <= timedelta(0):
            raise ValueError("the handling time must be positive")
        day = _span(self.calendar)
        if self.handling_time > day:
            raise ValueError(f"a contact of {self.handling_time} does not fit in a working day of {day}")

    def ordering_policy(self) -> SlaPolicy:
        """The promise whose deadlines order the queues: `order_mode`, for every channel."""
        return SlaPolicy(mode=self.order_mode, promise=self.promise, applies_to=ALL_CHANNELS)


def _span(calendar: BrusselsCalendar) -> timedelta:
    any_day = date(2000, 1, 3)
    return datetime.combine(any_day, calendar.closing) - datetime.combine(any_day, calendar.opening)


def _utc(at: datetime) -> datetime:
    if at.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return at.astimezone(UTC)


def _start_of_contact(at: datetime, model: QueueModel) -> datetime:
    """The first instant from `at` on when a worker may start a contact that ends by closing."""
    start = _utc(model.calendar.next_opening(at))
    closing = _utc(datetime.combine(start.astimezone(BRUSSELS).date(), model.calendar.closing, BRUSSELS))
    if start + model.handling_time > closing:
        start = _utc(model.calendar.next_opening(closing))
    return start


def simulate(
    requests: Iterable[SimRequest], model: QueueModel, *, deadlines: Mapping[str, datetime | None] | None = None
) -> dict[str, datetime | None]:
    """First-contact instant (UTC) of each request by id; None for a team with nobody in it.

    `deadlines` may give each request's deadline under the model's ordering policy
    (`callback_deadlines(requests, model.ordering_policy(), model.calendar)`), computed once for
    several simulations of the same requests; they are computed here otherwise.
    """
    by_team: dict[str, list[SimRequest]] = defaultdict(list)
    for request in requests:
        by_team[request.team].append(request)
    contacts: dict[str, datetime | None] = {}
    for team in sorted(by_team):
        contacts.update(_simulate_team(by_team[team], model.team_sizes.get(team, 0), model, deadlines))
    return contacts


def callback_deadlines(
    requests: Iterable[SimRequest], policy: SlaPolicy, calendar: BrusselsCalendar
) -> dict[str, datetime | None]:
    """`routing.sla.callback_deadline` of each request by id under `policy`, in UTC."""
    return {
        r.request_id: None if (d := callback_deadline(r.received_at, policy, calendar, channel=r.channel)) is None else _utc(d)
        for r in requests
    }


def _simulate_team(
    requests: Sequence[SimRequest], size: int, model: QueueModel, known: Mapping[str, datetime | None] | None
) -> dict[str, datetime | None]:
    if size <= 0:
        return {r.request_id: None for r in requests}
    arrivals = sorted(requests, key=lambda r: (_utc(r.received_at), r.request_id))
    deadlines = known if known is not None else callback_deadlines(arrivals, model.ordering_policy(), model.calendar)
    received = {r.request_id: _utc(r.received_at) for r in arrivals}
    # (free from, worker number): the heap pops the worker free first, the lowest number on a tie.
    first = received[arrivals[0].request_id]
    workers = [(first, n) for n in range(size)]
    heapq.heapify(workers)
    contacts: dict[str, datetime | None] = {}
    # The waiting requests in lines of equal priority (and equally with or without a deadline),
    # each line in order of arrival. Only the first of each line can be the first of the team's
    # queue: one promise counted from arrival gives a later request a deadline no earlier, and
    # it has waited less (so aged no more), so it sorts after the first of its line in
    # `queue_order` at any instant. A year's backlog then costs a few comparisons per contact,
    # not one per request waiting.
    lines: dict[tuple[int, bool], deque[SimRequest]] = {}
    waiting = 0
    next_arrival = 0

    def admit(until: datetime) -> None:
        nonlocal next_arrival, waiting
        while next_arrival < len(arrivals) and received[(r := arrivals[next_arrival]).request_id] <= until:
            lines.setdefault((r.priority, deadlines[r.request_id] is None), deque()).append(r)
            waiting += 1
            next_arrival += 1

    def firsts(at: datetime) -> list[SimRequest]:
        return [line[0] for line in lines.values() if received[line[0].request_id] <= at]

    while next_arrival < len(arrivals) or waiting:
        free_from, worker = heapq.heappop(workers)
        at = _start_of_contact(free_from, model)
        admit(at)
        # Another worker may have admitted requests that arrive after this one is free.
        candidates = firsts(at)
        if not candidates:
            # Idle until the next request comes in (then until a contact can start).
            upcoming = [received[line[0].request_id] for line in lines.values()]
            if next_arrival < len(arrivals):
                upcoming.append(received[arrivals[next_arrival].request_id])
            at = _start_of_contact(max(free_from, min(upcoming)), model)
            admit(at)
            candidates = firsts(at)

        def order(r: SimRequest, at: datetime = at) -> tuple[bool, int, bool, datetime, datetime, str]:
            return queue_order(
                r.priority,
                waiting_since=received[r.request_id],
                deadline=deadlines[r.request_id],
                now=at,
                weights=model.weights,
                tiebreak=r.request_id,
            )

        chosen = min(candidates, key=order)
        line_key = (chosen.priority, deadlines[chosen.request_id] is None)
        lines[line_key].popleft()
        if not lines[line_key]:
            del lines[line_key]
        waiting -= 1
        contacts[chosen.request_id] = at
        heapq.heappush(workers, (at + model.handling_time, worker))
    return contacts


@dataclass(frozen=True)
class SlaSummary:
    """How many requests met their callback deadline in one SLA mode."""

    mode: SlaMode
    met: int
    breached: int
    pending: int
    """Requests not yet contacted whose deadline has not passed (only with `now`)."""
    not_covered: int = 0
    """Requests of channels the policy makes no promise for."""

    @property
    def measured(self) -> int:
        return self.met + self.breached

    @property
    def compliance(self) -> float | None:
        """Share met among those met or breached; None when there is none."""
        return self.met / self.measured if self.measured else None


def sla_policy(mode: SlaMode, promise: timedelta, channels: Iterable[Channel] = ALL_CHANNELS) -> SlaPolicy:
    """The promise `sla_summary` measures against: `promise` in `mode`, for `channels`."""
    return SlaPolicy(mode=mode, promise=promise, applies_to=frozenset(channels))


def sla_summary(
    requests: Iterable[SimRequest],
    contacts: Mapping[str, datetime | None],
    *,
    mode: SlaMode,
    calendar: BrusselsCalendar | None = None,
    promise: timedelta = timedelta(hours=48),
    channels: Iterable[Channel] = ALL_CHANNELS,
    now: datetime | None = None,
    deadlines: Mapping[str, datetime | None] | None = None,
) -> SlaSummary:
    """Met / breached / pending per `routing.sla.sla_outcome` for the first contacts in `contacts`.

    A request never contacted is breached once `now` is past its deadline; without `now` (a
    simulation runs to the end) it is breached outright. `deadlines` may give each request's
    deadline under this promise (`callback_deadlines` with `sla_policy(mode, promise, channels)`),
    computed once for several summaries; they are computed here otherwise.
    """
    calendar = calendar or BrusselsCalendar()
    policy = sla_policy(mode, promise, channels)
    counts = {"met": 0, "breached": 0, "pending": 0}
    not_covered = 0
    for request in requests:
        deadline = (
            deadlines[request.request_id]
            if deadlines is not None
            else callback_deadline(request.received_at, policy, calendar, channel=request.channel)
        )
        if deadline is None:
            not_covered += 1
            continue
        contact = contacts.get(request.request_id)
        if contact is None and now is None:
            counts["breached"] += 1
            continue
        counts[sla_outcome(request.received_at, contact, deadline, now=now)] += 1
    return SlaSummary(mode=mode, not_covered=not_covered, **counts)
