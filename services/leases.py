"""Leases in MongoDB: one holder at a time for work that must not run on two replicas at once.

A lease is a document with a holder and an expiry; taking it is one conditional update,
so two replicas racing for it cannot both win. The holder renews it while it works; if
it dies, the lease expires and another replica takes over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from services.mongo import MongoDatabase


class Lease:
    collection_name = "leases"

    def __init__(self, db: MongoDatabase, name: str, holder: str, *, ttl: timedelta = timedelta(seconds=10)) -> None:
        self._collection = db[self.collection_name]
        self.name = name
        self.holder = holder
        self.ttl = ttl

    async def acquire(self) -> bool:
        """Take or renew the lease; False while another live holder has it."""
        now = datetime.now(UTC)
        try:
            result = await self._collection.update_one(
                {"_id": self.name, "$or": [{"holder": self.holder}, {"expires_at": {"$lt": now}}]},
                {"$set": {"holder": self.holder, "expires_at": now + self.ttl}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the document exists and is held by someone else: the upsert collided
        return result.matched_count == 1 or result.upserted_id is not None

    async def release(self) -> None:
        await self._collection.delete_one({"_id": self.name, "holder": self.holder})
