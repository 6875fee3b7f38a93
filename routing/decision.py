"""Which team handles a request: a pure function of the request (and, later, the rule set and state).

Placeholder rule for the foundation slice; the routing issue replaces it with a declarative rule set.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import Target, TrainingRequestReceived


@dataclass(frozen=True, slots=True)
class RouteDecision:
    target: Target
    rule_id: str
    explanation: str


RULE_SET_VERSION = "0-placeholder"


def decide_route(request: TrainingRequestReceived) -> RouteDecision:
    if request.requested_course:
        return RouteDecision(
            Target.ESPACES_NUMERIQUES,
            "named-online-course",
            "The request names an online course: the espaces numériques team confirms and enrols.",
        )
    return RouteDecision(Target.ADVISORS, "default", "No specific rule matched: a training advisor calls back.")
