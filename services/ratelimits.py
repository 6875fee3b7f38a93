"""Rate limits every replica counts together: fixed-window counters in MongoDB.

A `Hit` names what is counted (a client's network, a destination) and its `Limit` (so many per
window). `RateLimits.take` counts one request against several hits at once and says how long to
wait when any of them is over its limit. `MongoRateLimits` keeps the counters in one collection
shared by all replicas, one document per (scope, key, window), each gone (TTL index) once its
window is over; `InMemoryRateLimits` is the same behaviour for unit tests.

Why not the `limits` library: its asyncio MongoDB storage (5.8) is built on Motor, which
MongoDB has deprecated in favour of PyMongo's own async API, the only driver this project uses.
A fixed window is one atomic `$inc` with upsert per counter, so it is written here instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

DUPLICATE_KEY = 11000

__all__ = [
    "Hit",
    "InMemoryRateLimits",
    "Limit",
    "MongoRateLimits",
    "RateLimits",
    "client_network",
    "counter_id",
    "retry_after",
]


@dataclass(frozen=True)
class Limit:
    """At most `count` requests in each window of `window_s` seconds (windows aligned on the epoch)."""

    count: int
    window_s: int


@dataclass(frozen=True)
class Hit:
    """One counter to take a request from: `scope` says what `key` is (`network`, `destination`)."""

    scope: str
    key: str
    limit: Limit


def window_index(now: datetime, window_s: int) -> int:
    return math.floor(now.timestamp() / window_s)


def retry_after(now: datetime, window_s: int) -> int:
    """Seconds until the window holding `now` is over (≥ 1)."""
    ends = (window_index(now, window_s) + 1) * window_s
    return max(1, math.ceil(ends - now.timestamp()))


def counter_id(hit: Hit, now: datetime) -> str:
    """The counter's id: hashed, because keys are personal (addresses, phone numbers)."""
    window = window_index(now, hit.limit.window_s)
    digest = hashlib.sha256(f"{hit.scope}\x00{hit.key}".encode()).hexdigest()[:32]
    return f"{hit.scope}:{hit.limit.window_s}:{window}:{digest}"


class RateLimits(ABC):
    """Counts requests against limits; the count is the same whichever replica asks."""

    async def take(self, hits: Sequence[Hit], now: datetime) -> int | None:
        """Count one request against every hit: None if all are within their limits, else the
        seconds to wait until the longest refusing window is over. A refused request still counts,
        so hammering does not buy a quicker turn."""
        counts = await asyncio.gather(*(self._increment(counter_id(hit, now), self._expiry(hit, now)) for hit in hits))
        waits = [retry_after(now, hit.limit.window_s) for hit, count in zip(hits, counts, strict=True) if count > hit.limit.count]
        return max(waits) if waits else None

    @staticmethod
    def _expiry(hit: Hit, now: datetime) -> datetime:
        ends = (window_index(now, hit.limit.window_s) + 1) * hit.limit.window_s
        return datetime.fromtimestamp(ends, UTC)

    @abstractmethod
    async def _increment(self, counter: str, expires_at: datetime) -> int:
        """Add one to `counter` (created at 0 if new, forgotten after `expires_at`); the new count."""


