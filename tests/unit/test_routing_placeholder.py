"""The call `routing.app` still makes, `decide_route(event)` with the event alone, until it is
rewired to pass rules, state and time: it must stay pure and use the shipped rule set."""

import pytest

from routing.decision import RULE_SET_VERSION, decide_route
from schemas import Target
from tests.factories import make_request

pytestmark = pytest.mark.unit


def test_a_named_online_course_goes_to_espaces_numeriques() -> None:
    decision = decide_route(make_request(requested_course="EXCEL"))
    assert decision.target is Target.ESPACES_NUMERIQUES
    assert decision.rule_id == "named-online-course"
    assert decision.rule_set_version == RULE_SET_VERSION


def test_anything_else_goes_to_an_advisor_with_a_reason() -> None:
    decision = decide_route(make_request(need="Bonjour, je voudrais des informations.", requested_course=None))
    assert decision.target is Target.ADVISORS
    assert decision.rule_id == "default"
    assert decision.explanation


def test_the_event_alone_is_enough_to_replay_a_decision() -> None:
    request = make_request(has_computer=False)
    assert decide_route(request) == decide_route(request)
