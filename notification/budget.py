"""Daily message budgets, per destination and overall, shared by every notification replica.

Anyone can make us write to an address or text a number by filling the public form with it; a
script doing that in a loop would turn our service into a spammer paid by Bruxelles Formation.
So each channel has, per Brussels day, a cap per destination (5 SMS and 10 e-mails to one
number or address by default) and a global cap (2,000 SMS and 20,000 e-mails), checked just
before each send.

Counted in MongoDB (`notification_budget`), one document per day and counter, so the caps hold
whatever the number of replicas: taking one unit is a single conditional upsert (`count < cap`,
`$inc`), atomic on the server. When the counter is already at its cap the filter does not match,
the upsert tries to insert the same `_id` and fails with a duplicate key: that is the refusal.
Documents expire two days after their day (TTL index). A destination is stored as the SHA-256
of its address, not the address (the contact projection next to it already holds the addresses).

What a refusal does is the sender's decision (`notification.sender`): the message is *deferred*
to the next day, with the reason on the delivery, never dropped and never retried in a loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from schemas import NotificationChannel
from services.calendar import BRUSSELS
from services.mongo import MongoDatabase

__all__ = ["BUDGET", "BudgetRefusal", "DailyCaps", "MessageBudget", "budget_day", "next_budget_day"]

BUDGET = "notification_budget"
_KEPT_FOR = timedelta(days=2)


class BudgetRefusal(StrEnum):
    DESTINATION = "budget_destination"
    """This number or address has had its messages of the day."""
    GLOBAL = "budget_global"
    """The service has sent its messages of the day on this channel."""


@dataclass(frozen=True, slots=True)
class DailyCaps:
    per_destination: Mapping[NotificationChannel, int] = field(
        default_factory=lambda: {NotificationChannel.SMS: 5, NotificationChannel.EMAIL: 10}
    )
    overall: Mapping[NotificationChannel, int] = field(
        default_factory=lambda: {NotificationChannel.SMS: 2_000, NotificationChannel.EMAIL: 20_000}
    )


def budget_day(now: datetime) -> date:
    """The Brussels day `now` counts against."""
    return now.astimezone(BRUSSELS).date()


def next_budget_day(now: datetime) -> datetime:
    """When the next Brussels day starts: where a message over budget is deferred to."""
    tomorrow = budget_day(now) + timedelta(days=1)
    return datetime.combine(tomorrow, time(0, 0), tzinfo=BRUSSELS)


def _destination_key(channel: NotificationChannel, destination: str) -> str:
    normalised = destination.strip().lower()
    return hashlib.sha256(f"{channel.value}:{normalised}".encode()).hexdigest()


class MessageBudget:
    def __init__(self, db: MongoDatabase, caps: DailyCaps | None = None) -> None:
        self._counters = db[BUDGET]
        self.caps = caps or DailyCaps()

    async def ensure_indexes(self) -> None:
        await self._counters.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl")

    async def spend(self, channel: NotificationChannel, destination: str, *, now: datetime) -> BudgetRefusal | None:
        """Take one message of today's budgets for `destination` on `channel`; why not, if it may not go."""
        day = budget_day(now)
        expires_at = next_budget_day(now) + _KEPT_FOR
        own = f"{day.isoformat()}:{channel.value}:{_destination_key(channel, destination)}"
        if not await self._take(own, self.caps.per_destination[channel], expires_at, kind="destination", channel=channel.value):
            return BudgetRefusal.DESTINATION
        overall = f"{day.isoformat()}:{channel.value}:all"
        if not await self._take(overall, self.caps.overall[channel], expires_at, kind="global", channel=channel.value):
            # Not sent, so not counted against the destination either.
            await self._counters.update_one({"_id": own}, {"$inc": {"count": -1}})
            return BudgetRefusal.GLOBAL
        return None

    async def used(self, channel: NotificationChannel, destination: str | None, *, now: datetime) -> int:
        """How many of today's messages are spent (for `destination`, or overall when None)."""
        who = "all" if destination is None else _destination_key(channel, destination)
        doc = await self._counters.find_one({"_id": f"{budget_day(now).isoformat()}:{channel.value}:{who}"})
        return int(doc["count"]) if doc else 0

    async def _take(self, key: str, cap: int, expires_at: datetime, **labels: Any) -> bool:
        if cap <= 0:
            return False
        update = {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": expires_at, **labels}}
        # Two tries: the first upsert of the day can lose an insert race with another replica
        # (duplicate key although the counter is below its cap); the second then finds the document.
        for _ in range(2):
            try:
                await self._counters.update_one({"_id": key, "count": {"$lt": cap}}, update, upsert=True)
            except DuplicateKeyError:
                continue
            return True
        return False
