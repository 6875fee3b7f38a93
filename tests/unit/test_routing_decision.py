"""`decide_route`: team, reason and priority in one pure, replayable decision."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.decision import RULE_SET_VERSION, RouteDecision, RoutingState, decide_route
from routing.rules import load_rules, parse_rules
from schemas import Channel, Contact, Language, QualificationLevel, Target, TrainingRequestReceived
from services.catalogue import load_catalogue
from tests.factories import make_request

pytestmark = pytest.mark.unit

RULES = load_rules()
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def test_a_decision_has_team_rule_version_reasons_and_priority() -> None:
    request = make_request(
        channel=Channel.PHONE,
        language=Language.NL,
        need="Ik heb geen computer thuis.",
        qualification_level=QualificationLevel.NONE,
        has_computer=False,
    )
    decision = decide_route(request, rules=RULES, state=RoutingState(), now=NOW)

    assert decision.target is Target.DIGITAL_DIVIDE
    assert decision.rule_id == "no-equipment-digital-divide"
    assert decision.rule_set_version == "2026.6"
    assert decision.explanation.startswith("Geen computer")
    assert decision.explanation_fr.startswith("Pas d'ordinateur")
    assert decision.matched_conditions == ("has_computer=false",)
    assert dict(decision.priority_parts) == {
        "qualification": 40,
        "no_computer": 15,
        "language_need": 10,
        "phone": 5,
        "vulnerable": 30,
    }
    assert decision.priority == 100
    assert decision.priority_band == "high"


@pytest.mark.parametrize("language", list(Language))
def test_the_explanation_is_in_the_requests_language_and_always_in_french_too(language: Language) -> None:
    decision = decide_route(make_request(language=language, requested_course="WORD"), now=NOW)
    texts = {
        Language.FR: "Demande de la formation en ligne « Word (traitement de texte) »",
        Language.NL: "Aanvraag voor de online opleiding 'Word (tekstverwerking)'",
        Language.EN: "Request for the online course 'Word (word processing)'",
    }
    assert decision.explanation.startswith(texts[language])
    assert decision.explanation_fr.startswith(texts[Language.FR])


def _explanation(text: str) -> dict[str, str]:
    return {"fr": text, "nl": text, "en": text}


CLOSED_PROGRAMME_TO_ADVISORS = parse_rules(
    {
        # A deployment's own rule set (ROUTING_RULES_PATH) that reads the programme's state; the
        # shipped one does not: there, a full or suspended programme means its waitlist.
        "version": "closed-to-advisors",
        "rules": [
            {
                "id": "programme-open",
                "when": {"all": [{"has_internet": False}, {"digital_divide_open": True}]},
                "target": "digital_divide",
                "explanation": _explanation("Programme ouvert"),
            },
            {
                "id": "programme-closed",
                "when": {"has_internet": False},
                "target": "advisors",
                "explanation": _explanation("Programme fermé"),
            },
        ],
        "default": {"target": "advisors", "explanation": _explanation("Défaut")},
    }
)


def test_the_state_given_changes_the_decision() -> None:
    request = make_request(has_internet=False)
    opened = decide_route(request, rules=CLOSED_PROGRAMME_TO_ADVISORS, state=RoutingState(digital_divide_open=True))
    assert (opened.target, opened.rule_id) == (Target.DIGITAL_DIVIDE, "programme-open")
    closed = decide_route(request, rules=CLOSED_PROGRAMME_TO_ADVISORS, state=RoutingState(digital_divide_open=False))
    assert (closed.target, closed.rule_id) == (Target.ADVISORS, "programme-closed")


def test_with_the_shipped_rules_a_closed_programme_still_takes_people_without_equipment() -> None:
    # They join its waitlist (routing.programme) rather than go to an advisor.
    request = make_request(has_internet=False)
    opened = decide_route(request, state=RoutingState(digital_divide_open=True))
    closed = decide_route(request, state=RoutingState(digital_divide_open=False))
    assert (closed.target, closed.rule_id) == (Target.DIGITAL_DIVIDE, "no-equipment-digital-divide")
    assert closed == opened


def test_the_rules_given_are_the_rules_applied() -> None:
    everything_to_the_cite = parse_rules(
        {
            "version": "what-if-1",
            "default": {
                "target": "cite_des_metiers",
                "explanation": {"fr": "Tout à la Cité", "nl": "Alles naar de Cité", "en": "All to the Cité"},
            },
        }
    )
    decision = decide_route(make_request(requested_course="EXCEL"), rules=everything_to_the_cite)
    assert (decision.target, decision.rule_set_version, decision.explanation) == (
        Target.CITE_DES_METIERS,
        "what-if-1",
        "Tout à la Cité",
    )


def test_deciding_twice_gives_the_same_decision() -> None:
    request = make_request(channel=Channel.EMAIL, need="Je cherche une formation en ligne.", unemployed_since=date(2024, 1, 1))
    first = decide_route(request, rules=RULES, state=RoutingState(), now=NOW)
    again = decide_route(request, rules=RULES, state=RoutingState(), now=NOW)
    assert first == again
    replayed = decide_route(TrainingRequestReceived.model_validate_json(request.model_dump_json()), now=NOW)
    assert replayed == first


def test_now_defaults_to_when_the_request_was_received_not_the_wall_clock() -> None:
    # Unemployed for exactly 12 months at reception, 24 months by the wall clock of 2028.
    request = make_request(received_at=datetime(2026, 1, 15, 9, tzinfo=UTC), unemployed_since=date(2025, 1, 15))
    implicit = decide_route(request)
    assert implicit == decide_route(request, rules=load_rules(), state=RoutingState(), now=request.received_at)
    assert implicit.priority_parts["long_unemployment"] == 10
    assert decide_route(request, now=datetime(2028, 1, 15, tzinfo=UTC)).priority_parts["long_unemployment"] == 20


def test_a_decision_is_frozen() -> None:
    decision = decide_route(make_request())
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.target = Target.CITE_DES_METIERS  # type: ignore[misc]
    with pytest.raises(TypeError):
        decision.priority_parts["phone"] = 100  # type: ignore[index]


def test_the_state_keeps_its_own_copy_of_team_sizes() -> None:
    sizes = {Target.ESPACES_NUMERIQUES: 6}
    state = RoutingState(team_sizes=sizes)
    sizes[Target.ESPACES_NUMERIQUES] = 60
    assert state.team_sizes == {Target.ESPACES_NUMERIQUES: 6}
    assert RoutingState() == RoutingState()


def test_the_legacy_version_constant_is_the_shipped_rule_set_version() -> None:
    assert load_rules().version == RULE_SET_VERSION


# --- Any request: one of the teams, and the same answer every time -------------------

_COURSE_CODES = [course.code for course in load_catalogue().courses]
_PHRASES = [
    "formation en ligne",
    "online opleiding",
    "e-learning",
    "reconversion",
    "quel métier",
    "beroepskeuze",
    "career change",
    "apprendre le français",
    "Nederlands leren",
    "Excel",
]
_needs = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(_PHRASES) | st.text(max_size=15), max_size=5).map(" ".join),
)
_aware = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.sampled_from([UTC]))
_requests = st.builds(
    make_request,
    channel=st.sampled_from(Channel),
    language=st.sampled_from(Language),
    received_at=_aware,
    contact=st.sampled_from([Contact(), Contact(phone="+32470123456"), Contact(email="x@example.org")]),
    need=_needs,
    requested_course=st.none() | st.sampled_from(_COURSE_CODES) | st.text(min_size=1, max_size=12),
    qualification_level=st.none() | st.sampled_from(QualificationLevel),
    has_computer=st.none() | st.booleans(),
    has_internet=st.none() | st.booleans(),
    unemployed_since=st.none() | st.dates(min_value=date(2000, 1, 1), max_value=date(2031, 12, 31)),
    needs_triage=st.booleans(),
    channel_details=st.sampled_from([{}, {"partner": "cite-des-metiers"}, {"partner": "actiris"}, {"partner": 7}]),
)
_states = st.builds(RoutingState, digital_divide_open=st.booleans())
_SHIPPED_IDS = {rule.id for rule in RULES.rules} | {RULES.default.id}


@settings(database=None, max_examples=300, deadline=None)
@given(request=_requests, state=_states, later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)))
def test_any_request_gets_one_deterministic_decision(
    request: TrainingRequestReceived, state: RoutingState, later: timedelta
) -> None:
    now = request.received_at + later
    decision = decide_route(request, rules=RULES, state=state, now=now)

    assert isinstance(decision, RouteDecision)
    assert decision.target in set(Target)
    assert decision.rule_id in _SHIPPED_IDS
    assert decision == decide_route(request, rules=RULES, state=state, now=now)
    assert decision.priority == sum(decision.priority_parts.values()) >= 0
    assert decision.explanation and decision.explanation_fr
    assert "{" not in decision.explanation_fr
    if request.needs_triage:
        assert decision.rule_id == "triage-without-contact"
    # The shipped rules do not read the programme's state: full or suspended, it keeps a waitlist.
    assert decision == decide_route(
        request, rules=RULES, state=RoutingState(digital_divide_open=not state.digital_divide_open), now=now
    )
    without_equipment = request.has_computer is False or request.has_internet is False
    if decision.target is Target.DIGITAL_DIVIDE:
        assert without_equipment
    if without_equipment and decision.rule_id not in {"triage-without-contact", "career-guidance"}:
        assert decision.rule_id == "no-equipment-digital-divide"
