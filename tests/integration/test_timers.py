"""Durable timers on the real mongod: scheduling, firing once, replicas racing, restarts, and a
handler's effect committing with the timer's mark or not at all."""

from __future__ import annotations

import asyncio
import random
import time as wall
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from services.clock import FixedClock, SimulatedClock
from services.mongo import MongoDatabase
from services.timers import TIMERS_COLLECTION, Timer, TimerClaimLost, TimerHandler, TimerState, TimerStore
from tests.conftest import MONGODB_URI

pytestmark = pytest.mark.integration

# Monday 15 June 2026, 10:00 in Brussels.
T0 = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
EFFECTS = "timer_effects"


class Boom(Exception):
    pass


def recording(db: MongoDatabase, owner: str, *, fail: bool = False, delay: float = 0.0) -> TimerHandler:
    """A handler whose effect is one document written in the firing transaction."""

    async def handler(timer: Timer, session: AsyncClientSession) -> None:
        await db[EFFECTS].insert_one({"timer_id": timer.id, "owner": owner, "payload": timer.payload}, session=session)
        if delay:
            await asyncio.sleep(random.uniform(0, delay))
        if fail:
            raise Boom("the handler failed after writing")

    return handler


async def effects(db: MongoDatabase) -> Counter[str]:
    return Counter([doc["timer_id"] async for doc in db[EFFECTS].find({}, {"timer_id": 1})])


