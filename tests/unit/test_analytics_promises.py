"""Each request against its own callback promise (`analytics.promises`): the outcome of one promise,
and what the read-model documents say of it (the first deadline, redirects, joined requests,
routing's recorded breaches, documents read without timezones)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.promises import JOINS_OPEN_REQUEST, PromiseFacts, judge, read_promises
from services.calendar import BRUSSELS

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=BRUSSELS)  # a Monday
DEADLINE = T0 + timedelta(hours=48)
HOUR = timedelta(hours=1)


def facts(reached: datetime | None = None, *, deadline: datetime | None = DEADLINE, recorded: bool = False) -> PromiseFacts:
    return PromiseFacts(received_at=T0, deadline=deadline, reached_at=reached, breach_recorded=recorded)


@pytest.mark.parametrize(
    ("promise", "as_of", "outcome"),
    [
        (facts(T0 + HOUR), DEADLINE + HOUR, "met"),
        (facts(DEADLINE), DEADLINE + HOUR, "met"),  # the deadline itself is in time
        (facts(DEADLINE + HOUR), DEADLINE + 2 * HOUR, "late"),  # reached, but after the deadline
        (facts(), DEADLINE + HOUR, "late"),  # never reached, deadline past: the timer had not fired yet
        (facts(), DEADLINE, "pending"),  # not past its own instant
        (facts(), T0 + HOUR, "pending"),
        (facts(), None, "pending"),  # no time known: nothing is late by the reading
        # Routing's clock decides: its recorded breach stands even where the stamps say "in time".
        (facts(T0 + HOUR, recorded=True), DEADLINE + HOUR, "late"),
        (facts(recorded=True), T0 + HOUR, "late"),
        # No promise: never late, however long nobody called.
        (facts(T0 + timedelta(days=3), deadline=None), T0 + timedelta(days=9), "no_promise"),
        (facts(deadline=None), T0 + timedelta(days=9), "no_promise"),
    ],
)
def test_one_promise_judged_as_of_the_streams_time(promise: PromiseFacts, as_of: datetime | None, outcome: str) -> None:
    assert judge(promise, as_of) == outcome


def test_judging_reads_instants_in_any_timezone() -> None:
    in_utc = facts(DEADLINE.astimezone(UTC), deadline=DEADLINE.astimezone(UTC))
    assert judge(in_utc, DEADLINE.astimezone(BRUSSELS) + HOUR) == "met"


# --- read-model documents -------------------------------------------------------------------


def doc(event: str, request_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"_id": str(uuid.uuid4()), "event": event, "time": at, "request_id": request_id, **fields}


def received(request_id: str, at: datetime = T0, *linked: str) -> dict[str, Any]:
    return doc("TrainingRequestReceived", request_id, at, received_at=at, linked_request_ids=list(linked))


def routed(request_id: str, at: datetime, deadline: datetime | None, rule_id: str = "default") -> dict[str, Any]:
    fields = {"rule_id": rule_id, **({"callback_deadline": deadline} if deadline else {})}
    return doc("TrainingRequestRouted", request_id, at, **fields)


def called(request_id: str, at: datetime, outcome: str = "advice_given") -> dict[str, Any]:
    return doc("ContactAttempted", request_id, at, outcome=outcome)


def test_the_promise_is_the_first_deadline_routing_announced_and_a_redirect_keeps_it() -> None:
    documents = [
        received("r"),
        routed("r", T0, DEADLINE),
        called("r", T0 + HOUR, "redirected"),
        routed("r", T0 + HOUR, None, rule_id="desk-redirect"),  # announced again, without a deadline
        routed("r", T0 + 2 * HOUR, DEADLINE + timedelta(days=5)),  # a later deadline does not move the promise
    ]
    assert read_promises(documents)["r"] == PromiseFacts(
        received_at=T0.astimezone(UTC), deadline=DEADLINE.astimezone(UTC), reached_at=(T0 + HOUR).astimezone(UTC)
    )


def test_a_request_routed_without_a_deadline_has_no_promise_whatever_its_wait() -> None:
    documents = [received("web"), routed("web", T0, None), called("web", T0 + timedelta(days=3))]
    promise = read_promises(documents)["web"]
    assert promise.deadline is None and judge(promise, T0 + timedelta(days=4)) == "no_promise"


def test_unanswered_calls_do_not_reach_the_person() -> None:
    documents = [
        received("r"),
        routed("r", T0, DEADLINE),
        called("r", T0 + HOUR, "no_answer"),
        called("r", DEADLINE + HOUR, "advice_given"),
    ]
    promise = read_promises(documents)["r"]
    assert promise.reached_at == (DEADLINE + HOUR).astimezone(UTC) and judge(promise, DEADLINE + 2 * HOUR) == "late"


def test_a_recorded_breach_is_read_with_its_deadline_even_when_the_routed_event_is_outside_the_window() -> None:
    documents = [received("r"), doc("CallbackSlaBreached", "r", T0 + timedelta(minutes=5), deadline=DEADLINE)]
    promise = read_promises(documents)["r"]
    assert (promise.deadline, promise.breach_recorded) == (DEADLINE.astimezone(UTC), True)
    assert judge(promise, T0 + timedelta(minutes=5)) == "late"


def test_a_joined_request_is_reached_by_the_call_on_the_request_it_joined() -> None:
    documents = [
        received("first"),
        routed("first", T0, DEADLINE),
        received("second", T0 + HOUR, "first"),
        routed("second", T0 + HOUR, DEADLINE + HOUR, rule_id=JOINS_OPEN_REQUEST),
        called("first", T0 + 2 * HOUR),
    ]
    promises = read_promises(documents)
    assert promises["second"].reached_at == promises["first"].reached_at == (T0 + 2 * HOUR).astimezone(UTC)
    assert judge(promises["second"], DEADLINE + 2 * HOUR) == "met"


def test_a_linked_request_that_did_not_join_waits_for_its_own_call() -> None:
    documents = [
        received("first"),
        routed("first", T0, DEADLINE),
        called("first", T0 + HOUR),  # closed before the second came in: nothing to join
        received("second", T0 + 2 * HOUR, "first"),
        routed("second", T0 + 2 * HOUR, DEADLINE + 2 * HOUR),
    ]
    assert read_promises(documents)["second"].reached_at is None


def test_naive_instants_are_utc_as_bson_dates_are_and_a_call_before_the_request_counts_on_receipt() -> None:
    naive = T0.astimezone(UTC).replace(tzinfo=None)
    documents = [
        received("r", naive),
        routed("r", naive, DEADLINE.astimezone(UTC).replace(tzinfo=None)),
        called("r", naive - timedelta(minutes=2)),  # intake's clock ahead of routing's
    ]
    promise = read_promises(documents)["r"]
    assert promise.reached_at == promise.received_at == T0.astimezone(UTC)
    assert judge(promise, DEADLINE) == "met"


def test_a_request_closed_without_reaching_the_person_settles_its_promise_as_routing_does() -> None:
    # Three unanswered calls and the closing before the deadline: the desk called within the promise.
    in_time = [
        received("r"),
        routed("r", T0, DEADLINE),
        *(called("r", T0 + n * HOUR, "no_answer") for n in (1, 2, 3)),
        doc("TrainingRequestClosed", "r", T0 + 3 * HOUR, disposition="unreachable", attempts=3),
    ]
    promise = read_promises(in_time)["r"]
    assert promise.reached_at is None and promise.closed_at == (T0 + 3 * HOUR).astimezone(UTC)
    assert judge(promise, DEADLINE + timedelta(days=3)) == "met"
    # A wrong number reaches nobody; closed after the deadline, the promise was missed.
    late = [
        received("w"),
        routed("w", T0, DEADLINE),
        called("w", DEADLINE + HOUR, "wrong_number"),
        doc("TrainingRequestClosed", "w", DEADLINE + HOUR, disposition="wrong_number", attempts=1),
    ]
    promise = read_promises(late)["w"]
    assert promise.reached_at is None and judge(promise, DEADLINE + 2 * HOUR) == "late"


# --- a window the person chose ---------------------------------------------------------------

CHOSEN_END = DEADLINE + timedelta(days=1)


def chose(request_id: str, at: datetime, end: datetime) -> dict[str, Any]:
    return doc("CallbackSlotChosen", request_id, at, slot_start=end - 3 * HOUR, slot_end=end, chosen_through="status_page")


@pytest.mark.parametrize(
    ("reached", "recorded", "as_of", "outcome"),
    [
        (T0 + HOUR, False, DEADLINE + HOUR, "met"),  # called within the promise all the same
        (DEADLINE + HOUR, False, DEADLINE + 2 * HOUR, "by_choice"),  # after the promise, within the window
        (CHOSEN_END + HOUR, False, CHOSEN_END + 2 * HOUR, "choice_missed"),
        (None, True, CHOSEN_END + HOUR, "choice_missed"),  # routing's breach of the moved deadline
        (None, False, CHOSEN_END + HOUR, "choice_missed"),
        (None, False, DEADLINE + HOUR, "pending"),  # past the promise, not the window: not late
    ],
)
def test_a_window_chosen_beyond_the_promise_is_judged_apart_from_breaches(
    reached: datetime | None, recorded: bool, as_of: datetime, outcome: str
) -> None:
    promise = PromiseFacts(
        received_at=T0, deadline=DEADLINE, reached_at=reached, breach_recorded=recorded, chosen_deadline=CHOSEN_END
    )
    assert judge(promise, as_of) == outcome


def test_the_window_that_counts_is_the_last_chosen_before_the_promise_passed_and_only_beyond_it() -> None:
    documents = [
        received("r-1"),
        routed("r-1", T0, DEADLINE),
        chose("r-1", T0 + HOUR, CHOSEN_END),
        chose("r-1", T0 + 2 * HOUR, CHOSEN_END + timedelta(days=1)),  # a later choice replaces it
        received("r-2"),
        routed("r-2", T0, DEADLINE),
        chose("r-2", T0 + HOUR, DEADLINE - HOUR),  # within the promise: changes nothing
        received("r-3"),
        routed("r-3", T0, DEADLINE),
        chose("r-3", DEADLINE + HOUR, CHOSEN_END),  # after the promise passed: too late to move it
    ]
    found = read_promises(documents)
    assert found["r-1"].chosen_deadline == CHOSEN_END + timedelta(days=1)
    assert found["r-2"].chosen_deadline is None and found["r-3"].chosen_deadline is None
