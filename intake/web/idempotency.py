"""The API's Idempotency-Key claims: which body a client first sent with a key, on every replica.

A key belongs to a client (`client_scope`), so two clients choosing the same key never meet, and no
one can probe another client's key for its result. A claim remembers the body's hash for `ttl`:
the same key with another body is refused (422) wherever it lands; the same key and body goes on to
the pipeline, whose durable dedup key answers the first result. `MongoIdempotencyKeys` keeps claims
in a collection every replica shares; `InMemoryIdempotencyKeys` does the same for unit tests.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

__all__ = ["IdempotencyKeys", "InMemoryIdempotencyKeys", "MongoIdempotencyKeys", "scoped_key"]


def scoped_key(client_scope: str, key: str) -> str:
    """The key as stored: the client's scope and the key, hashed (a scope is an address: personal)."""
    return hashlib.sha256(f"{client_scope}\x00{key}".encode()).hexdigest()[:40]


class IdempotencyKeys(ABC):
    @abstractmethod
    async def claim(self, scoped: str, body_sha256: str, now: datetime) -> bool:
        """Tie `scoped` to this body if it is free: True when it is (now) this body's, False when
        it was claimed first with another body. A claim stays even if its request then fails
        (503): the client retries the same body, which the claim lets through."""


class MongoIdempotencyKeys(IdempotencyKeys):
    def __init__(self, db: Any, ttl: timedelta, collection: str = "web_idempotency_keys") -> None:
        self._claims = db[collection]
        self._ttl = ttl

    async def ensure_indexes(self) -> None:
        await self._claims.create_index("expires_at", expireAfterSeconds=0, name="expires_at_ttl")

    async def claim(self, scoped: str, body_sha256: str, now: datetime) -> bool:
        # One atomic upsert: of two replicas claiming the same key at once with two bodies, one wins.
        insert = {"$setOnInsert": {"body_sha256": body_sha256, "expires_at": now + self._ttl}}
        for attempt in range(2):
            try:
                doc = await self._claims.find_one_and_update(
                    {"_id": scoped}, insert, upsert=True, return_document=ReturnDocument.AFTER
                )
                return bool(doc["body_sha256"] == body_sha256)
            except DuplicateKeyError:  # the other replica inserted it first; read its claim
                if attempt:
                    raise
        raise AssertionError("unreachable")


class InMemoryIdempotencyKeys(IdempotencyKeys):
    """Claims in one process's memory: for tests, never for replicas (claims do not expire)."""

    def __init__(self) -> None:
        self.claims: dict[str, str] = {}

    async def claim(self, scoped: str, body_sha256: str, now: datetime) -> bool:
        return self.claims.setdefault(scoped, body_sha256) == body_sha256