class MongoRateLimits(RateLimits):
    """The counters in `collection`, shared by every replica using the same database.

    Increments that arrive while a write is in flight are written together when it returns, and
    each is given its own count (a counter's new total minus the increments after it), as if they
    had been written one by one. Counters not there yet, like the destinations of new people, are
    created by one insert for all, their count being their increments; the others are incremented
    one `$inc` each, in parallel. A busy counter (all of one partner site's submissions count
    against its network) then costs one round trip per batch, and concurrent updates of one
    document do not queue up in MongoDB. A lone increment is written at once."""

    KNOWN_COUNTERS_BOUND = 10_000

    def __init__(self, db: Any, collection: str = "rate_limits") -> None:
        self._counters = db[collection]
        self._queued: dict[str, tuple[datetime, list[asyncio.Future[int]]]] = {}
        self._writer: asyncio.Task[None] | None = None
        # Counters found to exist already, until their window ends: not worth an insert that would fail.
        self._known: dict[str, datetime] = {}

    async def ensure_indexes(self) -> None:
        # MongoDB's TTL monitor removes a counter within a minute of its window's end; until then
        # it is only ever read for its own window, so a late removal changes nothing.
        await self._counters.create_index("expires_at", expireAfterSeconds=0, name="expires_at_ttl")

    async def _increment(self, counter: str, expires_at: datetime) -> int:
        counted: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(counter, (expires_at, []))[1].append(counted)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())
        return await counted

    async def _write_queued(self) -> None:
        """Write the queued increments, a batch at a time, until none is left."""
        try:
            while self._queued:
                batch, self._queued = self._queued, {}
                try:
                    totals = await self._add_all(
                        {counter: (expires_at, len(waiting)) for counter, (expires_at, waiting) in batch.items()}
                    )
                except Exception as error:  # noqa: BLE001 - each waiting request fails as a lone one would
                    for _, waiting in batch.values():
                        for counted in waiting:
                            if not counted.done():
                                counted.set_exception(error)
                    continue
                except BaseException:
                    for _, waiting in batch.values():
                        for counted in waiting:
                            counted.cancel()
                    raise
                for counter, (_, waiting) in batch.items():
                    for before, counted in enumerate(reversed(waiting)):
                        if not counted.done():
                            counted.set_result(totals[counter] - before)
        finally:
            self._writer = None
            for _, waiting in self._queued.values():  # only when cancelled: nobody writes these now
                for counted in waiting:
                    counted.cancel()
            self._queued = {}

    async def _add_all(self, increments: dict[str, tuple[datetime, int]]) -> dict[str, int]:
        """Add to each counter (`counter: (expires_at, count)`); their new totals."""
        totals = {counter: count for counter, (_, count) in increments.items()}
        new = [counter for counter in increments if counter not in self._known]
        existing = [counter for counter in increments if counter in self._known]
        if new:
            documents = [{"_id": c, "count": increments[c][1], "expires_at": increments[c][0]} for c in new]
            try:
                await self._counters.insert_many(documents, ordered=False)
            except BulkWriteError as error:
                found = [e for e in error.details.get("writeErrors", []) if e.get("code") == DUPLICATE_KEY]
                if len(found) != len(error.details.get("writeErrors", [])) or error.details.get("writeConcernErrors"):
                    raise
                existing += [new[e["index"]] for e in found]
                self._remember([new[e["index"]] for e in found], increments)
        added = await asyncio.gather(*(self._add(c, *increments[c]) for c in existing))
        totals.update(zip(existing, added, strict=True))
        return totals

    def _remember(self, counters: list[str], increments: dict[str, tuple[datetime, int]]) -> None:
        if len(self._known) + len(counters) > self.KNOWN_COUNTERS_BOUND:
            now = datetime.now(UTC)
            self._known = {c: ends for c, ends in self._known.items() if ends > now}
            if len(self._known) + len(counters) > self.KNOWN_COUNTERS_BOUND:
                self._known = {}  # only a shortcut: forgetting costs one failed insert per counter
        self._known.update((c, increments[c][0]) for c in counters)

    async def _add(self, counter: str, expires_at: datetime, count: int) -> int:
        update = {"$inc": {"count": count}, "$setOnInsert": {"expires_at": expires_at}}
        for attempt in range(2):
            try:
                doc = await self._counters.find_one_and_update(
                    {"_id": counter}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
                return int(doc["count"])
            except DuplicateKeyError:  # two replicas created the counter at once; it exists now
                if attempt:
                    raise
        raise AssertionError("unreachable")


class InMemoryRateLimits(RateLimits):
    """The same counting in one process's memory: for tests, never for replicas."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def _increment(self, counter: str, expires_at: datetime) -> int:
        self.counts[counter] = self.counts.get(counter, 0) + 1
        return self.counts[counter]


def client_network(request: Request) -> str:
    """Who the client is, for limits and idempotency keys: its IPv6 /64, or its IPv4 address.

    The address is uvicorn's (`request.client`), which is the proxy's unless uvicorn trusts that
    proxy (`--forwarded-allow-ips`, e.g. `INTAKE_FORWARDED_ALLOW_IPS`); then it is the address the proxy
    saw. An IPv6 subscriber gets a whole /64 and can pick a new address per request, so the /64 is
    the client; it includes the address, so one counter per /64 is the stricter limit.
    """
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP (a test client, a unix socket): the name is all there is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
