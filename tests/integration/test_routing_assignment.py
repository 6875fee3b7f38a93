"""Reservations on the real mongod: offers, declines, timeouts, capacity, and two replicas racing."""

from __future__ import annotations

import asyncio
import random
import time as wall
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from routing.assignment import AssignmentStore, RequestStatus, Reservation, RoutedRequest
from routing.priority import queue_order
from routing.workers import Availability, EscalationLevel
from schemas import Language, Target
from tests.conftest import MONGODB_URI
from tests.factories import MONDAY_10H, STAFF_TEAM, SteppingClock, add_workers, open_count, staff, status

pytestmark = pytest.mark.integration

# Monday 15 June 2026, 10:00 in Brussels.
TIMEOUT = timedelta(minutes=2)
TEAM = STAFF_TEAM
LANES = 16
"""Offers in flight at once on each replica in the race."""


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
async def store(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any, clock: SteppingClock) -> AssignmentStore:
    s = AssignmentStore(mongo_client, mongo_db, reservation_timeout=TIMEOUT, clock=clock)
    await s.ensure_indexes()
    return s


# --- one request's life ----------------------------------------------------------------------


async def test_offer_then_accept_then_complete(store: AssignmentStore, clock: SteppingClock) -> None:
    await add_workers(store, staff("w1"), staff("w2"))
    assert await store.add_request("r1", TEAM, Language.FR, {"office"})

    reservation = await store.offer_next("r1")
    assert reservation is not None and reservation.worker_id == "w1"
    assert reservation.expires_at == MONDAY_10H + TIMEOUT
    assert await status(store, "r1") == RequestStatus.RESERVED
    assert await open_count(store, "w1") == 1
    assert [r.request_id for r in await store.queue_for("w1")] == ["r1"]
    assert await store.offer_next("r1") is None, "a reserved request is not offered twice"

    assert not await store.accept("r1", "w2"), "not w2's offer"
    clock.advance(timedelta(minutes=1))
    assert await store.accept("r1", "w1")
    assert not await store.accept("r1", "w1"), "a duplicate accept is a no-op"
    assert await status(store, "r1") == RequestStatus.ASSIGNED
    held = await store.queue_for("w1")
    assert held[0].reservation is not None and held[0].reservation.accepted_at == MONDAY_10H + timedelta(minutes=1)
    assert await open_count(store, "w1") == 1

    assert not await store.complete("r1", "w2")
    assert await store.complete("r1", "w1")
    assert not await store.complete("r1", "w1")
    assert await status(store, "r1") == RequestStatus.CLOSED
    assert await open_count(store, "w1") == 0
    assert await store.queue_for("w1") == []
    assert [h["event"] for h in await store.history("r1")] == ["queued", "reserved", "accepted", "closed"]


async def test_adding_a_request_is_idempotent(store: AssignmentStore) -> None:
    await add_workers(store, staff("w1"))
    assert await store.add_request("r1", TEAM, Language.FR, priority=1)
    await store.offer_next("r1")
    assert not await store.add_request("r1", TEAM, Language.FR, priority=9)
    r = await store.get_request("r1")
    assert r is not None and r.status == RequestStatus.RESERVED and r.priority == 1


async def test_a_decline_re_offers_to_the_next_worker_not_the_same(store: AssignmentStore) -> None:
    await add_workers(store, staff("w1"), staff("w2"))
    await store.add_request("r1", TEAM, Language.FR)
    first = await store.offer_next("r1")
    assert first is not None and first.worker_id == "w1"

    assert await store.decline("r1", "w1")
    assert not await store.decline("r1", "w1"), "a duplicate decline is a no-op"
    assert await open_count(store, "w1") == 0
    queued = await store.get_request("r1")
    assert queued is not None and queued.status == RequestStatus.QUEUED and queued.declined_by == {"w1"}

    # w1 is now the least loaded and the longest idle of no one: only the decline keeps it away.
    second = await store.offer_next("r1")
    assert second is not None and second.worker_id == "w2"
    assert await store.decline("r1", "w2")
    assert await store.offer_next("r1") is None, "everyone declined: it waits (and escalates later)"
    assert await status(store, "r1") == RequestStatus.QUEUED