@pytest.fixture
async def second_client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """Another connection pool, as another replica would have."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
async def store(mongo_client: AsyncMongoClient[Any], mongo_db: MongoDatabase, clock: FixedClock) -> TimerStore:
    timers = TimerStore(mongo_client, mongo_db, clock=clock, owner="replica-a", lease=LEASE)
    await timers.ensure_indexes()
    # Create the effects collection up front: creating one inside racing transactions conflicts.
    await mongo_db.create_collection(EFFECTS)
    return timers


# --- scheduling ----------------------------------------------------------------------


async def test_indexes(store: TimerStore, mongo_db: MongoDatabase) -> None:
    indexes = {index["name"]: index["key"] async for index in await mongo_db[TIMERS_COLLECTION].list_indexes()}
    assert dict(indexes["state_fire_at"]) == {"state": 1, "fire_at": 1}


async def test_schedule_get_and_idempotent_schedule(store: TimerStore, mongo_db: MongoDatabase) -> None:
    fire_at = T0 + timedelta(hours=4)
    assert await store.schedule("callback_due", "req-1", fire_at, {"deadline": T0 + timedelta(hours=8)})

    timer = await store.get("callback_due", "req-1")
    assert timer is not None
    assert (timer.id, timer.kind, timer.key) == ("callback_due:req-1", "callback_due", "req-1")
    assert timer.fire_at == fire_at
    assert timer.payload == {"deadline": T0 + timedelta(hours=8)}
    assert timer.state is TimerState.PENDING
    assert (timer.claimed_by, timer.claim_expires_at, timer.fired_at, timer.attempts) == (None, None, None, 0)

    # A redelivered event schedules again: the first timer stays.
    assert not await store.schedule("callback_due", "req-1", T0 + timedelta(hours=1), {"other": True})
    again = await store.get("callback_due", "req-1")
    assert again is not None and again.fire_at == fire_at and again.payload == timer.payload
    assert await mongo_db[TIMERS_COLLECTION].count_documents({}) == 1

    assert await store.schedule("callback_due", "req-1", T0 + timedelta(hours=1), {"other": True}, replace=True)
    replaced = await store.get("callback_due", "req-1")
    assert replaced is not None and replaced.fire_at == T0 + timedelta(hours=1) and replaced.payload == {"other": True}

    # Keys may hold colons (reservation_timeout:<request>:<n>); kinds may not.
    assert await store.schedule("reservation_timeout", "req-1:2", fire_at)
    assert await store.get("reservation_timeout", "req-1:2") is not None
    with pytest.raises(ValueError, match="kind"):
        await store.schedule("bad:kind", "req-1", fire_at)
    with pytest.raises(ValueError, match="aware"):
        await store.schedule("callback_due", "req-2", datetime(2026, 6, 15, 12))
    assert await store.get("callback_due", "missing") is None


async def test_cancel(store: TimerStore, mongo_db: MongoDatabase, clock: FixedClock) -> None:
    await store.schedule("sla_breach", "req-1", T0 + timedelta(hours=1))
    assert await store.cancel("sla_breach", "req-1")
    assert not await store.cancel("sla_breach", "req-1")
    assert not await store.cancel("sla_breach", "missing")
    cancelled = await store.get("sla_breach", "req-1")
    assert cancelled is not None and cancelled.state is TimerState.CANCELLED

    clock.advance(timedelta(hours=2))
    assert await store.run_once({"sla_breach": recording(mongo_db, store.owner)}) == 0
    # Scheduling again does not revive it; replacing does.
    assert not await store.schedule("sla_breach", "req-1", T0)
    assert await store.run_once({"sla_breach": recording(mongo_db, store.owner)}) == 0
    assert await store.schedule("sla_breach", "req-1", T0, replace=True)
    assert await store.run_once({"sla_breach": recording(mongo_db, store.owner)}) == 1
    assert await effects(mongo_db) == {"sla_breach:req-1": 1}


async def test_reschedule(store: TimerStore, mongo_db: MongoDatabase, clock: FixedClock) -> None:
    handlers = {"retry_call": recording(mongo_db, store.owner)}
    await store.schedule("retry_call", "req-1:1", T0 + timedelta(minutes=10), {"attempt": 1})
    assert await store.reschedule("retry_call", "req-1:1", T0 + timedelta(minutes=30), payload={"attempt": 1, "moved": True})
    assert not await store.reschedule("retry_call", "missing:1", T0)

    clock.advance(timedelta(minutes=20))
    assert await store.run_once(handlers) == 0
    clock.advance(timedelta(minutes=10))
    assert await store.run_once(handlers) == 1
    fired = await store.get("retry_call", "req-1:1")
    assert fired is not None and fired.payload == {"attempt": 1, "moved": True}
    assert not await store.reschedule("retry_call", "req-1:1", T0 + timedelta(hours=1))  # fired: not live


async def test_schedule_in_a_transaction_that_aborts_leaves_nothing(
    store: TimerStore, mongo_client: AsyncMongoClient[Any]
) -> None:
    async def routed_then_failed(session: AsyncClientSession) -> None:
        await store.schedule("sla_breach", "req-1", T0 + timedelta(hours=48), session=session)
        raise Boom("the routing decision failed to store")

    with pytest.raises(Boom):
        async with mongo_client.start_session() as session:
            await session.with_transaction(routed_then_failed)
    assert await store.get("sla_breach", "req-1") is None


# --- firing --------------------------------------------------------------------------


async def test_fires_once_when_due_and_not_before(store: TimerStore, mongo_db: MongoDatabase, clock: FixedClock) -> None:
    handlers = {"sla_breach": recording(mongo_db, store.owner)}
    # 500 µs past the hour: BSON keeps milliseconds, and the store rounds up, never down.
    fire_at = T0 + timedelta(hours=48, microseconds=500)
    await store.schedule("sla_breach", "req-1", fire_at, {"request_id": "req-1"})

    assert await store.run_once(handlers) == 0
    clock.advance(timedelta(hours=48))
    assert await store.run_once(handlers) == 0
    clock.advance(timedelta(microseconds=500))
    assert await store.run_once(handlers) == 0  # still within the millisecond
    clock.advance(timedelta(microseconds=500))
    assert await store.run_once(handlers) == 1
    assert await store.run_once(handlers) == 0
    clock.advance(LEASE * 10)
    assert await store.run_once(handlers) == 0

    assert await effects(mongo_db) == {"sla_breach:req-1": 1}
    timer = await store.get("sla_breach", "req-1")
    assert timer is not None
    assert timer.state is TimerState.FIRED
    assert timer.claimed_by == store.owner
    assert timer.fired_at == T0 + timedelta(hours=48, milliseconds=1)


async def test_only_handled_kinds_are_claimed(store: TimerStore, mongo_db: MongoDatabase, clock: FixedClock) -> None:
    await store.schedule("callback_due", "req-1", T0)
    await store.schedule("sla_breach", "req-1", T0)
    assert await store.run_once({"callback_due": recording(mongo_db, store.owner)}) == 1
    untouched = await store.get("sla_breach", "req-1")
    assert untouched is not None and untouched.state is TimerState.PENDING and untouched.claimed_by is None


async def test_run_loop_fires_due_timers_until_stopped(
    store: TimerStore, mongo_client: AsyncMongoClient[Any], mongo_db: MongoDatabase
) -> None:
    clock = SimulatedClock(T0 - datetime.now(UTC))
    timers = TimerStore(mongo_client, mongo_db, clock=clock, owner="replica-loop")
    for n in range(5):
        await timers.schedule("callback_due", f"req-{n}", T0 + timedelta(hours=n))
    stop = asyncio.Event()
    loop = asyncio.create_task(timers.run({"callback_due": recording(mongo_db, "loop")}, poll_interval=0.02, stop=stop))

    await _until(lambda: _count_fired(mongo_db), 1)
    assert sum((await effects(mongo_db)).values()) == 1  # the others are hours away
    clock.advance(timedelta(hours=4))  # the demo's move: deadlines pass in no time
    await _until(lambda: _count_fired(mongo_db), 5)
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    assert await effects(mongo_db) == Counter({f"callback_due:req-{n}": 1 for n in range(5)})


# --- replicas racing -------------------------------------------------------------------

RACE_TIMERS = 200


async def test_two_replicas_race_over_200_due_timers(
    store: TimerStore,
    mongo_client: AsyncMongoClient[Any],
    mongo_db: MongoDatabase,
    second_client: AsyncMongoClient[dict[str, Any]],
    clock: FixedClock,
) -> None:
    db_b = second_client[mongo_db.name]
    replica_a = TimerStore(mongo_client, mongo_db, clock=clock, owner="replica-a")
    replica_b = TimerStore(second_client, db_b, clock=clock, owner="replica-b")
    for n in range(RACE_TIMERS):
        await replica_a.schedule("sla_breach", f"req-{n:03d}", T0 - timedelta(seconds=n), {"n": n})

    stop = asyncio.Event()
    started = wall.perf_counter()
    runs = [
        asyncio.create_task(
            replica_a.run({"sla_breach": recording(mongo_db, "replica-a")}, poll_interval=0.01, stop=stop, batch=5)
        ),
        asyncio.create_task(replica_b.run({"sla_breach": recording(db_b, "replica-b")}, poll_interval=0.01, stop=stop, batch=5)),
    ]
    await _until(lambda: _count_fired(mongo_db), RACE_TIMERS, timeout=120)
    seconds = wall.perf_counter() - started
    stop.set()
    await asyncio.wait_for(asyncio.gather(*runs), timeout=10)

    per_timer = await effects(mongo_db)
    assert len(per_timer) == RACE_TIMERS
    assert set(per_timer.values()) == {1}, "every timer's effect happened exactly once"
    by_owner = Counter([doc["owner"] async for doc in mongo_db[EFFECTS].find()])
    marks = Counter([doc["claimed_by"] async for doc in mongo_db[TIMERS_COLLECTION].find({"state": "fired"})])
    assert by_owner == marks, "the effect and the mark of each timer were written by the same replica"
    assert by_owner["replica-a"] > 0 and by_owner["replica-b"] > 0, "both replicas took part"
    print(f"\nrace: {RACE_TIMERS} timers, 2 replicas, {dict(by_owner)}, {seconds:.2f} s")


async def test_replicas_racing_with_claims_expiring_mid_fire(
    store: TimerStore,
    mongo_client: AsyncMongoClient[Any],
    mongo_db: MongoDatabase,
    second_client: AsyncMongoClient[dict[str, Any]],
) -> None:
    """Handlers slower than the lease: claims expire while firing and are taken over; the
    conditional mark and the transaction still let exactly one effect per timer commit."""
    clock = SimulatedClock()
    db_b = second_client[mongo_db.name]
    lease = timedelta(milliseconds=40)
    replica_a = TimerStore(mongo_client, mongo_db, clock=clock, owner="slow-a", lease=lease)
    replica_b = TimerStore(second_client, db_b, clock=clock, owner="slow-b", lease=lease)
    count = 60
    for n in range(count):
        await replica_a.schedule("reservation_timeout", f"req-{n:03d}:1", clock.now() - timedelta(seconds=1))

    stop = asyncio.Event()
    runs = [
        asyncio.create_task(
            replica.run({"reservation_timeout": recording(db, replica.owner, delay=0.08)}, poll_interval=0.01, stop=stop, batch=3)
        )
        for replica, db in ((replica_a, mongo_db), (replica_b, db_b))
    ]
    await _until(lambda: _count_fired(mongo_db), count, timeout=120)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*runs), timeout=30)

    per_timer = await effects(mongo_db)
    assert len(per_timer) == count and set(per_timer.values()) == {1}
    marks = {doc["_id"]: doc["claimed_by"] async for doc in mongo_db[TIMERS_COLLECTION].find()}
    async for doc in mongo_db[EFFECTS].find():
        assert marks[doc["timer_id"]] == doc["owner"]


# --- restarts and failures -----------------------------------------------------------------


async def test_a_timer_claimed_by_a_replica_that_died_fires_once_elsewhere(
    store: TimerStore,
    mongo_db: MongoDatabase,
    second_client: AsyncMongoClient[dict[str, Any]],
    clock: FixedClock,
) -> None:
    await store.schedule("sla_breach", "req-1", T0)
    [claimed] = await store.claim_due(10)
    assert claimed.state is TimerState.FIRING and claimed.claimed_by == "replica-a"
    # replica-a dies here, before running the handler.

    db_b = second_client[mongo_db.name]
    successor = TimerStore(second_client, db_b, clock=clock, owner="replica-b", lease=LEASE)
    handlers = {"sla_breach": recording(db_b, "replica-b")}
    assert await successor.run_once(handlers) == 0, "the claim still protects it"
    clock.advance(LEASE)
    assert await successor.run_once(handlers) == 0, "a claim expires strictly after its lease"
    clock.advance(timedelta(milliseconds=1))
    assert await successor.run_once(handlers) == 1
    assert await successor.run_once(handlers) == 0

    # replica-a wakes up (a long GC pause, not a death): its claim is gone, its effect too.
    with pytest.raises(TimerClaimLost):
        await store.complete(claimed)
    assert not await store.fire(claimed, recording(mongo_db, "replica-a"))
    assert await effects(mongo_db) == {"sla_breach:req-1": 1}
    timer = await successor.get("sla_breach", "req-1")
    assert timer is not None and timer.state is TimerState.FIRED and timer.claimed_by == "replica-b"


async def test_timers_survive_a_restart(mongo_db: MongoDatabase, clock: FixedClock, store: TimerStore) -> None:
    before: AsyncMongoClient[dict[str, Any]]
    after: AsyncMongoClient[dict[str, Any]]
    async with AsyncMongoClient(MONGODB_URI, tz_aware=True) as before:
        first = TimerStore(before, before[mongo_db.name], clock=clock, owner="pod-1")
        await first.schedule("callback_due", "req-1", T0 + timedelta(hours=44))
    # The process is gone; a new one starts with a new client and another name.
    async with AsyncMongoClient(MONGODB_URI, tz_aware=True) as after:
        db: MongoDatabase = after[mongo_db.name]
        second = TimerStore(after, db, clock=clock, owner="pod-2")
        clock.advance(timedelta(hours=44))
        assert await second.run_once({"callback_due": recording(db, "pod-2")}) == 1
    assert await effects(mongo_db) == {"callback_due:req-1": 1}


async def test_a_failing_handler_leaves_no_effect_and_is_retried_after_the_claim(
    store: TimerStore, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    await store.schedule("sla_breach", "req-1", T0)
    assert await store.run_once({"sla_breach": recording(mongo_db, store.owner, fail=True)}) == 0
    assert await effects(mongo_db) == {}, "the handler's write was rolled back with the transaction"
    timer = await store.get("sla_breach", "req-1")
    assert timer is not None
    assert timer.state is TimerState.FIRING and timer.attempts == 1 and timer.fired_at is None
    raw = await mongo_db[TIMERS_COLLECTION].find_one({"_id": timer.id})
    assert raw is not None and raw["last_error"] == "Boom"

    working = {"sla_breach": recording(mongo_db, store.owner)}
    assert await store.run_once(working) == 0, "no retry before the claim expires"
    clock.advance(LEASE + timedelta(milliseconds=1))
    assert await store.run_once(working) == 1
    assert await effects(mongo_db) == {"sla_breach:req-1": 1}
    fired = await store.get("sla_breach", "req-1")
    assert fired is not None and fired.state is TimerState.FIRED and fired.attempts == 1


async def test_a_handler_that_keeps_failing_gives_up(
    mongo_client: AsyncMongoClient[Any], mongo_db: MongoDatabase, clock: FixedClock, store: TimerStore
) -> None:
    fragile = TimerStore(mongo_client, mongo_db, clock=clock, owner="replica-a", lease=LEASE, max_attempts=3)
    await fragile.schedule("retry_call", "req-1:1", T0)
    failing = {"retry_call": recording(mongo_db, fragile.owner, fail=True)}
    for attempt in range(1, 4):
        assert await fragile.run_once(failing) == 0
        timer = await fragile.get("retry_call", "req-1:1")
        assert timer is not None and timer.attempts == attempt
        clock.advance(LEASE + timedelta(milliseconds=1))
    assert timer is not None and timer.state is TimerState.FAILED
    assert await fragile.run_once({"retry_call": recording(mongo_db, fragile.owner)}) == 0
    assert await effects(mongo_db) == {}


async def test_cancelling_a_firing_timer_rolls_its_effect_back(store: TimerStore, mongo_db: MongoDatabase) -> None:
    """The person was reached while the breach timer was being fired: no breach is published."""
    await store.schedule("sla_breach", "req-1", T0)
    [claimed] = await store.claim_due(1)
    assert await store.cancel("sla_breach", "req-1")
    assert not await store.fire(claimed, recording(mongo_db, store.owner))
    assert await effects(mongo_db) == {}
    timer = await store.get("sla_breach", "req-1")
    assert timer is not None and timer.state is TimerState.CANCELLED


# --- helpers -------------------------------------------------------------------------------


async def _count_fired(db: MongoDatabase) -> int:
    return await db[TIMERS_COLLECTION].count_documents({"state": "fired"})


async def _until(probe: Any, expected: int, *, timeout: float = 10.0) -> None:
    deadline = wall.monotonic() + timeout
    while (value := await probe()) < expected:
        if wall.monotonic() > deadline:
            raise AssertionError(f"only {value} of {expected} after {timeout} s")
        await asyncio.sleep(0.01)
