"""The routing rule set: the shipped rules on realistic requests, the condition language, and
the load errors a rule author sees."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from routing.conditions import RoutingState
from routing.priority import DEFAULT_WEIGHTS
from routing.rules import (
    DEFAULT_PATH,
    RuleMatch,
    RuleSet,
    RuleSetError,
    load_rules,
    parse_rules,
)
from schemas import Channel, Contact, Language, QualificationLevel, RequestKind, Target, TrainingRequestReceived
from tests.factories import make_request

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
OPEN = RoutingState()
CLOSED = RoutingState(digital_divide_open=False)
SHIPPED = load_rules()


def evaluate(request: TrainingRequestReceived, state: RoutingState = OPEN, rules: RuleSet = SHIPPED) -> RuleMatch:
    return rules.evaluate(request, state=state, now=NOW)


def explanation(fr: str = "fr", nl: str = "nl", en: str = "en") -> dict[str, str]:
    return {"fr": fr, "nl": nl, "en": en}


def rule_set(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A small rule set as YAML would give it, with a default to advisors."""
    return {
        "version": "test",
        "rules": list(rules),
        "default": {"target": "advisors", "explanation": explanation()},
        **extra,
    }


def rule(rule_id: str, when: Any, target: str = "espaces_numeriques") -> dict[str, Any]:
    return {"id": rule_id, "when": when, "target": target, "explanation": explanation()}


def matches(when: Any, request: TrainingRequestReceived, state: RoutingState = OPEN) -> bool:
    return evaluate(request, state, parse_rules(rule_set(rule("r", when)))).rule_id == "r"


# --- The shipped rules, each hit by realistic requests ------------------------------

PHONE = Channel.PHONE
EMAIL = Channel.EMAIL
WEB = Channel.WEB
FR, NL, EN = Language.FR, Language.NL, Language.EN