async def test_an_unanswered_offer_times_out_and_goes_to_someone_else(store: AssignmentStore, clock: SteppingClock) -> None:
    await add_workers(store, staff("w1"), staff("w2"))
    await store.add_request("r1", TEAM, Language.FR)
    await store.offer_next("r1")

    clock.advance(TIMEOUT - timedelta(seconds=1))
    assert await store.expire_reservations() == []
    clock.advance(timedelta(seconds=1))
    assert await store.expire_reservations() == ["r1"]
    assert await store.expire_reservations() == [], "released once"
    assert await open_count(store, "w1") == 0

    again = await store.offer_next("r1")
    assert again is not None and again.worker_id == "w2"
    assert again.expires_at == clock.now + TIMEOUT
    assert [h["event"] for h in await store.history("r1")] == ["queued", "reserved", "timed_out", "reserved"]


async def test_a_stale_accept_after_expiry_is_refused(store: AssignmentStore, clock: SteppingClock) -> None:
    await add_workers(store, staff("w1"), staff("w2"))
    await store.add_request("r1", TEAM, Language.FR)
    await store.offer_next("r1")

    clock.advance(TIMEOUT)
    assert not await store.accept("r1", "w1"), "expired, even before the sweep ran"
    assert await store.queue_for("w1") == [], "an expired offer is no longer on the desk"
    assert await store.expire_reservations() == ["r1"]
    assert await store.offer_next("r1") is not None
    assert not await store.accept("r1", "w1"), "now w2's offer"
    assert await store.accept("r1", "w2")
    assert await open_count(store, "w1") == 0 and await open_count(store, "w2") == 1


async def test_two_replicas_expiring_at_once_release_each_offer_once(
    store: AssignmentStore, mongo_db: Any, clock: SteppingClock
) -> None:
    await add_workers(store, *(staff(f"w{i}", capacity=5) for i in range(4)))
    for i in range(12):
        await store.add_request(f"r{i:02}", TEAM, Language.FR)
        assert await store.offer_next(f"r{i:02}") is not None
    other_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    async with other_client:
        other = AssignmentStore(other_client, other_client[mongo_db.name], reservation_timeout=TIMEOUT, clock=clock)
        clock.advance(TIMEOUT)
        a, b = await asyncio.gather(store.expire_reservations(), other.expire_reservations())
    assert sorted(a + b) == [f"r{i:02}" for i in range(12)]
    assert all([await open_count(store, f"w{i}") == 0 for i in range(4)])


# --- capacity --------------------------------------------------------------------------------


async def test_capacity_is_never_exceeded(store: AssignmentStore) -> None:
    await add_workers(store, *(staff(f"w{i}", capacity=2) for i in range(3)))
    for i in range(20):
        await store.add_request(f"r{i:02}", TEAM, Language.FR)
    reservations = [await store.offer_next(f"r{i:02}") for i in range(20)]

    reserved = [r for r in reservations if r is not None]
    assert len(reserved) == 6
    assert Counter(r.worker_id for r in reserved) == {"w0": 2, "w1": 2, "w2": 2}
    assert len(await store.queued(TEAM, key=lambda r: r.request_id)) == 14
    assert [await open_count(store, f"w{i}") for i in range(3)] == [2, 2, 2]


async def test_least_loaded_then_longest_idle_gets_the_offer(store: AssignmentStore, clock: SteppingClock) -> None:
    await add_workers(store, *(staff(f"w{i}", capacity=3) for i in range(3)))
    for i in range(6):
        await store.add_request(f"r{i}", TEAM, Language.FR)
    chosen = []
    for i in range(6):
        clock.advance(timedelta(seconds=1))
        reservation = await store.offer_next(f"r{i}")
        assert reservation is not None
        chosen.append(reservation.worker_id)
    assert chosen == ["w0", "w1", "w2", "w0", "w1", "w2"]


async def test_unavailable_workers_get_no_offers_and_a_profile_update_keeps_live_state(store: AssignmentStore) -> None:
    await add_workers(store, staff("w1"), staff("w2"))
    await store.add_request("r1", TEAM, Language.FR)
    await store.add_request("r2", TEAM, Language.FR)
    assert await store.set_availability("w1", Availability.BREAK)
    assert not await store.set_availability("nobody", Availability.BREAK)
    r1 = await store.offer_next("r1")
    assert r1 is not None and r1.worker_id == "w2"

    assert not await store.upsert_worker(staff("w2", capacity=1, display_name="Renamed"))
    w2 = await store.get_worker("w2")
    assert w2 is not None and w2.open_count == 1 and w2.capacity == 1 and w2.display_name == "Renamed"
    assert await store.offer_next("r2") is None, "w2 is at its new capacity, w1 on a break"
    await store.set_availability("w1", Availability.AVAILABLE)
    r2 = await store.offer_next("r2")
    assert r2 is not None and r2.worker_id == "w1"
    assert [w.worker_id for w in await store.list_workers(TEAM)] == ["w1", "w2"]
    assert await store.list_workers(Target.ADVISORS) == []


