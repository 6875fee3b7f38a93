"""The digital-divide programme's lifecycle on the real mongod: releasing a place, changing a year's
quota, the turn of the year (suspension and waitlist carried over), the events each step stores in
the routing outbox, the EPN spaces and self-training bookings - with replicas racing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from routing.programme import DigitalDivideProgramme, NotAMember
from routing.programme_rules import OpeningHours, QuotaBelowAdmitted, SlotRefused, SpaceKind, SpaceSpec
from routing.spaces import AlreadyBooked, Bookings, NoPlace, Overlapping, SlotFull, Spaces, UnknownSlot
from schemas import (
    DigitalDivideAdmitted,
    DigitalDivideMemberReleased,
    DigitalDivideQuotaChanged,
    DigitalDivideSpaceAssigned,
    DigitalSpaceChanged,
    Event,
    ProgrammePlace,
    QualificationLevel,
    SelfTrainingSlotOpened,
    decode,
)
from services.clock import FixedClock
from services.mongo import MongoDatabase
from services.outbox import Outbox
from tests.conftest import MONGODB_URI
from tests.integration.test_routing_service import build_service, holder, received

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 18, 10, 0, tzinfo=UTC)
JANUARY = datetime(2027, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
async def other_client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A second client: another replica's connection pool."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


def programme(client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, quota: int) -> DigitalDivideProgramme:
    return DigitalDivideProgramme(client, db, quota=quota, outbox=Outbox(db, "routing_outbox"))


async def stored(db: MongoDatabase) -> list[Event]:
    docs = await db["routing_outbox"].find().sort("seq", 1).to_list(None)
    return [decode(doc["value"], list(doc["headers"].items())) for doc in docs]


async def wait(p: DigitalDivideProgramme, year: int, request_id: str, priority: int, since: datetime) -> bool:
    return await p.admit_or_waitlist(
        year=year, request_id=request_id, person_id=f"p-{request_id}", priority=priority, since=since
    )


async def test_releasing_a_place_admits_the_next_waiting_and_announces_both(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase
) -> None:
    p = programme(mongo_client, mongo_db, quota=2)
    await p.ensure_indexes()
    assert await wait(p, 2026, "a", 10, T0) and await wait(p, 2026, "b", 10, T0)
    assert not await wait(p, 2026, "c", 10, T0 + timedelta(hours=1))
    assert not await wait(p, 2026, "d", 40, T0 + timedelta(hours=2))

    admitted = await p.release(2026, "p-a", reason="completed", released_by="sup-1")

    assert admitted == ["d"]  # the higher priority first
    status = await p.status(2026)
    assert (status.admitted, status.waiting) == (2, 1)
    events = await stored(mongo_db)
    released = [e for e in events if isinstance(e, DigitalDivideMemberReleased)]
    assert [(e.request_id, e.person_id, e.reason, e.released_by) for e in released] == [("a", "p-a", "completed", "sup-1")]
    admissions = [e for e in events if isinstance(e, DigitalDivideAdmitted)]
    assert [(e.request_id, e.year, e.priority) for e in admissions] == [("d", 2026, 40)]
    with pytest.raises(NotAMember):
        await p.release(2026, "p-a", reason="completed", released_by="sup-1")


async def test_a_quota_never_goes_below_those_admitted_and_a_raise_admits_the_waiting(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase
) -> None:
    p = programme(mongo_client, mongo_db, quota=2)
    for i in range(5):
        await wait(p, 2026, f"r{i}", i, T0 + timedelta(minutes=i))
    with pytest.raises(QuotaBelowAdmitted):
        await p.set_quota(2026, 1, changed_by="sup-1")

    status, admitted = await p.set_quota(2026, 4, changed_by="sup-1")

    assert admitted == ["r4", "r3"] and (status.quota, status.admitted, status.waiting) == (4, 4, 1)
    changes = [e for e in await stored(mongo_db) if isinstance(e, DigitalDivideQuotaChanged)]
    assert [(c.year, c.previous_quota, c.quota, c.changed_by) for c in changes] == [(2026, 2, 4, "sup-1")]
    # The same quota again changes nothing and says nothing.
    await p.set_quota(2026, 4, changed_by="sup-1")
    assert len([e for e in await stored(mongo_db) if isinstance(e, DigitalDivideQuotaChanged)]) == 1


async def test_the_suspension_and_the_waitlist_carry_into_the_new_year_and_december_goes_first(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase
) -> None:
    p = programme(mongo_client, mongo_db, quota=3)
    # December: full, then suspended.
    for i in range(3):
        assert await wait(p, 2026, f"in{i}", 10, DECEMBER)
    assert not await wait(p, 2026, "dec-low", 10, DECEMBER + timedelta(hours=1))
    assert not await wait(p, 2026, "dec-high", 60, DECEMBER + timedelta(hours=2))
    await p.suspend(2026, changed_by="sup-1")

    # January: still suspended - a newcomer waits behind December's higher priority.
    assert (await p.status(2027)).suspended
    assert not await wait(p, 2027, "jan", 30, JANUARY)
    assert [w["_id"] for w in await p.waitlist()] == ["dec-high", "jan", "dec-low"]

    status, admitted = await p.resume(2027, changed_by="sup-1")

    assert admitted == ["dec-high", "jan", "dec-low"]
    assert (status.year, status.admitted, status.waiting) == (2027, 3, 0)
    # Members and the quota are per year: 2026 keeps its three.
    assert (await p.status(2026)).admitted == 3
    years = {e.request_id: e.year for e in await stored(mongo_db) if isinstance(e, DigitalDivideAdmitted)}
    assert years == {"dec-high": 2027, "jan": 2027, "dec-low": 2027}


async def test_the_first_admission_of_a_year_admits_the_carried_waitlist_before_the_newcomer(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase
) -> None:
    p = programme(mongo_client, mongo_db, quota=2)
    assert await wait(p, 2026, "a", 10, DECEMBER) and await wait(p, 2026, "b", 10, DECEMBER)
    assert not await wait(p, 2026, "dec-1", 5, DECEMBER + timedelta(hours=1))
    assert not await wait(p, 2026, "dec-2", 5, DECEMBER + timedelta(hours=2))
    earlier: list[str] = []

    # A new year's places (2): December's two waiting take them, the newcomer waits.
    admitted = await p.admit_or_waitlist(
        year=2027, request_id="jan", person_id="p-jan", priority=90, since=JANUARY, admitted_before=earlier
    )

    assert earlier == ["dec-1", "dec-2"] and not admitted
    assert [w["_id"] for w in await p.waitlist()] == ["jan"]


async def test_racing_replicas_admit_each_waiting_request_once_and_never_past_the_quota(
    mongo_client: AsyncMongoClient[dict[str, Any]],
    other_client: AsyncMongoClient[dict[str, Any]],
    mongo_db: MongoDatabase,
) -> None:
    replicas = [programme(mongo_client, mongo_db, quota=4), programme(other_client, other_client[mongo_db.name], quota=4)]
    await replicas[0].ensure_indexes()
    for i in range(20):
        await wait(replicas[0], 2026, f"r{i}", i % 5, T0 + timedelta(minutes=i))

    # Two places free and the quota rises by six, on both replicas at once.
    await asyncio.gather(
        replicas[0].release(2026, "p-r0", reason="moved", released_by="sup-1"),
        replicas[1].release(2026, "p-r1", reason="abandoned", released_by="sup-2"),
        replicas[0].set_quota(2026, 10, changed_by="sup-1"),
        replicas[1].admit_from_waitlist(2026),
        replicas[0].admit_from_waitlist(2026),
    )

    status = await replicas[0].status(2026)
    assert (status.admitted, status.waiting) == (10, 8)
    admissions = Counter(e.request_id for e in await stored(mongo_db) if isinstance(e, DigitalDivideAdmitted))
    assert len(admissions) == 8 and set(admissions.values()) == {1}
    assert await mongo_db["routing_programme_members"].count_documents({"year": 2026}) == 10


async def test_a_december_request_waiting_joins_the_programme_team_when_january_opens(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase
) -> None:
    clock = FixedClock(DECEMBER)
    service = await build_service(mongo_client, mongo_db, clock)
    await service.programme.set_quota(2026, 0)
    december = received(clock, has_computer=False, qualification_level=QualificationLevel.HIGHER)
    routed = await service.route(december)
    assert routed is not None and routed.programme is ProgrammePlace.WAITLISTED_FULL

    clock.advance(JANUARY - DECEMBER)
    january = received(clock, has_computer=False, qualification_level=QualificationLevel.HIGHER)
    routed = await service.route(january)

    assert routed is not None and routed.programme is ProgrammePlace.ADMITTED
    case = await service.cases.find_one({"_id": december.request_id})
    assert case is not None and case["programme"] == "admitted"
    assert await holder(service, december.request_id) is not None
    assert (await service.programme.status(2027)).admitted == 2


# --- spaces and self-training bookings ------------------------------------------------------

MONDAY = date(2026, 3, 2)
ROOM = SpaceSpec(
    name="Salle d'autoformation",
    address="Rue de Stalle 67, 1180 Uccle",
    kind=SpaceKind.SELF_TRAINING,
    capacity=4,
    opening_hours=tuple(OpeningHours(weekday=d, opens=time(9), closes=time(17)) for d in range(5)),
)


async def members(db: MongoDatabase, count: int, year: int = 2026) -> list[str]:
    p = DigitalDivideProgramme(db.client, db, quota=count)
    people = [f"m{i}" for i in range(count)]
    for person in people:
        assert await p.admit_or_waitlist(year=year, request_id=f"req-{person}", person_id=person, priority=1, since=T0)
    return people


async def test_spaces_are_kept_and_slots_fit_them(mongo_db: MongoDatabase) -> None:
    spaces = Spaces(mongo_db)
    bookings = Bookings(mongo_db.client, mongo_db)
    assert await spaces.create("room", ROOM)
    assert not await spaces.create("room", ROOM)
    assert await spaces.replace("room", ROOM.model_copy(update={"capacity": 6}))
    assert [s["capacity"] for s in await spaces.list()] == [6]

    slot = await bookings.add_slot("room", MONDAY, time(9), time(11), 4)
    assert (slot["slot_id"], slot["free"]) == ("room:2026-03-02:0900", 4)
    with pytest.raises(SlotRefused, match="2 free"):
        await bookings.add_slot("room", MONDAY, time(10), time(12), 3)
    with pytest.raises(FileExistsError):
        await bookings.add_slot("room", MONDAY, time(9), time(10), 1)
    with pytest.raises(LookupError):
        await bookings.add_slot("nowhere", MONDAY, time(9), time(10), 1)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    assert [s["slot_id"] for s in await bookings.slots(start=start, end=start + timedelta(days=1))] == ["room:2026-03-02:0900"]
    assert await spaces.delete("room") and not await spaces.delete("room")


async def test_racing_replicas_never_book_a_slot_past_its_seats_nor_a_person_twice(
    mongo_client: AsyncMongoClient[dict[str, Any]],
    other_client: AsyncMongoClient[dict[str, Any]],
    mongo_db: MongoDatabase,
) -> None:
    await Spaces(mongo_db).create("room", ROOM.model_copy(update={"capacity": 5}))
    outbox = Outbox(mongo_db, "routing_outbox")
    replicas = [
        Bookings(mongo_client, mongo_db, outbox=outbox),
        Bookings(other_client, other_client[mongo_db.name], outbox=Outbox(other_client[mongo_db.name], "routing_outbox")),
    ]
    await replicas[0].ensure_indexes()
    morning = (await replicas[0].add_slot("room", MONDAY, time(9), time(11), 4))["slot_id"]
    overlapping = (await replicas[0].add_slot("room", MONDAY, time(10), time(12), 1))["slot_id"]
    people = await members(mongo_db, 10)

    async def attempt(i: int, slot_id: str, person: str) -> str:
        try:
            await replicas[i % 2].book(slot_id, person, booked_by="adv-1")
        except (SlotFull, AlreadyBooked, Overlapping) as refused:
            return type(refused).__name__
        return "booked"

    # Ten members for four seats, each asking twice (once per replica); m0 also asks for the overlapping slot.
    outcomes = await asyncio.gather(
        *(attempt(i, morning, person) for i, person in enumerate(people * 2)), attempt(1, overlapping, "m0")
    )

    slot = (await replicas[0].slots(start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=4)))[0]
    assert (slot["slot_id"], slot["booked"]) == (morning, 4)
    holders = await booked_people(mongo_db, morning)
    assert len(holders) == len(set(holders)) == 4
    assert outcomes.count("booked") == await mongo_db["routing_self_training_bookings"].count_documents({})
    print(f"\nbookings: {Counter(outcomes)}; held {len(holders)} of 4 seats")
    m0_slots = await mongo_db["routing_self_training_bookings"].count_documents({"person_id": "m0"})
    assert m0_slots == 1  # one of the two overlapping slots, never both
    booked_events = await mongo_db["routing_outbox"].count_documents({"event_type": {"$regex": "slot_booked$"}})
    assert booked_events == await mongo_db["routing_self_training_bookings"].count_documents({})


async def booked_people(db: MongoDatabase, slot_id: str) -> list[str]:
    return [b["person_id"] async for b in db["routing_self_training_bookings"].find({"slot_id": slot_id})]


async def test_only_a_member_books_and_a_cancelled_seat_is_free_again(mongo_db: MongoDatabase) -> None:
    await Spaces(mongo_db).create("room", ROOM)
    bookings = Bookings(mongo_db.client, mongo_db, outbox=Outbox(mongo_db, "routing_outbox"))
    slot_id = (await bookings.add_slot("room", MONDAY, time(14), time(16), 1))["slot_id"]
    first, second = await members(mongo_db, 2)
    with pytest.raises(NoPlace):
        await bookings.book(slot_id, "stranger", booked_by="adv-1")
    with pytest.raises(UnknownSlot):
        await bookings.book("room:1999-01-01:0900", first, booked_by="adv-1")

    await bookings.book(slot_id, first, booked_by="adv-1")
    with pytest.raises(SlotFull):
        await bookings.book(slot_id, second, booked_by="adv-1")
    await bookings.cancel(slot_id, first, cancelled_by="adv-1")
    await bookings.book(slot_id, second, booked_by="adv-2")

    with pytest.raises(UnknownSlot):
        await bookings.cancel(slot_id, first, cancelled_by="adv-1")
    types = [e.type.rsplit(".", 1)[1] for e in await stored(mongo_db)]
    assert types == ["slot_opened", "slot_booked", "slot_cancelled", "slot_booked"]


async def test_each_change_of_a_space_a_slot_opened_and_a_member_assigned_is_an_event(mongo_db: MongoDatabase) -> None:
    outbox = Outbox(mongo_db, "routing_outbox")
    spaces = Spaces(mongo_db, outbox=outbox)
    bookings = Bookings(mongo_db.client, mongo_db, outbox=outbox)
    p = programme(mongo_db.client, mongo_db, 5)
    assert await p.admit_or_waitlist(year=2026, request_id="req-m", person_id="m", priority=1, since=T0)

    assert await spaces.create("room", ROOM, changed_by="sup-1")
    assert not await spaces.create("room", ROOM, changed_by="sup-1")  # taken: nothing announced
    assert await spaces.replace("room", ROOM.model_copy(update={"capacity": 6}), changed_by="sup-2")
    assert not await spaces.replace("nowhere", ROOM, changed_by="sup-2")
    await bookings.add_slot("room", MONDAY, time(9), time(11), 4, opened_by="sup-1")
    with pytest.raises(SlotRefused):
        await bookings.add_slot("room", MONDAY, time(10), time(12), 3, opened_by="sup-1")  # refused: nothing announced
    assert await p.assign_space(2026, "m", "room", assigned_by="sup-1")
    assert await p.assign_space(2026, "m", "room", assigned_by="sup-1")  # unchanged: not announced again
    assert await p.assign_space(2026, "m", None, assigned_by="sup-2")
    assert not await p.assign_space(2026, "stranger", "room", assigned_by="sup-1")
    assert await spaces.delete("room", changed_by="sup-1")
    assert [s["capacity"] for s in await spaces.list()] == []

    events = [e for e in await stored(mongo_db) if not isinstance(e, DigitalDivideAdmitted)]
    changes = [e for e in events if isinstance(e, DigitalSpaceChanged)]
    assert [(e.change, e.capacity, e.changed_by) for e in changes] == [
        ("added", 4, "sup-1"),
        ("changed", 6, "sup-2"),
        ("removed", 6, "sup-1"),
    ]
    assert changes[0].kind == "self_training" and [h.weekday for h in changes[0].opening_hours] == [0, 1, 2, 3, 4]
    assert changes[0].opening_hours[0].opens == time(9)
    [opened] = [e for e in events if isinstance(e, SelfTrainingSlotOpened)]
    assert (opened.slot_id, opened.capacity, opened.opened_by) == ("room:2026-03-02:0900", 4, "sup-1")
    assert opened.starts_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Brussels
    assigned = [e for e in events if isinstance(e, DigitalDivideSpaceAssigned)]
    assert [(e.request_id, e.space_id, e.previous_space_id, e.assigned_by) for e in assigned] == [
        ("req-m", "room", None, "sup-1"),
        ("req-m", None, "room", "sup-2"),
    ]
    assert len(events) == len(changes) + 1 + len(assigned)


async def test_racing_replicas_never_open_more_seats_at_once_than_the_space_has(
    mongo_client: AsyncMongoClient[dict[str, Any]],
    other_client: AsyncMongoClient[dict[str, Any]],
    mongo_db: MongoDatabase,
) -> None:
    await Spaces(mongo_db).create("room", ROOM.model_copy(update={"capacity": 4}))
    replicas = [
        Bookings(mongo_client, mongo_db, outbox=Outbox(mongo_db, "routing_outbox")),
        Bookings(other_client, other_client[mongo_db.name], outbox=Outbox(other_client[mongo_db.name], "routing_outbox")),
    ]
    await replicas[0].ensure_indexes()

    async def attempt(i: int, start: int) -> str:
        # Three seats each, overlapping every other attempt between 10:00 and 11:00: only one fits.
        try:
            await replicas[i % 2].add_slot("room", MONDAY, time(start), time(start + 2), 3, opened_by=f"sup-{i}")
        except SlotRefused:
            return "refused"
        return "opened"

    for _ in range(3):
        await mongo_db["routing_self_training_slots"].delete_many({})
        await mongo_db["routing_outbox"].delete_many({})
        outcomes = await asyncio.gather(*(attempt(i, start) for i, start in enumerate([9, 10, 9, 10])), return_exceptions=True)
        # Two attempts share a slot id (same start): the loser of that pair sees FileExistsError.
        assert all(o in ("opened", "refused") or isinstance(o, FileExistsError) for o in outcomes), outcomes
        slots = await mongo_db["routing_self_training_slots"].find().to_list(None)
        print(f"\nslots opened: {Counter(map(str, outcomes))}; seats at 10:00 {sum(s['capacity'] for s in slots)} of 4")
        assert len(slots) == 1 and slots[0]["capacity"] == 3
        opened = await mongo_db["routing_outbox"].count_documents({"event_type": {"$regex": "slot_opened$"}})
        assert opened == 1
