"""Priority: the most vulnerable first, parts an advisor can read back, and ageing so that
nobody starves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.priority import (
    DEFAULT_WEIGHTS,
    PriorityWeights,
    QualificationWeights,
    band,
    effective_priority,
    priority_of,
    queue_order,
)
from schemas import Channel, Language, QualificationLevel, TrainingRequestReceived
from tests.factories import make_request

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)


def graduate(**overrides: object) -> TrainingRequestReceived:
    """Someone with every advantage: a web request in French, a degree, equipped, recently unemployed."""
    fields: dict[str, object] = dict(
        channel=Channel.WEB,
        language=Language.FR,
        need="Je voudrais me perfectionner en Excel.",
        qualification_level=QualificationLevel.HIGHER,
        has_computer=True,
        has_internet=True,
        unemployed_since=date(2026, 9, 1),
    )
    fields.update(overrides)
    return make_request(**fields)


def parts(request: TrainingRequestReceived) -> dict[str, int]:
    return dict(priority_of(request, now=NOW).parts)


def test_a_graduate_with_everything_scores_nothing() -> None:
    priority = priority_of(graduate(), now=NOW)
    assert (priority.score, dict(priority.parts)) == (0, {})


def test_a_caller_without_certificate_or_computer_adds_up_part_by_part() -> None:
    request = graduate(channel=Channel.PHONE, qualification_level=QualificationLevel.NONE, has_computer=False)
    priority = priority_of(request, now=NOW)
    assert dict(priority.parts) == {"qualification": 40, "no_computer": 15, "phone": 5, "vulnerable": 30}
    assert priority.score == 90


def test_a_caller_without_certificate_or_computer_outranks_a_graduate() -> None:
    vulnerable = graduate(channel=Channel.PHONE, qualification_level=QualificationLevel.NONE, has_computer=False)
    assert priority_of(vulnerable, now=NOW).score > priority_of(graduate(), now=NOW).score


def test_the_score_is_the_sum_of_its_parts() -> None:
    request = make_request(
        channel=Channel.PHONE,
        language=Language.NL,
        qualification_level=QualificationLevel.PRIMARY,
        has_computer=False,
        has_internet=False,
        unemployed_since=date(2023, 1, 1),
    )
    priority = priority_of(request, now=NOW)
    assert dict(priority.parts) == {
        "qualification": 35,
        "no_computer": 15,
        "no_internet": 10,
        "long_unemployment": 20,
        "language_need": 10,
        "phone": 5,
        "vulnerable": 30,
    }
    assert priority.score == sum(priority.parts.values()) == 125


def test_less_qualified_people_come_first_and_unknown_sits_in_the_middle() -> None:
    order = [
        QualificationLevel.NONE,
        QualificationLevel.PRIMARY,
        QualificationLevel.LOWER_SECONDARY,
        None,
        QualificationLevel.UPPER_SECONDARY,
    ]
    scores = [priority_of(graduate(qualification_level=level), now=NOW).score for level in order]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    assert parts(graduate(qualification_level=QualificationLevel.HIGHER)) == {}
    assert parts(graduate(qualification_level=None)) == {"qualification": 15}


@pytest.mark.parametrize(
    ("has_computer", "has_internet", "expected"),
    [
        (False, True, {"no_computer": 15, "vulnerable": 30}),
        (True, False, {"no_internet": 10, "vulnerable": 30}),
        (False, False, {"no_computer": 15, "no_internet": 10, "vulnerable": 30}),
        (None, None, {}),  # unknown is not "without"
    ],
)
def test_equipment(has_computer: bool | None, has_internet: bool | None, expected: dict[str, int]) -> None:
    assert parts(graduate(has_computer=has_computer, has_internet=has_internet)) == expected


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (date(2025, 11, 28), {}),  # 11 months and some days
        (date(2025, 11, 27), {"long_unemployment": 10}),  # 12 months to the day
        (date(2024, 11, 28), {"long_unemployment": 10}),
        (date(2024, 11, 27), {"long_unemployment": 20}),  # 24 months: more, not added
        (date(2015, 1, 1), {"long_unemployment": 20}),
        (date(2027, 1, 1), {}),  # in the future: a data error, not a priority
        (None, {}),
    ],
)
def test_long_unemployment(since: date | None, expected: dict[str, int]) -> None:
    assert parts(graduate(unemployed_since=since)) == expected


def test_unemployment_is_counted_to_the_now_given() -> None:
    request = graduate(unemployed_since=date(2025, 11, 27))
    assert priority_of(request, now=NOW).parts == {"long_unemployment": 10}
    assert priority_of(request, now=NOW - timedelta(days=1)).parts == {}


@pytest.mark.parametrize(
    ("language", "need"),
    [
        (Language.FR, "Je voudrais apprendre le français pour trouver du travail."),
        (Language.FR, "Je cherche des cours de néerlandais."),
        (Language.FR, "Un cours de FLE, svp."),
        (Language.NL, "Ik wil Nederlands leren."),  # served in Dutch, and wants Dutch: one part
        (Language.NL, "Ik wil een opleiding."),
        (Language.EN, "I want to learn French."),
        (Language.EN, "Any training."),
    ],
)
def test_language_needs(language: Language, need: str) -> None:
    assert parts(graduate(language=language, need=need)) == {"language_need": 10}


def test_no_language_need_for_a_french_speaker_with_another_need() -> None:
    assert parts(graduate(need="Je parle français et je veux apprendre Excel.")) == {}


def test_callers_get_a_small_bump() -> None:
    assert parts(graduate(channel=Channel.PHONE)) == {"phone": 5}
    assert parts(graduate(channel=Channel.EMAIL)) == {}


def test_weights_are_data() -> None:
    weights = PriorityWeights(no_computer=50, phone=0, vulnerable=40, main_language=Language.NL)
    request = graduate(channel=Channel.PHONE, has_computer=False)
    assert dict(priority_of(request, now=NOW, weights=weights).parts) == {
        "no_computer": 50,
        "language_need": 10,
        "vulnerable": 40,
    }


@pytest.mark.parametrize(
    "vulnerable",
    [
        {"qualification_level": QualificationLevel.NONE},
        {"qualification_level": QualificationLevel.LOWER_SECONDARY},
        {"qualification_level": QualificationLevel.UPPER_SECONDARY, "has_computer": False},
        {"qualification_level": QualificationLevel.HIGHER, "has_internet": False},
        {"has_computer": False},
    ],
)
def test_the_small_parts_never_rank_anyone_above_a_vulnerable_person(vulnerable: dict[str, object]) -> None:
    # The seed's particular attention: nothing the others can add up besides unemployment - an unknown
    # qualification, a language need, a phone call - outranks it (the day at the call centre's case).
    others = make_request(channel=Channel.PHONE, language=Language.NL, need="Je veux apprendre le français.")
    person = make_request(channel=Channel.WEB, language=Language.FR, need="Une formation.", **vulnerable)
    assert priority_of(person, now=NOW).score > priority_of(others, now=NOW).score


def test_a_particular_attention_the_small_parts_could_outweigh_is_refused() -> None:
    with pytest.raises(ValidationError, match="must exceed"):
        PriorityWeights(vulnerable=5)


def test_weights_that_would_favour_the_most_qualified_are_refused() -> None:
    with pytest.raises(ValidationError, match="must not increase"):
        QualificationWeights(none=0, higher=10)
    with pytest.raises(ValidationError, match="unemployed_24_months"):
        PriorityWeights(unemployed_12_months=30, unemployed_24_months=20)
    with pytest.raises(ValidationError):
        PriorityWeights(no_computer=-5)


# --- Ageing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waiting", "cap", "expected"),
    [
        (timedelta(0), 100, 10),
        (timedelta(minutes=29), 100, 10),
        (timedelta(minutes=30), 100, 11),
        (timedelta(hours=1), 100, 12),
        (timedelta(hours=10), 100, 30),
        (timedelta(hours=60), 100, 110),  # capped bonus: +100
        (timedelta(hours=60), None, 130),
        (timedelta(hours=-3), 100, 10),  # clock skew is no waiting
    ],
)
def test_effective_priority_rises_with_waiting_up_to_the_cap(waiting: timedelta, cap: int | None, expected: int) -> None:
    assert effective_priority(10, waiting, per_hour=2.0, cap=cap) == expected


@settings(database=None)
@given(
    base=st.integers(0, 200),
    earlier=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    extra=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    per_hour=st.floats(0, 10),
    cap=st.none() | st.integers(0, 500),
)
def test_effective_priority_never_falls_as_time_passes(
    base: int, earlier: timedelta, extra: timedelta, per_hour: float, cap: int | None
) -> None:
    before = effective_priority(base, earlier, per_hour=per_hour, cap=cap)
    after = effective_priority(base, earlier + extra, per_hour=per_hour, cap=cap)
    assert base <= before <= after
    if cap is not None:
        assert after <= base + cap


def test_an_old_low_priority_request_overtakes_a_fresh_high_one_after_enough_hours() -> None:
    low = priority_of(graduate(), now=NOW).score
    high = priority_of(
        make_request(channel=Channel.PHONE, qualification_level=QualificationLevel.NONE, has_computer=False), now=NOW
    ).score
    assert (low, high) == (0, 90)

    def first_in_queue(low_waited: timedelta) -> str:
        low_received = NOW - low_waited
        queue = {
            "low": queue_order(low, waiting_since=low_received, deadline=low_received + timedelta(hours=48), now=NOW),
            "high": queue_order(high, waiting_since=NOW, deadline=NOW + timedelta(hours=48), now=NOW),
        }
        return min(queue, key=queue.__getitem__)

    assert first_in_queue(timedelta(hours=1)) == "high"
    assert first_in_queue(timedelta(hours=44)) == "high"  # 0 + 88 < 90
    assert first_in_queue(timedelta(hours=45)) == "low"  # 0 + 90 = 90, and an earlier deadline
    assert first_in_queue(timedelta(hours=46)) == "low"


def test_nobody_starves_even_behind_the_highest_possible_score() -> None:
    top = sum(
        (
            DEFAULT_WEIGHTS.qualification.none,
            DEFAULT_WEIGHTS.no_computer,
            DEFAULT_WEIGHTS.no_internet,
            DEFAULT_WEIGHTS.unemployed_24_months,
            DEFAULT_WEIGHTS.language_need,
            DEFAULT_WEIGHTS.phone,
            DEFAULT_WEIGHTS.vulnerable,
        )
    )
    assert DEFAULT_WEIGHTS.ageing_cap is not None and DEFAULT_WEIGHTS.ageing_cap >= top
    waited = timedelta(hours=top / DEFAULT_WEIGHTS.ageing_per_hour)
    aged = effective_priority(0, waited, per_hour=DEFAULT_WEIGHTS.ageing_per_hour, cap=DEFAULT_WEIGHTS.ageing_cap)
    assert aged >= top


def test_equal_effective_priorities_are_ordered_by_deadline() -> None:
    soon = queue_order(40, waiting_since=NOW, deadline=NOW + timedelta(hours=2), now=NOW)
    later = queue_order(40, waiting_since=NOW, deadline=NOW + timedelta(hours=20), now=NOW)
    assert sorted([later, soon]) == [soon, later]


def test_a_request_past_its_deadline_heads_the_queue_whatever_its_priority() -> None:
    overdue = queue_order(0, waiting_since=NOW - timedelta(hours=3), deadline=NOW - timedelta(minutes=1), now=NOW)
    urgent = queue_order(100, waiting_since=NOW, deadline=NOW + timedelta(hours=1), now=NOW)
    no_promise = queue_order(100, waiting_since=NOW - timedelta(days=9), deadline=None, now=NOW)
    assert sorted([no_promise, urgent, overdue]) == [overdue, no_promise, urgent]


def test_requests_past_their_deadline_keep_priority_order_among_themselves() -> None:
    vulnerable = queue_order(60, waiting_since=NOW - timedelta(days=3), deadline=NOW - timedelta(days=1), now=NOW)
    graduate = queue_order(0, waiting_since=NOW - timedelta(days=4), deadline=NOW - timedelta(days=2), now=NOW)
    # Ageing is capped at 100: both waited long enough to reach it, so the score decides.
    assert sorted([graduate, vulnerable]) == [vulnerable, graduate]


# --- Bands -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0, "low"), (24, "low"), (25, "medium"), (49, "medium"), (50, "high"), (100, "high")],
)
def test_bands(score: int, expected: str) -> None:
    assert band(score) == expected


def test_bands_follow_the_weights() -> None:
    weights = PriorityWeights(high_band_from=80, medium_band_from=10)
    assert [band(s, weights=weights) for s in (9, 10, 79, 80)] == ["low", "medium", "medium", "high"]
