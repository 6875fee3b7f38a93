"""Which requests of a batch are routed together and which alone (`routing.batches`): pure, so
tested without MongoDB; `tests/integration/test_routing_batches_on_mongodb.py` shows the effects are those of
routing one by one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from routing.batches import offer_order, split_batch
from routing.settings import RoutingSettings
from tests.factories import FIXED_RECEIVED_AT, make_request

pytestmark = pytest.mark.unit


def test_new_requests_are_routed_together_in_the_order_they_came() -> None:
    batch = [make_request() for _ in range(3)]
    split = split_batch(batch, processed=set())
    assert split.together == batch
    assert split.alone == []


def test_a_lone_request_is_a_batch_of_one() -> None:
    request = make_request()
    assert split_batch([request], processed=set()).together == [request]


def test_an_event_delivered_twice_is_routed_together_once_and_its_copy_alone_after() -> None:
    first, other = make_request(), make_request()
    split = split_batch([first, other, first], processed=set())
    assert split.together == [first, other]
    assert split.alone == [first]


def test_an_event_processed_before_is_routed_alone() -> None:
    redelivered, new = make_request(), make_request()
    split = split_batch([redelivered, new], processed={str(redelivered.id)})
    assert split.together == [new]
    assert split.alone == [redelivered]


def test_a_second_event_of_the_same_request_is_routed_alone() -> None:
    first = make_request()
    again = make_request(request_id=first.request_id)
    split = split_batch([first, again], processed=set())
    assert split.together == [first]
    assert split.alone == [again]


def test_a_request_linked_to_another_is_routed_alone_after_the_batch() -> None:
    first = make_request()
    joining = make_request(person_id=first.person_id, linked_request_ids=[first.request_id])
    split = split_batch([first, joining], processed=set())
    assert split.together == [first]
    assert split.alone == [joining]


def test_the_most_urgent_is_offered_first() -> None:
    soon = FIXED_RECEIVED_AT + timedelta(hours=4)
    later = FIXED_RECEIVED_AT + timedelta(hours=48)
    keys = {
        "urgent": offer_order(80, later, FIXED_RECEIVED_AT, "a"),
        "due soon": offer_order(50, soon, FIXED_RECEIVED_AT, "b"),
        "due later": offer_order(50, later, FIXED_RECEIVED_AT, "c"),
        "no promise": offer_order(50, None, FIXED_RECEIVED_AT, "d"),
    }
    assert sorted(keys, key=keys.__getitem__) == ["urgent", "due soon", "due later", "no promise"]


def test_the_batch_bound_and_wait_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROUTING_BATCH_MAX_RECORDS", "ROUTING_BATCH_TIMEOUT_MS"):
        monkeypatch.delenv(name, raising=False)
    assert (RoutingSettings().batch_max_records, RoutingSettings().batch_timeout_ms) == (200, 10)
    monkeypatch.setenv("ROUTING_BATCH_MAX_RECORDS", "1")
    monkeypatch.setenv("ROUTING_BATCH_TIMEOUT_MS", "0")
    assert (RoutingSettings().batch_max_records, RoutingSettings().batch_timeout_ms) == (1, 0)