SHIPPED_CASES: list[tuple[str, dict[str, Any], RoutingState]] = [
    (
        "triage-without-contact",
        dict(
            channel=PHONE,
            contact=Contact(),
            need="",
            needs_triage=True,
            triage_reason="voicemail without a callback number",
        ),
        OPEN,
    ),
    (
        "triage-without-contact",
        # Triage comes first, even before a clear career question.
        dict(language=NL, need="Welk beroep past bij mij?", contact=Contact(name="Jan"), needs_triage=True),
        OPEN,
    ),
    (
        "triage-without-contact",
        dict(
            channel=WEB,
            language=EN,
            need="I'd like an online course.",
            contact=Contact(name="Sam"),
            needs_triage=True,
            triage_reason="no usable phone number or e-mail address",
        ),
        OPEN,
    ),
    (
        "triage-without-contact",
        # A learner question nobody can answer (no contact) is looked at first, like any request.
        dict(channel=WEB, kind=RequestKind.LEARNER_QUESTION, contact=Contact(name="Sam"), needs_triage=True),
        OPEN,
    ),
    (
        "learner-question",
        dict(
            channel=EMAIL,
            kind=RequestKind.LEARNER_QUESTION,
            need="Je suis inscrite à la formation Excel en ligne et je bloque au module 3.",
        ),
        OPEN,
    ),
    (
        "learner-question",
        # Before every training-request rule: no computer at home, a career word, a named course.
        dict(
            channel=WEB,
            language=NL,
            kind=RequestKind.LEARNER_QUESTION,
            need="Vraag over mijn cursus: ik denk aan omscholing.",
            requested_course="EXCEL",
            has_computer=False,
        ),
        CLOSED,
    ),
    (
        "learner-question",
        dict(channel=PHONE, language=EN, kind=RequestKind.LEARNER_QUESTION, need="A question about my online course."),
        OPEN,
    ),
    (
        "career-guidance",
        dict(need="Bonjour, je ne sais pas quel métier faire, je pense à une reconversion."),
        OPEN,
    ),
    ("career-guidance", dict(language=NL, channel=EMAIL, need="Ik twijfel over mijn beroepskeuze."), OPEN),
    ("career-guidance", dict(language=EN, need="I am considering a career change, where do I start?"), OPEN),
    (
        "cite-des-metiers-handover",
        dict(
            channel=WEB,
            need="Transmis par la Cité des métiers : souhaite se former.",
            channel_details={"partner": "cite-des-metiers"},
        ),
        OPEN,
    ),
    (
        "cite-des-metiers-handover",
        dict(language=NL, channel=EMAIL, need="Ik zoek een beroepsoriëntatie.", channel_details={"partner": "cite-des-metiers"}),
        OPEN,
    ),
    (
        "cite-des-metiers-handover",
        dict(language=EN, channel=PHONE, need="Referred for training.", channel_details={"partner": "Cite-des-Metiers"}),
        OPEN,
    ),
    (
        "no-equipment-digital-divide",
        dict(
            channel=PHONE,
            need="Je n'ai pas d'ordinateur mais je voudrais apprendre l'informatique.",
            has_computer=False,
        ),
        OPEN,
    ),
    (
        "no-equipment-digital-divide",
        dict(language=NL, need="Ik heb thuis geen internet.", has_computer=True, has_internet=False),
        OPEN,
    ),
    (
        "no-equipment-digital-divide",
        # Ahead of the named course: without a computer the course cannot be followed.
        dict(language=EN, need="I want to learn Excel but I have no laptop.", requested_course="EXCEL", has_computer=False),
        OPEN,
    ),
    # The programme full or suspended (as during lockdown) changes nothing: they still go there,
    # and its waitlist (routing.programme) holds them until a place frees or it resumes.
    (
        "no-equipment-digital-divide",
        dict(channel=PHONE, need="Je n'ai pas d'ordinateur.", has_computer=False),
        CLOSED,
    ),
    (
        "no-equipment-digital-divide",
        dict(language=NL, need="Geen internet thuis.", has_internet=False),
        CLOSED,
    ),
    (
        "no-equipment-digital-divide",
        dict(language=EN, need="My computer broke down.", has_computer=False, requested_course="WORD"),
        CLOSED,
    ),
    ("named-online-course", dict(need="Je voudrais apprendre Excel.", requested_course="EXCEL"), OPEN),
    ("named-online-course", dict(language=NL, need="Basis Frans graag", requested_course="FR-BASE"), OPEN),
    ("named-online-course", dict(language=EN, need="Photoshop please", requested_course="photoshop"), OPEN),
    (
        "named-online-course",
        dict(need="Compétences numériques", requested_course="NUMERIQUE-TRANSVERSAL"),
        OPEN,
    ),
    (
        "named-online-course",
        # A named course is a training need, even in career wording.
        dict(need="Reconversion : je veux suivre Word.", requested_course="WORD"),
        OPEN,
    ),
    (
        "online-learning-in-writing",
        dict(channel=EMAIL, need="Je souhaite suivre une formation en ligne pendant le confinement."),
        OPEN,
    ),
    ("online-learning-in-writing", dict(channel=WEB, language=NL, need="Ik wil graag een online opleiding volgen."), OPEN),
    ("online-learning-in-writing", dict(channel=EMAIL, language=EN, need="Do you have any e-learning for job seekers?"), OPEN),
    (
        "phone-no-secondary-certificate",
        dict(channel=PHONE, need="Je voudrais me former.", qualification_level=QualificationLevel.NONE),
        OPEN,
    ),
    (
        "phone-no-secondary-certificate",
        dict(channel=PHONE, language=NL, need="Ik wil een opleiding.", qualification_level=QualificationLevel.PRIMARY),
        OPEN,
    ),
    (
        "phone-no-secondary-certificate",
        # Online-learning words on the phone are not the written-request rule.
        dict(
            channel=PHONE,
            language=EN,
            need="I'd like an online course.",
            qualification_level=QualificationLevel.LOWER_SECONDARY,
        ),
        OPEN,
    ),
    ("default", dict(need="Je voudrais des informations.", qualification_level=QualificationLevel.HIGHER), OPEN),
    (
        "default",
        dict(channel=PHONE, language=NL, need="Informatie graag.", qualification_level=QualificationLevel.UPPER_SECONDARY),
        OPEN,
    ),
    ("default", dict(channel=PHONE, language=EN, need="Any training for me?"), OPEN),
    ("default", dict(need="Je voudrais suivre EXCEL-BASE.", requested_course="EXCEL-BASE"), OPEN),
]


