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
from pymongo.errors import DuplicateKeyError

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

    Increments of one counter that arrive while a write of it is in flight are written together,
    as one `$inc` of their number, when it returns; each is given its own count (the new total
    minus those after it), as if they had been written one by one. A busy counter (all of one
    partner site's submissions count against its network) then costs one round trip per batch,
    and concurrent updates of one document do not queue up in MongoDB. A lone increment is
    written at once."""

    def __init__(self, db: Any, collection: str = "rate_limits") -> None:
        self._counters = db[collection]
        self._queued: dict[str, list[asyncio.Future[int]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def ensure_indexes(self) -> None:
        # MongoDB's TTL monitor removes a counter within a minute of its window's end; until then
        # it is only ever read for its own window, so a late removal changes nothing.
        await self._counters.create_index("expires_at", expireAfterSeconds=0, name="expires_at_ttl")

    async def _increment(self, counter: str, expires_at: datetime) -> int:
        counted: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(counter, []).append(counted)
        if counter not in self._writers:
            self._writers[counter] = asyncio.create_task(self._write_queued(counter, expires_at))
        return await counted

    async def _write_queued(self, counter: str, expires_at: datetime) -> None:
        """Write the counter's queued increments, a batch per round trip, until none is left."""
        try:
            while waiting := self._queued.pop(counter, None):
                try:
                    total = await self._add(counter, expires_at, len(waiting))
                except Exception as error:  # noqa: BLE001 - each waiting request fails as a lone one would
                    for counted in waiting:
                        if not counted.done():
                            counted.set_exception(error)
                    continue
                except BaseException:
                    for counted in waiting:
                        counted.cancel()
                    raise
                for before, counted in enumerate(reversed(waiting)):
                    if not counted.done():
                        counted.set_result(total - before)
        finally:
            del self._writers[counter]
            for counted in self._queued.pop(counter, []):  # only when cancelled: nobody writes these now
                counted.cancel()

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
