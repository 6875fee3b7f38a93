"""MongoDB adapters of `routing.repositories`: collections `routing_requests` and `routing_workers`.

A request is one document with its state, a `version` and its last transitions under
`history`; a save is one `update_one` that matches the expected version. A worker's
`open_count` changes only by compare-and-set (`take_capacity`, `free`). Both run inside the
caller's transaction (`MongoTransactions`), so a reservation's two writes commit together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, time
from typing import Any, TypeVar

from pymongo import ASCENDING, AsyncMongoClient, UpdateOne
from pymongo.errors import DuplicateKeyError

from routing.repositories import RequestRepository, Session, Transactions, VersionConflict, WorkerRepository
from routing.reservation import RequestStatus, Reservation, RoutedRequest, Transition
from routing.workers import Availability, EscalationLevel, Worker
from schemas import Language, Target
from services.mongo import MongoDatabase

__all__ = ["MongoRequests", "MongoTransactions", "MongoWorkers"]

T = TypeVar("T")


class MongoTransactions(Transactions):
    """A multi-document transaction per unit of work (MongoDB retries it on a write conflict)."""

    def __init__(self, client: AsyncMongoClient[Any]) -> None:
        self._client = client

    async def run(self, body: Callable[[Session], Awaitable[T]]) -> T:
        async with self._client.start_session() as session:
            result: T = await session.with_transaction(body)
            return result


class MongoRequests(RequestRepository):
    collection = "routing_requests"

    def __init__(self, db: MongoDatabase) -> None:
        self._requests = db[self.collection]

    async def ensure_indexes(self) -> None:
        await self._requests.create_index(
            [("status", ASCENDING), ("team", ASCENDING), ("priority", ASCENDING), ("deadline", ASCENDING)],
            name="queue",
        )
        await self._requests.create_index([("reservation.worker_id", ASCENDING), ("status", ASCENDING)], name="desk")
        await self._requests.create_index(
            [("reservation.expires_at", ASCENDING)],
            name="reservation_expiry",
            partialFilterExpression={"status": RequestStatus.RESERVED},
        )

    async def get(self, request_id: str, session: Session = None) -> RoutedRequest | None:
        doc = await self._requests.find_one({"_id": request_id}, {"history": 0}, session=session)
        return routed_request(doc) if doc else None

    async def add(self, request: RoutedRequest, transitions: Iterable[Transition], session: Session = None) -> bool:
        try:
            await self._requests.insert_one(_new_request(request, transitions), session=session)
        except DuplicateKeyError:
            return False
        return True

    async def get_many(self, request_ids: Sequence[str]) -> list[RoutedRequest]:
        docs = await self._requests.find({"_id": {"$in": list(request_ids)}}, {"history": 0}).to_list(None)
        return [routed_request(doc) for doc in docs]

    async def add_many(self, added: Sequence[tuple[RoutedRequest, Sequence[Transition]]], session: Session = None) -> None:
        docs = [_new_request(request, transitions) for request, transitions in added]
        if docs:
            await self._requests.insert_many(docs, ordered=True, session=session)

    async def save(
        self, new: RoutedRequest, expected_version: int, transitions: Iterable[Transition], session: Session = None
    ) -> None:
        result = await self._requests.update_one(
            _at_version(new.request_id, expected_version), self._saved(new, transitions), session=session
        )
        if result.matched_count != 1:
            raise VersionConflict(new.request_id, expected_version)

    async def save_many(self, saved: Sequence[tuple[RoutedRequest, int, Sequence[Transition]]], session: Session = None) -> None:
        if not saved:
            return
        result = await self._requests.bulk_write(
            [
                UpdateOne(_at_version(new.request_id, expected), self._saved(new, transitions))
                for new, expected, transitions in saved
            ],
            ordered=True,
            session=session,
        )
        if result.matched_count != len(saved):
            # Which one moved on does not matter: the caller's transaction is aborted as a whole.
            raise VersionConflict(saved[0][0].request_id, saved[0][1])

    def _saved(self, new: RoutedRequest, transitions: Iterable[Transition]) -> dict[str, Any]:
        """The update that stores `new` and appends its transitions to the kept history."""
        return {
            "$set": _state(new),
            "$push": {"history": {"$each": [t.entry() for t in transitions], "$slice": -self.HISTORY_KEPT}},
        }

    async def history(self, request_id: str) -> list[dict[str, Any]]:
        doc = await self._requests.find_one({"_id": request_id}, {"history": 1})
        return list(doc.get("history", [])) if doc else []

    async def queued(self, team: Target) -> list[RoutedRequest]:
        docs = self._requests.find({"status": RequestStatus.QUEUED, "team": Target(team).value}, {"history": 0})
        return [routed_request(doc) async for doc in docs]

    async def open_for_team(self, team: Target) -> list[RoutedRequest]:
        live = [RequestStatus.QUEUED, RequestStatus.RESERVED, RequestStatus.ASSIGNED]
        docs = self._requests.find({"status": {"$in": live}, "team": Target(team).value}, {"history": 0})
        return [routed_request(doc) async for doc in docs]

    async def held_by(self, worker_id: str) -> list[RoutedRequest]:
        docs = self._requests.find(
            {"reservation.worker_id": worker_id, "status": {"$in": [RequestStatus.RESERVED, RequestStatus.ASSIGNED]}},
            {"history": 0},
        )
        return [routed_request(doc) async for doc in docs]

    async def expired(self, now: datetime) -> list[RoutedRequest]:
        docs = self._requests.find(
            {"status": RequestStatus.RESERVED, "reservation.expires_at": {"$lte": now}},
            {"history": 0},
        )
        return [routed_request(doc) async for doc in docs]


class MongoWorkers(WorkerRepository):
    collection = "routing_workers"

    def __init__(self, db: MongoDatabase) -> None:
        self._workers = db[self.collection]

    async def ensure_indexes(self) -> None:
        await self._workers.create_index([("team", ASCENDING), ("availability", ASCENDING)], name="team_availability")

    async def upsert(self, worker: Worker, now: datetime) -> bool:
        result = await self._workers.update_one(
            {"_id": worker.worker_id},
            {
                "$set": {
                    "display_name": worker.display_name,
                    "team": worker.team.value,
                    "languages": sorted(language.value for language in worker.languages),
                    "skills": sorted(worker.skills),
                    "backup_for": sorted(team.value for team in worker.backup_for),
                    "working_hours": _hours_doc(worker.working_hours),
                    "capacity": worker.capacity,
                    "supervisor": worker.supervisor,
                    "supervises": sorted(team.value for team in worker.supervises),
                    "updated_at": now,
                },
                "$setOnInsert": {
                    "availability": worker.availability.value,
                    "open_count": worker.open_count,
                    "last_assigned_at": worker.last_assigned_at,
                    "created_at": now,
                },
            },
            upsert=True,
        )
        return result.upserted_id is not None

    async def set_availability(self, worker_id: str, availability: Availability, now: datetime) -> bool:
        result = await self._workers.update_one(
            {"_id": worker_id},
            {"$set": {"availability": Availability(availability).value, "updated_at": now}},
        )
        return result.matched_count == 1

    async def get(self, worker_id: str) -> Worker | None:
        doc = await self._workers.find_one({"_id": worker_id})
        return _worker(doc) if doc else None

    async def by_team(self, team: Target | None = None) -> list[Worker]:
        query: dict[str, Any] = {} if team is None else {"team": Target(team).value}
        return [_worker(doc) async for doc in self._workers.find(query).sort("_id", ASCENDING)]

    async def candidates(self, language: Language, required_skills: frozenset[str], excluded: frozenset[str]) -> list[Worker]:
        query: dict[str, Any] = {
            "availability": Availability.AVAILABLE.value,
            "languages": Language(language).value,
            "$expr": {"$lt": ["$open_count", "$capacity"]},
        }
        if required_skills:
            query["skills"] = {"$all": sorted(required_skills)}
        if excluded:
            query["_id"] = {"$nin": sorted(excluded)}
        return [_worker(doc) async for doc in self._workers.find(query)]

    async def take_capacity(self, worker_id: str, now: datetime, session: Session = None) -> bool:
        result = await self._workers.update_one(
            {"_id": worker_id, "availability": Availability.AVAILABLE.value, "$expr": {"$lt": ["$open_count", "$capacity"]}},
            {"$inc": {"open_count": 1}, "$set": {"last_assigned_at": now}},
            session=session,
        )
        return result.modified_count == 1

    async def take_capacities(self, worker_id: str, count: int, now: datetime, session: Session = None) -> bool:
        result = await self._workers.update_one(
            {
                "_id": worker_id,
                "availability": Availability.AVAILABLE.value,
                "$expr": {"$lte": [{"$add": ["$open_count", count]}, "$capacity"]},
            },
            {"$inc": {"open_count": count}, "$set": {"last_assigned_at": now}},
            session=session,
        )
        return result.modified_count == 1

    async def free(self, worker_id: str, session: Session = None) -> bool:
        result = await self._workers.update_one(
            {"_id": worker_id, "open_count": {"$gt": 0}}, {"$inc": {"open_count": -1}}, session=session
        )
        return result.modified_count == 1


# --- documents ---------------------------------------------------------------------------


def _new_request(request: RoutedRequest, transitions: Iterable[Transition]) -> dict[str, Any]:
    return {"_id": request.request_id, **_state(request), "history": [t.entry() for t in transitions]}


def _at_version(request_id: str, expected_version: int) -> dict[str, Any]:
    """The request if it is still at `expected_version`; documents written before versions existed
    have none: they are at version 0."""
    return {"_id": request_id, "version": {"$in": [0, None]} if expected_version == 0 else expected_version}


def _state(request: RoutedRequest) -> dict[str, Any]:
    """The stored fields of a request but its id and history, as `$set` writes them."""
    reservation = request.reservation
    return {
        "team": Target(request.team).value,
        "language": Language(request.language).value,
        "required_skills": sorted(request.required_skills),
        "priority": request.priority,
        "deadline": request.deadline,
        "status": request.status,
        "escalation": EscalationLevel(request.escalation).value,
        "declined_by": sorted(request.declined_by),
        "reservation": None
        if reservation is None
        else {
            "worker_id": reservation.worker_id,
            "offered_at": reservation.offered_at,
            "expires_at": reservation.expires_at,
            "level": reservation.level.value,
            "accepted_at": reservation.accepted_at,
        },
        "created_at": request.created_at,
        "updated_at": request.updated_at,
        "escalated_at": request.escalated_at,
        "closed_at": request.closed_at,
        "not_before": request.not_before,
        "version": request.version,
    }


def _utc(at: datetime | None) -> datetime | None:
    # A client without tz_aware=True hands back naive datetimes; MongoDB stores UTC.
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _hours_doc(hours: dict[int, list[tuple[time, time]]]) -> dict[str, list[list[str]]]:
    return {
        str(day): [[start.isoformat(), end.isoformat()] for start, end in intervals] for day, intervals in sorted(hours.items())
    }


def _worker(doc: dict[str, Any]) -> Worker:
    return Worker(
        worker_id=doc["_id"],
        display_name=doc.get("display_name", ""),
        team=doc["team"],
        languages=frozenset(doc["languages"]),
        skills=frozenset(doc.get("skills", ())),
        backup_for=frozenset(doc.get("backup_for", ())),
        working_hours={
            int(day): [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in intervals]
            for day, intervals in doc.get("working_hours", {}).items()
        },
        availability=doc["availability"],
        capacity=doc["capacity"],
        open_count=doc.get("open_count", 0),
        last_assigned_at=_utc(doc.get("last_assigned_at")),
        supervisor=doc.get("supervisor", False),
        supervises=frozenset(doc.get("supervises", ())),
    )


def routed_request(doc: dict[str, Any]) -> RoutedRequest:
    """A stored request document as the aggregate (documents from before versions included)."""
    stored = doc.get("reservation")
    reservation = None
    if stored:
        reservation = Reservation(
            request_id=doc["_id"],
            worker_id=stored["worker_id"],
            offered_at=_aware(stored["offered_at"]),
            expires_at=_aware(stored["expires_at"]),
            level=EscalationLevel(stored.get("level", EscalationLevel.TEAM.value)),
            accepted_at=_utc(stored.get("accepted_at")),
        )
    return RoutedRequest(
        request_id=doc["_id"],
        team=Target(doc["team"]),
        language=Language(doc["language"]),
        required_skills=frozenset(doc.get("required_skills", ())),
        priority=doc.get("priority", 0),
        deadline=_utc(doc.get("deadline")),
        status=doc["status"],
        escalation=EscalationLevel(doc.get("escalation", EscalationLevel.TEAM.value)),
        declined_by=frozenset(doc.get("declined_by", ())),
        created_at=_aware(doc["created_at"]),
        reservation=reservation,
        version=doc.get("version") or 0,
        escalated_at=_utc(doc.get("escalated_at")),
        closed_at=_utc(doc.get("closed_at")),
        updated_at=_utc(doc.get("updated_at")),
        not_before=_utc(doc.get("not_before")),
    )
