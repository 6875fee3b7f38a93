"""Ports for reservations: where requests and workers are kept, and how a change commits.

`routing.assignment` decides with `routing.reservation` and saves through these; the MongoDB
adapters are in `routing.mongo_repositories`, in-memory fakes for unit tests in
`tests.routing_fakes`. Both pass the same contract suite (`tests/routing_contract.py`).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from routing.reservation import RoutedRequest, Transition
from routing.workers import Availability, Worker
from schemas import Language, Target

__all__ = [
    "RequestRepository",
    "Session",
    "Transactions",
    "VersionConflict",
    "WorkerRepository",
]

T = TypeVar("T")

Session = Any
"""An adapter's handle on the running transaction (a pymongo `AsyncClientSession` for MongoDB,
None for the fakes). Use cases only pass it from `Transactions.run` to the repositories."""


class VersionConflict(Exception):
    """A save found the request at another version than the one it was decided on: someone
    changed it meanwhile. The transaction aborts; the caller reloads and decides again."""

    def __init__(self, request_id: str, expected_version: int) -> None:
        super().__init__(f"request {request_id} is no longer at version {expected_version}")
        self.request_id = request_id
        self.expected_version = expected_version


class Transactions(abc.ABC):
    """Runs a unit of work: every write of `body` commits, or none does."""

    @abc.abstractmethod
    async def run(self, body: Callable[[Session], Awaitable[T]]) -> T:
        """Run `body(session)` in one transaction and return what it returns.

        An exception from `body` aborts the transaction and propagates. `body` may run more
        than once when the store retries after a transient write conflict, so it must only
        read and write through the session.
        """


class RequestRepository(abc.ABC):
    """Routed requests, each with its history of transitions (the last `HISTORY_KEPT`)."""

    HISTORY_KEPT = 50
    """Transitions kept on each request for explanations; older ones are dropped."""

    @abc.abstractmethod
    async def get(self, request_id: str, session: Session = None) -> RoutedRequest | None: ...

    async def save_many(self, saved: Sequence[tuple[RoutedRequest, int, Sequence[Transition]]], session: Session = None) -> None:
        """`save` of many (new state, expected version, transitions), inside `session`'s transaction
        (which the caller aborts on `VersionConflict`); adapters with a bulk write override this loop."""
        for new, expected_version, transitions in saved:
            await self.save(new, expected_version, transitions, session)

    async def get_many(self, request_ids: Sequence[str]) -> list[RoutedRequest]:
        """The stored requests among these ids; adapters with a query of many override this loop."""
        return [request for request_id in request_ids if (request := await self.get(request_id)) is not None]

    @abc.abstractmethod
    async def add(self, request: RoutedRequest, transitions: Iterable[Transition], session: Session = None) -> bool:
        """Store a new request; False (and nothing changed) when its id is already there."""

    async def add_many(self, added: Sequence[tuple[RoutedRequest, Sequence[Transition]]], session: Session = None) -> None:
        """Store new requests at once; one whose id is already there fails the whole call (in a
        transaction, nothing is stored). Adapters with a bulk write override this loop."""
        for request, transitions in added:
            if not await self.add(request, transitions, session):
                raise VersionConflict(request.request_id, 0)

    @abc.abstractmethod
    async def save(
        self, new: RoutedRequest, expected_version: int, transitions: Iterable[Transition], session: Session = None
    ) -> None:
        """Replace the request's state with `new` and append `transitions` to its history, if it is
        still at `expected_version`; otherwise raise `VersionConflict`. A request stored before
        versions existed is at version 0."""

    @abc.abstractmethod
    async def history(self, request_id: str) -> list[dict[str, Any]]:
        """The request's last transitions (at, event, worker_id, reason), oldest first."""

    @abc.abstractmethod
    async def queued(self, team: Target) -> list[RoutedRequest]:
        """The team's queued requests, in no particular order."""

    @abc.abstractmethod
    async def open_for_team(self, team: Target) -> list[RoutedRequest]:
        """The team's requests still to be called back: queued, offered or assigned, in no particular order."""

    @abc.abstractmethod
    async def held_by(self, worker_id: str) -> list[RoutedRequest]:
        """The requests reserved for or assigned to the worker (expired offers included)."""

    @abc.abstractmethod
    async def expired(self, now: datetime) -> list[RoutedRequest]:
        """The reserved requests whose offer expired by `now`."""

    async def ensure_indexes(self) -> None:
        """Create what the queries above need (nothing, in memory)."""
        return None


class WorkerRepository(abc.ABC):
    """Workers: their profile, and live state (availability, open count) changed atomically."""

    @abc.abstractmethod
    async def upsert(self, worker: Worker, now: datetime) -> bool:
        """Create the worker or replace their profile; True when created. Live state
        (availability, `open_count`, `last_assigned_at`) is taken from `worker` only when new."""

    @abc.abstractmethod
    async def set_availability(self, worker_id: str, availability: Availability, now: datetime) -> bool:
        """False if there is no such worker."""

    @abc.abstractmethod
    async def get(self, worker_id: str) -> Worker | None: ...

    @abc.abstractmethod
    async def by_team(self, team: Target | None = None) -> list[Worker]:
        """Workers (of `team`, if given), by id."""

    @abc.abstractmethod
    async def candidates(self, language: Language, required_skills: frozenset[str], excluded: frozenset[str]) -> list[Worker]:
        """A coarse pre-filter: available workers under capacity who speak `language`, have every
        required skill and are not `excluded`. `routing.workers` applies every rule exactly."""

    @abc.abstractmethod
    async def take_capacity(self, worker_id: str, now: datetime, session: Session = None) -> bool:
        """Compare-and-set: if the worker is available and under capacity, add one to their open
        count and set `last_assigned_at`; False (nothing changed) otherwise."""

    async def take_capacities(self, worker_id: str, count: int, now: datetime, session: Session = None) -> bool:
        """`take_capacity` `count` times, all or nothing inside `session`'s transaction (which the
        caller aborts on False); adapters with a single update override this loop."""
        for _ in range(count):
            if not await self.take_capacity(worker_id, now, session):
                return False
        return True

    @abc.abstractmethod
    async def free(self, worker_id: str, session: Session = None) -> bool:
        """Take one off the worker's open count; False if it is already 0 or there is no worker."""

    async def ensure_indexes(self) -> None:
        """Create what the queries above need (nothing, in memory)."""
        return None
