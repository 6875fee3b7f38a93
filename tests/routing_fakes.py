"""In-memory fakes of `routing.repositories`, for unit tests of reservations (never of MongoDB).

They honour the contract the MongoDB adapters do (`tests/routing_contract.py` runs against
both): a save is a compare-and-set on `version`, `take_capacity` a compare-and-set on the
worker, and `FakeTransactions` commits all of a body's writes or none. Reads yield to the
event loop after reading, so concurrent use cases interleave between loading and saving as replicas
do; a transaction body runs under one lock and its writes never yield, so nobody sees half of
it, and a failed body is undone by restoring a snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from routing.assignment import Assignments
from routing.repositories import RequestRepository, Session, Transactions, VersionConflict, WorkerRepository
from routing.reservation import RequestStatus, RoutedRequest, Transition
from routing.workers import Availability, Worker
from schemas import Language, Target

__all__ = ["FakeRequests", "FakeTransactions", "FakeWorkers", "InMemoryAssignments", "in_memory_assignments"]

T = TypeVar("T")


class _Snapshottable(Protocol):
    def snapshot(self) -> Any: ...

    def restore(self, snapshot: Any) -> None: ...


async def _late(value: T) -> T:
    # Read now, answer after the others had a turn: like a reply on its way back from a
    # server, so concurrent use cases decide on what may be stale by the time they save.
    await asyncio.sleep(0)
    return value


class FakeTransactions(Transactions):
    """Serialised transactions over the fakes given: a failed body leaves them as they were."""

    def __init__(self, *participants: _Snapshottable) -> None:
        self._participants = participants
        self._lock = asyncio.Lock()
        self.runs = 0
        self.aborted = 0

    async def run(self, body: Callable[[Session], Awaitable[T]]) -> T:
        async with self._lock:
            self.runs += 1
            snapshots = [p.snapshot() for p in self._participants]
            try:
                return await body(None)
            except BaseException:
                self.aborted += 1
                for participant, snapshot in zip(self._participants, snapshots, strict=True):
                    participant.restore(snapshot)
                raise


class FakeRequests(RequestRepository):
    def __init__(self) -> None:
        self._requests: dict[str, RoutedRequest] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}

    def snapshot(self) -> tuple[dict[str, RoutedRequest], dict[str, list[dict[str, Any]]]]:
        return dict(self._requests), {key: list(entries) for key, entries in self._history.items()}

    def restore(self, snapshot: tuple[dict[str, RoutedRequest], dict[str, list[dict[str, Any]]]]) -> None:
        self._requests, self._history = snapshot

    async def get(self, request_id: str, session: Session = None) -> RoutedRequest | None:
        return await _late(self._requests.get(request_id))

    async def add(self, request: RoutedRequest, transitions: Iterable[Transition], session: Session = None) -> bool:
        if request.request_id in self._requests:
            return False
        self._requests[request.request_id] = request
        self._history[request.request_id] = [t.entry() for t in transitions][-self.HISTORY_KEPT :]
        return True

    async def save(
        self, new: RoutedRequest, expected_version: int, transitions: Iterable[Transition], session: Session = None
    ) -> None:
        stored = self._requests.get(new.request_id)
        if stored is None or stored.version != expected_version:
            raise VersionConflict(new.request_id, expected_version)
        self._requests[new.request_id] = new
        entries = self._history[new.request_id] + [t.entry() for t in transitions]
        self._history[new.request_id] = entries[-self.HISTORY_KEPT :]

    async def history(self, request_id: str) -> list[dict[str, Any]]:
        return await _late(list(self._history.get(request_id, [])))

    async def queued(self, team: Target) -> list[RoutedRequest]:
        return await _late([r for r in self._requests.values() if r.status == RequestStatus.QUEUED and r.team == team])

    async def open_for_team(self, team: Target) -> list[RoutedRequest]:
        live = (RequestStatus.QUEUED, RequestStatus.RESERVED, RequestStatus.ASSIGNED)
        return await _late([r for r in self._requests.values() if r.status in live and r.team == team])

    async def held_by(self, worker_id: str) -> list[RoutedRequest]:
        return await _late([r for r in self._requests.values() if r.held_by() == worker_id])

    async def expired(self, now: datetime) -> list[RoutedRequest]:
        return await _late(
            [
                r
                for r in self._requests.values()
                if r.status == RequestStatus.RESERVED and r.reservation is not None and r.reservation.expires_at <= now
            ]
        )


class FakeWorkers(WorkerRepository):
    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}

    def snapshot(self) -> dict[str, Worker]:
        return dict(self._workers)

    def restore(self, snapshot: dict[str, Worker]) -> None:
        self._workers = snapshot

    async def upsert(self, worker: Worker, now: datetime) -> bool:
        current = self._workers.get(worker.worker_id)
        if current is None:
            self._workers[worker.worker_id] = worker
            return True
        live = ("availability", "open_count", "last_assigned_at")
        self._workers[worker.worker_id] = worker.model_copy(update={name: getattr(current, name) for name in live})
        return False

    async def set_availability(self, worker_id: str, availability: Availability, now: datetime) -> bool:
        current = self._workers.get(worker_id)
        if current is None:
            return False
        self._workers[worker_id] = current.model_copy(update={"availability": Availability(availability)})
        return True

    async def get(self, worker_id: str) -> Worker | None:
        return await _late(self._workers.get(worker_id))

    async def by_team(self, team: Target | None = None) -> list[Worker]:
        return await _late(
            sorted((w for w in self._workers.values() if team is None or w.team == team), key=lambda w: w.worker_id)
        )

    async def candidates(self, language: Language, required_skills: frozenset[str], excluded: frozenset[str]) -> list[Worker]:
        return await _late(
            [
                w
                for w in self._workers.values()
                if w.availability == Availability.AVAILABLE
                and language in w.languages
                and w.open_count < w.capacity
                and required_skills <= w.skills
                and w.worker_id not in excluded
            ]
        )

    async def take_capacity(self, worker_id: str, now: datetime, session: Session = None) -> bool:
        current = self._workers.get(worker_id)
        if current is None or current.availability != Availability.AVAILABLE or current.open_count >= current.capacity:
            return False
        self._workers[worker_id] = current.model_copy(update={"open_count": current.open_count + 1, "last_assigned_at": now})
        return True

    async def free(self, worker_id: str, session: Session = None) -> bool:
        current = self._workers.get(worker_id)
        if current is None or current.open_count <= 0:
            return False
        self._workers[worker_id] = current.model_copy(update={"open_count": current.open_count - 1})
        return True


@dataclass
class InMemoryAssignments:
    """An `Assignments` use case wired to fakes, with the fakes at hand for assertions."""

    assignments: Assignments
    requests: FakeRequests
    workers: FakeWorkers
    transactions: FakeTransactions = field(repr=False)


def in_memory_assignments(
    *,
    reservation_timeout: timedelta = timedelta(minutes=2),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    escalate_after: timedelta | None = timedelta(minutes=30),
    offer_attempts: int = 5,
) -> InMemoryAssignments:
    requests, workers = FakeRequests(), FakeWorkers()
    transactions = FakeTransactions(requests, workers)
    assignments = Assignments(
        requests,
        workers,
        transactions,
        reservation_timeout=reservation_timeout,
        clock=clock,
        escalate_after=escalate_after,
        offer_attempts=offer_attempts,
    )
    return InMemoryAssignments(assignments, requests, workers, transactions)
