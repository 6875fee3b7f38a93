"""What-if routing: last month's requests decided again under other rules or team sizes, and the
callback compliance each would have given.

`compare` is pure: each request goes through `routing.decision.decide_route` under the current
scenario and the alternative one (rules and `RoutingState`, whose `team_sizes` say how many
people each team has), then through the queue simulation (`analytics.simulation`) with those
team sizes, and both are measured against the 48-hour promise in both SLA modes. `what_if`
reads the requests from Kafka as a bystander (`analytics.window`) and calls it.

The requests are what analysts may see of them. When intake sealed a request's personal fields
(`TrainingRequestReceived.sealed`), its `need` reads empty here, so rules that look for words in
the need (`need_mentions_any`) do not match in either scenario: the comparison is fair, but the
current scenario may then differ from the decisions recorded at the time.

By default the promise is measured for every channel (`sla_channels`), not only for the phone
calls routing enforces it on: the question is how long people wait for a first contact, and
e-mail and web requests wait in the same queues.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table

from analytics.settings import AnalyticsSettings
from analytics.simulation import (
    QueueModel,
    SimRequest,
    SlaSummary,
    callback_deadlines,
    simulate,
    sla_policy,
    sla_summary,
)
from analytics.stats import median, percentile
from analytics.window import open_window
from routing.decision import RoutingState, decide_route
from routing.priority import DEFAULT_WEIGHTS, PriorityWeights
from routing.roster import load_roster
from routing.rules import RuleSet, load_rules
from routing.sla import SlaMode, SlaPolicy
from schemas import Channel, Target, TrainingRequestReceived, codec
from schemas.errors import ContractError
from schemas.topics import TRAINING_REQUESTS
from services.calendar import BrusselsCalendar
from services.configuration import ConfigurationFeed

__all__ = [
    "Scenario",
    "ScenarioOutcome",
    "WhatIfReport",
    "compare",
    "parse_team_sizes",
    "read_requests",
    "roster_team_sizes",
    "what_if",
]

MODES: tuple[SlaMode, ...] = ("calendar", "working_days")
PUBLISH_MARGIN = timedelta(days=7)
"""How long before `start` the requests topic is read from: a request is published after it is
received (later still when intake's outbox waited for Kafka), so its record is never earlier."""


@dataclass(frozen=True)
class Scenario:
    """A rule set and a routing state (with `team_sizes`) to decide and serve requests under."""

    name: str
    rules: RuleSet
    state: RoutingState


@dataclass(frozen=True)
class ScenarioOutcome:
    """What one scenario gives for the requests: where they go and how fast they are contacted."""

    name: str
    rule_set_version: str
    team_sizes: Mapping[str, int]
    requests_by_team: Mapping[str, int]
    sla: Mapping[SlaMode, SlaSummary]
    sla_by_team: Mapping[str, Mapping[SlaMode, SlaSummary]]
    median_wait_hours: float | None
    p90_wait_hours: float | None

    def compliance(self, mode: SlaMode) -> float | None:
        return self.sla[mode].compliance


@dataclass(frozen=True)
class WhatIfReport:
    """Current against alternative: decisions that change, and simulated callback compliance."""

    requests: int
    start: datetime | None
    end: datetime | None
    handling_time: timedelta
    sla_channels: frozenset[Channel]
    current: ScenarioOutcome
    alternative: ScenarioOutcome
    changed_target: int
    """Requests that would go to another team."""
    changed_rule: int
    """Requests decided by another rule (whether or not the team changes)."""
    transitions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(from team, to team) -> requests, for the requests whose team changes."""
    unreadable: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, for scripts."""

        def outcome(o: ScenarioOutcome) -> dict[str, Any]:
            return {
                "rule_set_version": o.rule_set_version,
                "team_sizes": dict(o.team_sizes),
                "requests_by_team": dict(o.requests_by_team),
                "sla": {mode: {"met": s.met, "breached": s.breached, "compliance": s.compliance} for mode, s in o.sla.items()},
                "median_wait_hours": o.median_wait_hours,
                "p90_wait_hours": o.p90_wait_hours,
            }

        return {
            "requests": self.requests,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "handling_minutes": self.handling_time.total_seconds() / 60,
            "sla_channels": sorted(self.sla_channels),
            "changed_target": self.changed_target,
            "changed_rule": self.changed_rule,
            "transitions": [{"from": a, "to": b, "requests": n} for (a, b), n in sorted(self.transitions.items())],
            "current": outcome(self.current),
            "alternative": outcome(self.alternative),
        }

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        window = f"{_show(self.start)} to {_show(self.end)}" if self.start or self.end else "all requests"
        yield (
            f"[bold]What if[/] - {self.requests} requests ({window}), "
            f"{self.handling_time.total_seconds() / 60:g} min per contact, "
            f"promise measured for {', '.join(sorted(self.sla_channels))}"
        )
        decisions = Table(title="Decisions")
        decisions.add_column("")
        decisions.add_column("requests", justify="right")
        decisions.add_row("same team", str(self.requests - self.changed_target))
        decisions.add_row("another team", str(self.changed_target))
        decisions.add_row("another rule", str(self.changed_rule))
        yield decisions
        if self.transitions:
            moves = Table(title="Requests that change team")
            for column in ("from", "to", "requests"):
                moves.add_column(column, justify="right" if column == "requests" else "left")
            for (from_team, to_team), count in sorted(self.transitions.items(), key=lambda item: (-item[1], item[0])):
                moves.add_row(from_team, to_team, str(count))
            yield moves
        sla = Table(title="Simulated first contact within the promise")
        for column in ("scenario", "rules", "team sizes", "calendar 48 h", "working days", "median wait (h)", "p90 wait (h)"):
            sla.add_column(column)
        for outcome in (self.current, self.alternative):
            sla.add_row(
                outcome.name,
                outcome.rule_set_version,
                ", ".join(f"{team}={size}" for team, size in sorted(outcome.team_sizes.items())),
                _share(outcome.sla["calendar"]),
                _share(outcome.sla["working_days"]),
                _hours(outcome.median_wait_hours),
                _hours(outcome.p90_wait_hours),
            )
        yield sla
        teams = Table(title="By team (working days)")
        for column in ("team", "current requests", "current met", "alternative requests", "alternative met"):
            teams.add_column(column)
        for team in sorted(set(self.current.requests_by_team) | set(self.alternative.requests_by_team)):
            before = self.current.sla_by_team.get(team, {}).get("working_days")
            after = self.alternative.sla_by_team.get(team, {}).get("working_days")
            teams.add_row(
                team,
                str(self.current.requests_by_team.get(team, 0)),
                _share(before) if before else "-",
                str(self.alternative.requests_by_team.get(team, 0)),
                _share(after) if after else "-",
            )
        yield teams


def _show(at: datetime | None) -> str:
    return at.isoformat() if at else "…"


def _share(summary: SlaSummary) -> str:
    share = summary.compliance
    return "-" if share is None else f"{100 * share:.1f}% ({summary.met}/{summary.measured})"


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def roster_team_sizes(path: Path | None = None) -> dict[str, int]:
    """People per team in the roster (the shipped one by default), supervisors left out:
    they are the last resort, not part of a team's daily capacity."""
    sizes: Counter[str] = Counter()
    for worker in load_roster(path):
        if not worker.supervisor:
            sizes[worker.team.value] += 1
    return {team.value: sizes.get(team.value, 0) for team in Target}


def parse_team_sizes(specs: Iterable[str]) -> dict[str, int]:
    """`["espaces_numeriques=8", ...]` -> {"espaces_numeriques": 8}; names must be teams (`Target`)."""
    sizes: dict[str, int] = {}
    teams = {t.value for t in Target}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or name not in teams:
            raise ValueError(f"--team-size takes TEAM=N with TEAM one of {', '.join(sorted(teams))}; got {spec!r}")
        try:
            size = int(value)
        except ValueError:
            raise ValueError(f"--team-size {spec!r}: N must be a whole number") from None
        if size < 0:
            raise ValueError(f"--team-size {spec!r}: N cannot be negative")
        sizes[name] = size
    return sizes


def compare(
    requests: Sequence[TrainingRequestReceived],
    current: Scenario,
    alternative: Scenario,
    *,
    handling_time: timedelta = timedelta(minutes=20),
    calendar: BrusselsCalendar | None = None,
    promise: timedelta = timedelta(hours=48),
    sla_channels: Iterable[Channel] = frozenset(Channel),
    start: datetime | None = None,
    end: datetime | None = None,
    unreadable: int = 0,
) -> WhatIfReport:
    """Decide and serve `requests` under both scenarios; pure in its arguments."""
    calendar = calendar or BrusselsCalendar()
    channels = frozenset(sla_channels)
    ordered = sorted({r.request_id: r for r in requests}.values(), key=lambda r: (r.received_at.astimezone(UTC), r.request_id))
    decided_now = [decide_route(r, rules=current.rules, state=current.state) for r in ordered]
    decided = [
        decided_now,
        decided_now
        if _decide_alike(current, alternative)
        else [decide_route(r, rules=alternative.rules, state=alternative.state) for r in ordered],
    ]
    transitions: Counter[tuple[str, str]] = Counter()
    changed_rule = 0
    for before, after in zip(decided[0], decided[1], strict=True):
        if before.target != after.target:
            transitions[(before.target.value, after.target.value)] += 1
        if before.rule_id != after.rule_id:
            changed_rule += 1
    # Deadlines depend on the request and the promise, not on the scenario: computed once for both,
    # and once for the queue order and the summaries when their promise is the same.
    arrivals = [SimRequest(r.request_id, "", 0, r.received_at, r.channel) for r in ordered]
    computed: list[tuple[SlaPolicy, Mapping[str, datetime | None]]] = []

    def deadlines_under(policy: SlaPolicy) -> Mapping[str, datetime | None]:
        for known, deadlines in computed:
            if known == policy:
                return deadlines
        computed.append((policy, callback_deadlines(arrivals, policy, calendar)))
        return computed[-1][1]

    deadlines = _Deadlines(
        ordering=deadlines_under(_queue_model({}, handling_time, calendar, promise).ordering_policy()),
        by_mode={mode: deadlines_under(sla_policy(mode, promise, channels)) for mode in MODES},
    )
    outcomes = [
        _serve(scenario, ordered, decisions, handling_time, calendar, promise, channels, deadlines)
        for scenario, decisions in zip((current, alternative), decided, strict=True)
    ]
    return WhatIfReport(
        requests=len(ordered),
        start=start,
        end=end,
        handling_time=handling_time,
        sla_channels=channels,
        current=outcomes[0],
        alternative=outcomes[1],
        changed_target=sum(transitions.values()),
        changed_rule=changed_rule,
        transitions=dict(sorted(transitions.items())),
        unreadable=unreadable,
    )


_TEAM_NAMES: Mapping[Target, str] = MappingProxyType({team: team.value for team in Target})
"""A dictionary lookup: `Enum.value` is a property, slow when read for every request of a year."""


def _sum(mode: SlaMode, summaries: Sequence[SlaSummary]) -> SlaSummary:
    return SlaSummary(
        mode=mode,
        met=sum(s.met for s in summaries),
        breached=sum(s.breached for s in summaries),
        pending=sum(s.pending for s in summaries),
        not_covered=sum(s.not_covered for s in summaries),
    )


def _decide_alike(one: Scenario, other: Scenario) -> bool:
    """Whether two scenarios route every request alike: the same rules in the same state but for
    the team sizes, which rules do not read (`RoutingState.team_sizes`). Then a year's requests
    are decided once, not twice, when only the teams change."""
    return (one.rules is other.rules or one.rules == other.rules) and replace(one.state, team_sizes={}) == replace(
        other.state, team_sizes={}
    )


def _queue_model(
    sizes: Mapping[str, int],
    handling_time: timedelta,
    calendar: BrusselsCalendar,
    promise: timedelta,
    weights: PriorityWeights = DEFAULT_WEIGHTS,
) -> QueueModel:
    return QueueModel(team_sizes=sizes, handling_time=handling_time, calendar=calendar, weights=weights, promise=promise)


@dataclass(frozen=True)
class _Deadlines:
    """Each request's deadline by id: under the queue model's ordering policy, and per SLA mode."""

    ordering: Mapping[str, datetime | None]
    by_mode: Mapping[SlaMode, Mapping[str, datetime | None]]


def _serve(
    scenario: Scenario,
    requests: Sequence[TrainingRequestReceived],
    decisions: Sequence[Any],
    handling_time: timedelta,
    calendar: BrusselsCalendar,
    promise: timedelta,
    channels: frozenset[Channel],
    deadlines: _Deadlines,
) -> ScenarioOutcome:
    sizes = {str(team): size for team, size in scenario.state.team_sizes.items()}
    model = _queue_model(sizes, handling_time, calendar, promise, weights=scenario.rules.priority)
    sim = [
        SimRequest(r.request_id, _TEAM_NAMES[d.target], d.priority, r.received_at, r.channel)
        for r, d in zip(requests, decisions, strict=True)
    ]
    contacts = simulate(sim, model, deadlines=deadlines.ordering)
    by_team: dict[str, list[SimRequest]] = {}
    for request in sim:
        by_team.setdefault(request.team, []).append(request)

    def summaries(subset: Sequence[SimRequest]) -> Mapping[SlaMode, SlaSummary]:
        return MappingProxyType(
            {
                mode: sla_summary(
                    subset,
                    contacts,
                    mode=mode,
                    calendar=calendar,
                    promise=promise,
                    channels=channels,
                    deadlines=deadlines.by_mode[mode],
                )
                for mode in MODES
            }
        )

    waits = [(contact - r.received_at).total_seconds() / 3600 for r in sim if (contact := contacts.get(r.request_id)) is not None]
    by_team_sla = {team: summaries(subset) for team, subset in sorted(by_team.items())}
    return ScenarioOutcome(
        name=scenario.name,
        rule_set_version=scenario.rules.version,
        team_sizes=MappingProxyType(dict(sorted(sizes.items()))),
        requests_by_team=MappingProxyType({team: len(subset) for team, subset in sorted(by_team.items())}),
        # The counts add up: all requests' summary is the sum of the teams', not a second pass.
        sla=MappingProxyType({mode: _sum(mode, [team[mode] for team in by_team_sla.values()]) for mode in MODES}),
        sla_by_team=MappingProxyType(by_team_sla),
        median_wait_hours=median(waits),
        p90_wait_hours=percentile(waits, 0.9),
    )


async def read_requests(
    settings: AnalyticsSettings, start: datetime | None, end: datetime | None
) -> tuple[list[TrainingRequestReceived], int]:
    """Requests received in [start, end) from the requests topic, each once; and how many records
    could not be read. Nothing is stored: they stay in memory for the comparison."""
    topic = settings.kafka.topic_prefix + TRAINING_REQUESTS.name
    window = await open_window(
        settings.kafka,
        [topic],
        start=start - PUBLISH_MARGIN if start else None,
        max_records=settings.fetch_max_records,
        idle_timeout_s=settings.idle_timeout_s,
        client_id="formation-analytics-what-if",
    )
    requests: dict[str, TrainingRequestReceived] = {}
    unreadable = 0
    try:
        async for batch in window.batches():
            for record in batch:
                try:
                    event = codec.decode(record.value, record.headers)
                except ContractError:
                    unreadable += 1
                    continue
                if not isinstance(event, TrainingRequestReceived):
                    continue
                received = event.received_at
                if (start and received < start) or (end and received >= end):
                    continue
                requests.setdefault(event.request_id, event)
    finally:
        await window.close()
    return list(requests.values()), unreadable


async def staff_calendar(settings: AnalyticsSettings) -> BrusselsCalendar:
    """The calendar routing counts with: public holidays and the closure days staff configured
    (`configuration.v1`, read to its end), so deadlines redone here fall where routing set them."""
    feed = ConfigurationFeed(settings.kafka, client_id="analytics-what-if")
    try:
        closures = (await feed.catch_up()).closures
    finally:
        await feed.close()
    return BrusselsCalendar(closures.as_mapping() if closures else ())


async def what_if(
    settings: AnalyticsSettings,
    *,
    start: datetime | None,
    end: datetime | None,
    alternative_rules: Path | None = None,
    team_sizes: Mapping[str, int] | None = None,
    digital_divide_open: bool | None = None,
    current_rules: Path | None = None,
    roster: Path | None = None,
    sla_channels: Iterable[Channel] = frozenset(Channel),
    handling_time: timedelta | None = None,
) -> WhatIfReport:
    """Requests received in [start, end) on Kafka, compared under the current scenario (the rules
    in `current_rules`, the shipped ones by default, and the roster's team sizes) and the
    alternative (other rules, other team sizes, the digital-divide programme open or closed)."""
    rules_now = load_rules(current_rules)
    sizes_now = roster_team_sizes(roster)
    current = Scenario("current", rules_now, RoutingState(team_sizes={Target(t): n for t, n in sizes_now.items()}))
    alternative = Scenario(
        "alternative",
        load_rules(alternative_rules) if alternative_rules else rules_now,
        RoutingState(
            digital_divide_open=current.state.digital_divide_open if digital_divide_open is None else digital_divide_open,
            team_sizes={Target(t): n for t, n in {**sizes_now, **(team_sizes or {})}.items()},
        ),
    )
    requests, unreadable = await read_requests(settings, start, end)
    return compare(
        requests,
        current,
        alternative,
        calendar=await staff_calendar(settings),
        handling_time=handling_time or settings.handling_time,
        promise=settings.sla_promise,
        sla_channels=sla_channels,
        start=start,
        end=end,
        unreadable=unreadable,
    )
