"""The foundation's placeholder routing rule, a pure function tested without a broker."""

import pytest

from routing.decision import decide_route
from schemas import Target
from tests.factories import make_request

pytestmark = pytest.mark.unit


def test_a_named_online_course_goes_to_espaces_numeriques() -> None:
    decision = decide_route(make_request(requested_course="EXCEL-BASE"))
    assert decision.target is Target.ESPACES_NUMERIQUES
    assert decision.rule_id == "named-online-course"


def test_anything_else_goes_to_an_advisor() -> None:
    decision = decide_route(make_request(requested_course=None))
    assert decision.target is Target.ADVISORS
    assert decision.explanation
