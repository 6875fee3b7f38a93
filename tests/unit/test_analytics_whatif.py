"""What-if routing without a broker: counting the decisions that change, and the simulated
compliance of two team sizes."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml

import routing.decision
from analytics import whatif
from analytics.whatif import Scenario, compare, parse_team_sizes, roster_team_sizes
from routing.decision import RoutingState
from routing.rules import DEFAULT_PATH, load_rules, parse_rules
from schemas import Channel, QualificationLevel, Target, TrainingRequestReceived
from services.calendar import BRUSSELS
from tests.factories import make_request

pytestmark = pytest.mark.unit

RULES = load_rules()
SIZES = {Target(team): n for team, n in roster_team_sizes().items()}
MARCH = datetime(2026, 3, 2, 8, 0, tzinfo=BRUSSELS)


def month(count: int, seed: int = 3) -> list[TrainingRequestReceived]:
    """A month of requests: named online courses (espaces numériques), callers without the CESS
    (advisors) and people without a computer (digital divide), at random times of March."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        kind = i % 4
        requests.append(
            make_request(
                request_id=f"req-{i:04d}",
                received_at=MARCH + timedelta(minutes=rng.randrange(0, 27 * 24 * 60)),
                channel=(Channel.WEB, Channel.EMAIL, Channel.PHONE, Channel.PHONE)[kind],
                requested_course="EXCEL" if kind < 2 else None,
                need="Je voudrais une formation." if kind < 2 else "",
                qualification_level=QualificationLevel.PRIMARY if kind == 2 else None,
                has_computer=False if kind == 3 else None,
            )
        )
    return requests


def test_the_roster_gives_the_current_team_sizes() -> None:
    assert roster_team_sizes() == {"advisors": 3, "espaces_numeriques": 6, "digital_divide": 2, "cite_des_metiers": 1}


def test_team_sizes_from_the_command_line() -> None:
    assert parse_team_sizes(["espaces_numeriques=8", "advisors=4"]) == {"espaces_numeriques": 8, "advisors": 4}
    for wrong in (["espaces=8"], ["espaces_numeriques"], ["advisors=-1"], ["advisors=two"]):
        with pytest.raises(ValueError):
            parse_team_sizes(wrong)


def test_the_same_scenario_changes_nothing() -> None:
    current = Scenario("current", RULES, RoutingState(team_sizes=SIZES))
    report = compare(month(40), current, current)
    assert (report.changed_target, report.changed_rule, dict(report.transitions)) == (0, 0, {})
    assert report.current.sla == report.alternative.sla


def test_decisions_that_change_are_counted_from_team_to_team() -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["version"] = "2026.1-what-if"
    for rule in data["rules"]:
        if rule["id"] == "named-online-course":
            rule["target"] = "advisors"  # named courses to the advisors instead
    other = parse_rules(data)
    requests = month(40)
    report = compare(
        requests,
        Scenario("current", RULES, RoutingState(team_sizes=SIZES)),
        Scenario("alternative", other, RoutingState(team_sizes=SIZES)),
    )
    named = sum(1 for r in requests if r.requested_course)
    assert report.changed_target == named == 20
    assert report.changed_rule == 0  # the same rule decides; it only sends elsewhere
    assert dict(report.transitions) == {("espaces_numeriques", "advisors"): 20}
    assert report.alternative.rule_set_version == "2026.1-what-if"
    assert report.alternative.requests_by_team["advisors"] == report.current.requests_by_team["advisors"] + 20


def test_the_routing_state_of_the_alternative_reaches_the_rules() -> None:
    # A rule set whose digital-divide rule holds only while the programme takes people (the
    # shipped one sends them to its waitlist instead): closing it sends them to the default.
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    for rule in data["rules"]:
        if rule["id"] == "no-equipment-digital-divide":
            rule["when"] = {"all": [rule["when"], {"digital_divide_open": True}]}
    rules = parse_rules(data)
    requests = month(40)
    report = compare(
        requests,
        Scenario("current", rules, RoutingState(team_sizes=SIZES)),
        Scenario("alternative", rules, RoutingState(digital_divide_open=False, team_sizes=SIZES)),
    )
    without_computer = sum(1 for r in requests if r.has_computer is False)
    assert report.changed_target == report.changed_rule == without_computer == 10
    assert dict(report.transitions) == {("digital_divide", "advisors"): without_computer}


def test_eight_people_instead_of_six_raise_compliance_on_a_loaded_month() -> None:
    requests = month(800)
    current = Scenario("current", RULES, RoutingState(team_sizes=SIZES))
    bigger = Scenario("alternative", RULES, RoutingState(team_sizes={**SIZES, Target.ESPACES_NUMERIQUES: 8}))
    # 400 named-course requests in 19 working days, about 21 a day; at 2 h 30 a contact a person
    # makes 3 a day: 18 a day with six people (the backlog grows), 24 with eight.
    report = compare(requests, current, bigger, handling_time=timedelta(minutes=150))
    assert report.changed_target == 0
    for mode in ("calendar", "working_days"):
        was, now = report.current.compliance(mode), report.alternative.compliance(mode)
        assert was is not None and now is not None and now > was
        before = report.current.sla_by_team["espaces_numeriques"][mode]
        after = report.alternative.sla_by_team["espaces_numeriques"][mode]
        assert after.breached < before.breached
        # The other teams are untouched.
        assert report.alternative.sla_by_team["advisors"][mode] == report.current.sla_by_team["advisors"][mode]
    # Deterministic: the same inputs give the same report.
    assert compare(list(reversed(requests)), current, bigger, handling_time=timedelta(minutes=150)).to_dict() == report.to_dict()


def test_requests_are_decided_once_when_only_the_teams_change(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rules do not read team sizes (`RoutingState.team_sizes`): a year's requests are decided
    # once for both scenarios, and the report is the one two rounds of decisions give.
    requests = month(60)
    current = Scenario("current", RULES, RoutingState(team_sizes=SIZES))
    bigger = Scenario("alternative", RULES, RoutingState(team_sizes={**SIZES, Target.ADVISORS: 9}))
    twice = compare(requests, current, bigger).to_dict()
    calls: list[str] = []
    original = routing.decision.decide_route

    def decide_route(request: TrainingRequestReceived, **kwargs: Any) -> Any:
        calls.append(request.request_id)
        return original(request, **kwargs)

    monkeypatch.setattr(whatif, "decide_route", decide_route)
    assert compare(requests, current, bigger).to_dict() == twice
    assert len(calls) == len(requests)
    closed = Scenario("alternative", RULES, RoutingState(digital_divide_open=False, team_sizes=SIZES))
    compare(requests, current, closed)
    assert len(calls) == 3 * len(requests)
