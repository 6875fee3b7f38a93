"""Learner coaching: a learner already enrolled asks a question; it goes to BF espaces numériques
under its own promise (one working day by default), on every channel."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from pydantic import ValidationError

from routing.decision import decide_route
from routing.rules import load_rules
from routing.sla import KindPromise, SlaPolicy, callback_deadline, due_at
from schemas import Channel, RequestKind, Target, TrainingRequestReceived
from services.calendar import BRUSSELS, BrusselsCalendar
from tests.factories import make_request

pytestmark = pytest.mark.unit

CAL = BrusselsCalendar()
WORKING = SlaPolicy(mode="working_days")
QUESTION = RequestKind.LEARNER_QUESTION


def bxl(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BRUSSELS)


def question_deadline(received_at: datetime, policy: SlaPolicy = WORKING, channel: Channel = Channel.EMAIL) -> datetime:
    result = callback_deadline(received_at, policy, CAL, channel=channel, kind=QUESTION)
    assert result is not None
    return result


def test_the_default_policy_promises_a_learner_question_one_working_day() -> None:
    own = WORKING.kinds[QUESTION]
    assert own.promise == timedelta(hours=24)
    # The shipped rule set says the same.
    assert load_rules().sla.kinds[QUESTION].promise == timedelta(hours=24)


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.WEB, Channel.PHONE])
def test_a_learner_question_is_due_one_working_day_later_on_every_channel(channel: Channel) -> None:
    # Tuesday 10:00 -> Wednesday 10:00: 8 h 45 of opening time.
    assert question_deadline(bxl(2026, 3, 10, 10), channel=channel) == bxl(2026, 3, 11, 10)


def test_a_learner_question_on_friday_afternoon_is_due_on_monday() -> None:
    # 1 h 15 on Friday (16:00-17:15), 7 h 30 on Monday (08:30-16:00).
    assert question_deadline(bxl(2026, 3, 13, 16)) == bxl(2026, 3, 16, 16)


def test_a_learner_question_skips_the_weekend_and_a_public_holiday() -> None:
    easter_monday = date(2026, 4, 6)
    assert not CAL.is_working_day(easter_monday)
    assert question_deadline(bxl(2026, 4, 3, 16)) == bxl(2026, 4, 7, 16)


def test_a_learner_question_at_the_weekend_counts_from_the_next_opening() -> None:
    assert question_deadline(bxl(2026, 3, 14, 11)) == bxl(2026, 3, 16, 17, 15)


def test_a_training_request_keeps_the_main_promise() -> None:
    received = bxl(2026, 3, 10, 10)
    assert callback_deadline(received, WORKING, CAL, channel=Channel.EMAIL) is None
    assert callback_deadline(received, WORKING, CAL, channel=Channel.PHONE) == bxl(2026, 3, 12, 10)


def test_in_calendar_mode_the_learner_promise_is_elapsed_time() -> None:
    policy = SlaPolicy(mode="calendar")
    assert question_deadline(bxl(2026, 3, 13, 16), policy) == bxl(2026, 3, 14, 16)


def test_callback_due_warns_with_the_kinds_own_due_before() -> None:
    received = bxl(2026, 3, 10, 10)
    deadline = question_deadline(received)
    # Two hours of opening time before Wednesday 10:00: Tuesday 16:45.
    assert due_at(deadline, WORKING, CAL, received_at=received, kind=QUESTION) == bxl(2026, 3, 10, 16, 45)
    # Without its own due_before, the policy's (4 h): Tuesday 14:45.
    policy = SlaPolicy(mode="working_days", kinds={QUESTION: KindPromise(promise=timedelta(hours=24))})
    assert due_at(deadline, policy, CAL, received_at=received, kind=QUESTION) == bxl(2026, 3, 10, 14, 45)


def test_the_policy_governing_a_kind() -> None:
    governing = WORKING.for_kind(QUESTION)
    assert governing.promise == timedelta(hours=24) and governing.due_before == timedelta(hours=2)
    assert governing.covers(Channel.WEB)
    assert WORKING.for_kind(RequestKind.TRAINING_REQUEST) is WORKING


def test_kind_promises_from_configuration() -> None:
    policy = SlaPolicy.model_validate(
        {"mode": "working_days", "kinds": {"learner_question": {"promise": "PT12H", "due_before": "PT1H"}}}
    )
    # Half a working day: 4 h 22 min 30 s of opening time from Tuesday 10:00.
    assert question_deadline(bxl(2026, 3, 10, 10), policy) == bxl(2026, 3, 10, 14, 22) + timedelta(seconds=30)


def test_without_kind_promises_a_learner_question_is_like_any_request() -> None:
    policy = SlaPolicy(mode="working_days", kinds={})
    received = bxl(2026, 3, 10, 10)
    assert callback_deadline(received, policy, CAL, channel=Channel.EMAIL, kind=QUESTION) is None
    assert callback_deadline(received, policy, CAL, channel=Channel.PHONE, kind=QUESTION) == bxl(2026, 3, 12, 10)


@pytest.mark.parametrize(
    "kinds",
    [
        {"learner_qestion": {"promise": "PT24H"}},
        {"learner_question": {"promise": "PT0S"}},
        {"learner_question": {"promise": "PT24H", "due_before": "-PT1H"}},
        {"learner_question": {"promise": "PT24H", "working_days": 1}},
        {"learner_question": {}},
    ],
)
def test_kind_promises_reject_nonsense(kinds: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SlaPolicy.model_validate({"mode": "working_days", "kinds": kinds})


# --- routing -------------------------------------------------------------------------


def question(**fields: object) -> TrainingRequestReceived:
    return make_request(kind=QUESTION, **fields)


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.WEB])
def test_a_learner_question_goes_to_espaces_numeriques(channel: Channel) -> None:
    decision = decide_route(question(channel=channel, need="Je ne trouve pas le module 3 de ma formation."))
    assert (decision.target, decision.rule_id) == (Target.ESPACES_NUMERIQUES, "learner-question")
    assert decision.matched_conditions == ("kind=learner_question",)
    assert "un jour ouvrable" in decision.explanation_fr


def test_an_old_event_without_a_kind_is_a_training_request() -> None:
    payload = make_request().model_dump(mode="json")
    payload.pop("kind")
    assert TrainingRequestReceived.model_validate(payload).kind is RequestKind.TRAINING_REQUEST
