"""One contract for every `CaseStore`: the in-memory fake (unit tier) and MongoDB (integration
tier) subclass `CaseStoreContract`, so the fake the use-case tests rely on cannot drift from
the adapter routing runs. A subclass supplies the `store` fixture and reads back what a store
published and which timers it keeps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta

import pytest

from routing.case import CancelTimer, Case, Effects, ScheduleTimer
from routing.case_repository import CaseStore, CaseUnitOfWork, ConcurrencyConflict
from schemas import CallbackDue, Channel, ContactOutcome, Language, Target
from services.timers import TimerKind

# Whole milliseconds in UTC: what BSON keeps, so a round trip compares equal.
RECEIVED = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def a_case(request_id: str = "r-1", **fields: object) -> Case:
    values: dict[str, object] = {
        "request_id": request_id,
        "person_id": "p-1",
        "channel": Channel.PHONE,
        "language": Language.FR,
        "target": Target.ADVISORS,
        "received_at": RECEIVED,
        "deadline": RECEIVED + timedelta(days=2),
        "due_at": RECEIVED + timedelta(days=1),
        "sla": "pending",
        "contact": {"name": "A. Person", "phone": "+32470000000", "email": None},
        "need": "Je cherche une formation.",
        "priority": 40,
        "correlation_id": "6f1c3c1e-7d4b-4a8e-9f6a-2f0b8f3b1a01",
        "routed_event_id": "0b7c7e1a-3c1d-4f7e-8d2a-5b6c7d8e9f00",
    }
    return Case.model_validate(values | fields)


def due_event(case: Case) -> CallbackDue:
    assert case.deadline is not None
    return CallbackDue(source="/routing", request_id=case.request_id, person_id=case.person_id, deadline=case.deadline)


class CaseStoreContract(ABC):
    @abstractmethod
    async def published_ids(self, store: CaseStore) -> list[str]:
        """Ids of the events the store's outbox holds, in order."""

    @abstractmethod
    async def live_timers(self, store: CaseStore) -> set[tuple[str, str]]:
        """(kind, key) of the timers still to fire."""

    async def add(self, store: CaseStore, *cases: Case) -> None:
        async def work(uow: CaseUnitOfWork) -> None:
            for case in cases:
                await uow.cases.add(case)

        await store.run(work)

    async def get(self, store: CaseStore, request_id: str) -> Case | None:
        return await store.within(None).cases.get(request_id)

    async def test_a_case_added_reads_back_as_it_was(self, store: CaseStore) -> None:
        case = a_case(joined_to="r-0", programme="waitlisted", requested_course="EXCEL", needs_triage=True)
        await self.add(store, case)
        assert await self.get(store, "r-1") == case
        assert await self.get(store, "unknown") is None

    async def test_a_save_moves_the_version_on_and_a_stale_save_conflicts(self, store: CaseStore) -> None:
        await self.add(store, a_case())
        loaded = await self.get(store, "r-1")
        assert loaded is not None and loaded.version == 0
        closed = loaded.model_copy(
            update={"outcome": ContactOutcome.ADVICE_GIVEN, "sla": "met", "closed_by": "adv-1", "first_contact_at": RECEIVED}
        )
        saved = await store.run(lambda uow: uow.cases.save(closed))
        assert saved.version == 1
        assert await self.get(store, "r-1") == saved
        with pytest.raises(ConcurrencyConflict):
            await store.run(lambda uow: uow.cases.save(loaded.model_copy(update={"attempts": 5})))
        assert await self.get(store, "r-1") == saved

    async def test_saving_a_case_never_added_conflicts(self, store: CaseStore) -> None:
        with pytest.raises(ConcurrencyConflict):
            await store.run(lambda uow: uow.cases.save(a_case("r-ghost")))

    async def test_the_earliest_open_linked_case_is_the_one_to_join(self, store: CaseStore) -> None:
        await self.add(
            store,
            a_case("r-closed", received_at=RECEIVED - timedelta(days=3), outcome=ContactOutcome.ENROLLED),
            a_case("r-joined", received_at=RECEIVED - timedelta(days=2), joined_to="r-x"),
            a_case("r-later", received_at=RECEIVED),
            a_case("r-open", received_at=RECEIVED - timedelta(days=1)),
        )
        linked = await store.within(None).cases.open_linked(["r-closed", "r-joined", "r-later", "r-open"])
        assert linked is not None and linked.request_id == "r-open"
        assert await store.within(None).cases.open_linked(["r-closed", "r-unknown"]) is None

    async def test_joined_cases_still_waiting_and_a_persons_cases(self, store: CaseStore) -> None:
        await self.add(
            store,
            a_case("r-1"),
            a_case("r-2", joined_to="r-1"),
            a_case("r-3", joined_to="r-1", sla="met"),
            a_case("r-4", person_id="p-2", joined_to="r-9"),
        )
        cases = store.within(None).cases
        assert [case.request_id for case in await cases.joined_pending("r-1")] == ["r-2"]
        assert sorted(case.request_id for case in await cases.for_person("p-1")) == ["r-1", "r-2", "r-3"]
        assert await cases.for_person("p-unknown") == []

    async def test_a_unit_commits_the_case_its_events_and_its_timers_together(self, store: CaseStore) -> None:
        case = a_case()
        event = due_event(case)
        due, deadline = RECEIVED + timedelta(days=1), RECEIVED + timedelta(days=2)
        payload = {"request_id": "r-1"}

        async def open_it(uow: CaseUnitOfWork) -> None:
            await uow.cases.add(case)
            await uow.apply(
                Effects(
                    events=(event,),
                    schedule=(
                        ScheduleTimer(TimerKind.CALLBACK_DUE, "r-1", due, payload),
                        ScheduleTimer(TimerKind.SLA_BREACH, "r-1", deadline, payload),
                    ),
                )
            )

        await store.run(open_it)
        assert await self.published_ids(store) == [str(event.id)]
        assert await self.live_timers(store) == {("callback_due", "r-1"), ("sla_breach", "r-1")}

        async def cancel_one(uow: CaseUnitOfWork) -> None:
            await uow.apply(Effects(cancel=(CancelTimer(TimerKind.CALLBACK_DUE, "r-1"),)))

        await store.run(cancel_one)
        assert await self.live_timers(store) == {("sla_breach", "r-1")}

    async def test_a_unit_that_fails_leaves_nothing_behind(self, store: CaseStore) -> None:
        await self.add(store, a_case())
        loaded = await self.get(store, "r-1")
        assert loaded is not None

        async def fail(uow: CaseUnitOfWork) -> None:
            await uow.cases.add(a_case("r-2"))
            await uow.cases.save(loaded.model_copy(update={"attempts": 1}))
            await uow.apply(Effects(events=(due_event(loaded),)))
            raise RuntimeError("the decision was refused after all")

        with pytest.raises(RuntimeError):
            await store.run(fail)
        assert await self.get(store, "r-1") == loaded
        assert await self.get(store, "r-2") is None
        assert await self.published_ids(store) == []

    async def test_work_that_lost_a_race_runs_again_on_fresh_state(self, store: CaseStore) -> None:
        await self.add(store, a_case())
        runs = 0

        async def count_an_attempt(uow: CaseUnitOfWork) -> Case:
            nonlocal runs
            runs += 1
            case = await uow.cases.get("r-1")
            assert case is not None
            if runs == 1:
                # Another replica records an attempt between this load and this save.
                await store.run(lambda other: other.cases.save(case.model_copy(update={"attempts": case.attempts + 1})))
            return await uow.cases.save(case.model_copy(update={"attempts": case.attempts + 1}))

        saved = await store.run(count_an_attempt)
        assert runs == 2
        assert (saved.attempts, saved.version) == (2, 2)
        assert await self.get(store, "r-1") == saved
