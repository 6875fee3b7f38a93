"""In-memory fakes of the routing case ports (`routing.case_repository`), for unit tests.

`FakeCaseStore` behaves as `MongoCaseStore` does - the contract suite in
`tests/routing_case_contract.py` runs against both - with the outbox and the timers as plain
lists and dicts. A unit of work keeps its writes to itself until it commits, and the commit
checks the versions it saved against again, so two units interleaved on one case conflict as
two MongoDB transactions would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession

from routing.case import Case, Effects, ScheduleTimer
from routing.case_repository import CaseRepository, CaseStore, CaseUnitOfWork, ConcurrencyConflict
from schemas import Event

T = TypeVar("T")

TimerKey = tuple[str, str]


class FakeCases(CaseRepository):
    """The cases as one unit of work sees them: the store's, overlaid with its own saves."""

    def __init__(self, store: FakeCaseStore) -> None:
        self._store = store
        self.pending: dict[str, Case] = {}
        self.expected_versions: dict[str, int | None] = {}

    def _all(self) -> dict[str, Case]:
        return self._store.cases | self.pending

    async def get(self, request_id: str) -> Case | None:
        return self._all().get(request_id)

    async def add(self, case: Case) -> None:
        if case.request_id in self._all():
            raise ValueError(f"case {case.request_id} exists")
        self.pending[case.request_id] = case
        self.expected_versions.setdefault(case.request_id, None)

    async def save(self, case: Case) -> Case:
        stored = self._all().get(case.request_id)
        if stored is None or stored.version != case.version:
            raise ConcurrencyConflict(case.request_id, case.version)
        self.expected_versions.setdefault(case.request_id, case.version)
        saved = case.model_copy(update={"version": case.version + 1})
        self.pending[case.request_id] = saved
        return saved

    async def open_linked(self, request_ids: Sequence[str]) -> Case | None:
        linked = [case for case in self._all().values() if case.request_id in request_ids and case.is_open]
        return min(linked, key=lambda case: case.received_at, default=None)

    async def joined_pending(self, request_id: str) -> list[Case]:
        return [case for case in self._all().values() if case.joined_to == request_id and case.sla == "pending"]

    async def for_person(self, person_id: str) -> list[Case]:
        return [case for case in self._all().values() if case.person_id == person_id]


class FakeCaseUnitOfWork(CaseUnitOfWork):
    def __init__(self, store: FakeCaseStore) -> None:
        self.cases = self._cases = FakeCases(store)
        self._store = store
        self._effects: list[Effects] = []

    async def apply(self, effects: Effects) -> None:
        self._effects.append(effects)

    def commit(self) -> None:
        store = self._store
        for request_id, expected in self._cases.expected_versions.items():
            stored = store.cases.get(request_id)
            if (stored.version if stored else None) != expected:
                raise ConcurrencyConflict(request_id, expected or 0)
        store.cases.update(self._cases.pending)
        for effects in self._effects:
            for cancel in effects.cancel:
                if store.timers.pop((cancel.kind, cancel.key), None) is not None:
                    store.cancelled.append((cancel.kind, cancel.key))
            for timer in effects.schedule:
                # As `TimerStore.schedule`: a live timer stays as it is, unless replaced.
                if timer.replace:
                    store.timers[(timer.kind, timer.key)] = timer
                else:
                    store.timers.setdefault((timer.kind, timer.key), timer)
            store.published.extend(effects.events)
            if effects.seal:
                store.sealed.extend(effects.events)
        store.commits += 1


class FakeCaseStore(CaseStore):
    """Cases in a dict; `published` is the outbox, `timers` the live timers by (kind, key)."""

    def __init__(self, cases: Sequence[Case] = ()) -> None:
        self.cases: dict[str, Case] = {case.request_id: case for case in cases}
        self.published: list[Event] = []
        self.sealed: list[Event] = []
        """Events published with `Effects.seal` (the Mongo adapter seals them with the person's key)."""
        self.timers: dict[TimerKey, ScheduleTimer] = {}
        self.cancelled: list[TimerKey] = []
        self.commits = 0

    async def _run_in_transaction(self, work: Callable[[CaseUnitOfWork], Awaitable[T]]) -> T:
        uow = FakeCaseUnitOfWork(self)
        result = await work(uow)
        uow.commit()
        return result

    def within(self, session: AsyncClientSession | None) -> CaseUnitOfWork:
        return _Immediate(self)


class _Immediate(FakeCaseUnitOfWork):
    """A unit inside the caller's transaction: the fake has none, so every write lands at once."""

    def __init__(self, store: FakeCaseStore) -> None:
        super().__init__(store)
        self.cases = _ImmediateCases(self, store)

    async def apply(self, effects: Effects) -> None:
        await super().apply(effects)
        self.commit()

    def commit(self) -> None:
        super().commit()
        self._cases.pending.clear()
        self._cases.expected_versions.clear()
        self._effects.clear()


class _ImmediateCases(FakeCases):
    def __init__(self, unit: _Immediate, store: FakeCaseStore) -> None:
        super().__init__(store)
        unit._cases = self  # the unit commits what these record
        self._unit = unit

    async def add(self, case: Case) -> None:
        await super().add(case)
        self._unit.commit()

    async def save(self, case: Case) -> Case:
        saved = await super().save(case)
        self._unit.commit()
        return saved
