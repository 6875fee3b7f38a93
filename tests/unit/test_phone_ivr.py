"""The voice menu's table and what a caller's keys mean: pure, no webhook."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from intake.ivr import MENU, QUESTIONS, facts_from_ivr, months_before
from schemas import Language, QualificationLevel

pytestmark = pytest.mark.unit

CALLED_ON = date(2026, 3, 10)
DOC = Path(__file__).parents[2] / "docs" / "phone-ivr.md"


@pytest.mark.parametrize(
    ("given", "language", "facts"),
    [
        ({}, None, {}),
        ({"language": "2"}, Language.NL, {}),
        ({"language": "en"}, Language.EN, {}),
        ({"qualification": "1"}, None, {"qualification_level": QualificationLevel.NONE}),
        ({"qualification": "4"}, None, {"qualification_level": QualificationLevel.UPPER_SECONDARY}),
        ({"qualification": 5}, None, {"qualification_level": QualificationLevel.HIGHER}),
        ({"qualification": "lower_secondary"}, None, {"qualification_level": QualificationLevel.LOWER_SECONDARY}),
        ({"qualification": " Primary "}, None, {"qualification_level": QualificationLevel.PRIMARY}),
        ({"computer": "2", "internet": "1"}, None, {"has_computer": False, "has_internet": True}),
        ({"computer": "no", "internet": "yes"}, None, {"has_computer": False, "has_internet": True}),
        ({"computer": False, "internet": True}, None, {"has_computer": False, "has_internet": True}),
        ({"job_seeker": "1"}, None, {"unemployed_since": date(2026, 3, 10)}),
        ({"job_seeker": "2"}, None, {"unemployed_since": date(2025, 9, 10)}),
        ({"job_seeker": "3"}, None, {"unemployed_since": date(2025, 3, 10)}),
        ({"job_seeker": "over_24_months"}, None, {"unemployed_since": date(2024, 3, 10)}),
        # "I don't know" (0) is an answer that leaves the fact unknown.
        ({"qualification": "0", "computer": "0", "internet": "unknown", "job_seeker": "0"}, None, {}),
        ({"language": "", "qualification": None, "computer": "  "}, None, {}),
    ],
)
def test_keys_become_facts(given: dict[str, object], language: Language | None, facts: dict[str, object]) -> None:
    result = facts_from_ivr(given, CALLED_ON)

    assert (result.language, dict(result.facts), result.unrecognised) == (language, facts, ())


@pytest.mark.parametrize("key", ["9", "6", "12", "#", "*", "oui", "hangup", "x" * 500, 3.5, [1], {"a": 1}])
def test_a_key_the_menu_does_not_have_leaves_the_fact_unknown(key: object) -> None:
    result = facts_from_ivr({"qualification": key, "computer": "2"}, CALLED_ON)

    assert dict(result.facts) == {"has_computer": False}
    assert result.unrecognised == ("qualification",)


def test_a_job_seeking_band_is_never_overstated_at_the_end_of_a_month() -> None:
    # 31 August less 6 months: 28 February, the last day that month has; no later day would be 6 months.
    assert months_before(date(2026, 8, 31), 6) == date(2026, 2, 28)
    assert months_before(date(2024, 3, 31), 1) == date(2024, 2, 29)
    assert months_before(date(2026, 1, 15), 24) == date(2024, 1, 15)
    assert months_before(date(2026, 1, 15), 0) == date(2026, 1, 15)


def test_each_question_has_distinct_single_digit_keys_and_names_and_three_prompts() -> None:
    for question in MENU:
        keys = [answer.key for answer in question.answers]
        names = [answer.name for answer in question.answers]
        assert all(len(key) == 1 and key.isdigit() for key in keys), question.name
        assert len(set(keys)) == len(keys) and len(set(names)) == len(names), question.name
        assert set(question.prompts) == set(Language), question.name
    assert QUESTIONS["language"].fact is None
    assert {q.fact for q in MENU} - {None} == {"qualification_level", "has_computer", "has_internet", "unemployed_since"}


def test_the_telephony_teams_document_is_the_table() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for question in MENU:
        assert f"`{question.parameter}`" in doc, question.name
        for prompt in question.prompts.values():
            assert prompt in doc, prompt
        for answer in question.answers:
            assert f"| `{answer.key}` | `{answer.name}` | {answer.label} |" in doc, (question.name, answer.key)


def test_a_callback_window_is_the_first_working_day_after_the_call_closures_skipped() -> None:
    from datetime import datetime, time

    from intake.ivr import callback_window
    from services.calendar import BRUSSELS, BrusselsCalendar

    thursday_evening = datetime(2026, 12, 24, 18, 0, tzinfo=BRUSSELS)
    # 25 December is Christmas, 26 December an extra closure, then the weekend: Monday 28 December.
    closed = BrusselsCalendar(extra_closures=[date(2026, 12, 26)])
    start, end = callback_window("morning", thursday_evening, closed)
    assert (start, end) == (datetime(2026, 12, 28, 9, 0, tzinfo=BRUSSELS), datetime(2026, 12, 28, 12, 30, tzinfo=BRUSSELS))
    start, end = callback_window("afternoon", datetime(2026, 3, 10, 8, 0, tzinfo=BRUSSELS), BrusselsCalendar())
    assert (start.date(), start.time(), end.time()) == (date(2026, 3, 11), time(13, 0), time(17, 15))
    assert closed.is_open(start) and end.time() <= closed.closing, "within the line's opening hours"
