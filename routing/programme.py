"""The digital-divide programme: a yearly quota of job seekers (350 by default), which can be
suspended (as during the 2020 lockdown). A request routed there while it is full or suspended
joins a waitlist in priority order, and is admitted when a place frees or the programme resumes.

Admission counts people, not requests, and is one conditional update on the programme's counter
inside a transaction, so two replicas can never admit past the quota.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from services.mongo import MongoDatabase


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


class DigitalDivideProgramme:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, *, quota: int = 350) -> None:
        self._client = client
        self._programmes = db["routing_programmes"]
        self._members = db["routing_programme_members"]
        self._waitlist = db["routing_programme_waitlist"]
        self.default_quota = quota

    async def ensure_indexes(self) -> None:
        await self._waitlist.create_index(
            [("year", ASCENDING), ("status", ASCENDING), ("priority", DESCENDING), ("since", ASCENDING)], name="admission_order"
        )

    async def _programme(self, year: int, session: AsyncClientSession | None = None) -> dict[str, Any]:
        doc = await self._programmes.find_one_and_update(
            {"_id": f"digital_divide:{year}"},
            {"$setOnInsert": {"year": year, "quota": self.default_quota, "admitted": 0, "suspended": False}},
            upsert=True,
            return_document=True,
            session=session,
        )
        assert doc is not None
        return doc

    async def status(self, year: int) -> ProgrammeStatus:
        doc = await self._programme(year)
        waiting = await self._waitlist.count_documents({"year": year, "status": "waiting"})
        return ProgrammeStatus(year, doc["quota"], doc["admitted"], doc["suspended"], waiting)

    async def set_quota(self, year: int, quota: int) -> ProgrammeStatus:
        await self._programme(year)
        await self._programmes.update_one({"_id": f"digital_divide:{year}"}, {"$set": {"quota": quota}})
        await self.admit_from_waitlist(year)
        return await self.status(year)

    async def admit_or_waitlist(self, *, year: int, request_id: str, person_id: str, priority: int, since: datetime) -> bool:
        """True if admitted now (or already a member this year); False if put on the waitlist."""
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

    async def _admit(self, year: int, person_id: str, request_id: str) -> bool:
        async def transaction(session: AsyncClientSession) -> bool:
            await self._programme(year, session)
            if await self._members.find_one({"_id": f"{year}:{person_id}"}, session=session):
                return True
            taken = await self._programmes.update_one(
                {"_id": f"digital_divide:{year}", "suspended": False, "$expr": {"$lt": ["$admitted", "$quota"]}},
                {"$inc": {"admitted": 1}},
                session=session,
            )
            if taken.modified_count == 0:
                raise _QuotaReached
            await self._members.insert_one(
                {"_id": f"{year}:{person_id}", "year": year, "person_id": person_id, "request_id": request_id}, session=session
            )
            return True

        try:
            async with self._client.start_session() as session:
                return await session.with_transaction(transaction)
        except _QuotaReached:
            return False
        except DuplicateKeyError:
            return True  # a concurrent admission of the same person won the race

    async def suspend(self, year: int) -> ProgrammeStatus:
        await self._programme(year)
        await self._programmes.update_one({"_id": f"digital_divide:{year}"}, {"$set": {"suspended": True}})
        return await self.status(year)

    async def resume(self, year: int) -> tuple[ProgrammeStatus, list[str]]:
        await self._programme(year)
        await self._programmes.update_one({"_id": f"digital_divide:{year}"}, {"$set": {"suspended": False}})
        admitted = await self.admit_from_waitlist(year)
        return await self.status(year), admitted

    async def release(self, year: int, person_id: str) -> list[str]:
        """A member leaves (finished or gave up): the place goes to the next on the waitlist."""
        async with self._client.start_session() as session:

            async def transaction(s: AsyncClientSession) -> None:
                removed = await self._members.delete_one({"_id": f"{year}:{person_id}"}, session=s)
                if removed.deleted_count:
                    await self._programmes.update_one({"_id": f"digital_divide:{year}"}, {"$inc": {"admitted": -1}}, session=s)

            await session.with_transaction(transaction)
        return await self.admit_from_waitlist(year)

    async def admit_from_waitlist(self, year: int) -> list[str]:
        """Admit waiting requests in priority order (then waiting time) while places are free."""
        admitted: list[str] = []
        while True:
            nxt = await self._waitlist.find_one(
                {"year": year, "status": "waiting"}, sort=[("priority", DESCENDING), ("since", ASCENDING)]
            )
            if nxt is None or not await self._admit(year, nxt["person_id"], nxt["_id"]):
                return admitted
            claimed = await self._waitlist.update_one({"_id": nxt["_id"], "status": "waiting"}, {"$set": {"status": "admitted"}})
            if claimed.modified_count:
                admitted.append(nxt["_id"])

    async def waitlist(self, year: int) -> list[dict[str, Any]]:
        return (
            await self._waitlist.find({"year": year, "status": "waiting"})
            .sort([("priority", DESCENDING), ("since", ASCENDING)])
            .to_list(None)
        )
