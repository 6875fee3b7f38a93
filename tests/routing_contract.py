"""The contract of `routing.repositories`, one abstract suite for every adapter.

A subclass supplies the `requests`, `workers` and `transactions` fixtures: the in-memory fakes
(`tests/unit/test_routing_repositories.py`) and MongoDB (`tests/integration/
test_routing_repositories_mongo.py`), so the fakes the unit tests trust behave like the real thing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from routing.repositories import RequestRepository, Session, Transactions, VersionConflict, WorkerRepository
from routing.reservation import Accept, Decline, Offer, decide, queue_request
from routing.workers import Availability, Worker, worker_hours
from schemas import Language, Target

NOW = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
TEAM = Target.ESPACES_NUMERIQUES
TIMEOUT = timedelta(minutes=2)


def worker(worker_id: str, **overrides: Any) -> Worker:
    fields: dict[str, Any] = {
        "worker_id": worker_id,
        "display_name": f"Staff {worker_id}",
        "team": TEAM,
        "languages": frozenset({Language.FR}),
        "skills": frozenset({"office"}),
        "working_hours": worker_hours({day: [("08:30", "17:00")] for day in range(5)}),
        "availability": Availability.AVAILABLE,
        "capacity": 1,
    }
    fields.update(overrides)
    return Worker(**fields)


class RepositoryContract:
    """What `AssignmentStore` relies on from its repositories."""

    # --- requests ------------------------------------------------------------------------

    async def test_a_request_round_trips_and_is_added_once(self, requests: RequestRepository) -> None:
        request, transitions = queue_request("r1", TEAM, Language.FR, NOW, {"office"}, priority=3, deadline=NOW + TIMEOUT)
        assert await requests.add(request, transitions)
        assert await requests.get("r1") == request
        other, again = queue_request("r1", TEAM, Language.NL, NOW + TIMEOUT)
        assert not await requests.add(other, again)
        assert await requests.get("r1") == request
        assert await requests.get("nobody") is None
        assert [(h["event"], h["at"]) for h in await requests.history("r1")] == [("queued", NOW)]

    async def test_requests_are_added_many_at_once_or_none_of_them(
        self, requests: RequestRepository, transactions: Transactions
    ) -> None:
        first, second = (queue_request(f"r{n}", TEAM, Language.FR, NOW, priority=n) for n in (1, 2))
        await transactions.run(lambda session: requests.add_many([first, second], session))
        assert [await requests.get("r1"), await requests.get("r2")] == [first[0], second[0]]

        third = queue_request("r3", TEAM, Language.FR, NOW)
        with pytest.raises(Exception):  # noqa: B017 - the adapter's own duplicate-key error
            await transactions.run(lambda session: requests.add_many([third, first], session))
        assert await requests.get("r3") is None

    async def test_requests_are_saved_many_at_once_or_none_of_them(
        self, requests: RequestRepository, transactions: Transactions
    ) -> None:
        first, second = (queue_request(f"r{n}", TEAM, Language.FR, NOW) for n in (1, 2))
        await transactions.run(lambda session: requests.add_many([first, second], session))
        (r1, _), (r2, _) = first, second
        offered = [(*decide(r, Offer(f"w{n}", NOW, TIMEOUT)), r.version) for n, r in ((1, r1), (2, r2))]
        await transactions.run(lambda session: requests.save_many([(new, v, t) for new, t, v in offered], session))
        assert [await requests.get("r1"), await requests.get("r2")] == [new for new, _, _ in offered]

        again = [(*decide(r, Offer("w3", NOW, TIMEOUT)), r.version) for r in (r1, r2)]  # decided on stale versions
        with pytest.raises(VersionConflict):
            await transactions.run(lambda session: requests.save_many([(new, v, t) for new, t, v in again], session))
        assert [await requests.get("r1"), await requests.get("r2")] == [new for new, _, _ in offered]

    async def test_a_save_is_a_compare_and_set_on_the_version(self, requests: RequestRepository) -> None:
        request, transitions = queue_request("r1", TEAM, Language.FR, NOW)
        await requests.add(request, transitions)
        offered, reserved = decide(request, Offer("w1", NOW, TIMEOUT))
        await requests.save(offered, request.version, reserved)
        assert await requests.get("r1") == offered

        racing, reserved_too = decide(request, Offer("w2", NOW, TIMEOUT))  # decided on the same, now stale, version
        with pytest.raises(VersionConflict):
            await requests.save(racing, request.version, reserved_too)
        assert await requests.get("r1") == offered
        assert [h["event"] for h in await requests.history("r1")] == ["queued", "reserved"]
        assert (await requests.history("r1"))[1] == {"at": NOW, "event": "reserved", "worker_id": "w1"}

    async def test_the_history_keeps_the_last_entries(self, requests: RequestRepository) -> None:
        state, transitions = queue_request("r1", TEAM, Language.FR, NOW)
        await requests.add(state, transitions)
        for i in range(requests.HISTORY_KEPT // 2 + 1):
            at = NOW + timedelta(seconds=i)
            offered, reserved = decide(state, Offer(f"w{i}", at, TIMEOUT))
            await requests.save(offered, state.version, reserved)
            state, released = decide(offered, Decline(f"w{i}", at))
            await requests.save(state, offered.version, released)
        history = await requests.history("r1")
        assert len(history) == requests.HISTORY_KEPT
        assert history[-1]["event"] == "declined" and history[0]["event"] != "queued"

    async def test_queries_by_status(self, requests: RequestRepository) -> None:
        for request_id, team in [("q1", TEAM), ("q2", Target.ADVISORS), ("o1", TEAM), ("a1", TEAM)]:
            request, transitions = queue_request(request_id, team, Language.FR, NOW)
            await requests.add(request, transitions)
        for request_id, at in [("o1", NOW), ("a1", NOW + TIMEOUT)]:
            queued = await requests.get(request_id)
            assert queued is not None
            offered, reserved = decide(queued, Offer("w1", at, TIMEOUT))
            await requests.save(offered, queued.version, reserved)
        held = await requests.get("a1")
        assert held is not None
        accepted, transitions = decide(held, Accept("w1", NOW + TIMEOUT))
        await requests.save(accepted, held.version, transitions)

        assert [r.request_id for r in await requests.queued(TEAM)] == ["q1"]
        assert [r.request_id for r in await requests.queued(Target.ADVISORS)] == ["q2"]
        assert sorted(r.request_id for r in await requests.held_by("w1")) == ["a1", "o1"]
        assert await requests.held_by("w2") == []
        assert sorted(r.request_id for r in await requests.open_for_team(TEAM)) == ["a1", "o1", "q1"]
        assert [r.request_id for r in await requests.open_for_team(Target.ADVISORS)] == ["q2"]
        assert await requests.open_for_team(Target.DIGITAL_DIVIDE) == []
        assert await requests.expired(NOW + TIMEOUT - timedelta(seconds=1)) == []
        assert [r.request_id for r in await requests.expired(NOW + TIMEOUT)] == ["o1"]

    # --- workers -------------------------------------------------------------------------

    async def test_a_profile_update_keeps_live_state(self, workers: WorkerRepository) -> None:
        assert await workers.upsert(worker("w2"), NOW)
        assert await workers.upsert(worker("w1", team=Target.ADVISORS), NOW)
        assert await workers.take_capacity("w2", NOW)
        assert await workers.set_availability("w2", Availability.BREAK, NOW)
        assert not await workers.set_availability("nobody", Availability.BREAK, NOW)

        assert not await workers.upsert(worker("w2", capacity=3, display_name="Renamed", availability=Availability.OFFLINE), NOW)
        w2 = await workers.get("w2")
        assert w2 is not None
        assert (w2.capacity, w2.display_name, w2.availability, w2.open_count, w2.last_assigned_at) == (
            3,
            "Renamed",
            Availability.BREAK,
            1,
            NOW,
        )
        assert [w.worker_id for w in await workers.by_team()] == ["w1", "w2"]
        assert [w.worker_id for w in await workers.by_team(TEAM)] == ["w2"]
        assert await workers.get("nobody") is None

    async def test_capacity_is_taken_only_while_available_and_under_capacity(self, workers: WorkerRepository) -> None:
        await workers.upsert(worker("w1", capacity=2), NOW)
        assert await workers.take_capacity("w1", NOW)
        assert await workers.take_capacity("w1", NOW + TIMEOUT)
        assert not await workers.take_capacity("w1", NOW), "at capacity"
        assert not await workers.take_capacity("nobody", NOW)
        w1 = await workers.get("w1")
        assert w1 is not None and w1.open_count == 2 and w1.last_assigned_at == NOW + TIMEOUT

        assert await workers.free("w1")
        await workers.set_availability("w1", Availability.BUSY, NOW)
        assert not await workers.take_capacity("w1", NOW), "not available"
        assert await workers.free("w1")
        assert not await workers.free("w1"), "never below 0"
        w1 = await workers.get("w1")
        assert w1 is not None and w1.open_count == 0

    async def test_capacities_are_taken_together_only_if_all_fit(
        self, workers: WorkerRepository, transactions: Transactions
    ) -> None:
        await workers.upsert(worker("w1", capacity=3), NOW)

        async def take(count: int, session: Session) -> None:
            if not await workers.take_capacities("w1", count, NOW, session):
                raise LookupError("full")  # the caller aborts its transaction

        with pytest.raises(LookupError):
            await transactions.run(lambda session: take(4, session))
        w1 = await workers.get("w1")
        assert w1 is not None and w1.open_count == 0
        await transactions.run(lambda session: take(2, session))
        w1 = await workers.get("w1")
        assert w1 is not None and w1.open_count == 2 and w1.last_assigned_at == NOW

    async def test_candidates_are_prefiltered(self, workers: WorkerRepository) -> None:
        await workers.upsert(worker("ok"), NOW)
        await workers.upsert(worker("full"), NOW)
        await workers.take_capacity("full", NOW)
        await workers.upsert(worker("away", availability=Availability.OFFLINE), NOW)
        await workers.upsert(worker("dutch", languages=frozenset({Language.NL})), NOW)
        await workers.upsert(worker("unskilled", skills=frozenset()), NOW)
        await workers.upsert(worker("declined"), NOW)
        await workers.upsert(worker("other-team", team=Target.ADVISORS), NOW)
        found = await workers.candidates(Language.FR, frozenset({"office"}), frozenset({"declined"}))
        assert sorted(w.worker_id for w in found) == ["ok", "other-team"]
        assert len(await workers.candidates(Language.FR, frozenset(), frozenset())) == 4

    # --- transactions --------------------------------------------------------------------

    async def test_a_failed_transaction_changes_nothing(
        self, requests: RequestRepository, workers: WorkerRepository, transactions: Transactions
    ) -> None:
        await workers.upsert(worker("w1"), NOW)
        request, transitions = queue_request("r1", TEAM, Language.FR, NOW)
        await requests.add(request, transitions)
        offered, reserved = decide(request, Offer("w1", NOW, TIMEOUT))

        async def reserve_then_fail(session: Session) -> None:
            await requests.save(offered, request.version, reserved, session)
            assert await workers.take_capacity("w1", NOW, session)
            raise LookupError("abort")

        with pytest.raises(LookupError):
            await transactions.run(reserve_then_fail)
        assert await requests.get("r1") == request
        assert [h["event"] for h in await requests.history("r1")] == ["queued"]
        w1 = await workers.get("w1")
        assert w1 is not None and w1.open_count == 0

        async def reserve(session: Session) -> str:
            await requests.save(offered, request.version, reserved, session)
            assert await workers.take_capacity("w1", NOW, session)
            return "done"

        assert await transactions.run(reserve) == "done"
        assert await requests.get("r1") == offered
        w1 = await workers.get("w1")
        assert w1 is not None and w1.open_count == 1
