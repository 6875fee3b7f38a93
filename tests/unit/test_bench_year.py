"""The `year` figure's workload: a year of requests and what followed each, the same for a seed."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from analytics.readmodel import document_from_record
from bench.year import YEAR_TOPICS, a_year
from schemas import TrainingRequestReceived, TrainingRequestRouted
from services.calendar import BRUSSELS
from services.kafka import wire

pytestmark = pytest.mark.unit


def test_every_request_of_the_year_is_routed_and_its_events_follow_it() -> None:
    events = list(a_year(300, year=2025))
    requests = [e for e in events if isinstance(e, TrainingRequestReceived)]
    assert len(requests) == 300
    assert all(datetime(2025, 1, 1, tzinfo=BRUSSELS) <= r.received_at < datetime(2026, 1, 1, tzinfo=BRUSSELS) for r in requests)
    routed = Counter(e.request_id for e in events if isinstance(e, TrainingRequestRouted))
    assert routed == Counter(r.request_id for r in requests)
    assert {wire(e)[0] for e in events} == {spec.name for spec in YEAR_TOPICS}
    assert len(events) > 2 * len(requests)  # calls, enrolments, breaches, exams


def test_a_seed_gives_the_same_year_and_the_read_model_takes_all_of_it() -> None:
    first, again = list(a_year(50, seed=7)), list(a_year(50, seed=7))
    assert [(type(e), e.time, getattr(e, "request_id", None)) for e in first] == [
        (type(e), e.time, getattr(e, "request_id", None)) for e in again
    ]
    for event in first:
        _, _, value, headers = wire(event)
        assert document_from_record(value, [(k, v.encode()) for k, v in headers.items()])["event"] == type(event).__name__
