"""Reservation use cases (`routing.assignment.Assignments`) on the in-memory fake repositories.

The same scenarios as `tests/integration/test_routing_assignment.py`, in milliseconds, plus
races the fakes make deterministic: the fakes yield between a use case's load and its save,
so concurrent calls decide on the same state and only the compare-and-sets sort them out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from routing.assignment import Assignments, RequestStatus
from routing.workers import Availability, EscalationLevel
from schemas import Language, Target
from tests.factories import MONDAY_10H, STAFF_TEAM, SteppingClock, add_workers, open_count, staff, status
from tests.routing_fakes import FakeRequests, FakeTransactions, FakeWorkers, InMemoryAssignments, in_memory_assignments

pytestmark = pytest.mark.unit

TIMEOUT = timedelta(minutes=2)
TEAM = STAFF_TEAM


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def wired(clock: SteppingClock) -> InMemoryAssignments:
    return in_memory_assignments(reservation_timeout=TIMEOUT, clock=clock)


@pytest.fixture
def store(wired: InMemoryAssignments) -> Assignments:
    return wired.assignments


def replica_of(wired: InMemoryAssignments, clock: SteppingClock) -> Assignments:
    """A second routing replica: its own use case over the same stored state."""
    return Assignments(wired.requests, wired.workers, wired.transactions, reservation_timeout=TIMEOUT, clock=clock)


async def events(store: Assignments, request_id: str) -> list[str]:
    return [h["event"] for h in await store.history(request_id)]


# --- one request's life ----------------------------------------------------------------------


async def test_offer_then_accept_then_complete(store: Assignments, clock: SteppingClock) -> None:
    await add_workers(store, staff("w1"), staff("w2"))
    assert await store.add_request("r1", TEAM, Language.FR, {"office"})
    assert not await store.add_request("r1", TEAM, Language.NL), "idempotent on the request id"

    reservation = await store.offer_next("r1")
    assert reservation is not None and reservation.worker_id == "w1" and reservation.expires_at == MONDAY_10H + TIMEOUT
    assert await open_count(store, "w1") == 1
    assert await store.offer_next("r1") is None, "a reserved request is not offered twice"
    assert not await store.accept("r1", "w2")
    clock.advance(timedelta(minutes=1))
    assert await store.accept("r1", "w1")
    assert not await store.accept("r1", "w1")
    assert not await store.complete("r1", "w2")
    assert await store.complete("r1", "w1")
    assert not await store.complete("r1", "w1")
    assert await status(store, "r1") == RequestStatus.CLOSED
    assert await open_count(store, "w1") == 0
    assert await events(store, "r1") == ["queued", "reserved", "accepted", "closed"]
    r1 = await store.get_request("r1")
    assert r1 is not None and r1.version == 4


async def test_a_decline_frees_the_worker_and_re_offers_to_someone_else(store: Assignments) -> None:
    await add_workers(store, staff("w1"), staff("w2"))
    await store.add_request("r1", TEAM, Language.FR)
    await store.offer_next("r1")
    assert await store.decline("r1", "w1")
    assert not await store.decline("r1", "w1")
    assert await open_count(store, "w1") == 0
    second = await store.offer_next("r1")
    assert second is not None and second.worker_id == "w2"
    assert await store.decline("r1", "w2")
    assert await store.offer_next("r1") is None, "everyone declined"
    assert await events(store, "r1") == ["queued", "reserved", "declined", "reserved", "declined"]


async def test_an_expired_offer_frees_the_worker_once(wired: InMemoryAssignments, clock: SteppingClock) -> None:
    store = wired.assignments
    await add_workers(store, staff("w1"), staff("w2"))
    await store.add_request("r1", TEAM, Language.FR)
    await store.offer_next("r1")
    clock.advance(TIMEOUT - timedelta(seconds=1))
    assert await store.expire_reservations() == []
    clock.advance(timedelta(seconds=1))
    assert not await store.accept("r1", "w1"), "expired, even before the sweep ran"
    assert await store.queue_for("w1") == []
    a, b = await asyncio.gather(store.expire_reservations(), replica_of(wired, clock).expire_reservations())
    assert sorted(a + b) == ["r1"], "two replicas sweeping at once release it once"
    assert await open_count(store, "w1") == 0
    again = await store.offer_next("r1")
    assert again is not None and again.worker_id == "w2"
    assert await events(store, "r1") == ["queued", "reserved", "timed_out", "reserved"]


async def test_reassign_and_escalate(store: Assignments) -> None:
    await add_workers(store, staff("w1"), staff("backup", team=Target.ADVISORS, backup_for=frozenset({TEAM})))
    await store.add_request("r1", TEAM, Language.FR)
    await store.offer_next("r1")
    assert await store.accept("r1", "w1")
    assert not await store.escalate("r1", EscalationLevel.BACKUP), "only queued requests are escalated"
    assert not await store.reassign("r1", "backup"), "not backup's request"
    assert await store.reassign("r1", "w1", level=EscalationLevel.BACKUP, reason="w1 fell ill")
    assert await open_count(store, "w1") == 0
    r1 = await store.get_request("r1")
    assert r1 is not None and r1.status == RequestStatus.QUEUED and r1.escalation is EscalationLevel.BACKUP
    assert not await store.escalate("r1", EscalationLevel.TEAM), "a pool never narrows"

    moved = await store.offer_next("r1")
    assert moved is not None and moved.worker_id == "backup"
    assert await store.reassign("r1", "backup", level=EscalationLevel.TEAM)
    r1 = await store.get_request("r1")
    assert r1 is not None and r1.escalation is EscalationLevel.BACKUP
    assert await store.escalate("r1", EscalationLevel.SUPERVISOR, reason="by hand")
    assert (await store.history("r1"))[-1] == {
        "at": MONDAY_10H,
        "event": "escalated:supervisor",
        "worker_id": None,
        "reason": "by hand",
    }


async def test_a_closed_request_is_requeued_for_another_team(store: Assignments) -> None:
    await add_workers(store, staff("w1"), staff("adv", team=Target.ADVISORS))
    await store.add_request("r1", TEAM, Language.FR)
    await store.offer_next("r1")
    await store.accept("r1", "w1")
    assert not await store.requeue("r1", Target.ADVISORS), "not closed yet"
    await store.complete("r1", "w1")
    assert await store.requeue("r1", Target.ADVISORS, reason="redirected by w1")
    assert [r.request_id for r in await store.queued(Target.ADVISORS, key=lambda r: r.request_id)] == ["r1"]
    assert (await store.history("r1"))[-1]["reason"] == "redirected by w1"


async def test_a_request_no_one_can_take_escalates_after_the_delay(store: Assignments, clock: SteppingClock) -> None:
    await add_workers(
        store,
        staff("member", availability=Availability.OFFLINE),
        staff("backup", team=Target.ADVISORS, skills=frozenset({"espaces_numeriques"})),
        staff("boss", supervisor=True),
    )
    await store.add_request("r1", TEAM, Language.FR)
    assert await store.offer_next("r1") is None
    clock.advance(timedelta(minutes=31))
    reservation = await store.offer_next("r1")
    assert reservation is not None and reservation.worker_id == "backup" and reservation.level is EscalationLevel.BACKUP
    assert await store.decline("r1", "backup")
    supervised = await store.offer_next("r1")
    assert supervised is not None and supervised.worker_id == "boss" and supervised.level is EscalationLevel.SUPERVISOR
    assert await events(store, "r1") == [
        "queued",
        "escalated:backup",
        "reserved",
        "declined",
        "escalated:supervisor",
        "reserved",
    ]


async def test_the_desk_shows_live_offers_first_then_held_requests(store: Assignments, clock: SteppingClock) -> None:
    await add_workers(store, staff("w1", capacity=3))
    for request_id in ("held", "soon", "later"):
        await store.add_request(request_id, TEAM, Language.FR)
        await store.offer_next(request_id)
        clock.advance(timedelta(seconds=10))
    await store.accept("held", "w1")
    assert [r.request_id for r in await store.queue_for("w1")] == ["soon", "later", "held"]


# --- capacity and races ----------------------------------------------------------------------


async def test_capacity_is_never_exceeded(store: Assignments) -> None:
    await add_workers(store, *(staff(f"w{i}", capacity=2) for i in range(3)))
    for i in range(20):
        await store.add_request(f"r{i:02}", TEAM, Language.FR)
    reserved = [r for r in [await store.offer_next(f"r{i:02}") for i in range(20)] if r is not None]
    assert Counter(r.worker_id for r in reserved) == {"w0": 2, "w1": 2, "w2": 2}
    assert len(await store.queued(TEAM, key=lambda r: r.request_id)) == 14


async def test_two_offers_at_once_for_a_worker_with_one_slot_only_one_wins(wired: InMemoryAssignments) -> None:
    store = wired.assignments
    await add_workers(store, staff("w1", capacity=1))
    await store.add_request("r1", TEAM, Language.FR)
    await store.add_request("r2", TEAM, Language.FR)

    results = await asyncio.gather(store.offer_next("r1"), store.offer_next("r2"))
    won = [r for r in results if r is not None]
    assert len(won) == 1 and won[0].worker_id == "w1"
    assert await open_count(store, "w1") == 1
    lost = "r2" if won[0].request_id == "r1" else "r1"
    assert await status(store, lost) == RequestStatus.QUEUED
    assert await events(store, lost) == ["queued"], "the losing transaction left no trace"
    assert store.stats["lost_worker"] == 1 and wired.transactions.aborted == 1


async def test_two_replicas_offering_one_request_reserve_it_once(wired: InMemoryAssignments, clock: SteppingClock) -> None:
    store, other = wired.assignments, replica_of(wired, clock)
    await add_workers(store, staff("w1"), staff("w2"))
    await store.add_request("r1", TEAM, Language.FR)

    results = await asyncio.gather(store.offer_next("r1"), other.offer_next("r1"))
    assert sum(r is not None for r in results) == 1
    assert await open_count(store, "w1") + await open_count(store, "w2") == 1
    assert await events(store, "r1") == ["queued", "reserved"]
    assert store.stats["lost_request"] + other.stats["lost_request"] == 1


async def test_many_replicas_racing_never_double_reserve_nor_exceed_capacity(
    wired: InMemoryAssignments, clock: SteppingClock
) -> None:
    replicas = [wired.assignments, replica_of(wired, clock), replica_of(wired, clock)]
    await add_workers(wired.assignments, *(staff(f"w{i}", capacity=3) for i in range(5)))
    request_ids = [f"r{i:03}" for i in range(40)]
    for request_id in request_ids:
        await wired.assignments.add_request(request_id, TEAM, Language.FR)

    results = await asyncio.gather(*(one.offer_next(r) for r in request_ids for one in replicas))
    won = [r for r in results if r is not None]
    assert len({r.request_id for r in won}) == len(won) == 15
    per_worker = Counter(r.worker_id for r in won)
    for w in await wired.assignments.list_workers():
        assert w.open_count == per_worker[w.worker_id] <= w.capacity
    for request_id in request_ids:
        assert (await events(wired.assignments, request_id)).count("reserved") <= 1


async def test_an_accept_racing_a_decline_settles_on_one(wired: InMemoryAssignments, clock: SteppingClock) -> None:
    store = wired.assignments
    await add_workers(store, staff("w1"))
    await store.add_request("r1", TEAM, Language.FR)
    await store.offer_next("r1")
    other = replica_of(wired, clock)
    accepted, declined = await asyncio.gather(store.accept("r1", "w1"), other.decline("r1", "w1"))
    assert accepted != declined
    assert await open_count(store, "w1") == (1 if accepted else 0)
    conflicts = store.stats["version_conflicts"] + other.stats["version_conflicts"]
    assert conflicts == 1, "both decided on the same version; the loser reloaded and was refused"


async def test_a_refused_call_writes_nothing(wired: InMemoryAssignments) -> None:
    store = wired.assignments
    await add_workers(store, staff("w1"))
    await store.add_request("r1", TEAM, Language.FR)
    runs = wired.transactions.runs
    assert not await store.accept("r1", "w1")
    assert not await store.complete("r1", "w1")
    assert not await store.decline("nobody", "w1")
    assert wired.transactions.runs == runs
    r1 = await store.get_request("r1")
    assert r1 is not None and r1.version == 1


def test_the_use_case_takes_any_repositories() -> None:
    requests, workers = FakeRequests(), FakeWorkers()
    with pytest.raises(ValueError, match="reservation_timeout"):
        Assignments(requests, workers, FakeTransactions(requests, workers), reservation_timeout=timedelta(0))
    with pytest.raises(ValueError, match="offer_attempts"):
        Assignments(requests, workers, FakeTransactions(), reservation_timeout=TIMEOUT, offer_attempts=0)


# --- requests offered together -----------------------------------------------------------------


async def offered(store: Assignments, request_ids: list[str]) -> dict[str, str | None]:
    """Who each request is reserved for (None: still queued)."""
    found = {}
    for request_id in request_ids:
        request = await store.get_request(request_id)
        assert request is not None
        found[request_id] = request.reservation.worker_id if request.reservation else None
    return found


async def test_requests_offered_together_go_where_offering_them_one_by_one_sends_them() -> None:
    workers = (
        staff("w1", capacity=2),
        staff("w2", capacity=1, languages=frozenset({Language.FR})),
        staff("w3", capacity=1, languages=frozenset({Language.NL}), skills=frozenset()),
    )
    queued = [
        ("r1", Language.FR, {"office"}),
        ("r2", Language.NL, set()),
        ("r3", Language.FR, {"office"}),
        ("r4", Language.FR, set()),
        ("r5", Language.NL, {"office"}),
        ("r6", Language.FR, {"office"}),
    ]
    ids = [request_id for request_id, _, _ in queued]
    one_by_one, together = (in_memory_assignments(reservation_timeout=TIMEOUT, clock=lambda: MONDAY_10H) for _ in range(2))
    for wired in (one_by_one, together):
        await add_workers(wired.assignments, *workers)
        for request_id, language, skills in queued:
            await wired.assignments.add_request(request_id, TEAM, language, skills)

    for request_id in ids:
        await one_by_one.assignments.offer_next(request_id)
    reserved = await together.assignments.offer_together(ids)

    expected = await offered(one_by_one.assignments, ids)
    assert await offered(together.assignments, ids) == expected
    assert reserved == sum(1 for worker in expected.values() if worker is not None) == 4
    for worker in ("w1", "w2", "w3"):
        assert await open_count(together.assignments, worker) == await open_count(one_by_one.assignments, worker)
    assert together.transactions.runs == 1, "one transaction for all the offers"


async def test_requests_offered_together_are_offered_alone_when_another_replica_took_one(
    wired: InMemoryAssignments, store: Assignments, clock: SteppingClock
) -> None:
    await add_workers(store, staff("w1", capacity=3))
    for request_id in ("r1", "r2"):
        await store.add_request(request_id, TEAM, Language.FR)

    # Another replica reserves r1 between this one's read and its transaction.
    original = wired.requests.get_many

    async def read_then_race(request_ids: list[str]) -> list[object]:
        loaded = await original(request_ids)
        await replica_of(wired, clock).offer_next("r1")
        return list(loaded)

    wired.requests.get_many = read_then_race  # type: ignore[method-assign,assignment]
    assert await store.offer_together(["r1", "r2"]) == 1
    assert await status(store, "r1") == RequestStatus.RESERVED
    assert await status(store, "r2") == RequestStatus.RESERVED
    assert await open_count(store, "w1") == 2, "r1 counted once"
