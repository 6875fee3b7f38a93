"""Which team handles a request, why, and how urgently: a pure function of what it is given.

`decide_route(request, rules=, state=, now=)` reads no clock, no file beyond the shipped rule
set it defaults to, and no randomness, so replaying the same events with the same rule-set
version gives the same decisions. The rules themselves are data (`routing.rules`); the score
is `routing.priority`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from routing.conditions import RoutingState
from routing.priority import Band, band, priority_of
from routing.rules import RuleSet, load_rules
from schemas import Language, Target, TrainingRequestReceived

__all__ = ["RULE_SET_VERSION", "RouteDecision", "RoutingState", "decide_route"]

RULE_SET_VERSION = "2026.6"
"""Version of the shipped rule set, for `routing.app` until it reads `RouteDecision.rule_set_version`.

A constant rather than `load_rules().version` so that importing this module reads no file;
a unit test keeps the two equal.
"""


@dataclass(frozen=True)
class RouteDecision:
    """The team that takes a request over, the rule that said so, and its priority."""

    target: Target
    rule_id: str
    explanation: str
    """Why, in the request's language, for the advisor and the person."""
    rule_set_version: str
    explanation_fr: str
    """Why, in French, whatever the request's language: what reports and the back office show."""
    priority: int
    priority_parts: Mapping[str, int]
    matched_conditions: tuple[str, ...]
    """What of the rule's condition held (`channel=phone`, `has_computer=false`…); empty for the default."""
    priority_band: Band


def decide_route(
    request: TrainingRequestReceived,
    *,
    rules: RuleSet | None = None,
    state: RoutingState | None = None,
    now: datetime | None = None,
) -> RouteDecision:
    """Route `request` with `rules` (default: the shipped set) in `state` (default: all open).

    `now` defaults to `request.received_at`, never to the wall clock: a call with the request
    alone is as replayable as one with every argument.
    """
    rules = rules if rules is not None else load_rules()
    state = state if state is not None else RoutingState()
    now = now if now is not None else request.received_at
    match = rules.evaluate(request, state=state, now=now)
    priority = priority_of(request, now=now, weights=rules.priority)
    return RouteDecision(
        target=match.target,
        rule_id=match.rule_id,
        explanation=match.explanation(request.language),
        rule_set_version=rules.version,
        explanation_fr=match.explanation(Language.FR),
        priority=priority.score,
        priority_parts=MappingProxyType(dict(priority.parts)),
        matched_conditions=match.matched_conditions,
        priority_band=band(priority.score, weights=rules.priority),
    )
