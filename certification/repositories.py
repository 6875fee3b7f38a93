"""Certification's storage ports: repositories of typed states, and a unit of work that commits them together.

Use cases load through the repositories, decide (pure), then `save` (an existing state, compare-
and-set on the `version` it was loaded with) or `add` (a new one) and `commit`: every saved state,
the outbox entries (`publish`) and the timer changes (`schedule`, `cancel`) are written in one
transaction, or nothing is. A save that finds another version, or an `add` that finds the id
taken, raises `ConcurrencyConflict` at commit: someone else saved first, so the use case loads
and decides again. Reads see committed states only; nothing is written before `commit`, so
leaving the `async with` block without it (or an error) discards everything.

`certification.mongo_repositories` holds the MongoDB adapters; `tests.certification_fakes` the
in-memory ones, held to the same contract by `tests.certification_contract`.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from certification.candidate import Candidate
from certification.errors import ConcurrencyConflict
from certification.offer import SeatOffer
from certification.result import ExamResult, IssuedCredential
from certification.seating import CandidateStatus
from certification.sessions import Centre, Session
from schemas import Event

__all__ = [
    "CandidateRepository",
    "CentreRepository",
    "CertificationUnitOfWork",
    "CredentialRepository",
    "DueTimers",
    "OfferRepository",
    "PriorityHints",
    "Repository",
    "ResultRepository",
    "SessionRepository",
    "TimerChange",
    "UnitOfWorkFactory",
    "retry_on_conflict",
]

T = TypeVar("T", Candidate, SeatOffer, Session, Centre, ExamResult, IssuedCredential)


class Repository(abc.ABC, Generic[T]):
    """What every repository shares: the writes waiting for the unit of work's commit."""

    def __init__(self) -> None:
        self.added: dict[str, T] = {}
        self.saved: dict[str, T] = {}

    @staticmethod
    @abc.abstractmethod
    def key(state: T) -> str: ...

    def add(self, state: T) -> None:
        """Store a new state at commit (`ConcurrencyConflict` if its id is taken by then)."""
        self.added[self.key(state)] = state

    def save(self, state: T) -> None:
        """Store the state at commit if the stored one is still at `state.version`; it becomes version + 1."""
        self.saved[self.key(state)] = state

    def discard(self) -> None:
        self.added.clear()
        self.saved.clear()


class CandidateRepository(Repository[Candidate]):
    @staticmethod
    def key(state: Candidate) -> str:
        return state.candidate_id

    @abc.abstractmethod
    async def get(self, candidate_id: str) -> Candidate | None: ...

    @abc.abstractmethod
    async def find(
        self, *, certification: str | None = None, status: CandidateStatus | None = None, person_id: str | None = None
    ) -> list[Candidate]:
        """Ordered by certification, then id."""

    @abc.abstractmethod
    async def waiting(
        self, certifications: Collection[str], *, not_passed_over: str | None = None, limit: int | None = None
    ) -> list[Candidate]:
        """Waiting candidates of `certifications`, first in line first (`seating.order_key`), without
        those who turned session `not_passed_over` down."""

    @abc.abstractmethod
    async def of_person(self, person_id: str, statuses: Collection[CandidateStatus]) -> list[Candidate]: ...


class OfferRepository(Repository[SeatOffer]):
    @staticmethod
    def key(state: SeatOffer) -> str:
        return state.offer_id

    @abc.abstractmethod
    async def get(self, offer_id: str) -> SeatOffer | None: ...


class SessionRepository(Repository[Session]):
    @staticmethod
    def key(state: Session) -> str:
        return state.session_id

    @abc.abstractmethod
    async def get(self, session_id: str) -> Session | None: ...

    @abc.abstractmethod
    async def find(
        self,
        *,
        centre_id: str | None = None,
        certification: str | None = None,
        centre_ids: Collection[str] | None = None,
        starting_after: datetime | None = None,
    ) -> list[Session]:
        """Ordered by start, then id."""


