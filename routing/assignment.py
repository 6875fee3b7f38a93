"""Reservations: a request is offered to one worker at a time, and no worker ever holds more
than their capacity, however many routing replicas race.

Each method is one use case over the ports of `routing.repositories`: load the request,
decide with the pure `routing.reservation.decide`, and save the new state - a compare-and-set
on its `version` - in one transaction with the worker's open count (a compare-and-set too:
available and under capacity). A late or duplicate call is refused by `decide` and returns
False; a save that finds the request changed meanwhile reloads and decides again. Two
replicas that reserve at once conflict inside the store: one commits, the other finds the
request taken, or the worker full and moves on to its next candidate.

`Assignments` runs over any repositories (in-memory fakes in unit tests); `AssignmentStore`
is the same over MongoDB (collections `routing_requests` and `routing_workers`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from pymongo import AsyncMongoClient

from routing.mongo_repositories import MongoRequests, MongoTransactions, MongoWorkers
from routing.repositories import RequestRepository, Session, Transactions, VersionConflict, WorkerRepository
from routing.reservation import (
    Accept,
    Cancel,
    Command,
    Complete,
    Decline,
    Escalate,
    Expire,
    Offer,
    Reassign,
    Refused,
    Reprioritise,
    RequestStatus,
    Requeue,
    Reservation,
    RoutedRequest,
    Schedule,
    Transition,
    decide,
    queue_request,
)
from routing.workers import Availability, ClosedOn, EscalationLevel, EscalationPool, Worker, escalation_pool
from schemas import Language, Target
from services.mongo import MongoDatabase

__all__ = [
    "AssignmentStore",
    "Assignments",
    "QueueKey",
    "QueuedRequest",
    "RequestStatus",
    "Reservation",
    "RoutedRequest",
]

log = structlog.get_logger(__name__)

QueueKey = Callable[[RoutedRequest], Any]


@dataclass(frozen=True)
class QueuedRequest:
    """A request to queue for its team, as `Assignments.add_request` takes it."""

    request_id: str
    team: Target
    language: Language
    required_skills: frozenset[str] = frozenset()
    priority: int = 0
    deadline: datetime | None = None


_SAVE_ATTEMPTS = 10
"""Reload-and-decide rounds after version conflicts before a change gives up (returns False):
each round means someone else changed the request meanwhile, so a few are plenty."""


class _WorkerTaken(Exception):
    """Raised inside a transaction to abort it: the worker filled up or left meanwhile."""


class Assignments:
    """Workers and requests behind repositories, with atomic reservations.

    `clock` gives the current aware time (a fake in tests). `escalate_after` is how long a
    request may wait with no one eligible in its pool before `offer_next` widens it
    (None: never automatically; `escalate` still does). `offer_attempts` bounds how many
    candidates `offer_next` tries when others win them first. `closed_on` says which days the
    service is closed (holidays, closures: `BrusselsCalendar.is_holiday`): nobody is offered
    anything on them, whatever their weekly hours (None: every day is open).
    """

    def __init__(
        self,
        requests: RequestRepository,
        workers: WorkerRepository,
        transactions: Transactions,
        *,
        reservation_timeout: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        escalate_after: timedelta | None = timedelta(minutes=30),
        offer_attempts: int = 5,
        closed_on: ClosedOn | None = None,
    ) -> None:
        if reservation_timeout <= timedelta(0):
            raise ValueError("reservation_timeout must be positive")
        if offer_attempts < 1:
            raise ValueError("offer_attempts must be at least 1")
        self.requests = requests
        self.workers = workers
        self.transactions = transactions
        self.reservation_timeout = reservation_timeout
        self.escalate_after = escalate_after
        self.offer_attempts = offer_attempts
        self.closed_on = closed_on
        self._clock = clock
        self.stats: Counter[str] = Counter()
        """Counts of reservation attempts and of how they ended, for metrics and tests:
        `reserve_runs` (transaction bodies run, retries after a write conflict included),
        `reserved`, `lost_request` (another replica took it), `lost_worker` (the worker
        filled up or left meanwhile), `version_conflicts` (any change decided on a stale state)."""

    async def ensure_indexes(self) -> None:
        await self.workers.ensure_indexes()
        await self.requests.ensure_indexes()

    # --- workers -------------------------------------------------------------------------

    async def upsert_worker(self, worker: Worker) -> bool:
        """Create the worker or replace their profile; True when created.

        Live state - availability, `open_count`, `last_assigned_at` - is taken from `worker`
        only when the worker is new: afterwards only reservations and `set_availability`
        change it, so a profile reload cannot undo a reservation a replica just made.
        """
        return await self.workers.upsert(worker, self._clock())

    async def set_availability(self, worker_id: str, availability: Availability) -> bool:
        """Change the worker's activity; False if there is no such worker.

        Going offline does not withdraw pending offers: they time out and are offered again.
        """
        return await self.workers.set_availability(worker_id, Availability(availability), self._clock())

    async def get_worker(self, worker_id: str) -> Worker | None:
        return await self.workers.get(worker_id)

    async def list_workers(self, team: Target | None = None) -> list[Worker]:
        return await self.workers.by_team(team)

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
        session: Session = None,
    ) -> bool:
        """Queue a request for its team; True when added, False when it was already there.

        Idempotent on `request_id`: a redelivered event leaves the stored request as it is.
        `session` lets a caller add it inside its own transaction (e.g. `ProcessedEvents.run_once`).
        """
        request, transitions = queue_request(
            request_id, team, language, self._clock(), required_skills, priority, deadline, escalation=escalation
        )
        return await self.requests.add(request, transitions, session)

    async def add_requests(self, queued: Sequence[QueuedRequest], *, session: Session = None) -> None:
        """`add_request` of many new requests in one write; one already there fails the whole call
        (inside `session`'s transaction, nothing is added)."""
        now = self._clock()
        await self.requests.add_many(
            [queue_request(q.request_id, q.team, q.language, now, q.required_skills, q.priority, q.deadline) for q in queued],
            session,
        )

    async def get_request(self, request_id: str) -> RoutedRequest | None:
        return await self.requests.get(request_id)

    async def offer_next(self, request_id: str) -> Reservation | None:
        """Reserve the queued request for the best eligible worker; None when it stays queued.

        The reservation is one transaction of two compare-and-sets - the request still at the
        version it was decided on, the worker still available and under capacity - so two
        replicas cannot both reserve the request, nor push a worker past capacity. When another
        replica wins the worker first, the next candidate is tried, up to `offer_attempts` in
        all; when it wins the request, there is nothing left to do.
        """
        now = self._clock()
        request = await self.requests.get(request_id)
        if request is None or request.status != RequestStatus.QUEUED:
            return None
        if request.scheduled_after(now):
            log.debug("routing.scheduled_later", request_id=request_id, not_before=request.not_before)
            return None
        candidates = await self.workers.candidates(request.language, request.required_skills, request.declined_by)
        pool = self._pool(candidates, request, now)
        if pool.escalated:
            escalated = await self._change(request_id, Escalate(pool.level, now, pool.description), loaded=request)
            if escalated is not None:
                request = escalated[0]
                log.info("routing.request_escalated", request_id=request_id, level=pool.level.value, why=pool.description)
        if not pool.candidates:
            log.debug("routing.no_candidate", request_id=request_id, why=pool.description)
            return None
        chosen = list(pool.candidates[: self.offer_attempts])
        conflicts = 0
        while chosen:
            worker_id = chosen[0].worker_id
            try:
                new, transitions = decide(request, Offer(worker_id, now, self.reservation_timeout, pool.level))
            except Refused:
                chosen.pop(0)  # declined by this worker meanwhile
                continue
            try:
                await self.transactions.run(partial(self._commit, request, new, transitions, counter="reserve_runs"))
            except VersionConflict:
                self.stats["version_conflicts"] += 1
                reloaded = await self.requests.get(request_id)
                conflicts += 1
                if reloaded is None or reloaded.status != RequestStatus.QUEUED or conflicts >= _SAVE_ATTEMPTS:
                    self.stats["lost_request"] += 1
                    return None  # another replica reserved it (or it was cancelled) meanwhile
                request = reloaded
                continue
            except _WorkerTaken:
                self.stats["lost_worker"] += 1
                chosen.pop(0)  # this worker filled up or left meanwhile: try the next one
                continue
            self.stats["reserved"] += 1
            assert new.reservation is not None
            log.info(
                "routing.reserved",
                request_id=request_id,
                worker_id=worker_id,
                level=pool.level.value,
                expires_at=new.reservation.expires_at.isoformat(),
            )
            return new.reservation
        return None

    async def offer_together(self, request_ids: Sequence[str]) -> int:
        """`offer_next` of many requests just queued, in the order given (most urgent first), in one
        transaction: returns how many were reserved.

        Each request goes to the worker `offer_next` would choose for it one after the other: the
        candidates are read once per kind of request (language, skills, declined by), and each
        offer counts in the load of the worker for the offers after it. Those nobody is free for
        wait for the dispatcher. The transaction holds the same compare-and-sets
        as `offer_next`: if another replica changed a request or filled a worker meanwhile, nothing
        is committed and each request is offered alone instead. A request whose pool would widen
        (it waited long enough to escalate) is offered alone too.
        """
        now = self._clock()
        loaded = {request.request_id: request for request in await self.requests.get_many(request_ids)}
        queued = [
            loaded[r]
            for r in request_ids
            if r in loaded and loaded[r].status == RequestStatus.QUEUED and not loaded[r].scheduled_after(now)
        ]
        # One candidates query per kind of request; the workers' load as the offers before left it.
        eligible: dict[tuple[Language, frozenset[str], frozenset[str]], list[str]] = {}
        workers: dict[str, Worker] = {}
        for request in queued:
            kind = (request.language, request.required_skills, request.declined_by)
            if kind not in eligible:
                found = await self.workers.candidates(*kind)
                eligible[kind] = [w.worker_id for w in found]
                workers |= {w.worker_id: w for w in found if w.worker_id not in workers}
        planned: list[tuple[RoutedRequest, RoutedRequest, list[Transition]]] = []
        alone: list[str] = []
        for request in queued:
            candidates = [workers[w] for w in eligible[(request.language, request.required_skills, request.declined_by)]]
            pool = self._pool(candidates, request, now)
            if pool.escalated:
                alone.append(request.request_id)
                continue
            if not pool.candidates:
                continue  # nobody free for this one: the dispatcher offers it later
            chosen = pool.candidates[0]
            new, transitions = decide(request, Offer(chosen.worker_id, now, self.reservation_timeout, pool.level))
            planned.append((request, new, transitions))
            workers[chosen.worker_id] = chosen.model_copy(update={"open_count": chosen.open_count + 1, "last_assigned_at": now})

        async def commit_all(session: Session) -> None:
            # The compare-and-sets of `_commit` for all the offers at once: every request still at
            # the version it was decided on, every worker still available with room for all of them.
            self.stats["reserve_runs"] += 1
            await self.requests.save_many([(new, old.version, transitions) for old, new, transitions in planned], session)
            taken = Counter(new.reservation.worker_id for _, new, _ in planned if new.reservation is not None)
            for worker_id, count in taken.items():
                if not await self.workers.take_capacities(worker_id, count, now, session):
                    raise _WorkerTaken(worker_id)

        reserved = 0
        if planned:
            try:
                await self.transactions.run(commit_all)
            except (VersionConflict, _WorkerTaken):
                self.stats["offers_together_abandoned"] += 1
                alone = [old.request_id for old, _, _ in planned] + alone
                planned = []
        for _, new, _ in planned:
            assert new.reservation is not None
            self.stats["reserved"] += 1
            reserved += 1
            log.info(
                "routing.reserved",
                request_id=new.request_id,
                worker_id=new.reservation.worker_id,
                level=new.escalation.value,
                expires_at=new.reservation.expires_at.isoformat(),
            )
        for request_id in alone:
            reserved += await self.offer_next(request_id) is not None
        return reserved

    def _pool(self, candidates: Sequence[Worker], request: RoutedRequest, now: datetime) -> EscalationPool:
        """Who may be offered `request` now, widened by escalation the longer it has waited."""
        return escalation_pool(
            candidates,
            request.offer_request(),
            now,
            # A scheduled callback waits from its window's opening: the person asked for it then.
            waiting_since=max(request.created_at, request.not_before) if request.not_before else request.created_at,
            escalate_after=self.escalate_after,
            closed_on=self.closed_on,
        )

    async def accept(self, request_id: str, worker_id: str) -> bool:
        """The worker takes the offer; False unless it is theirs, still reserved and not expired."""
        accepted = await self._change(request_id, Accept(worker_id, self._clock())) is not None
        log.info("routing.accepted" if accepted else "routing.accept_refused", request_id=request_id, worker_id=worker_id)
        return accepted

    async def decline(self, request_id: str, worker_id: str) -> bool:
        """The worker refuses the offer: it goes back to the queue, never to be offered to them again.

        False when the request is not reserved for this worker (any more). The caller then
        calls `offer_next` to offer it to someone else.
        """
        released = await self._change(request_id, Decline(worker_id, self._clock())) is not None
        if released:
            log.info("routing.declined", request_id=request_id, worker_id=worker_id)
        return released

    async def expire_reservations(self, now: datetime | None = None) -> list[str]:
        """Release every offer not accepted by its expiry; the ids released by this call.

        Safe on several replicas at once: each expired offer is released by one of them.
        The worker counts as having declined, so the request goes to someone else next.
        """
        now = self._clock() if now is None else now
        released: list[str] = []
        for request in await self.requests.expired(now):
            changed = await self._change(request.request_id, Expire(now), loaded=request)
            if changed is not None:
                released.append(request.request_id)
                worker_id = changed[1][0].worker_id
                log.info("routing.reservation_expired", request_id=request.request_id, worker_id=worker_id)
        return released

    async def complete(self, request_id: str, worker_id: str) -> bool:
        """The contact is done: the request is closed and the worker's capacity freed."""
        closed = await self._change(request_id, Complete(worker_id, self._clock())) is not None
        if closed:
            log.info("routing.closed", request_id=request_id, worker_id=worker_id)
        return closed

    async def requeue(self, request_id: str, team: Target, *, reason: str = "") -> bool:
        """Send a closed request to another team's queue (an advisor redirected it after a call)."""
        return await self._change(request_id, Requeue(Target(team), self._clock(), reason)) is not None

    async def reprioritise(self, request_id: str, priority: int, deadline: datetime | None, *, reason: str = "") -> bool:
        """Give an open request a new score and callback deadline; False when it is closed, unknown
        or already so."""
        return await self._change(request_id, Reprioritise(priority, deadline, self._clock(), reason)) is not None

    async def schedule(
        self, request_id: str, not_before: datetime | None, deadline: datetime | None, *, reason: str = ""
    ) -> bool:
        """Offer an open request no earlier than `not_before` (the person's window), with `deadline`
        as its queue deadline; False when it is closed, unknown or already so."""
        return await self._change(request_id, Schedule(not_before, deadline, self._clock(), reason)) is not None

    async def cancel(self, request_id: str, *, reason: str = "") -> bool:
        """Take an open request out of its queue for good and free the worker holding it (the person
        withdrew it); False when it is closed or unknown."""
        cancelled = await self._change(request_id, Cancel(self._clock(), reason)) is not None
        if cancelled:
            log.info("routing.withdrawn", request_id=request_id)
        return cancelled

    async def escalate(self, request_id: str, level: EscalationLevel, *, reason: str = "") -> bool:
        """Widen a queued request's pool to `level`; False if not queued or already as wide."""
        return await self._change(request_id, Escalate(EscalationLevel(level), self._clock(), reason)) is not None

    async def reassign(self, request_id: str, worker_id: str, *, level: EscalationLevel | None = None, reason: str = "") -> bool:
        """Take a reserved or assigned request back from `worker_id` and queue it again.

        For a supervisor (the worker fell ill, the case needs someone else). The worker will
        not be offered it again; `level`, if given, widens its pool at the same time (never
        narrows it). False when the request is not with this worker (any more).
        """
        command = Reassign(worker_id, self._clock(), None if level is None else EscalationLevel(level), reason)
        released = await self._change(request_id, command) is not None
        if released:
            log.info("routing.reassigned", request_id=request_id, worker_id=worker_id)
        return released

    async def offer_to(self, request_id: str, worker_id: str, *, reason: str = "") -> Reservation | None:
        """Reserve the queued request for `worker_id`, chosen by a supervisor rather than by the pool.

        The same compare-and-sets as `offer_next`: None when the request is not queued (any more),
        the worker declined it before, or the worker is not available or has no capacity left.
        """
        now = self._clock()
        request = await self.requests.get(request_id)
        if request is None or request.status != RequestStatus.QUEUED:
            return None
        try:
            new, transitions = decide(request, Offer(worker_id, now, self.reservation_timeout, request.escalation, reason))
        except Refused:
            return None
        try:
            await self.transactions.run(partial(self._commit, request, new, transitions, counter="reserve_runs"))
        except (VersionConflict, _WorkerTaken):
            return None
        log.info("routing.reserved", request_id=request_id, worker_id=worker_id, level="chosen")
        return new.reservation

    # --- load, decide, save --------------------------------------------------------------

    async def _change(
        self, request_id: str, command: Command, *, loaded: RoutedRequest | None = None
    ) -> tuple[RoutedRequest, list[Transition]] | None:
        """Decide `command` on the request and save it; None when there is no such request or
        `decide` refuses. `loaded`, if given, is decided on first (reloaded after a conflict)."""
        state = loaded
        for _ in range(_SAVE_ATTEMPTS):
            if state is None:
                state = await self.requests.get(request_id)
                if state is None:
                    return None
            try:
                new, transitions = decide(state, command)
            except Refused as refused:
                log.debug("routing.refused", request_id=request_id, command=type(command).__name__, why=refused.why)
                return None
            try:
                await self.transactions.run(partial(self._commit, state, new, transitions))
            except VersionConflict:
                self.stats["version_conflicts"] += 1
                state = None
                continue
            return new, transitions
        log.warning("routing.change_abandoned", request_id=request_id, command=type(command).__name__)
        return None

    async def _commit(
        self,
        old: RoutedRequest,
        new: RoutedRequest,
        transitions: list[Transition],
        session: Session,
        *,
        counter: str | None = None,
    ) -> None:
        # The transaction body: it may run again after a write conflict, so it only writes.
        if counter:
            self.stats[counter] += 1
        await self.requests.save(new, old.version, transitions, session)
        for transition in transitions:
            worker_id = transition.worker_id
            if transition.worker_delta == 1:
                assert worker_id is not None
                if not await self.workers.take_capacity(worker_id, transition.at, session):
                    raise _WorkerTaken(worker_id)
            elif transition.worker_delta == -1:
                assert worker_id is not None
                if not await self.workers.free(worker_id, session):
                    # Cannot happen while every change of open_count goes through this module;
                    # the request is released all the same rather than left stuck.
                    log.error("routing.open_count_inconsistent", worker_id=worker_id, request_id=new.request_id)

    # --- views ---------------------------------------------------------------------------

    async def queue_for(self, worker_id: str, now: datetime | None = None) -> list[RoutedRequest]:
        """The worker's desk: live offers (soonest to expire first), then the requests they hold."""
        now = self._clock() if now is None else now
        requests = [
            r
            for r in await self.requests.held_by(worker_id)
            if r.reservation is not None and (r.status == RequestStatus.ASSIGNED or r.reservation.expires_at > now)
        ]

        def desk_order(r: RoutedRequest) -> tuple[bool, datetime, str]:
            assert r.reservation is not None
            offered = r.status == RequestStatus.RESERVED
            moment = r.reservation.expires_at if offered else (r.reservation.accepted_at or r.reservation.offered_at)
            return (not offered, moment, r.request_id)

        return sorted(requests, key=desk_order)

    async def open_for_team(self, team: Target) -> list[RoutedRequest]:
        """The team's requests still to be called back (queued, offered, assigned), in no particular order."""
        return await self.requests.open_for_team(Target(team))

    async def queued(self, team: Target, *, key: QueueKey, limit: int | None = None) -> list[RoutedRequest]:
        """The team's queued requests in the order to offer them.

        `key` sorts ascending (first is served first): the service's `queue_key`, so that this
        module holds no ordering policy of its own.
        """
        requests = sorted(await self.requests.queued(Target(team)), key=key)
        return requests if limit is None else requests[:limit]

    async def history(self, request_id: str) -> list[dict[str, Any]]:
        """The request's last transitions (at, event, worker_id, reason), oldest first."""
        return await self.requests.history(request_id)


class AssignmentStore(Assignments):
    """`Assignments` over MongoDB: `routing_requests` and `routing_workers`, multi-document
    transactions on `client`."""

    workers_collection = MongoWorkers.collection
    requests_collection = MongoRequests.collection

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        db: MongoDatabase,
        *,
        reservation_timeout: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        escalate_after: timedelta | None = timedelta(minutes=30),
        offer_attempts: int = 5,
        closed_on: ClosedOn | None = None,
    ) -> None:
        super().__init__(
            MongoRequests(db),
            MongoWorkers(db),
            MongoTransactions(client),
            reservation_timeout=reservation_timeout,
            clock=clock,
            escalate_after=escalate_after,
            offer_attempts=offer_attempts,
            closed_on=closed_on,
        )
