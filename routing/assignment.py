"""Reservations in MongoDB: a request is offered to one worker at a time, and no worker ever
holds more than their capacity, however many routing replicas race.

Collections `routing_workers` (profile plus live `open_count`) and `routing_requests`. A
request moves queued -> reserved -> assigned -> closed; a decline, a timed-out offer or a
reassignment sends it back to queued. Every transition is a compare-and-set on `status` and
`reservation.worker_id`, and every transition that touches a worker's `open_count` runs in
one transaction with the request's, so a late or duplicate call changes nothing and returns
False. Two replicas that reserve at once conflict inside MongoDB: one commits, the other's
conditional update then matches nothing and it moves on to its next candidate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any

import structlog
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from routing.workers import (
    Availability,
    EscalationLevel,
    OfferRequest,
    Worker,
    escalation_pool,
)
from schemas import Language, Target
from services.mongo import MongoDatabase

__all__ = [
    "AssignmentStore",
    "QueueKey",
    "RequestStatus",
    "Reservation",
    "RoutedRequest",
]

log = structlog.get_logger(__name__)


class RequestStatus:
    """Values of `routing_requests.status` (plain strings: they are stored and queried as such)."""

    QUEUED = "queued"
    RESERVED = "reserved"
    ASSIGNED = "assigned"
    CLOSED = "closed"


_HISTORY_KEPT = 50
"""Transitions kept on each request for explanations; older ones are dropped."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """An offer of one request to one worker, until `expires_at`."""

    request_id: str
    worker_id: str
    offered_at: datetime
    expires_at: datetime
    level: EscalationLevel = EscalationLevel.TEAM
    accepted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RoutedRequest:
    """A request as routing stores it (for queues, the desk and explanations)."""

    request_id: str
    team: Target
    language: Language
    required_skills: frozenset[str]
    priority: int
    """Higher is served first."""
    deadline: datetime | None
    status: str
    escalation: EscalationLevel
    declined_by: frozenset[str]
    created_at: datetime
    reservation: Reservation | None

    def offer_request(self) -> OfferRequest:
        return OfferRequest(
            request_id=self.request_id,
            team=self.team,
            language=self.language,
            required_skills=self.required_skills,
            declined_by=self.declined_by,
            escalation=self.escalation,
        )


QueueKey = Callable[[RoutedRequest], Any]


class _Lost(Exception):
    """Raised inside a transaction to abort it: a compare-and-set found the state changed."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class AssignmentStore:
    """Workers and requests in MongoDB, with atomic reservations.

    `clock` gives the current aware time (a fake in tests). `escalate_after` is how long a
    request may wait with no one eligible in its pool before `offer_next` widens it
    (None: never automatically; `escalate` still does). `offer_attempts` bounds how many
    candidates `offer_next` tries when others win them first.
    """

    workers_collection = "routing_workers"
    requests_collection = "routing_requests"

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        db: MongoDatabase,
        *,
        reservation_timeout: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        escalate_after: timedelta | None = timedelta(minutes=30),
        offer_attempts: int = 5,
    ) -> None:
        if reservation_timeout <= timedelta(0):
            raise ValueError("reservation_timeout must be positive")
        if offer_attempts < 1:
            raise ValueError("offer_attempts must be at least 1")
        self._client = client
        self._workers = db[self.workers_collection]
        self._requests = db[self.requests_collection]
        self.reservation_timeout = reservation_timeout
        self.escalate_after = escalate_after
        self.offer_attempts = offer_attempts
        self._clock = clock
        self.stats: Counter[str] = Counter()
        """Counts of reservation attempts and of how they ended, for metrics and tests:
        `reserve_runs` (transaction bodies run, retries after a write conflict included),
        `reserved`, `lost_request` (another replica took it), `lost_worker` (the worker
        filled up or left meanwhile)."""

    async def ensure_indexes(self) -> None:
        await self._workers.create_index([("team", ASCENDING), ("availability", ASCENDING)], name="team_availability")
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

    # --- workers -------------------------------------------------------------------------

    async def upsert_worker(self, worker: Worker) -> bool:
        """Create the worker or replace their profile; True when created.

        Live state - availability, `open_count`, `last_assigned_at` - is taken from `worker`
        only when the worker is new: afterwards only reservations and `set_availability`
        change it, so a profile reload cannot undo a reservation a replica just made.
        """
        now = self._clock()
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

    async def set_availability(self, worker_id: str, availability: Availability) -> bool:
        """Change the worker's activity; False if there is no such worker.

        Going offline does not withdraw pending offers: they time out and are offered again.
        """
        result = await self._workers.update_one(
            {"_id": worker_id},
            {"$set": {"availability": Availability(availability).value, "updated_at": self._clock()}},
        )
        return result.matched_count == 1

    async def get_worker(self, worker_id: str) -> Worker | None:
        doc = await self._workers.find_one({"_id": worker_id})
        return _worker(doc) if doc else None

    async def list_workers(self, team: Target | None = None) -> list[Worker]:
        query: dict[str, Any] = {} if team is None else {"team": Target(team).value}
        return [_worker(doc) async for doc in self._workers.find(query).sort("_id", ASCENDING)]

    # --- requests ------------------------------------------------------------------------

    async def add_request(
        self,
        request_id: str,
        team: Target,
        language: Language,
        required_skills: Iterable[str] = (),
        priority: int = 0,
        deadline: datetime | None = None,
        *,
        escalation: EscalationLevel = EscalationLevel.TEAM,
        session: AsyncClientSession | None = None,
    ) -> bool:
        """Queue a request for its team; True when added, False when it was already there.

        Idempotent on `request_id`: a redelivered event leaves the stored request as it is.
        `session` lets a caller add it inside its own transaction (e.g. `ProcessedEvents.run_once`).
        """
        now = self._clock()
        try:
            await self._requests.insert_one(
                {
                    "_id": request_id,
                    "team": Target(team).value,
                    "language": Language(language).value,
                    "required_skills": sorted(set(required_skills)),
                    "priority": priority,
                    "deadline": deadline,
                    "status": RequestStatus.QUEUED,
                    "escalation": EscalationLevel(escalation).value,
                    "declined_by": [],
                    "reservation": None,
                    "created_at": now,
                    "updated_at": now,
                    "history": [{"at": now, "event": "queued"}],
                },
                session=session,
            )
        except DuplicateKeyError:
            return False
        return True

    async def get_request(self, request_id: str) -> RoutedRequest | None:
        doc = await self._requests.find_one({"_id": request_id}, {"history": 0})
        return _routed(doc) if doc else None

    async def offer_next(self, request_id: str) -> Reservation | None:
        """Reserve the queued request for the best eligible worker; None when it stays queued.

        The reservation is one transaction of two compare-and-sets - the request still
        queued, the worker still available and under capacity - so two replicas cannot both
        reserve the request, nor push a worker past capacity. When another replica wins the
        worker first, the next candidate is tried, up to `offer_attempts` in all; when it wins
        the request, there is nothing left to do.
        """
        now = self._clock()
        doc = await self._requests.find_one({"_id": request_id, "status": RequestStatus.QUEUED}, {"history": 0})
        if doc is None:
            return None
        request = _routed(doc)
        pool = escalation_pool(
            await self._candidates(request),
            request.offer_request(),
            now,
            waiting_since=request.created_at,
            escalate_after=self.escalate_after,
        )
        if pool.escalated and await self.escalate(request_id, pool.level, reason=pool.description):
            log.info("routing.request_escalated", request_id=request_id, level=pool.level.value, why=pool.description)
        if not pool.candidates:
            log.debug("routing.no_candidate", request_id=request_id, why=pool.description)
            return None
        for worker in pool.candidates[: self.offer_attempts]:
            reservation = Reservation(
                request_id=request_id,
                worker_id=worker.worker_id,
                offered_at=now,
                expires_at=now + self.reservation_timeout,
                level=pool.level,
            )
            try:
                await self._transaction(partial(self._reserve, reservation=reservation))
            except _Lost as lost:
                self.stats[f"lost_{lost.what}"] += 1
                if lost.what == "request":
                    return None  # another replica reserved it (or it was cancelled) meanwhile
                continue  # this worker filled up or left meanwhile: try the next one
            self.stats["reserved"] += 1
            log.info(
                "routing.reserved",
                request_id=request_id,
                worker_id=worker.worker_id,
                level=pool.level.value,
                expires_at=reservation.expires_at.isoformat(),
            )
            return reservation
        return None

    async def _candidates(self, request: RoutedRequest) -> list[Worker]:
        # A coarse pre-filter in MongoDB; `routing.workers` applies every rule exactly.
        query: dict[str, Any] = {
            "availability": Availability.AVAILABLE.value,
            "languages": request.language.value,
            "$expr": {"$lt": ["$open_count", "$capacity"]},
        }
        if request.required_skills:
            query["skills"] = {"$all": sorted(request.required_skills)}
        if request.declined_by:
            query["_id"] = {"$nin": sorted(request.declined_by)}
        return [_worker(doc) async for doc in self._workers.find(query)]

    async def _reserve(self, session: AsyncClientSession, reservation: Reservation) -> None:
        self.stats["reserve_runs"] += 1
        now = reservation.offered_at
        taken = await self._requests.update_one(
            {
                "_id": reservation.request_id,
                "status": RequestStatus.QUEUED,
                "declined_by": {"$ne": reservation.worker_id},
            },
            {
                "$set": {
                    "status": RequestStatus.RESERVED,
                    "reservation": {
                        "worker_id": reservation.worker_id,
                        "offered_at": reservation.offered_at,
                        "expires_at": reservation.expires_at,
                        "level": reservation.level.value,
                        "accepted_at": None,
                    },
                    "updated_at": now,
                },
                "$push": _history(now, "reserved", reservation.worker_id),
            },
            session=session,
        )
        if taken.modified_count != 1:
            raise _Lost("request")
        counted = await self._workers.update_one(
            {
                "_id": reservation.worker_id,
                "availability": Availability.AVAILABLE.value,
                "$expr": {"$lt": ["$open_count", "$capacity"]},
            },
            {"$inc": {"open_count": 1}, "$set": {"last_assigned_at": now}},
            session=session,
        )
        if counted.modified_count != 1:
            raise _Lost("worker")

    async def accept(self, request_id: str, worker_id: str) -> bool:
        """The worker takes the offer; False unless it is theirs, still reserved and not expired."""
        now = self._clock()
        result = await self._requests.update_one(
            {
                "_id": request_id,
                "status": RequestStatus.RESERVED,
                "reservation.worker_id": worker_id,
                "reservation.expires_at": {"$gt": now},
            },
            {
                "$set": {"status": RequestStatus.ASSIGNED, "reservation.accepted_at": now, "updated_at": now},
                "$push": _history(now, "accepted", worker_id),
            },
        )
        accepted = result.modified_count == 1
        event = "routing.accepted" if accepted else "routing.accept_refused"
        log.info(event, request_id=request_id, worker_id=worker_id)
        return accepted

    async def decline(self, request_id: str, worker_id: str) -> bool:
        """The worker refuses the offer: it goes back to the queue, never to be offered to them again.

        False when the request is not reserved for this worker (any more). The caller then
        calls `offer_next` to offer it to someone else.
        """
        released = await self._release(request_id, worker_id, RequestStatus.RESERVED, event="declined")
        if released:
            log.info("routing.declined", request_id=request_id, worker_id=worker_id)
        return released

    async def expire_reservations(self, now: datetime | None = None) -> list[str]:
        """Release every offer not accepted by its expiry; the ids released by this call.

        Safe on several replicas at once: each expired offer is released by one of them.
        The worker counts as having declined, so the request goes to someone else next.
        """
        now = self._clock() if now is None else now
        expired = self._requests.find(
            {"status": RequestStatus.RESERVED, "reservation.expires_at": {"$lte": now}},
            {"reservation.worker_id": 1},
        )
        released: list[str] = []
        async for doc in expired:
            worker_id = doc["reservation"]["worker_id"]
            if await self._release(doc["_id"], worker_id, RequestStatus.RESERVED, event="timed_out", expired_by=now):
                released.append(doc["_id"])
                log.info("routing.reservation_expired", request_id=doc["_id"], worker_id=worker_id)
        return released

    async def complete(self, request_id: str, worker_id: str) -> bool:
        """The contact is done: the request is closed and the worker's capacity freed."""
        now = self._clock()

        async def close(session: AsyncClientSession) -> None:
            result = await self._requests.update_one(
                {"_id": request_id, "status": RequestStatus.ASSIGNED, "reservation.worker_id": worker_id},
                {
                    "$set": {"status": RequestStatus.CLOSED, "closed_at": now, "updated_at": now},
                    "$push": _history(now, "closed", worker_id),
                },
                session=session,
            )
            if result.modified_count != 1:
                raise _Lost("request")
            await self._free(session, worker_id, request_id)

        try:
            await self._transaction(close)
        except _Lost:
            return False
        log.info("routing.closed", request_id=request_id, worker_id=worker_id)
        return True

    async def requeue(self, request_id: str, team: Target, *, reason: str = "") -> bool:
        """Send a closed request to another team's queue (an advisor redirected it after a call)."""
        now = self._clock()
        result = await self._requests.update_one(
            {"_id": request_id, "status": RequestStatus.CLOSED},
            {
                "$set": {
                    "team": Target(team).value,
                    "status": RequestStatus.QUEUED,
                    "reservation": None,
                    "declined_by": [],
                    "escalation": EscalationLevel.TEAM.value,
                    "updated_at": now,
                },
                "$push": _history(now, "requeued", None, reason=reason),
            },
        )
        return result.modified_count == 1

    async def escalate(self, request_id: str, level: EscalationLevel, *, reason: str = "") -> bool:
        """Widen a queued request's pool to `level`; False if not queued or already as wide."""
        level = EscalationLevel(level)
        now = self._clock()
        narrower = [lower.value for lower in EscalationLevel if level.wider_than(lower)]
        result = await self._requests.update_one(
            {"_id": request_id, "status": RequestStatus.QUEUED, "escalation": {"$in": narrower}},
            {
                "$set": {"escalation": level.value, "escalated_at": now, "updated_at": now},
                "$push": _history(now, f"escalated:{level.value}", None, reason=reason or None),
            },
        )
        return result.modified_count == 1

    async def reassign(self, request_id: str, worker_id: str, *, level: EscalationLevel | None = None, reason: str = "") -> bool:
        """Take a reserved or assigned request back from `worker_id` and queue it again.

        For a supervisor (the worker fell ill, the case needs someone else). The worker will
        not be offered it again; `level`, if given, widens its pool at the same time. False
        when the request is not with this worker (any more).
        """
        released = await self._release(
            request_id,
            worker_id,
            {"$in": [RequestStatus.RESERVED, RequestStatus.ASSIGNED]},
            event="reassigned",
            level=None if level is None else EscalationLevel(level),
            reason=reason,
        )
        if released:
            log.info("routing.reassigned", request_id=request_id, worker_id=worker_id)
        return released

    async def _release(
        self,
        request_id: str,
        worker_id: str,
        status: str | dict[str, Any],
        *,
        event: str,
        expired_by: datetime | None = None,
        level: EscalationLevel | None = None,
        reason: str = "",
    ) -> bool:
        """Back to the queue from `worker_id`, their capacity freed, in one transaction."""
        now = self._clock()
        condition: dict[str, Any] = {"_id": request_id, "status": status, "reservation.worker_id": worker_id}
        if expired_by is not None:
            # Only if still expired: an offer renewed meanwhile is not someone else's to take.
            condition["reservation.expires_at"] = {"$lte": expired_by}

        async def release(session: AsyncClientSession) -> None:
            changes: dict[str, Any] = {"status": RequestStatus.QUEUED, "reservation": None, "updated_at": now}
            if level is not None:
                # Read and write in one transaction: a concurrent change is a write conflict,
                # so the level is widened and never narrowed.
                current = await self._requests.find_one(condition, {"escalation": 1}, session=session)
                if current is None:
                    raise _Lost("request")
                if level.wider_than(EscalationLevel(current.get("escalation", EscalationLevel.TEAM.value))):
                    changes["escalation"] = level.value
                    changes["escalated_at"] = now
            result = await self._requests.update_one(
                condition,
                {
                    "$set": changes,
                    "$addToSet": {"declined_by": worker_id},
                    "$push": _history(now, event, worker_id, reason=reason or None),
                },
                session=session,
            )
            if result.modified_count != 1:
                raise _Lost("request")
            await self._free(session, worker_id, request_id)

        try:
            await self._transaction(release)
        except _Lost:
            return False
        return True

    async def _free(self, session: AsyncClientSession, worker_id: str, request_id: str) -> None:
        freed = await self._workers.update_one(
            {"_id": worker_id, "open_count": {"$gt": 0}}, {"$inc": {"open_count": -1}}, session=session
        )
        if freed.modified_count != 1:
            # Cannot happen while every change of open_count goes through this module; the
            # request is released all the same rather than left stuck with a missing worker.
            log.error("routing.open_count_inconsistent", worker_id=worker_id, request_id=request_id)

    async def _transaction(self, callback: Callable[[AsyncClientSession], Any]) -> Any:
        async with self._client.start_session() as session:
            return await session.with_transaction(callback)

    # --- views ---------------------------------------------------------------------------

    async def queue_for(self, worker_id: str, now: datetime | None = None) -> list[RoutedRequest]:
        """The worker's desk: live offers (soonest to expire first), then the requests they hold."""
        now = self._clock() if now is None else now
        docs = self._requests.find(
            {
                "reservation.worker_id": worker_id,
                "$or": [
                    {"status": RequestStatus.ASSIGNED},
                    {"status": RequestStatus.RESERVED, "reservation.expires_at": {"$gt": now}},
                ],
            },
            {"history": 0},
        )
        requests = [_routed(doc) async for doc in docs]

        def desk_order(r: RoutedRequest) -> tuple[bool, datetime, str]:
            assert r.reservation is not None
            offered = r.status == RequestStatus.RESERVED
            moment = r.reservation.expires_at if offered else (r.reservation.accepted_at or r.reservation.offered_at)
            return (not offered, moment, r.request_id)

        return sorted(requests, key=desk_order)

    async def queued(self, team: Target, *, key: QueueKey, limit: int | None = None) -> list[RoutedRequest]:
        """The team's queued requests in the order to offer them.

        `key` sorts ascending (first is served first): the service's `queue_key`, so that this
        store holds no ordering policy of its own.
        """
        docs = self._requests.find({"status": RequestStatus.QUEUED, "team": Target(team).value}, {"history": 0})
        requests = sorted([_routed(doc) async for doc in docs], key=key)
        return requests if limit is None else requests[:limit]

    async def history(self, request_id: str) -> list[dict[str, Any]]:
        """The request's last transitions (at, event, worker_id, reason), oldest first."""
        doc = await self._requests.find_one({"_id": request_id}, {"history": 1})
        return list(doc.get("history", [])) if doc else []


# --- documents ---------------------------------------------------------------------------


def _history(now: datetime, event: str, worker_id: str | None, *, reason: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": now, "event": event, "worker_id": worker_id}
    if reason:
        entry["reason"] = reason
    return {"history": {"$each": [entry], "$slice": -_HISTORY_KEPT}}


def _utc(at: datetime | None) -> datetime | None:
    # A client without tz_aware=True hands back naive datetimes; MongoDB stores UTC.
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)


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
    )


def _routed(doc: dict[str, Any]) -> RoutedRequest:
    stored = doc.get("reservation")
    reservation = None
    if stored:
        reservation = Reservation(
            request_id=doc["_id"],
            worker_id=stored["worker_id"],
            offered_at=_utc(stored["offered_at"]),  # type: ignore[arg-type]
            expires_at=_utc(stored["expires_at"]),  # type: ignore[arg-type]
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
        created_at=_utc(doc["created_at"]),  # type: ignore[arg-type]
        reservation=reservation,
    )
