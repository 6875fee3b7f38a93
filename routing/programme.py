"""The digital-divide programme: a yearly quota of job seekers (350 by default), which can be
suspended (as during the 2020 lockdown). A request routed there while it is full or suspended
joins a waitlist in priority order, and is admitted when a place frees, the quota rises or the
programme resumes.

Members and the quota are counted per year (`digital_divide:{year}`); the suspension and the
waitlist are the programme's, not a year's: a suspension holds across the turn of the year, and
a request waiting in December is still waiting, in its place, in January. The first admission of
a year admits from the waitlist first, so the carried waitlist goes before newcomers.

Admission counts people, not requests, and is one conditional update on the programme's counter
inside a transaction that also writes the programme-wide state (so a suspension and an admission
are serialised), so two replicas can never admit past the quota nor while suspended. Every change
of state goes out as an event through the routing outbox in the same transaction.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from routing.programme_rules import admission_event_id, check_quota
from schemas import (
    DigitalDivideAdmitted,
    DigitalDivideMemberReleased,
    DigitalDivideProgrammeResumed,
    DigitalDivideProgrammeSuspended,
    DigitalDivideQuotaChanged,
    DigitalDivideSpaceAssigned,
    Event,
)
from schemas.events import ReleaseReason
from services.mongo import MongoDatabase
from services.outbox import Outbox

STATE_ID = "digital_divide"
"""The programme-wide document: suspension, and a counter every admission writes."""
SOURCE = "/routing/programme"


@dataclass(frozen=True, slots=True)
class ProgrammeStatus:
    year: int
    quota: int
    admitted: int
    suspended: bool
    waiting: int

    @property
    def open(self) -> bool:
        return not self.suspended and self.admitted < self.quota


class _QuotaReached(Exception):
    """Aborts the admission transaction; never leaves this module."""


class _Claimed(Exception):
    """Another replica admitted this waitlist entry meanwhile; aborts the transaction."""


class NotAMember(LookupError):
    """The person holds no place in that year."""


class DigitalDivideProgramme:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: MongoDatabase,
        *,
        quota: int = 350,
        outbox: Outbox | None = None,
        now: Any = None,
    ) -> None:
        self._client = client
        self._programmes = db["routing_programmes"]
        self._members = db["routing_programme_members"]
        self._waitlist = db["routing_programme_waitlist"]
        self.default_quota = quota
        # Events of each change go out through it, in the change's transaction (None: not published).
        self.outbox = outbox

    @property
    def members(self) -> Any:
        return self._members

    async def ensure_indexes(self) -> None:
        # The waitlist is the programme's, not a year's: one order across the turn of the year.
        await self._waitlist.create_index(
            [("status", ASCENDING), ("priority", DESCENDING), ("since", ASCENDING)], name="waiting_order"
        )
        await self._members.create_index([("year", ASCENDING), ("space_id", ASCENDING)], name="by_space")

    async def _publish(self, events: list[Event], session: AsyncClientSession) -> None:
        if self.outbox is not None and events:
            await self.outbox.add(events, session=session)

    async def _state(self, session: AsyncClientSession | None = None) -> dict[str, Any]:
        doc = await self._programmes.find_one_and_update(
            {"_id": STATE_ID},
            {"$setOnInsert": {"suspended": False, "admissions": 0}},
            upsert=True,
            return_document=True,
            session=session,
        )
        assert doc is not None
        return doc

    async def _programme(self, year: int, session: AsyncClientSession | None = None) -> dict[str, Any]:
        doc = await self._programmes.find_one_and_update(
            {"_id": f"digital_divide:{year}"},
            {"$setOnInsert": {"year": year, "quota": self.default_quota, "admitted": 0}},
            upsert=True,
            return_document=True,
            session=session,
        )
        assert doc is not None
        return doc

    async def status(self, year: int) -> ProgrammeStatus:
        doc = await self._programme(year)
        state = await self._state()
        waiting = await self._waitlist.count_documents({"status": "waiting"})
        return ProgrammeStatus(year, doc["quota"], doc["admitted"], state["suspended"], waiting)

    async def set_quota(self, year: int, quota: int, *, changed_by: str = "configuration") -> tuple[ProgrammeStatus, list[str]]:
        """A year's quota, never below those admitted (`QuotaBelowAdmitted`); a raised quota admits from
        the waitlist. Returns the status and the requests admitted now."""
        await self._programme(year)

        async def transaction(session: AsyncClientSession) -> None:
            doc = await self._programme(year, session)
            check_quota(quota, admitted=doc["admitted"])
            if doc["quota"] == quota:
                return
            await self._programmes.update_one({"_id": doc["_id"]}, {"$set": {"quota": quota}}, session=session)
            changed = DigitalDivideQuotaChanged(
                source=SOURCE, year=year, previous_quota=doc["quota"], quota=quota, changed_by=changed_by
            )
            await self._publish([changed], session)

        async with self._client.start_session() as session:
            await session.with_transaction(transaction)
        admitted = await self.admit_from_waitlist(year)
        return await self.status(year), admitted

    async def admit_or_waitlist(
        self,
        *,
        year: int,
        request_id: str,
        person_id: str,
        priority: int,
        since: datetime,
        admitted_before: list[str] | None = None,
    ) -> bool:
        """True if admitted now (or already a member this year); False if put on the waitlist.

        Those already waiting go first: anyone on the waitlist (carried over from last year, or left
        by a place that freed) is admitted before the newcomer, and their request ids are appended to
        `admitted_before` for the caller to move into the programme team's queue."""
        if await self._waitlist.find_one({"status": "waiting", "_id": {"$ne": request_id}}, {"_id": 1}) is not None:
            earlier = await self.admit_from_waitlist(year)
            if admitted_before is not None:
                admitted_before.extend(earlier)
        if await self._admit(year, person_id, request_id):
            return True
        with contextlib.suppress(DuplicateKeyError):  # already waiting: a redelivered event
            await self._waitlist.insert_one(
                {
                    "_id": request_id,
                    "year": year,
                    "person_id": person_id,
                    "priority": priority,
                    "since": since,
                    "status": "waiting",
                }
            )
        return False

    async def _admit(self, year: int, person_id: str, request_id: str, waiting: dict[str, Any] | None = None) -> bool:
        """Admit `person_id` in `year` if open and a place is free; with `waiting` (its waitlist entry),
        also claim the entry and announce the admission, in the same transaction."""

        # Created outside the transaction: two transactions upserting one new document would clash.
        await self._state()
        await self._programme(year)

        async def transaction(session: AsyncClientSession) -> bool:
            member = await self._members.find_one({"_id": f"{year}:{person_id}"}, session=session)
            if member is None:
                # Writing the programme-wide document orders every admission after or before a suspension.
                gate = await self._programmes.update_one(
                    {"_id": STATE_ID, "suspended": False}, {"$inc": {"admissions": 1}}, session=session
                )
                taken = (
                    await self._programmes.update_one(
                        {"_id": f"digital_divide:{year}", "$expr": {"$lt": ["$admitted", "$quota"]}},
                        {"$inc": {"admitted": 1}},
                        session=session,
                    )
                    if gate.modified_count
                    else None
                )
                if taken is None or taken.modified_count == 0:
                    raise _QuotaReached
                await self._members.insert_one(
                    {"_id": f"{year}:{person_id}", "year": year, "person_id": person_id, "request_id": request_id},
                    session=session,
                )
            if waiting is not None:
                claimed = await self._waitlist.update_one(
                    {"_id": waiting["_id"], "status": "waiting"},
                    {"$set": {"status": "admitted", "admitted_year": year}},
                    session=session,
                )
                if claimed.modified_count == 0:
                    raise _Claimed
                if member is None:
                    admitted = DigitalDivideAdmitted(
                        id=admission_event_id(year, request_id),
                        source=SOURCE,
                        request_id=request_id,
                        person_id=person_id,
                        year=year,
                        priority=waiting["priority"],
                        waiting_since=_aware(waiting["since"]),
                    )
                    await self._publish([admitted], session)
            return True

        try:
            async with self._client.start_session() as session:
                return await session.with_transaction(transaction)
        except _QuotaReached:
            return False
        except DuplicateKeyError:
            return True  # a concurrent admission of the same person won the race

    async def _set_suspended(self, suspended: bool, changed_by: str) -> bool:
        """Suspend or resume the programme; True if that changed its state (and was announced)."""

        await self._state()

        async def transaction(session: AsyncClientSession) -> bool:
            changed = await self._programmes.update_one(
                {"_id": STATE_ID, "suspended": not suspended}, {"$set": {"suspended": suspended}}, session=session
            )
            if changed.modified_count == 0:
                return False
            kind = DigitalDivideProgrammeSuspended if suspended else DigitalDivideProgrammeResumed
            await self._publish([kind(source=SOURCE, changed_by=changed_by)], session)
            return True

        async with self._client.start_session() as session:
            return await session.with_transaction(transaction)

    async def suspend(self, year: int, *, changed_by: str = "desk") -> ProgrammeStatus:
        """Suspend the programme (for good, across years, until resumed); `year` is the status returned."""
        await self._set_suspended(True, changed_by)
        return await self.status(year)

    async def resume(self, year: int, *, changed_by: str = "desk") -> tuple[ProgrammeStatus, list[str]]:
        """Resume the programme and admit from the waitlist into `year`'s places."""
        await self._set_suspended(False, changed_by)
        admitted = await self.admit_from_waitlist(year)
        return await self.status(year), admitted

    async def release(
        self, year: int, person_id: str, *, reason: ReleaseReason = "completed", released_by: str = "desk"
    ) -> list[str]:
        """A member leaves (finished, gave up, moved): the place goes to the next on the waitlist.
        `NotAMember` if they hold no place that year."""

        async def transaction(s: AsyncClientSession) -> None:
            member = await self._members.find_one_and_delete({"_id": f"{year}:{person_id}"}, session=s)
            if member is None:
                raise NotAMember(f"{person_id} holds no place in {year}")
            await self._programmes.update_one({"_id": f"digital_divide:{year}"}, {"$inc": {"admitted": -1}}, session=s)
            released = DigitalDivideMemberReleased(
                source=SOURCE,
                request_id=member["request_id"],
                person_id=person_id,
                year=year,
                reason=reason,
                released_by=released_by,
            )
            await self._publish([released], s)

        async with self._client.start_session() as session:
            await session.with_transaction(transaction)
        return await self.admit_from_waitlist(year)

    async def admit_from_waitlist(self, year: int) -> list[str]:
        """Admit waiting requests, whatever year they asked in, in priority order (then waiting time)
        into `year`'s places while they are free; the ids admitted (by this call)."""
        admitted: list[str] = []
        while True:
            nxt = await self._waitlist.find_one({"status": "waiting"}, sort=[("priority", DESCENDING), ("since", ASCENDING)])
            if nxt is None:
                return admitted
            try:
                if not await self._admit(year, nxt["person_id"], nxt["_id"], waiting=nxt):
                    return admitted
            except _Claimed:
                continue  # another replica admitted it: look at the next
            admitted.append(nxt["_id"])

    async def withdraw(self, request_id: str) -> bool:
        """The person withdrew the request: it leaves the waitlist, never to be admitted; False when it
        was not waiting (admitted already, or never waitlisted)."""
        left = await self._waitlist.update_one({"_id": request_id, "status": "waiting"}, {"$set": {"status": "withdrawn"}})
        return left.modified_count == 1

    async def waitlist(self, year: int | None = None) -> list[dict[str, Any]]:
        """Everyone waiting, in admission order (`year`: only those who asked that year)."""
        query: dict[str, Any] = {"status": "waiting"}
        if year is not None:
            query["year"] = year
        return await self._waitlist.find(query).sort([("priority", DESCENDING), ("since", ASCENDING)]).to_list(None)

    async def member(self, year: int, person_id: str) -> dict[str, Any] | None:
        return await self._members.find_one({"_id": f"{year}:{person_id}"})

    async def assign_space(self, year: int, person_id: str, space_id: str | None, *, assigned_by: str = "desk") -> bool:
        """Assign a member to a space (an EPN) for the year (None: unassign); False if they hold no place.
        A change is announced (`DigitalDivideSpaceAssigned`) in its transaction; the same space again is not."""

        async def transaction(session: AsyncClientSession) -> bool:
            before = await self._members.find_one_and_update(
                {"_id": f"{year}:{person_id}"}, {"$set": {"space_id": space_id}}, session=session
            )
            if before is None:
                return False
            if before.get("space_id") != space_id:
                assigned = DigitalDivideSpaceAssigned(
                    source=SOURCE,
                    request_id=before["request_id"],
                    person_id=person_id,
                    year=year,
                    space_id=space_id,
                    previous_space_id=before.get("space_id"),
                    assigned_by=assigned_by,
                )
                await self._publish([assigned], session)
            return True

        async with self._client.start_session() as session:
            return await session.with_transaction(transaction)


def _aware(moment: datetime) -> datetime:
    # MongoDB gives back UTC without its zone (unless the client is tz_aware).
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