@pytest.mark.parametrize(
    ("rule_id", "fields", "state"),
    SHIPPED_CASES,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(SHIPPED_CASES)],
)
def test_each_shipped_rule_is_hit_by_realistic_requests(rule_id: str, fields: dict[str, Any], state: RoutingState) -> None:
    match = evaluate(make_request(**fields), state)
    assert match.rule_id == rule_id


def test_every_shipped_rule_has_a_case_above() -> None:
    assert {case[0] for case in SHIPPED_CASES} == {r.id for r in SHIPPED.rules} | {SHIPPED.default.id}


def test_every_shipped_rule_is_hit_in_each_language() -> None:
    languages: dict[str, set[Language]] = {}
    for rule_id, fields, _ in SHIPPED_CASES:
        languages.setdefault(rule_id, set()).add(fields.get("language", Language.FR))
    assert {rule_id: found for rule_id, found in languages.items() if found != set(Language)} == {}


@pytest.mark.parametrize(
    ("rule_id", "target"),
    [
        ("triage-without-contact", Target.ADVISORS),
        ("career-guidance", Target.CITE_DES_METIERS),
        ("no-equipment-digital-divide", Target.DIGITAL_DIVIDE),
        ("learner-question", Target.ESPACES_NUMERIQUES),
        ("named-online-course", Target.ESPACES_NUMERIQUES),
        ("online-learning-in-writing", Target.ESPACES_NUMERIQUES),
        ("phone-no-secondary-certificate", Target.ADVISORS),
        ("default", Target.ADVISORS),
    ],
)
def test_shipped_rules_send_to_the_expected_team(rule_id: str, target: Target) -> None:
    fields, state = next((f, s) for r, f, s in SHIPPED_CASES if r == rule_id)
    assert evaluate(make_request(**fields), state).target is target


def test_shipped_rules_are_in_the_documented_order() -> None:
    assert [r.id for r in SHIPPED.rules] == [
        "triage-without-contact",
        "learner-question",
        "career-guidance",
        "no-equipment-digital-divide",
        "cite-des-metiers-handover",
        "named-online-course",
        "online-learning-in-writing",
        "phone-no-secondary-certificate",
    ]
    assert SHIPPED.default.id == "default"
    assert SHIPPED.version == "2026.6"


def test_career_wording_from_the_cite_des_metiers_is_not_sent_back_to_it() -> None:
    request = make_request(need="Je cherche une reconversion.", channel_details={"partner": "Cite-des-Metiers"})
    decision = evaluate(request)
    assert (decision.rule_id, decision.target) == ("cite-des-metiers-handover", Target.ESPACES_NUMERIQUES)


def test_the_career_guidance_rule_keeps_its_guard_against_hand_overs() -> None:
    # Were the hand-over rule moved below it, career wording from the Cité would still not go back there.
    without_handover = SHIPPED.model_copy(
        update={"rules": tuple(r for r in SHIPPED.rules if r.id != "cite-des-metiers-handover")}
    )
    request = make_request(need="Je cherche une reconversion.", channel_details={"partner": "cite-des-metiers"})
    assert evaluate(request, rules=without_handover).rule_id == "default"


@pytest.mark.parametrize("channel", [Channel.PHONE, Channel.EMAIL, Channel.WEB])
def test_a_cite_des_metiers_hand_over_goes_to_espaces_numeriques_whatever_the_channel(channel: Channel) -> None:
    request = make_request(channel=channel, need="Je voudrais me former.", channel_details={"partner": "cite-des-metiers"})
    decision = evaluate(request)
    assert (decision.rule_id, decision.target) == ("cite-des-metiers-handover", Target.ESPACES_NUMERIQUES)
    assert "Cité des métiers" in decision.explanation(Language.FR)


def test_a_cite_des_metiers_hand_over_without_a_computer_keeps_the_digital_divide_programme() -> None:
    request = make_request(has_computer=False, channel_details={"partner": "cite-des-metiers"})
    assert evaluate(request).target is Target.DIGITAL_DIVIDE


