"""Where routing cases live: the `CaseRepository` port, the unit of work that saves a case with
what its decision implies, and their MongoDB adapter over `routing_cases`.

A unit of work commits the cases it saved, the outbox entries of their events and the timers
they schedule or cancel in ONE MongoDB transaction, so a crash never leaves a case changed
without its events, or an event published for a change that was rolled back. Saves are
optimistic: a case is saved only if its stored `version` is still the one it was loaded at,
else `ConcurrencyConflict` aborts the transaction and `CaseStore.run` runs the work again on
fresh state. The document shape is the one the desk, the demo and the end-to-end tests read.
`tests.routing_case_fakes` holds the in-memory fake; one contract suite runs against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from routing.case import Case, Effects
from schemas import Event
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonalData
from services.timers import TimerStore

__all__ = [
    "CASES_COLLECTION",
    "CaseRepository",
    "CaseStore",
    "CaseUnitOfWork",
    "ConcurrencyConflict",
    "MongoCaseStore",
    "case_from_document",
    "case_to_document",
]

log = structlog.get_logger(__name__)

CASES_COLLECTION = "routing_cases"

T = TypeVar("T")

_WRITTEN_ALWAYS = (
    "person_id",
    "channel",
    "language",
    "target",
    "received_at",
    "deadline",
    "due_at",
    "sla",
    "first_contact_at",
    "attempts",
    "outcome",
    "joined_to",
    "contact",
    "need",
    "requested_course",
    "needs_triage",
    "priority",
    "programme",
    "correlation_id",
    "routed_event_id",
)
# Written once a transition sets them, never as null: documents keep the shape they always had.
_WRITTEN_ONCE_SET = (
    "redirected_from",
    "due_sent_at",
    "breached_at",
    "escalated_to",
    "last_attempt_at",
    "closed_by",
    "disposition",
    "erased",
    "qualification_level",
    "has_computer",
    "has_internet",
    "unemployed_since",
    "fact_sources",
    "priority_parts",
    "partner",
    "partner_wait",
    "partner_asked_at",
    "partner_answered_at",
    "partner_reminded_at",
)
# Written from the first call on, zero included (a redirection resets the count).
_WRITTEN_ONCE_CALLED = ("unanswered",)
# Written once the person chose a window, False and null included: a later choice within the
# promise takes the moved deadline back.
_WRITTEN_ONCE_CHOSEN = (
    "callback_slot_start",
    "callback_slot_end",
    "callback_slot_through",
    "callback_slot_chosen_at",
    "deadline_by_choice",
    "promised_deadline",
)
# Written once the person corrected their details, empty included: an erasure blanks the new contact too.
_WRITTEN_ONCE_CORRECTED = ("corrected_at", "corrected_through", "unverified_contact")
_WRITTEN_ONCE_WITHDRAWN = ("withdrawn_at", "withdrawn_through")


class ConcurrencyConflict(Exception):
    """The case changed since it was loaded (its stored version moved on)."""

    def __init__(self, request_id: str, version: int) -> None:
        super().__init__(f"case {request_id} is no longer at version {version}")
        self.request_id = request_id
        self.version = version


def case_to_document(case: Case) -> dict[str, Any]:
    """The `routing_cases` document of `case` (with its `version`)."""
    fields = case.model_dump()
    doc: dict[str, Any] = {"_id": case.request_id}
    for name in _WRITTEN_ALWAYS:
        doc[name] = _stored(fields[name])
    for name in _WRITTEN_ONCE_SET:
        if _is_set(name, fields[name]):
            doc[name] = _stored(fields[name])
    for name in _WRITTEN_ONCE_CALLED:
        if fields["attempts"]:
            doc[name] = fields[name]
    for first, names in (
        ("callback_slot_start", _WRITTEN_ONCE_CHOSEN),
        ("corrected_at", _WRITTEN_ONCE_CORRECTED),
        ("withdrawn_at", _WRITTEN_ONCE_WITHDRAWN),
    ):
        if fields[first] is not None:
            doc |= {name: _stored(fields[name]) for name in names}
    doc["version"] = case.version
    return doc


def case_from_document(doc: Mapping[str, Any]) -> Case:
    """The case of a stored document; one stored before cases had a version is at version 0."""
    return Case.model_validate({**doc, "request_id": doc["_id"], "version": doc.get("version") or 0})


def _is_set(name: str, value: Any) -> bool:
    # A fact may be False (no computer at home), which is worth storing; `erased` False is not.
    return value is not None if name.startswith("has_") else bool(value)


def _stored(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _stored(item) for key, item in value.items()}
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()  # BSON has no plain date
    return value


class CaseRepository(ABC):
    """The cases, as seen from inside one unit of work."""

    @abstractmethod
    async def get(self, request_id: str) -> Case | None: ...

    @abstractmethod
    async def add(self, case: Case) -> None:
        """Store a new case (at its version, 0 for a case just opened)."""

    async def add_many(self, cases: Sequence[Case]) -> None:
        """`add` of many new cases; adapters with a bulk write override this loop."""
        for case in cases:
            await self.add(case)

    @abstractmethod
    async def save(self, case: Case) -> Case:
        """Store `case` if the stored one is still at `case.version`; returns it at the next version.

        Raises `ConcurrencyConflict` otherwise (or if it is not stored at all)."""

    @abstractmethod
    async def open_linked(self, request_ids: Sequence[str]) -> Case | None:
        """The earliest received of these cases that is still open (no outcome, not joined)."""

    @abstractmethod
    async def joined_pending(self, request_id: str) -> list[Case]:
        """The cases that joined `request_id` and whose callback promise still runs."""

    @abstractmethod
    async def for_person(self, person_id: str) -> list[Case]: ...


class CaseUnitOfWork(ABC):
    """Cases and the effects of their decisions, committed together."""

    cases: CaseRepository

    @abstractmethod
    async def apply(self, effects: Effects) -> None:
        """Cancel and schedule the effects' timers and put their events in the outbox (sealed when
        `effects.seal`), in the unit's transaction."""

    async def apply_all(self, effects: Sequence[Effects]) -> None:
        """`apply` of the effects of many decisions; adapters with bulk writes override this loop."""
        for each in effects:
            await self.apply(each)