# --- queues and escalation -------------------------------------------------------------------


async def test_the_queue_is_ordered_by_priority_then_deadline(store: AssignmentStore, clock: SteppingClock) -> None:
    soon, later = MONDAY_10H + timedelta(hours=4), MONDAY_10H + timedelta(days=1)
    await store.add_request("low", TEAM, Language.FR, priority=0, deadline=soon)
    await store.add_request("high-later", TEAM, Language.FR, priority=5, deadline=later)
    await store.add_request("high-soon", TEAM, Language.FR, priority=5, deadline=soon)
    await store.add_request("high-none", TEAM, Language.FR, priority=5)
    await store.add_request("other-team", Target.ADVISORS, Language.FR, priority=9)

    def queue_order_now(r: RoutedRequest) -> Any:
        return queue_order(r.priority, waiting_since=r.created_at, deadline=r.deadline, now=clock(), tiebreak=r.request_id)

    assert [r.request_id for r in await store.queued(TEAM, key=queue_order_now)] == [
        "high-soon",
        "high-later",
        "high-none",
        "low",
    ]
    # Once `soon` has passed, the low-priority request past its deadline goes first.
    clock.advance(timedelta(hours=5))
    assert [r.request_id for r in await store.queued(TEAM, key=queue_order_now)] == [
        "high-soon",
        "low",
        "high-later",
        "high-none",
    ]

    def deadline_only(r: RoutedRequest) -> datetime:
        return r.deadline or datetime.max.replace(tzinfo=UTC)

    ordered = await store.queued(TEAM, key=deadline_only, limit=2)
    assert [r.request_id for r in ordered] == ["low", "high-soon"]


async def test_a_request_no_one_can_take_escalates_after_the_delay(store: AssignmentStore, clock: SteppingClock) -> None:
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
    assert reservation is not None and reservation.worker_id == "backup"
    assert reservation.level is EscalationLevel.BACKUP
    stored = await store.get_request("r1")
    assert stored is not None and stored.escalation is EscalationLevel.BACKUP

    assert await store.decline("r1", "backup")
    supervised = await store.offer_next("r1")
    assert supervised is not None and supervised.worker_id == "boss"
    assert supervised.level is EscalationLevel.SUPERVISOR


async def test_escalate_and_reassign(store: AssignmentStore) -> None:
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
    assert not await store.escalate("r1", EscalationLevel.BACKUP)

    moved = await store.offer_next("r1")
    assert moved is not None and moved.worker_id == "backup"
    assert await store.reassign("r1", "backup", level=EscalationLevel.TEAM)
    r1 = await store.get_request("r1")
    assert r1 is not None and r1.escalation is EscalationLevel.BACKUP
    assert await store.escalate("r1", EscalationLevel.SUPERVISOR)


async def test_a_supervisor_offers_a_queued_request_to_the_worker_they_choose(store: AssignmentStore) -> None:
    await add_workers(
        store,
        staff("w1"),
        staff("w2", capacity=1),
        staff("away", availability=Availability.OFFLINE),
    )
    await store.add_request("r1", TEAM, Language.FR)
    await store.add_request("r2", TEAM, Language.FR)

    chosen = await store.offer_to("r1", "w2")
    assert chosen is not None and chosen.worker_id == "w2"
    assert await open_count(store, "w2") == 1
    assert await store.offer_to("r1", "w1") is None, "only a queued request is offered"
    assert await store.offer_to("r2", "w2") is None, "w2 is full"
    assert await store.offer_to("r2", "away") is None, "away is offline"
    assert await store.offer_to("nothing", "w1") is None

    assert await store.reassign("r1", "w2", reason="by adv-sup")
    assert await store.offer_to("r1", "w2") is None, "taken back from w2: never offered to them again"
    assert await open_count(store, "w2") == 0
    assert {r.request_id for r in await store.open_for_team(TEAM)} == {"r1", "r2"}