def test_an_unknown_has_computer_is_not_no_computer() -> None:
    assert evaluate(make_request(need="Je voudrais me former.", has_computer=None, has_internet=None)).rule_id == "default"


def test_the_shipped_priority_section_is_the_documented_default() -> None:
    assert SHIPPED.priority == DEFAULT_WEIGHTS


def test_the_shipped_rule_set_is_loaded_once() -> None:
    assert load_rules() is load_rules()
    assert load_rules(DEFAULT_PATH) == load_rules()


# --- Matched conditions and explanations ---------------------------------------------


def test_a_match_says_which_conditions_held() -> None:
    request = make_request(channel=PHONE, has_computer=False, has_internet=False)
    assert evaluate(request).matched_conditions == ("has_computer=false", "has_internet=false")
    # A deployment's own rule set may still test the programme's state; it is reported too.
    when = {"all": [{"any": [{"has_computer": False}, {"has_internet": False}]}, {"digital_divide_open": True}]}
    match = evaluate(request, rules=parse_rules(rule_set(rule("open-programme", when, "digital_divide"))))
    assert match.matched_conditions == ("has_computer=false", "has_internet=false", "digital_divide_open=true")


@pytest.mark.parametrize(
    "fields", [dict(has_computer=False), dict(has_internet=False), dict(has_computer=False, requested_course="EXCEL")]
)
def test_the_shipped_rules_send_people_without_equipment_to_the_programme_whatever_its_state(fields: dict[str, Any]) -> None:
    # Full or suspended, the programme takes them on its waitlist: the decision does not change.
    open_match, closed_match = evaluate(make_request(**fields), OPEN), evaluate(make_request(**fields), CLOSED)
    assert (open_match.rule_id, open_match.target) == ("no-equipment-digital-divide", Target.DIGITAL_DIVIDE)
    assert (closed_match.rule_id, closed_match.target) == (open_match.rule_id, open_match.target)


def test_career_guidance_names_the_phrase_of_the_rule_not_the_persons_words() -> None:
    match = evaluate(make_request(need="JE NE SAIS PAS QUEL METIER FAIRE"))
    assert match.matched_conditions[0] == "need mentions 'quel métier'"
    assert match.matched_conditions[1].startswith("not any(")


def test_the_default_matches_no_condition() -> None:
    assert evaluate(make_request(need="Bonjour")).matched_conditions == ()


@pytest.mark.parametrize(
    ("rule_id", "fields", "state"),
    SHIPPED_CASES,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(SHIPPED_CASES)],
)
def test_explanations_exist_in_three_languages_with_placeholders_filled(
    rule_id: str, fields: dict[str, Any], state: RoutingState
) -> None:
    match = evaluate(make_request(**fields), state)
    assert match.rule_id == rule_id
    texts = [match.explanation(language) for language in Language]
    assert all(texts) and len(set(texts)) == 3
    assert not any("{" in text or "}" in text for text in texts)


def test_the_requested_course_is_named_by_its_title_in_each_language() -> None:
    match = evaluate(make_request(requested_course="excel"))
    assert "« Excel (tableur) »" in match.explanation(Language.FR)
    assert "'Excel (rekenblad)'" in match.explanation(Language.NL)
    assert "'Excel (spreadsheets)'" in match.explanation(Language.EN)


def test_the_channel_is_named_in_each_language() -> None:
    match = evaluate(make_request(channel=EMAIL, need="Une formation en ligne, svp."))
    assert "par e-mail" in match.explanation(Language.FR)
    match = evaluate(make_request(channel=PHONE, need="Bonjour"))
    assert "par téléphone" in match.explanation(Language.FR)
    assert "via telefoon" in match.explanation(Language.NL)
    assert "by phone" in match.explanation(Language.EN)


