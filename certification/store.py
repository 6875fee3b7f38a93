"""What certification's MongoDB adapters share: the collections and their indexes, and one way to run
a transaction; also the error staff and candidates read and the catalogue look-up (re-exported).

`certification.candidates`, `certification.seats` and `certification.awards` each own what they
change; the collections are shared because one transaction often spans them (an offer takes a
seat and claims a candidate at once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from certification.candidate import candidate_id, utc
from certification.certifications import CertificationInfo, Certifications
from certification.errors import CertificationError, Unknown
from certification.offer import SOURCE
from services.mongo import MongoDatabase

__all__ = [
    "SOURCE",
    "WAITLIST_SORT",
    "CertificationError",
    "CertificationStore",
    "candidate_id",
    "catalogued",
    "utc",
]

WAITLIST_SORT = [("priority", DESCENDING), ("waiting_since", ASCENDING), ("_id", ASCENDING)]
"""`seating.order_key` in MongoDB's terms, so that the first documents are the first in line."""

T = TypeVar("T")


def catalogued(certifications: Certifications, code: str) -> CertificationInfo:
    """The certification `code` names; a `CertificationError` (404) if the catalogue has none."""
    cert = certifications.get(code)
    if cert is None:
        raise Unknown(f"{code} is not a certification of the catalogue")
    return cert


class CertificationStore:
    """Certification's collections in one database, and transactions over them."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase) -> None:
        self._client = client
        self.candidates = db["certification_candidates"]
        self.centres = db["certification_centres"]
        self.sessions = db["certification_sessions"]
        self.offers = db["certification_offers"]
        self.results = db["certification_results"]
        self.credentials = db["certification_credentials"]
        self.hints = db["certification_priority_hints"]

    async def ensure_indexes(self) -> None:
        # Also creates every collection up front: creating one inside racing transactions conflicts.
        await self.candidates.create_index(
            [("certification_code", ASCENDING), ("status", ASCENDING), *WAITLIST_SORT], name="waitlist_order"
        )
        await self.candidates.create_index([("person_id", ASCENDING)], name="person")
        await self.candidates.create_index([("session_id", ASCENDING), ("person_id", ASCENDING)], name="session_person")
        await self.centres.create_index([("state", ASCENDING)], name="state")
        await self.sessions.create_index([("centre_id", ASCENDING), ("starts_at", ASCENDING)], name="centre_starts_at")
        await self.sessions.create_index(
            [("certifications", ASCENDING), ("starts_at", ASCENDING)], name="certification_starts_at"
        )
        await self.offers.create_index([("candidate_id", ASCENDING), ("status", ASCENDING)], name="candidate_status")
        await self.offers.create_index([("session_id", ASCENDING), ("status", ASCENDING)], name="session_status")
        await self.results.create_index([("session_id", ASCENDING)], name="session")
        await self.credentials.create_index([("person_id", ASCENDING)], name="person")
        await self.credentials.create_index([("status", ASCENDING)], name="status")
        # One credential per bit of the revocation list: a second one drawn at the same index conflicts and draws again.
        await self.credentials.create_index(
            [("status_index", ASCENDING)],
            name="status_index",
            unique=True,
            partialFilterExpression={"status_index": {"$exists": True}},
        )
        await self.hints.create_index([("boost", ASCENDING)], name="boost")

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run `work` in one transaction (retried by the driver on transient errors)."""
        async with self._client.start_session() as session:
            return await session.with_transaction(work)
