"""The digital-divide programme's places to work: the public digital spaces of partners (EPN) and
the self-training room, and the slots members book there when they have no computer or not the
software at home.

A booking is one transaction: it writes the member's place of the year (so two bookings of one
person are serialised, and a person without a place is refused), refuses a slot that overlaps one
they already hold, takes a seat with a conditional update on the slot's counter (never above its
capacity, whichever replica books), and puts its event in the routing outbox.

Opening a slot is one transaction too, serialised per space by a write to the space's document, so
racing replicas never open more seats at once than the space has; every change of a space, and
every slot opened, goes out through the outbox.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from routing.programme_rules import SlotPlan, SpaceSpec, check_slot, overlaps
from schemas import (
    DigitalSpaceChanged,
    SelfTrainingSlotBooked,
    SelfTrainingSlotCancelled,
    SelfTrainingSlotOpened,
)
from schemas.events import SpaceChange, SpaceOpeningHours
from services.mongo import MongoDatabase
from services.outbox import Outbox

__all__ = [
    "AlreadyBooked",
    "BookingRefused",
    "Bookings",
    "NoPlace",
    "Overlapping",
    "SlotFull",
    "Spaces",
    "UnknownSlot",
]

SPACES = "routing_programme_spaces"
SLOTS = "routing_self_training_slots"
BOOKINGS = "routing_self_training_bookings"
SOURCE = "/routing/programme"


class BookingRefused(Exception):
    status = 409


class UnknownSlot(BookingRefused):
    status = 404


class NoPlace(BookingRefused):
    """The person holds no place in the programme in the slot's year."""

    status = 422


class AlreadyBooked(BookingRefused):
    pass


class Overlapping(BookingRefused):
    pass


class SlotFull(BookingRefused):
    pass


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Spaces:
    """The EPN partners and the self-training room, as supervisors keep them. Each change is one
    transaction that also puts its `DigitalSpaceChanged` in the routing outbox (None: not published)."""

    def __init__(self, db: MongoDatabase, *, outbox: Outbox | None = None) -> None:
        self._client = db.client
        self._spaces = db[SPACES]
        self.outbox = outbox

    async def list(self) -> list[dict[str, Any]]:
        return [_space_view(doc) async for doc in self._spaces.find().sort("_id", ASCENDING)]

    async def get(self, space_id: str) -> SpaceSpec | None:
        doc = await self._spaces.find_one({"_id": space_id})
        return None if doc is None else _spec(doc)

    async def _announce(self, space_id: str, spec: SpaceSpec, change: SpaceChange, by: str, session: AsyncClientSession) -> None:
        if self.outbox is not None:
            await self.outbox.add([_space_changed(space_id, spec, change, by)], session=session)

    async def create(self, space_id: str, spec: SpaceSpec, *, changed_by: str = "desk") -> bool:
        """False if the id is taken."""

        async def transaction(session: AsyncClientSession) -> None:
            await self._spaces.insert_one({"_id": space_id, **spec.model_dump(mode="json")}, session=session)
            await self._announce(space_id, spec, "added", changed_by, session)

        try:
            async with self._client.start_session() as session:
                await session.with_transaction(transaction)
        except DuplicateKeyError:
            return False
        return True

    async def replace(self, space_id: str, spec: SpaceSpec, *, changed_by: str = "desk") -> bool:
        """False if unknown."""

        async def transaction(session: AsyncClientSession) -> bool:
            done = await self._spaces.replace_one({"_id": space_id}, spec.model_dump(mode="json"), session=session)
            if done.matched_count == 0:
                return False
            await self._announce(space_id, spec, "changed", changed_by, session)
            return True

        async with self._client.start_session() as session:
            return await session.with_transaction(transaction)

    async def delete(self, space_id: str, *, changed_by: str = "desk") -> bool:
        """False if unknown."""

        async def transaction(session: AsyncClientSession) -> bool:
            doc = await self._spaces.find_one_and_delete({"_id": space_id}, session=session)
            if doc is None:
                return False
            await self._announce(space_id, _spec(doc), "removed", changed_by, session)
            return True

        async with self._client.start_session() as session:
            return await session.with_transaction(transaction)


