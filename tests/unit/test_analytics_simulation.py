"""The queue simulation of the what-if analysis, on cases small enough to check by hand.

March 2026: Monday 2 is a plain working day, Friday 6 is followed by a weekend; Easter Monday is
6 April. The line is open 08:30-17:15 (Brussels).
"""

from __future__ import annotations

import heapq
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.simulation import QueueModel, SimRequest, _start_of_contact, simulate, sla_summary
from routing.priority import DEFAULT_WEIGHTS, queue_order
from routing.sla import callback_deadline
from schemas import Channel
from services.calendar import BRUSSELS

pytestmark = pytest.mark.unit

TEAM = "espaces_numeriques"


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BRUSSELS)


def request(rid: str, received: datetime, priority: int = 0, channel: Channel = Channel.PHONE) -> SimRequest:
    return SimRequest(rid, TEAM, priority, received, channel)


NO_AGEING = DEFAULT_WEIGHTS.model_copy(update={"ageing_per_hour": 0.0})


def model(people: int = 1, minutes: int = 20, **kwargs: Any) -> QueueModel:
    return QueueModel(team_sizes={TEAM: people}, handling_time=timedelta(minutes=minutes), **kwargs)


def local(contacts: dict[str, datetime | None]) -> dict[str, datetime | None]:
    return {rid: (c.astimezone(BRUSSELS) if c else None) for rid, c in contacts.items()}


def test_one_worker_two_requests_one_after_the_other() -> None:
    contacts = simulate([request("a", at(2, 9, 0)), request("b", at(2, 9, 5))], model())
    # b waits until a's 20 minutes are over.
    assert local(contacts) == {"a": at(2, 9, 0), "b": at(2, 9, 20)}


def test_the_handling_time_paces_a_single_worker() -> None:
    requests = [request(name, at(2, 9, 0)) for name in "abc"]
    contacts = simulate(requests, model(minutes=60))
    assert local(contacts) == {"a": at(2, 9), "b": at(2, 10), "c": at(2, 11)}


def test_two_workers_serve_in_parallel() -> None:
    requests = [request(name, at(2, 9, 0)) for name in "abc"]
    assert local(simulate(requests, model(people=2))) == {"a": at(2, 9), "b": at(2, 9), "c": at(2, 9, 20)}


def test_nobody_calls_outside_opening_hours() -> None:
    contacts = simulate([request("evening", at(2, 18, 0)), request("dawn", at(4, 6, 45))], model(people=2))
    assert local(contacts) == {"evening": at(3, 8, 30), "dawn": at(4, 8, 30)}


def test_a_contact_that_would_run_past_closing_waits_for_the_next_working_day() -> None:
    requests = [
        request("fits", at(6, 16, 55)),  # 16:55 + 20 min = 17:15, the closing itself: allowed
        request("too-late", at(6, 17, 0)),  # Friday 17:00 + 20 min > 17:15: Monday morning
    ]
    contacts = simulate(requests, model(people=2))
    assert local(contacts) == {"fits": at(6, 16, 55), "too-late": at(9, 8, 30)}


def test_the_weekend_and_a_public_holiday_are_skipped() -> None:
    # Friday 3 April 2026, then the weekend and Easter Monday (6 April).
    contacts = simulate([request("easter", at(3, 17, 5, month=4))], model())
    assert local(contacts) == {"easter": at(7, 8, 30, month=4)}


def test_the_highest_effective_priority_goes_first() -> None:
    requests = [request("low", at(2, 7, 0), priority=10), request("high", at(2, 7, 30), priority=20)]
    # At 08:30 low has waited 1 h 30 (+3 points) and high 1 h (+2): 13 against 22.
    assert local(simulate(requests, model())) == {"high": at(2, 8, 30), "low": at(2, 8, 50)}


def test_ageing_lets_an_old_low_priority_request_overtake_a_fresh_one() -> None:
    long_contact = 8 * 60  # fits in a day of 8 h 45; a second one does not fit the same day
    requests = [
        request("first", at(2, 8, 30), priority=0),
        request("old", at(2, 8, 31), priority=0),
        request("fresh", at(3, 8, 0), priority=10),
    ]
    # The worker is busy until 16:30 on Monday, so the next contact starts Tuesday 08:30. Then old
    # has waited about 24 hours: 0 + 47 points against fresh's 10 + 1.
    assert local(simulate(requests, model(minutes=long_contact)))["old"] == at(3, 8, 30)
    # Without ageing the fresh, higher-priority request goes first.
    no_ageing = simulate(requests, model(minutes=long_contact, weights=NO_AGEING))
    assert local(no_ageing)["fresh"] == at(3, 8, 30)


def test_equal_priorities_go_by_deadline_then_arrival_then_id() -> None:
    requests = [request("b", at(2, 7, 0)), request("a", at(2, 7, 0)), request("c", at(2, 6, 0))]
    # c came first (earlier deadline); a and b tie on everything but their ids.
    contacts = local(simulate(requests, model(weights=NO_AGEING)))
    assert contacts == {"c": at(2, 8, 30), "a": at(2, 8, 50), "b": at(2, 9, 10)}


def test_a_worker_never_calls_before_the_request_arrives() -> None:
    # Worker 1 takes "first" and is free again at 08:50. Worker 2, idle, jumps to 10:00 and lets
    # "x" and "y" in; worker 1 must still wait for them to arrive rather than call at 08:50.
    requests = [request("first", at(2, 8, 30)), request("x", at(2, 10, 0)), request("y", at(2, 10, 0))]
    assert local(simulate(requests, model(people=2))) == {"first": at(2, 8, 30), "x": at(2, 10), "y": at(2, 10)}