class CaseStore(ABC):
    """Hands out units of work: a transaction of their own (`run`) or the caller's (`within`)."""

    attempts = 3
    """How many times `run` tries work that meets a `ConcurrencyConflict`."""

    async def run(self, work: Callable[[CaseUnitOfWork], Awaitable[T]]) -> T:
        """Run `work` in a transaction of its own and commit; on a `ConcurrencyConflict` nothing is
        committed and `work` runs again (so it must load what it decides on), up to `attempts` times."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await self._run_in_transaction(work)
            except ConcurrencyConflict as conflict:
                if attempt == self.attempts:
                    raise
                log.info("case.conflict_retried", request_id=conflict.request_id, attempt=attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @abstractmethod
    async def _run_in_transaction(self, work: Callable[[CaseUnitOfWork], Awaitable[T]]) -> T: ...

    @abstractmethod
    def within(self, session: AsyncClientSession | None) -> CaseUnitOfWork:
        """A unit of work inside the caller's transaction (`session`), which commits it: a timer's
        firing, a processed event. With None, reads outside any transaction."""


# --- MongoDB ------------------------------------------------------------------------------


class _MongoCases(CaseRepository):
    def __init__(self, db: MongoDatabase, session: AsyncClientSession | None) -> None:
        self._collection = db[CASES_COLLECTION]
        self._session = session

    async def get(self, request_id: str) -> Case | None:
        doc = await self._collection.find_one({"_id": request_id}, session=self._session)
        return case_from_document(doc) if doc is not None else None

    async def add(self, case: Case) -> None:
        await self._collection.insert_one(case_to_document(case), session=self._session)

    async def add_many(self, cases: Sequence[Case]) -> None:
        if cases:
            await self._collection.insert_many([case_to_document(c) for c in cases], ordered=True, session=self._session)

    async def save(self, case: Case) -> Case:
        saved = case.model_copy(update={"version": case.version + 1})
        fields = case_to_document(saved)
        del fields["_id"]
        # A document stored before cases had a version is at version 0.
        stored_version: Any = case.version if case.version else {"$in": [0, None]}
        result = await self._collection.update_one(
            {"_id": case.request_id, "version": stored_version}, {"$set": fields}, session=self._session
        )
        if result.matched_count == 0:
            raise ConcurrencyConflict(case.request_id, case.version)
        return saved

    async def open_linked(self, request_ids: Sequence[str]) -> Case | None:
        doc = await self._collection.find_one(
            {"_id": {"$in": list(request_ids)}, "outcome": None, "joined_to": None},
            sort=[("received_at", 1)],
            session=self._session,
        )
        return case_from_document(doc) if doc is not None else None

    async def joined_pending(self, request_id: str) -> list[Case]:
        docs = await self._collection.find({"joined_to": request_id, "sla": "pending"}, session=self._session).to_list(None)
        return [case_from_document(doc) for doc in docs]

    async def for_person(self, person_id: str) -> list[Case]:
        docs = await self._collection.find({"person_id": person_id}, session=self._session).to_list(None)
        return [case_from_document(doc) for doc in docs]


class _MongoUnitOfWork(CaseUnitOfWork):
    def __init__(self, store: MongoCaseStore, session: AsyncClientSession | None) -> None:
        self.cases = _MongoCases(store.db, session)
        self._store = store
        self._session = session

    async def apply(self, effects: Effects) -> None:
        session, timers = self._session, self._store.timers
        for cancel in effects.cancel:
            await timers.cancel(cancel.kind, cancel.key, session=session)
        for timer in effects.schedule:
            await timers.schedule(timer.kind, timer.key, timer.fire_at, timer.payload, session=session, replace=timer.replace)
        events: Sequence[Event] = effects.events
        if effects.seal:
            events = [await self._store.personal.seal(event, session=session) for event in events]
        await self._store.outbox.add(events, session=session)

    async def apply_all(self, effects: Sequence[Effects]) -> None:
        if any(each.cancel or each.seal or any(t.replace for t in each.schedule) for each in effects):
            await super().apply_all(effects)  # the rare kinds, one by one
            return
        timers = [(t.kind, t.key, t.fire_at, t.payload) for each in effects for t in each.schedule]
        await self._store.timers.schedule_new(timers, session=self._session)
        await self._store.outbox.add([event for each in effects for event in each.events], session=self._session)


class MongoCaseStore(CaseStore):
    """Cases in `routing_cases`, events in the routing outbox, timers in `routing_timers`."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: MongoDatabase,
        *,
        outbox: Outbox,
        timers: TimerStore,
        personal: PersonalData,
    ) -> None:
        self._client = client
        self.db = db
        self.outbox = outbox
        self.timers = timers
        self.personal = personal

    async def _run_in_transaction(self, work: Callable[[CaseUnitOfWork], Awaitable[T]]) -> T:
        async def transaction(session: AsyncClientSession) -> T:
            return await work(_MongoUnitOfWork(self, session))

        async with self._client.start_session() as session:
            result: T = await session.with_transaction(transaction)
        return result

    def within(self, session: AsyncClientSession | None) -> CaseUnitOfWork:
        return _MongoUnitOfWork(self, session)