def _space_changed(space_id: str, spec: SpaceSpec, change: SpaceChange, by: str) -> DigitalSpaceChanged:
    return DigitalSpaceChanged(
        source=SOURCE,
        space_id=space_id,
        change=change,
        kind=spec.kind.value,
        name=spec.name,
        capacity=spec.capacity,
        opening_hours=tuple(SpaceOpeningHours(weekday=h.weekday, opens=h.opens, closes=h.closes) for h in spec.opening_hours),
        changed_by=by,
    )


_NOT_SPEC = ("_id", "slot_writes")
"""Fields of a space's document that are not its description (`slot_writes`: see `Bookings.add_slot`)."""


def _space_view(doc: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in doc.items() if k not in _NOT_SPEC}
    return {"space_id": doc["_id"], **view}


def _spec(doc: dict[str, Any]) -> SpaceSpec:
    return SpaceSpec.model_validate({k: v for k, v in doc.items() if k not in _NOT_SPEC})


class Bookings:
    """Self-training slots and their bookings."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, *, outbox: Outbox | None = None) -> None:
        self._client = client
        self._spaces = db[SPACES]
        self._slots = db[SLOTS]
        self._bookings = db[BOOKINGS]
        self._members = db["routing_programme_members"]
        self.outbox = outbox

    async def ensure_indexes(self) -> None:
        await self._slots.create_index([("space_id", ASCENDING), ("starts_at", ASCENDING)], name="by_space_and_time")
        await self._bookings.create_index([("person_id", ASCENDING), ("starts_at", ASCENDING)], name="by_person_and_time")
        await self._bookings.create_index([("slot_id", ASCENDING)], name="by_slot")

    async def add_slot(
        self, space_id: str, day: date, start: time, end: time, capacity: int, *, opened_by: str = "desk"
    ) -> dict[str, Any]:
        """A new slot in an open space; `LookupError` for an unknown space, `SlotRefused` if it does not
        fit (hours, seats left by the slots overlapping it), `FileExistsError` if it exists.

        One transaction that first writes the space's document: two replicas opening overlapping slots
        in one space conflict there, and the one retried counts the other's seats, so the slots at any
        moment never hold more seats than the space has."""
        plan = SlotPlan(space_id=space_id, day=day, start=start, end=end, capacity=capacity)

        async def transaction(session: AsyncClientSession) -> dict[str, Any]:
            doc = await self._spaces.find_one_and_update(
                {"_id": space_id}, {"$inc": {"slot_writes": 1}}, session=session, return_document=True
            )
            if doc is None:
                raise LookupError(f"space {space_id} is unknown")
            overlapping = await self._slots.find(
                {"space_id": space_id, "starts_at": {"$lt": plan.ends_at}, "ends_at": {"$gt": plan.starts_at}},
                session=session,
            ).to_list(None)
            taken = sum(int(s["capacity"]) for s in overlapping)
            check_slot(plan, _spec(doc), seats_taken=taken)
            slot = {
                "_id": plan.slot_id,
                "space_id": space_id,
                "starts_at": plan.starts_at.astimezone(UTC),
                "ends_at": plan.ends_at.astimezone(UTC),
                "capacity": capacity,
                "booked": 0,
            }
            await self._slots.insert_one(slot, session=session)
            if self.outbox is not None:
                opened = SelfTrainingSlotOpened(
                    source=SOURCE,
                    slot_id=plan.slot_id,
                    space_id=space_id,
                    starts_at=plan.starts_at,
                    ends_at=plan.ends_at,
                    capacity=capacity,
                    opened_by=opened_by,
                )
                await self.outbox.add([opened], session=session)
            return _slot_view(slot)

        try:
            async with self._client.start_session() as session:
                return await session.with_transaction(transaction)
        except DuplicateKeyError:
            raise FileExistsError(f"slot {plan.slot_id} exists") from None

    async def slots(self, *, space_id: str | None = None, start: datetime, end: datetime) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"starts_at": {"$gte": start, "$lt": end}}
        if space_id is not None:
            query["space_id"] = space_id
        return [_slot_view(s) async for s in self._slots.find(query).sort([("starts_at", ASCENDING), ("_id", ASCENDING)])]

    async def book(self, slot_id: str, person_id: str, *, booked_by: str) -> SelfTrainingSlotBooked:
        """Book `person_id` a seat in the slot; refused (`BookingRefused`) if the slot is unknown or full,
        the person holds no place in the programme that year, or holds an overlapping slot."""

        async def transaction(session: AsyncClientSession) -> SelfTrainingSlotBooked:
            slot = await self._slots.find_one({"_id": slot_id}, session=session)
            if slot is None:
                raise UnknownSlot(f"slot {slot_id} is unknown")
            starts_at, ends_at = _aware(slot["starts_at"]), _aware(slot["ends_at"])
            year = starts_at.astimezone(UTC).year
            # Writing the member's document serialises this person's bookings across replicas.
            member = await self._members.update_one(
                {"_id": f"{year}:{person_id}"}, {"$inc": {"bookings_written": 1}}, session=session
            )
            if member.matched_count == 0:
                raise NoPlace(f"{person_id} holds no place in the programme in {year}")
            async for other in self._bookings.find(
                {"person_id": person_id, "starts_at": {"$lt": ends_at}, "ends_at": {"$gt": starts_at}}, session=session
            ):
                if other["slot_id"] == slot_id:
                    raise AlreadyBooked(f"{person_id} already holds slot {slot_id}")
                if overlaps(_aware(other["starts_at"]), _aware(other["ends_at"]), starts_at, ends_at):
                    raise Overlapping(f"{person_id} holds slot {other['slot_id']} at the same time")
            seat = await self._slots.update_one(
                {"_id": slot_id, "$expr": {"$lt": ["$booked", "$capacity"]}}, {"$inc": {"booked": 1}}, session=session
            )
            if seat.modified_count == 0:
                raise SlotFull(f"slot {slot_id} is full")
            await self._bookings.insert_one(
                {
                    "_id": f"{slot_id}:{person_id}",
                    "slot_id": slot_id,
                    "space_id": slot["space_id"],
                    "person_id": person_id,
                    "starts_at": starts_at,
                    "ends_at": ends_at,
                    "booked_by": booked_by,
                },
                session=session,
            )
            event = SelfTrainingSlotBooked(
                source=SOURCE,
                person_id=person_id,
                slot_id=slot_id,
                space_id=slot["space_id"],
                starts_at=starts_at,
                ends_at=ends_at,
                booked_by=booked_by,
            )
            if self.outbox is not None:
                await self.outbox.add([event], session=session)
            return event

        try:
            async with self._client.start_session() as session:
                return await session.with_transaction(transaction)
        except DuplicateKeyError:
            raise AlreadyBooked(f"{person_id} already holds slot {slot_id}") from None

    async def cancel(self, slot_id: str, person_id: str, *, cancelled_by: str) -> SelfTrainingSlotCancelled:
        """Cancel a booking (`UnknownSlot` if there is none); its seat is free again."""

        async def transaction(session: AsyncClientSession) -> SelfTrainingSlotCancelled:
            booking = await self._bookings.find_one_and_delete({"_id": f"{slot_id}:{person_id}"}, session=session)
            if booking is None:
                raise UnknownSlot(f"{person_id} holds no booking of slot {slot_id}")
            await self._slots.update_one({"_id": slot_id, "booked": {"$gt": 0}}, {"$inc": {"booked": -1}}, session=session)
            event = SelfTrainingSlotCancelled(
                source=SOURCE,
                person_id=person_id,
                slot_id=slot_id,
                space_id=booking["space_id"],
                starts_at=_aware(booking["starts_at"]),
                cancelled_by=cancelled_by,
            )
            if self.outbox is not None:
                await self.outbox.add([event], session=session)
            return event

        async with self._client.start_session() as session:
            return await session.with_transaction(transaction)

    async def bookings_of(self, person_id: str, *, since: datetime) -> list[dict[str, Any]]:
        found = self._bookings.find({"person_id": person_id, "ends_at": {"$gt": since}}).sort("starts_at", ASCENDING)
        return [
            {
                "slot_id": b["slot_id"],
                "space_id": b["space_id"],
                "starts_at": _aware(b["starts_at"]),
                "ends_at": _aware(b["ends_at"]),
            }
            async for b in found
        ]


def _slot_view(slot: dict[str, Any]) -> dict[str, Any]:
    return {
        "slot_id": slot["_id"],
        "space_id": slot["space_id"],
        "starts_at": _aware(slot["starts_at"]),
        "ends_at": _aware(slot["ends_at"]),
        "capacity": slot["capacity"],
        "booked": slot.get("booked", 0),
        "free": slot["capacity"] - slot.get("booked", 0),
    }