def test_a_team_with_nobody_contacts_nobody_and_everyone_breaches() -> None:
    requests = [request("a", at(2, 9))]
    contacts = simulate(requests, QueueModel(team_sizes={}))
    assert contacts == {"a": None}
    summary = sla_summary(requests, contacts, mode="calendar")
    assert (summary.met, summary.breached, summary.compliance) == (0, 1, 0.0)


def test_the_same_inputs_give_the_same_contacts_in_any_order() -> None:
    rng = random.Random(7)
    requests = [
        request(f"r{i:03d}", at(2, 8) + timedelta(minutes=rng.randrange(0, 5 * 24 * 60)), priority=rng.choice([0, 15, 40]))
        for i in range(200)
    ]
    first = simulate(requests, model(people=3))
    shuffled = list(requests)
    rng.shuffle(shuffled)
    assert simulate(shuffled, model(people=3)) == first
    assert all(c is not None and c >= r.received_at for r in requests if (c := first[r.request_id]))


def test_compliance_in_calendar_and_working_days_modes() -> None:
    friday = request("friday", at(6, 10, 0))
    contacts = {"friday": at(9, 9, 0).astimezone(UTC)}  # Monday 09:00
    # 71 hours of the clock: breached. Two working days of opening time run to Tuesday 10:00: met.
    assert sla_summary([friday], contacts, mode="calendar").breached == 1
    assert sla_summary([friday], contacts, mode="working_days").met == 1


def test_channels_without_the_promise_are_not_measured() -> None:
    requests = [request("call", at(2, 9)), request("mail", at(2, 9), channel=Channel.EMAIL)]
    contacts = simulate(requests, model())
    summary = sla_summary(requests, contacts, mode="working_days", channels=[Channel.PHONE])
    assert (summary.met, summary.breached, summary.not_covered) == (1, 0, 1)


def test_more_people_never_make_a_loaded_month_worse() -> None:
    rng = random.Random(11)
    requests = [request(f"r{i}", at(2, 8) + timedelta(minutes=rng.randrange(0, 26 * 24 * 60))) for i in range(600)]
    compliance: dict[int, float] = {}
    for people in (6, 8):
        contacts = simulate(requests, model(people=people, minutes=90))
        share = sla_summary(requests, contacts, mode="working_days").compliance
        assert share is not None
        compliance[people] = share
    assert compliance[8] > compliance[6]


def test_a_contact_longer_than_a_working_day_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        model(minutes=9 * 60)


def reference_contacts(requests: list[SimRequest], size: int, m: QueueModel) -> dict[str, datetime | None]:
    """The simulation as first written: every waiting request compared with every other at each
    contact (a year's backlog made that quadratic), plainly the queue order of the model."""
    arrivals = sorted(requests, key=lambda r: (r.received_at.astimezone(UTC), r.request_id))
    policy = m.ordering_policy()
    deadlines = {r.request_id: callback_deadline(r.received_at, policy, m.calendar, channel=r.channel) for r in arrivals}
    received = {r.request_id: r.received_at.astimezone(UTC) for r in arrivals}
    workers = [(received[arrivals[0].request_id], n) for n in range(size)]
    heapq.heapify(workers)
    contacts: dict[str, datetime | None] = {}
    waiting: list[SimRequest] = []
    next_arrival = 0

    def admit(until: datetime) -> None:
        nonlocal next_arrival
        while next_arrival < len(arrivals) and received[arrivals[next_arrival].request_id] <= until:
            waiting.append(arrivals[next_arrival])
            next_arrival += 1

    while next_arrival < len(arrivals) or waiting:
        free_from, worker = heapq.heappop(workers)
        at = _start_of_contact(free_from, m)
        admit(at)
        candidates = [r for r in waiting if received[r.request_id] <= at]
        if not candidates:
            upcoming = [received[r.request_id] for r in waiting]
            if next_arrival < len(arrivals):
                upcoming.append(received[arrivals[next_arrival].request_id])
            at = _start_of_contact(max(free_from, min(upcoming)), m)
            admit(at)
            candidates = [r for r in waiting if received[r.request_id] <= at]
        chosen = min(
            candidates,
            key=lambda r: queue_order(
                r.priority,
                waiting_since=received[r.request_id],
                deadline=deadlines[r.request_id],
                now=at,
                weights=m.weights,
                tiebreak=r.request_id,
            ),
        )
        waiting.remove(chosen)
        contacts[chosen.request_id] = at
        heapq.heappush(workers, (at + m.handling_time, worker))
    return contacts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_long_backlog_is_served_in_the_queue_order_of_every_waiting_request(seed: int) -> None:
    # Three weeks of arrivals for one or two people: the queue grows to hundreds, ageing and
    # overdue deadlines reorder it, and the first of the lines kept by priority must still be
    # the first of all the waiting requests, contact after contact.
    rng = random.Random(seed)
    requests = [
        request(
            f"r{n:04d}",
            at(2, 7, 0) + timedelta(minutes=rng.randrange(60 * 24 * 20)),
            priority=rng.choice([0, 0, 10, 15, 25, 40, 55]),
            channel=rng.choice(list(Channel)),
        )
        for n in range(600)
    ]
    for people in (1, 2):
        m = model(people=people, minutes=30)
        assert simulate(requests, m) == reference_contacts(requests, people, m)