def test_a_channel_newer_than_this_code_is_named_as_it_came_and_matches_no_channel_condition() -> None:
    whatsapp = TrainingRequestReceived.model_validate(
        make_request(need="Une formation en ligne, svp.").model_dump() | {"channel": "whatsapp"}
    )
    match = evaluate(whatsapp)
    # Not in `channel: [email, web]` of the online-learning rule: the default, an advisor, takes it.
    assert (match.rule_id, match.target) == ("default", Target.ADVISORS)
    assert "Demande reçue par whatsapp" in match.explanation(Language.FR)
    assert "Request received by whatsapp" in match.explanation(Language.EN)
    assert not matches({"channel": ["phone", "email", "web"]}, whatsapp)
    assert matches({"not": {"channel": ["phone"]}}, whatsapp)


# --- Ordering: first match wins, else the default ------------------------------------


def test_the_first_matching_rule_wins_whatever_comes_after() -> None:
    by_phone = rule("by-phone", {"channel": ["phone"]}, "advisors")
    in_dutch = rule("in-dutch", {"language": ["nl"]}, "espaces_numeriques")
    request = make_request(channel=PHONE, language=NL)

    assert evaluate(request, rules=parse_rules(rule_set(by_phone, in_dutch))).rule_id == "by-phone"
    assert evaluate(request, rules=parse_rules(rule_set(in_dutch, by_phone))).rule_id == "in-dutch"


def test_the_default_applies_when_nothing_matches() -> None:
    rules = parse_rules(rule_set(rule("by-phone", {"channel": ["phone"]})))
    match = evaluate(make_request(channel=WEB), rules=rules)
    assert (match.rule_id, match.target) == ("default", Target.ADVISORS)


def test_a_rule_set_may_have_only_a_default() -> None:
    assert evaluate(make_request(), rules=parse_rules(rule_set())).rule_id == "default"


# --- The condition language ------------------------------------------------------------


@pytest.mark.parametrize(
    ("need", "expected"),
    [
        ("Je cherche une ORIENTATION.", True),
        ("je cherche une orientation", True),
        ("Quel-Métier me conviendrait ?", True),
        ("quel  metier", True),
        ("Une désorientation totale", False),  # a whole word, not a part of one
        ("orientations", False),
        ("", False),
    ],
)
def test_need_mentions_any_is_accent_and_case_insensitive_on_whole_words(need: str, expected: bool) -> None:
    when = {"need_mentions_any": ["orientation", "quel métier"]}
    assert matches(when, make_request(need=need)) is expected


def test_need_mentions_any_finds_hyphenated_and_typographic_variants() -> None:
    when = {"need_mentions_any": ["e-learning", "l'informatique"]}
    assert matches(when, make_request(need="Un E learning svp"))
    assert matches(when, make_request(need="J’aime l’informatique"))


