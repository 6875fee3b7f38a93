"""The MongoDB adapters of `certification.repositories`: one transaction per unit of work.

A save is a compare-and-set: ``update_one({"_id": id, "version": loaded}, {"$set": state, version + 1})``,
and a match of nothing aborts the whole transaction with `ConcurrencyConflict`. A document
written before versions existed has no `version` field and counts as version 0, so existing data
loads and saves unchanged. States are written with ``$set``, so fields this code does not know
(written by a newer replica during a rolling update) survive a save. Outbox entries, timer
changes and the processed-event record go in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from certification.candidate import Candidate
from certification.errors import ConcurrencyConflict
from certification.offer import SeatOffer
from certification.repositories import (
    CandidateRepository,
    CentreRepository,
    CertificationUnitOfWork,
    CredentialRepository,
    DueTimers,
    OfferRepository,
    PriorityHints,
    Repository,
    ResultRepository,
    SessionRepository,
)
from certification.result import ExamResult, IssuedCredential
from certification.seating import CandidateStatus, CentreState
from certification.sessions import Centre, Session
from certification.store import WAITLIST_SORT, CertificationStore
from schemas import Event
from services.idempotency import ProcessedEvents
from services.outbox import Outbox
from services.timers import Timer, TimerStore

__all__ = ["MongoDueTimers", "MongoUnitOfWork", "version_is"]

Document = dict[str, Any]


def version_is(version: int) -> Document:
    """The filter of a compare-and-set on `version`; version 0 also matches a document without one."""
    return {"version": version} if version else {"version": {"$in": [0, None]}}


async def _write(
    repository: Repository[Any],
    collection: AsyncCollection[Document],
    as_document: Callable[[Any], Document],
    s: AsyncClientSession,
) -> None:
    for state in repository.added.values():
        doc = {**as_document(state), "version": state.version + 1}
        try:
            await collection.insert_one(doc, session=s)
        except DuplicateKeyError as error:
            raise ConcurrencyConflict(f"{collection.name} {doc['_id']} exists already") from error
    for key, state in repository.saved.items():
        doc = {**as_document(state), "version": state.version + 1}
        del doc["_id"]
        result = await collection.update_one({"_id": key, **version_is(state.version)}, {"$set": doc}, session=s)
        if not result.matched_count:
            raise ConcurrencyConflict(f"{collection.name} {key} changed since version {state.version}")


def _centre_document(centre: Centre) -> Document:
    return {"_id": centre.centre_id, "name": centre.name, "address": centre.address, "state": centre.state.value}


def _session_document(session: Session) -> Document:
    return {
        "_id": session.session_id,
        "centre_id": session.centre_id,
        "certifications": list(session.certifications),
        "starts_at": session.starts_at,
        "seats": session.seats,
        "held": session.held,
        "booked": session.booked,
    }


class MongoCandidates(CandidateRepository):
    def __init__(self, store: CertificationStore) -> None:
        super().__init__()
        self._collection = store.candidates

    async def get(self, candidate_id: str) -> Candidate | None:
        doc = await self._collection.find_one({"_id": candidate_id})
        return None if doc is None else Candidate.from_document(doc)

    async def find(
        self, *, certification: str | None = None, status: CandidateStatus | None = None, person_id: str | None = None
    ) -> list[Candidate]:
        query: Document = {}
        if certification:
            query["certification_code"] = certification.upper()
        if status:
            query["status"] = status.value
        if person_id:
            query["person_id"] = person_id
        cursor = self._collection.find(query).sort([("certification_code", ASCENDING), ("_id", ASCENDING)])
        return [Candidate.from_document(doc) async for doc in cursor]

    async def waiting(
        self, certifications: Collection[str], *, not_passed_over: str | None = None, limit: int | None = None
    ) -> list[Candidate]:
        query: Document = {"certification_code": {"$in": list(certifications)}, "status": CandidateStatus.WAITING.value}
        if not_passed_over is not None:
            query["passed_over_sessions"] = {"$ne": not_passed_over}
        cursor = self._collection.find(query).sort(WAITLIST_SORT).limit(limit or 0)
        return [Candidate.from_document(doc) async for doc in cursor]

    async def of_person(self, person_id: str, statuses: Collection[CandidateStatus]) -> list[Candidate]:
        query = {"person_id": person_id, "status": {"$in": [s.value for s in statuses]}}
        return [Candidate.from_document(doc) async for doc in self._collection.find(query).sort("_id", ASCENDING)]

    async def write(self, s: AsyncClientSession) -> None:
        await _write(self, self._collection, Candidate.as_document, s)


class MongoOffers(OfferRepository):
    def __init__(self, store: CertificationStore) -> None:
        super().__init__()
        self._collection = store.offers

    async def get(self, offer_id: str) -> SeatOffer | None:
        doc = await self._collection.find_one({"_id": offer_id})
        return None if doc is None else SeatOffer.from_document(doc)

    async def write(self, s: AsyncClientSession) -> None:
        await _write(self, self._collection, SeatOffer.as_document, s)


class MongoSessions(SessionRepository):
    def __init__(self, store: CertificationStore) -> None:
        super().__init__()
        self._collection = store.sessions

    async def get(self, session_id: str) -> Session | None:
        doc = await self._collection.find_one({"_id": session_id})
        return None if doc is None else Session.from_document(doc)

    async def find(
        self,
        *,
        centre_id: str | None = None,
        certification: str | None = None,
        centre_ids: Collection[str] | None = None,
        starting_after: datetime | None = None,
    ) -> list[Session]:
        query: Document = {}
        if centre_id:
            query["centre_id"] = centre_id
        if centre_ids is not None:
            query.setdefault("$and", []).append({"centre_id": {"$in": list(centre_ids)}})
        if certification:
            query["certifications"] = certification.upper()
        if starting_after is not None:
            query["starts_at"] = {"$gt": starting_after}
        cursor = self._collection.find(query).sort([("starts_at", ASCENDING), ("_id", ASCENDING)])
        return [Session.from_document(doc) async for doc in cursor]

    async def write(self, s: AsyncClientSession) -> None:
        await _write(self, self._collection, _session_document, s)


class MongoCentres(CentreRepository):
    def __init__(self, store: CertificationStore) -> None:
        super().__init__()
        self._collection = store.centres

    async def get(self, centre_id: str) -> Centre | None:
        doc = await self._collection.find_one({"_id": centre_id})
        return None if doc is None else Centre.from_document(doc)

    async def find(self, *, open_only: bool = False) -> list[Centre]:
        query = {"state": CentreState.OPEN.value} if open_only else {}
        return [Centre.from_document(doc) async for doc in self._collection.find(query).sort("_id", ASCENDING)]

    async def write(self, s: AsyncClientSession) -> None:
        await _write(self, self._collection, _centre_document, s)
        for key, centre in self.unchanged.items():
            # A write, not a read: only a write conflicts with a concurrent change in a transaction.
            result = await self._collection.update_one(
                {"_id": key, **version_is(centre.version)}, {"$inc": {"offers_made": 1}}, session=s
            )
            if not result.matched_count:
                raise ConcurrencyConflict(f"centre {key} changed since version {centre.version}")


class MongoResults(ResultRepository):
    def __init__(self, store: CertificationStore) -> None:
        super().__init__()
        self._collection = store.results

    async def get(self, result_id: str) -> ExamResult | None:
        doc = await self._collection.find_one({"_id": result_id})
        return None if doc is None else ExamResult.from_document(doc)

    async def write(self, s: AsyncClientSession) -> None:
        await _write(self, self._collection, ExamResult.as_document, s)


class MongoCredentials(CredentialRepository):
    def __init__(self, store: CertificationStore) -> None:
        super().__init__()
        self._collection = store.credentials

    async def write(self, s: AsyncClientSession) -> None:
        await _write(self, self._collection, IssuedCredential.as_document, s)


class MongoPriorityHints(PriorityHints):
    def __init__(self, store: CertificationStore) -> None:
        self._collection = store.hints

    async def boost(self, person_id: str) -> int:
        doc = await self._collection.find_one({"_id": person_id})
        return int(doc["boost"]) if doc else 0

    async def raise_to(self, person_id: str, boost: int) -> None:
        await self._collection.update_one({"_id": person_id}, {"$max": {"boost": boost}}, upsert=True)


class MongoUnitOfWork(CertificationUnitOfWork):
    def __init__(self, store: CertificationStore, *, outbox: Outbox, timers: TimerStore, processed: ProcessedEvents) -> None:
        super().__init__()
        self._store = store
        self._outbox = outbox
        self._timers = timers
        self._processed = processed
        self.candidates = self._candidates = MongoCandidates(store)
        self.offers = self._offers = MongoOffers(store)
        self.sessions = self._sessions = MongoSessions(store)
        self.centres = self._centres = MongoCentres(store)
        self.results = self._results = MongoResults(store)
        self.credentials = self._credentials = MongoCredentials(store)
        self.hints = MongoPriorityHints(store)

    async def _write_states(self, s: AsyncClientSession) -> list[Event]:
        # Centres first: an offer that lost its centre conflicts before touching anything else.
        await self._centres.write(s)
        await self._sessions.write(s)
        await self._candidates.write(s)
        await self._offers.write(s)
        await self._results.write(s)
        await self._credentials.write(s)
        for change in self.timer_changes:
            if change.fire_at is None:
                await self._timers.cancel(change.kind, change.key, session=s)
            else:
                await self._timers.schedule(change.kind, change.key, change.fire_at, change.payload, session=s)
        return list(self.events)

    async def _commit(self, once_for: Event | None) -> bool:
        if once_for is not None:
            outcome = await self._processed.run_once(once_for, self._write_states, outbox=self._outbox)
            return outcome.applied

        async def work(s: AsyncClientSession) -> None:
            events = await self._write_states(s)
            await self._outbox.add(events, session=s)

        await self._store.transaction(work)
        return True


class MongoDueTimers(DueTimers):
    def __init__(self, timers: TimerStore) -> None:
        self._timers = timers

    async def fire_due(self, kind: str, handle: Callable[[str, Mapping[str, Any]], Awaitable[None]]) -> int:
        async def fire(timer: Timer, _: AsyncClientSession) -> None:
            # The handler commits its own unit of work: it is idempotent (an offer expires once,
            # by compare-and-set), so a timer fired again after a crash changes nothing.
            await handle(timer.key, timer.payload)

        return await self._timers.run_once({kind: fire})