class CentreRepository(Repository[Centre]):
    def __init__(self) -> None:
        super().__init__()
        self.unchanged: dict[str, Centre] = {}

    @staticmethod
    def key(state: Centre) -> str:
        return state.centre_id

    def require_unchanged(self, centre: Centre) -> None:
        """Commit only if the centre is still at `centre.version` (an offer needs it still open); it stays at it.

        Because a read in a transaction does not conflict with a concurrent write, closing a centre
        while an offer is made would otherwise go unnoticed."""
        self.unchanged[centre.centre_id] = centre

    def discard(self) -> None:
        super().discard()
        self.unchanged.clear()

    @abc.abstractmethod
    async def get(self, centre_id: str) -> Centre | None: ...

    @abc.abstractmethod
    async def find(self, *, open_only: bool = False) -> list[Centre]:
        """Ordered by id."""


class ResultRepository(Repository[ExamResult]):
    @staticmethod
    def key(state: ExamResult) -> str:
        return state.result_id

    @abc.abstractmethod
    async def get(self, result_id: str) -> ExamResult | None: ...


class CredentialRepository(Repository[IssuedCredential]):
    """Where issued credentials are added; reading, serving and revoking them is `certification.awards`' own."""

    @staticmethod
    def key(state: IssuedCredential) -> str:
        return state.credential_id


class PriorityHints(abc.ABC):
    """The boost a person routed with high priority carries into their later candidacies."""

    @abc.abstractmethod
    async def boost(self, person_id: str) -> int:
        """0 for someone never boosted."""

    @abc.abstractmethod
    async def raise_to(self, person_id: str, boost: int) -> None:
        """Keep the higher of the stored boost and `boost`, at once: a maximum commutes, so it needs no transaction."""


@dataclass(frozen=True, slots=True)
class TimerChange:
    kind: str
    key: str
    fire_at: datetime | None
    """None cancels the timer."""
    payload: Mapping[str, Any]


class CertificationUnitOfWork(abc.ABC):
    """One atomic change: `async with uow: ...; await uow.commit()`."""

    candidates: CandidateRepository
    offers: OfferRepository
    sessions: SessionRepository
    centres: CentreRepository
    results: ResultRepository
    credentials: CredentialRepository
    hints: PriorityHints

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.timer_changes: list[TimerChange] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.rollback()

    def publish(self, events: Sequence[Event]) -> None:
        """Write `events` to the outbox at commit."""
        self.events.extend(events)

    def schedule(self, kind: str, key: str, fire_at: datetime, payload: Mapping[str, Any] | None = None) -> None:
        self.timer_changes.append(TimerChange(kind, key, fire_at, dict(payload or {})))

    def cancel(self, kind: str, key: str) -> None:
        self.timer_changes.append(TimerChange(kind, key, None, {}))

    async def commit(self, *, once_for: Event | None = None) -> bool:
        """Write everything, in one transaction; then start afresh.

        With `once_for`, the change is recorded as that event's effect: if it was applied before
        (a redelivery), nothing is written and the answer is False. `ConcurrencyConflict` if a
        state changed since it was loaded; nothing is written then either.
        """
        try:
            return await self._commit(once_for)
        finally:
            await self.rollback()

    async def rollback(self) -> None:
        """Forget whatever was not committed."""
        for repository in self._repositories():
            repository.discard()
        self.events = []
        self.timer_changes = []

    def _repositories(self) -> list[Repository[Any]]:
        return [self.candidates, self.offers, self.sessions, self.centres, self.results, self.credentials]

    @abc.abstractmethod
    async def _commit(self, once_for: Event | None) -> bool: ...


UnitOfWorkFactory = Callable[[], CertificationUnitOfWork]
"""A fresh unit of work for each change."""


class DueTimers(abc.ABC):
    """Fires the due timers of one kind (the offers' deadlines)."""

    @abc.abstractmethod
    async def fire_due(self, kind: str, handle: Callable[[str, Mapping[str, Any]], Awaitable[None]]) -> int:
        """Call `handle(key, payload)` for each due timer of `kind`, each once; returns how many fired.

        A handler may run again after a crash, so its effect must be idempotent."""


R = TypeVar("R")


async def retry_on_conflict(attempt: Callable[[], Awaitable[R]], *, attempts: int = 25) -> R:
    """Run `attempt` (load, decide, save, commit) again while it loses a race to another writer.

    Each conflict means another change committed, so retrying makes progress; the bound only
    guards against a bug that conflicts with itself."""
    for _ in range(attempts - 1):
        try:
            return await attempt()
        except ConcurrencyConflict:
            continue
    return await attempt()