@pytest.mark.parametrize(
    ("when", "fields", "expected"),
    [
        ({"channel": ["phone", "email"]}, dict(channel=EMAIL), True),
        ({"channel": ["phone"]}, dict(channel=WEB), False),
        ({"kind": ["learner_question"]}, dict(kind=RequestKind.LEARNER_QUESTION), True),
        ({"kind": ["learner_question"]}, dict(), False),  # an event without a kind is a training request
        ({"kind": ["training_request"]}, dict(), True),
        ({"language": ["nl", "en"]}, dict(language=NL), True),
        ({"language": ["nl"]}, dict(language=FR), False),
        ({"qualification_level": ["none", "primary"]}, dict(qualification_level=QualificationLevel.NONE), True),
        ({"qualification_level": ["none"]}, dict(qualification_level=None), False),
        ({"qualification_level": ["unknown"]}, dict(qualification_level=None), True),
        ({"has_computer": False}, dict(has_computer=False), True),
        ({"has_computer": False}, dict(has_computer=None), False),
        ({"has_computer": True}, dict(has_computer=True), True),
        ({"has_internet": False}, dict(has_internet=False), True),
        ({"has_internet": False}, dict(has_internet=True), False),
        ({"requested_course_kind": ["design_path"]}, dict(requested_course="INDESIGN"), True),
        ({"requested_course_kind": ["design_path"]}, dict(requested_course="EXCEL"), False),
        ({"requested_course_kind": ["design_path"]}, dict(requested_course="NOT-IN-CATALOGUE"), False),
        ({"requested_course": "present"}, dict(requested_course="ANYTHING"), True),
        ({"requested_course": "present"}, dict(requested_course=None), False),
        ({"requested_course": "absent"}, dict(requested_course=None), True),
        ({"partner": ["cite-des-metiers"]}, dict(channel_details={"partner": "cite-des-metiers"}), True),
        ({"partner": ["cite-des-metiers"]}, dict(channel_details={"partner": " CITE-DES-METIERS "}), True),
        ({"partner": ["cite-des-metiers"]}, dict(channel_details={"partner": 3}), False),
        ({"partner": ["cite-des-metiers"]}, dict(channel_details={}), False),
        ({"needs_triage": True}, dict(needs_triage=True), True),
        ({"needs_triage": True}, dict(needs_triage=False), False),
        ({"unemployed_for_months_at_least": 12}, dict(unemployed_since=date(2025, 11, 27)), True),
        ({"unemployed_for_months_at_least": 12}, dict(unemployed_since=date(2025, 11, 28)), False),
        ({"unemployed_for_months_at_least": 12}, dict(unemployed_since=None), False),
        ({"all": [{"channel": ["phone"]}, {"language": ["fr"]}]}, dict(channel=PHONE, language=FR), True),
        ({"all": [{"channel": ["phone"]}, {"language": ["fr"]}]}, dict(channel=PHONE, language=NL), False),
        ({"any": [{"channel": ["phone"]}, {"language": ["fr"]}]}, dict(channel=WEB, language=FR), True),
        ({"any": [{"channel": ["phone"]}, {"language": ["nl"]}]}, dict(channel=WEB, language=FR), False),
        ({"not": {"channel": ["phone"]}}, dict(channel=WEB), True),
        ({"not": {"channel": ["phone"]}}, dict(channel=PHONE), False),
    ],
)
def test_each_condition(when: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    assert matches(when, make_request(**fields)) is expected


def test_digital_divide_open_reads_the_state_given() -> None:
    when = {"digital_divide_open": False}
    assert matches(when, make_request(), CLOSED)
    assert not matches(when, make_request(), OPEN)


def test_unemployment_is_counted_up_to_the_now_given() -> None:
    rules = parse_rules(rule_set(rule("long", {"unemployed_for_months_at_least": 24})))
    request = make_request(unemployed_since=date(2024, 11, 27))
    assert rules.evaluate(request, state=OPEN, now=NOW).rule_id == "long"
    assert rules.evaluate(request, state=OPEN, now=datetime(2026, 11, 26, tzinfo=UTC)).rule_id == "default"
    assert rules.evaluate(request, state=OPEN, now=NOW).matched_conditions == ("unemployed for 24 months",)


def test_any_reports_every_branch_that_held() -> None:
    when = {"any": [{"channel": ["phone"]}, {"language": ["nl"]}, {"has_computer": True}]}
    rules = parse_rules(rule_set(rule("r", when)))
    match = evaluate(make_request(channel=PHONE, language=NL, has_computer=False), rules=rules)
    assert match.matched_conditions == ("channel=phone", "language=nl")


def test_evaluation_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SHIPPED.evaluate(make_request(), state=OPEN, now=datetime(2026, 1, 1))


# --- Load errors, with messages that name the rule -----------------------------------


def shipped_data() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8")))


def load_error(data: Any) -> str:
    with pytest.raises(RuleSetError) as caught:
        parse_rules(data, source="rules.yaml")
    return str(caught.value)


def test_an_unknown_condition_key_names_the_rule_and_the_key() -> None:
    data = shipped_data()
    data["rules"][3]["when"]["any"].append({"has_computr": False})
    message = load_error(data)
    assert "rules.yaml" in message
    assert "rule 'no-equipment-digital-divide'" in message
    assert "unknown condition 'has_computr'" in message
    assert "has_computer" in message  # the known ones are listed


def test_a_channel_this_code_does_not_know_is_a_typo_in_a_rule() -> None:
    data = shipped_data()
    data["rules"].insert(0, rule("by-whatsap", {"channel": ["phone", "whatsap"]}))
    message = load_error(data)
    assert "rule 'by-whatsap'" in message and "unknown channel 'whatsap'" in message


def test_an_unknown_key_on_a_rule_is_an_error() -> None:
    data = shipped_data()
    data["rules"][0]["colour"] = "red"
    assert "rule 'triage-without-contact' (rules[0]): unknown key 'colour'" in load_error(data)


def test_an_unknown_request_kind_in_a_rule_is_an_error() -> None:
    with pytest.raises(RuleSetError):
        parse_rules(rule_set(rule("r", {"kind": ["learner_qestion"]})))


def test_a_condition_with_two_keys_is_an_error() -> None:
    message = load_error(rule_set(rule("two", {"channel": ["phone"], "language": ["fr"]})))
    assert "rule 'two'" in message and "exactly one key" in message and "`all:`" in message


def test_a_missing_default_is_an_error() -> None:
    data = shipped_data()
    del data["default"]
    assert "no `default` rule" in load_error(data)


def test_a_default_with_a_condition_is_an_error() -> None:
    data = shipped_data()
    data["default"]["when"] = {"channel": ["phone"]}
    assert "default rule" in load_error(data) and "no `when`" in load_error(data)


def test_a_rule_without_a_condition_is_an_error() -> None:
    data = shipped_data()
    del data["rules"][2]["when"]
    assert "rule 'career-guidance' (rules[2]): missing key 'when'" in load_error(data)


def test_an_unknown_placeholder_is_an_error() -> None:
    data = shipped_data()
    [named] = [rule for rule in data["rules"] if rule["id"] == "named-online-course"]
    named["explanation"]["nl"] = "Cursus {course_name} via {channel}"
    message = load_error(data)
    assert "rule 'named-online-course'" in message and "explanation.nl" in message
    assert "unknown placeholder {course_name}" in message and "{requested_course}" in message


def test_a_malformed_placeholder_is_an_error() -> None:
    data = shipped_data()
    data["default"]["explanation"]["en"] = "Called back {channel"
    assert "malformed placeholder" in load_error(data)


def test_an_explanation_in_every_language_is_required() -> None:
    data = shipped_data()
    del data["rules"][0]["explanation"]["en"]
    assert "rule 'triage-without-contact' (rules[0]) at explanation: missing key 'en'" in load_error(data)


def test_an_unknown_target_is_an_error() -> None:
    data = shipped_data()
    data["rules"][2]["target"] = "job_centre"
    message = load_error(data)
    assert "rule 'career-guidance' (rules[2]) at target" in message
    assert "'job_centre'" in message and "'cite_des_metiers'" in message


def test_an_unknown_value_in_a_field_test_is_an_error() -> None:
    message = load_error(rule_set(rule("fax", {"channel": ["fax"]})))
    assert "rule 'fax'" in message and "when.channel.0" in message and "'fax'" in message


def test_an_unknown_course_kind_is_an_error() -> None:
    message = load_error(rule_set(rule("cooking", {"requested_course_kind": ["cooking"]})))
    assert "rule 'cooking'" in message and "'cooking'" in message and "'software_path'" in message


def test_a_rule_id_used_twice_is_an_error() -> None:
    message = load_error(rule_set(rule("same", {"channel": ["phone"]}), rule("same", {"channel": ["web"]})))
    assert "rule id 'same' is used twice" in message


def test_bad_priority_weights_are_an_error() -> None:
    message = load_error(rule_set(priority={"qualification": {"none": 0, "higher": 50}}))
    assert "priority" in message and "qualification points must not increase" in message


def test_a_file_that_is_not_yaml_or_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed\n", encoding="utf-8")
    with pytest.raises(RuleSetError, match=r"broken\.yaml: cannot read the rule set"):
        load_rules(broken)
    listed = tmp_path / "listed.yaml"
    listed.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(RuleSetError, match=r"listed\.yaml: a rule set is a mapping"):
        load_rules(listed)
    with pytest.raises(RuleSetError, match=r"missing\.yaml: cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_a_rule_set_file_other_than_the_shipped_one_loads(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_set(rule("by-phone", {"channel": ["phone"]}, "advisors"))), encoding="utf-8")
    rules = load_rules(path)
    assert rules.version == "test"
    assert evaluate(make_request(channel=PHONE), rules=rules).rule_id == "by-phone"