# --- two replicas racing ---------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [5, 25], ids=["scarce-50-slots", "ample-250-slots"])
@pytest.mark.parametrize("b_order", ["same-order", "shuffled"])
async def test_two_replicas_racing_never_double_reserve_nor_exceed_capacity(
    store: AssignmentStore, mongo_db: Any, clock: SteppingClock, capacity: int, b_order: str
) -> None:
    workers = [staff(f"w{i}", capacity=capacity) for i in range(10)]
    await add_workers(store, *workers)
    request_ids = [f"r{i:03}" for i in range(200)]
    for request_id in request_ids:
        await store.add_request(request_id, TEAM, Language.FR)

    # Every committed change of a worker's open_count, to check "never above capacity" at
    # every instant and not only at the end.
    changes = await mongo_db.watch([{"$match": {"ns.coll": {"$in": [AssignmentStore.workers_collection, "race_marker"]}}}])

    other_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    async with other_client:
        replica_a = store
        replica_b = AssignmentStore(other_client, other_client[mongo_db.name], reservation_timeout=TIMEOUT, clock=clock)
        # Same order: both replicas fight over each request. Shuffled: mostly over workers.
        order_b = request_ids[:]
        if b_order == "shuffled":
            random.Random(7).shuffle(order_b)

        async def replica(one: AssignmentStore, order: list[str], lane: int) -> list[Reservation | None]:
            # Like a consumer with LANES handlers in flight, each taking the next request.
            return [await one.offer_next(r) for r in order[lane::LANES]]

        lanes = [lane for k in range(LANES) for lane in (replica(replica_a, request_ids, k), replica(replica_b, order_b, k))]
        started = wall.perf_counter()
        results = await asyncio.gather(*lanes)
        elapsed = wall.perf_counter() - started
        results_a = [r for lane in results[0::2] for r in lane]
        results_b = [r for lane in results[1::2] for r in lane]

    won = [r for r in (*results_a, *results_b) if r is not None]
    slots = capacity * len(workers)
    # No request was reserved twice: each won reservation is a distinct request...
    assert len({r.request_id for r in won}) == len(won)
    assert len(won) <= min(slots, len(request_ids))

    # ...and the database agrees with what the replicas were told.
    docs = [d async for d in mongo_db["routing_requests"].find({}, {"status": 1, "reservation": 1})]
    reserved = {d["_id"]: d["reservation"]["worker_id"] for d in docs if d["status"] == RequestStatus.RESERVED}
    assert reserved == {r.request_id: r.worker_id for r in won}
    assert all(d["status"] == RequestStatus.QUEUED for d in docs if d["_id"] not in reserved)

    # open_count is exactly the number of requests each worker holds, never above capacity.
    per_worker = Counter(reserved.values())
    for w in await store.list_workers():
        assert w.open_count == per_worker[w.worker_id] <= w.capacity

    await mongo_db["race_marker"].insert_one({"_id": "end"})
    highest: dict[str, int] = {}
    updates = 0
    async with changes:
        async for change in changes:
            if change["ns"]["coll"] == "race_marker":
                break
            if change["operationType"] == "update":
                count = change["updateDescription"]["updatedFields"].get("open_count")
                if count is not None:
                    updates += 1
                    key = change["documentKey"]["_id"]
                    highest[key] = max(highest.get(key, 0), count)
    assert updates == len(won), "one committed increment per reservation, none rolled back into view"
    assert all(count <= capacity for count in highest.values())

    # What the race left queued is only for want of a free worker at the time: a sweep fills
    # exactly the remaining capacity.
    for request_id in request_ids:
        await store.offer_next(request_id)
    final = await mongo_db["routing_requests"].count_documents({"status": RequestStatus.RESERVED})
    assert final == min(slots, len(request_ids))
    for w in await store.list_workers():
        held = await mongo_db["routing_requests"].count_documents({"reservation.worker_id": w.worker_id})
        assert w.open_count == held <= w.capacity

    print(
        f"\nrace capacity={capacity} {b_order}: {len(won)} reserved in {elapsed:.2f}s "
        f"(replica A {sum(r is not None for r in results_a)}, replica B {sum(r is not None for r in results_b)}), "
        f"{updates} open_count increments, highest open_count {max(highest.values(), default=0)}/{capacity}, "
        f"{final} after sweep; A {dict(replica_a.stats)}, B {dict(replica_b.stats)}"
    )
