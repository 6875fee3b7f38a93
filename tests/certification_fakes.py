"""In-memory fakes of `certification.repositories`, for unit tests of the use cases.

They subclass the real ports (cosmicpython's `FakeRepository(AbstractRepository)`) and keep the
same contract as the MongoDB adapters, which `tests.certification_contract` checks on both: a
commit checks every version first and then applies everything, with no `await` in between, so
it is atomic on the event loop; leaving a unit of work without committing writes nothing. Reads
yield to the loop once, so tasks run with `asyncio.gather` interleave between load and commit as
replicas would, and their races are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from certification.candidate import Candidate
from certification.candidates import Candidates
from certification.certifications import Certifications, load_certifications
from certification.errors import ConcurrencyConflict
from certification.offer import SeatOffer
from certification.offer_links import OfferLinks, OfferTokens
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
from certification.seating import CandidateStatus, OfferTerms, order_key
from certification.seats import Seats
from certification.sessions import Centre, Session
from schemas import Event
from services.clock import Clock
from services.privacy import seal, unseal


@dataclass
class FakeTimer:
    fire_at: datetime
    payload: Mapping[str, Any]
    state: str = "pending"


@dataclass
class FakeStorage:
    """What a fake database holds: committed states (at their stored version), outbox, timers, processed events."""

    candidates: dict[str, Candidate] = field(default_factory=dict)
    offers: dict[str, SeatOffer] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    centres: dict[str, Centre] = field(default_factory=dict)
    results: dict[str, ExamResult] = field(default_factory=dict)
    credentials: dict[str, IssuedCredential] = field(default_factory=dict)
    hints: dict[str, int] = field(default_factory=dict)
    outbox: list[Event] = field(default_factory=list)
    timers: dict[tuple[str, str], FakeTimer] = field(default_factory=dict)
    processed: set[str] = field(default_factory=set)
    commits: int = 0


def _check(repository: Repository[Any], stored: Mapping[str, Any]) -> None:
    for key in repository.added:
        if key in stored:
            raise ConcurrencyConflict(f"{key} exists already")
    for key, state in repository.saved.items():
        if key not in stored or stored[key].version != state.version:
            raise ConcurrencyConflict(f"{key} changed since version {state.version}")


def _apply(repository: Repository[Any], stored: dict[str, Any]) -> None:
    for key, state in [*repository.added.items(), *repository.saved.items()]:
        stored[key] = replace(state, version=state.version + 1)


class FakeCandidates(CandidateRepository):
    def __init__(self, storage: FakeStorage) -> None:
        super().__init__()
        self._stored = storage.candidates

    async def get(self, candidate_id: str) -> Candidate | None:
        await asyncio.sleep(0)
        return self._stored.get(candidate_id)

    async def find(
        self, *, certification: str | None = None, status: CandidateStatus | None = None, person_id: str | None = None
    ) -> list[Candidate]:
        await asyncio.sleep(0)
        return sorted(
            (
                c
                for c in self._stored.values()
                if (certification is None or c.certification_code == certification.upper())
                and (status is None or c.status is status)
                and (person_id is None or c.person_id == person_id)
            ),
            key=lambda c: (c.certification_code, c.candidate_id),
        )

    async def waiting(
        self, certifications: Collection[str], *, not_passed_over: str | None = None, limit: int | None = None
    ) -> list[Candidate]:
        await asyncio.sleep(0)
        found = sorted(
            (
                c
                for c in self._stored.values()
                if c.certification_code in certifications
                and c.status is CandidateStatus.WAITING
                and not_passed_over not in c.passed_over_sessions
            ),
            key=lambda c: order_key(c.waiting()),
        )
        return found[:limit] if limit else found

    async def of_person(self, person_id: str, statuses: Collection[CandidateStatus]) -> list[Candidate]:
        await asyncio.sleep(0)
        return sorted(
            (c for c in self._stored.values() if c.person_id == person_id and c.status in statuses),
            key=lambda c: c.candidate_id,
        )


class FakeOffers(OfferRepository):
    def __init__(self, storage: FakeStorage) -> None:
        super().__init__()
        self._stored = storage.offers

    async def get(self, offer_id: str) -> SeatOffer | None:
        await asyncio.sleep(0)
        return self._stored.get(offer_id)


class FakeSessions(SessionRepository):
    def __init__(self, storage: FakeStorage) -> None:
        super().__init__()
        self._stored = storage.sessions

    async def get(self, session_id: str) -> Session | None:
        await asyncio.sleep(0)
        return self._stored.get(session_id)

    async def find(
        self,
        *,
        centre_id: str | None = None,
        certification: str | None = None,
        centre_ids: Collection[str] | None = None,
        starting_after: datetime | None = None,
    ) -> list[Session]:
        await asyncio.sleep(0)
        return sorted(
            (
                s
                for s in self._stored.values()
                if (centre_id is None or s.centre_id == centre_id)
                and (centre_ids is None or s.centre_id in centre_ids)
                and (certification is None or certification.upper() in s.certifications)
                and (starting_after is None or s.starts_at > starting_after)
            ),
            key=lambda s: (s.starts_at, s.session_id),
        )


class FakeCentres(CentreRepository):
    def __init__(self, storage: FakeStorage) -> None:
        super().__init__()
        self._stored = storage.centres

    async def get(self, centre_id: str) -> Centre | None:
        await asyncio.sleep(0)
        return self._stored.get(centre_id)

    async def find(self, *, open_only: bool = False) -> list[Centre]:
        await asyncio.sleep(0)
        return sorted((c for c in self._stored.values() if c.open or not open_only), key=lambda c: c.centre_id)


class FakeResults(ResultRepository):
    def __init__(self, storage: FakeStorage) -> None:
        super().__init__()
        self._stored = storage.results

    async def get(self, result_id: str) -> ExamResult | None:
        await asyncio.sleep(0)
        return self._stored.get(result_id)


class FakeCredentials(CredentialRepository):
    pass


class FakePriorityHints(PriorityHints):
    def __init__(self, storage: FakeStorage) -> None:
        self._stored = storage.hints

    async def boost(self, person_id: str) -> int:
        return self._stored.get(person_id, 0)

    async def raise_to(self, person_id: str, boost: int) -> None:
        self._stored[person_id] = max(self._stored.get(person_id, boost), boost)


class FakeUnitOfWork(CertificationUnitOfWork):
    def __init__(self, storage: FakeStorage) -> None:
        super().__init__()
        self.storage = storage
        self.candidates = FakeCandidates(storage)
        self.offers = FakeOffers(storage)
        self.sessions = FakeSessions(storage)
        self.centres = FakeCentres(storage)
        self.results = FakeResults(storage)
        self.credentials = FakeCredentials()
        self.hints = FakePriorityHints(storage)

    async def _commit(self, once_for: Event | None) -> bool:
        storage = self.storage
        if once_for is not None and str(once_for.id) in storage.processed:
            return False
        # Every check before any change: a conflict leaves the storage as it was.
        _check(self.candidates, storage.candidates)
        _check(self.offers, storage.offers)
        _check(self.sessions, storage.sessions)
        _check(self.centres, storage.centres)
        _check(self.results, storage.results)
        _check(self.credentials, storage.credentials)
        taken = {c.status_index for c in storage.credentials.values() if c.status_index is not None}
        if any(c.status_index in taken for c in self.credentials.added.values() if c.status_index is not None):
            raise ConcurrencyConflict("a credential holds that status list index already")
        for key, centre in self.centres.unchanged.items():
            if key not in storage.centres or storage.centres[key].version != centre.version:
                raise ConcurrencyConflict(f"centre {key} changed since version {centre.version}")
        _apply(self.candidates, storage.candidates)
        _apply(self.offers, storage.offers)
        _apply(self.sessions, storage.sessions)
        _apply(self.centres, storage.centres)
        _apply(self.results, storage.results)
        _apply(self.credentials, storage.credentials)
        for change in self.timer_changes:
            timer = storage.timers.get((change.kind, change.key))
            if change.fire_at is None:
                if timer is not None and timer.state == "pending":
                    timer.state = "cancelled"
            elif timer is None:
                storage.timers[(change.kind, change.key)] = FakeTimer(change.fire_at, dict(change.payload))
        storage.outbox.extend(self.events)
        if once_for is not None:
            storage.processed.add(str(once_for.id))
        storage.commits += 1
        return True


class FakeDueTimers(DueTimers):
    def __init__(self, storage: FakeStorage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def fire_due(self, kind: str, handle: Callable[[str, Mapping[str, Any]], Awaitable[None]]) -> int:
        now = self._clock.now()
        due = sorted(
            ((key, t) for (k, key), t in self._storage.timers.items() if k == kind and t.state == "pending" and t.fire_at <= now),
            key=lambda item: (item[1].fire_at, item[0]),
        )
        for key, timer in due:
            await handle(key, timer.payload)
            timer.state = "fired"
        return len(due)


TOKEN_KEY = "a test key for seat offer links, 32 bytes or more"
PERSON_KEY = bytes(range(32))
"""One AES key for every person: the fakes seal as the service does, without a key store."""
OFFER_LINKS = OfferLinks("https://certification.test", OfferTokens(TOKEN_KEY))


async def fake_seal(event: Event) -> Event:
    """`PersonalData.seal` with one key for everyone."""
    return seal(event, PERSON_KEY)


def fake_unseal(event: Event) -> Event:
    return unseal(event, PERSON_KEY)


@dataclass
class FakeCertification:
    """Candidates and Seats over one fake storage, wired as `CertificationService` wires the real ones."""

    storage: FakeStorage
    candidates: Candidates
    seats: Seats

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.storage)


def fake_certification(
    clock: Clock,
    *,
    certifications: Certifications | None = None,
    offer_window: timedelta = timedelta(hours=48),
    offer_margin: timedelta = timedelta(hours=24),
    offer_minimum: timedelta = timedelta(hours=2),
    what_to_bring: Sequence[str] = (),
    routed_priority_from: int | None = None,
    storage: FakeStorage | None = None,
) -> FakeCertification:
    storage = storage or FakeStorage()
    certifications = certifications or load_certifications()

    def uow() -> FakeUnitOfWork:
        return FakeUnitOfWork(storage)

    seats = Seats(
        uow,
        certifications=certifications,
        clock=clock,
        timers=FakeDueTimers(storage, clock),
        links=OFFER_LINKS,
        seal=fake_seal,
        terms=OfferTerms(window=offer_window, margin=offer_margin, minimum=min(offer_minimum, offer_window)),
        what_to_bring=what_to_bring,
    )
    candidates = Candidates(uow, seats, certifications=certifications, clock=clock, routed_priority_from=routed_priority_from)
    return FakeCertification(storage, candidates, seats)
