"""RoutingService's use cases for what the person does (`apply_person_event`) on in-memory fakes: the
case store, the real `Assignments` over in-memory repositories, and a processed-events record in a
set. The same on MongoDB: `tests/integration/test_routing_person_events_on_mongodb.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from structlog.testing import capture_logs

from routing.batches import RequestNotRoutedYet
from routing.case import ScheduleTimer
from routing.enrolment import CourseSeats
from routing.programme import DigitalDivideProgramme
from routing.rules import load_rules
from routing.service import RoutingPolicy, RoutingService
from routing.workers import Availability, Worker, worker_hours
from schemas import (
    CallbackSlotChosen,
    Contact,
    Disposition,
    Event,
    RequestDetailsCorrected,
    Target,
    TrainingRequestClosed,
    TrainingRequestWithdrawn,
)
from services.calendar import BRUSSELS, BrusselsCalendar
from services.catalogue import load_catalogue
from services.clock import FixedClock
from services.idempotency import Effect, Outcome, ProcessedEvents
from services.outbox import Outbox
from services.timers import TimerKind, TimerStore
from tests.routing_case_contract import RECEIVED, a_case
from tests.routing_case_fakes import FakeCaseStore
from tests.routing_fakes import InMemoryAssignments, in_memory_assignments

pytestmark = pytest.mark.unit

NOW = RECEIVED + timedelta(hours=5)  # Tuesday 3 March 2026, 15:00 in Brussels
PROMISE = RECEIVED + timedelta(days=2)
FRIDAY_MORNING = (datetime(2026, 3, 6, 9, 0, tzinfo=BRUSSELS), datetime(2026, 3, 6, 12, 30, tzinfo=BRUSSELS))
ALWAYS = worker_hours({day: [("00:00", "23:59")] for day in range(7)})


class SetProcessed(ProcessedEvents):
    """The processed-events record in a set: an event's effect runs once."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def run_once(self, event: Event, effect: Effect, *, outbox: Outbox | None = None) -> Outcome:
        if str(event.id) in self.ids:
            return Outcome(applied=False, published=0)
        outputs = list(await effect(None))  # type: ignore[arg-type]
        self.ids.add(str(event.id))
        return Outcome(applied=True, published=len(outputs))


@pytest.fixture
async def client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    unused: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    yield unused
    await unused.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def memory(clock: FixedClock) -> InMemoryAssignments:
    return in_memory_assignments(clock=clock.now)


@pytest.fixture
def store() -> FakeCaseStore:
    return FakeCaseStore([a_case()])


@pytest.fixture
def service(
    client: AsyncMongoClient[dict[str, Any]], store: FakeCaseStore, memory: InMemoryAssignments, clock: FixedClock
) -> RoutingService:
    db = client["unused"]
    catalogue = load_catalogue()
    return RoutingService(
        client,
        db,
        policy=RoutingPolicy(rules=load_rules(), calendar=BrusselsCalendar(), catalogue=catalogue),
        clock=clock,
        processed=SetProcessed(),
        assignment=memory.assignments,
        timers=TimerStore(client, db, clock=clock, owner="unit"),
        programme=DigitalDivideProgramme(client, db, quota=10),
        seats=CourseSeats(client, db, catalogue),
        outbox=Outbox(db, "routing_outbox"),
        case_store=store,
    )


async def queue(memory: InMemoryAssignments, *, offered_to: str | None = None) -> None:
    case = a_case()
    await memory.assignments.upsert_worker(
        Worker(
            worker_id="adv-1",
            display_name="adv-1",
            team=Target.ADVISORS,
            languages=frozenset({case.language}),
            skills=frozenset(),
            working_hours=ALWAYS,
            availability=Availability.AVAILABLE if offered_to else Availability.OFFLINE,
            capacity=1,
        )
    )
    await memory.assignments.add_request("r-1", Target.ADVISORS, case.language, (), case.priority, case.deadline)
    if offered_to:
        assert await memory.assignments.offer_next("r-1") is not None
        assert await memory.assignments.accept("r-1", offered_to)


def slot_chosen(window: tuple[datetime, datetime] = FRIDAY_MORNING, request_id: str = "r-1") -> CallbackSlotChosen:
    return CallbackSlotChosen(
        source="/intake",
        request_id=request_id,
        person_id="p-1",
        slot_start=window[0],
        slot_end=window[1],
        chosen_through="status_page",
    )


def withdrawn() -> TrainingRequestWithdrawn:
    return TrainingRequestWithdrawn(source="/intake", request_id="r-1", person_id="p-1", withdrawn_through="status_page")


async def test_a_window_beyond_the_promise_moves_the_deadline_and_the_request_is_offered_when_it_opens(
    service: RoutingService, store: FakeCaseStore, memory: InMemoryAssignments, clock: FixedClock
) -> None:
    await queue(memory)
    await service.apply_person_event(slot_chosen())

    case = store.cases["r-1"]
    assert (case.callback_slot_start, case.deadline, case.deadline_by_choice, case.promised_deadline) == (
        FRIDAY_MORNING[0],
        FRIDAY_MORNING[1],
        True,
        PROMISE,
    )
    assert store.timers[(TimerKind.SLA_BREACH, "r-1")].fire_at == FRIDAY_MORNING[1]
    queued = await memory.assignments.get_request("r-1")
    assert queued is not None and (queued.not_before, queued.deadline) == (FRIDAY_MORNING[0], FRIDAY_MORNING[1])

    await memory.assignments.set_availability("adv-1", Availability.AVAILABLE)
    assert await service.dispatch_once() == 0, "not offered before the window opens"
    clock.at = FRIDAY_MORNING[0]
    assert await service.dispatch_once() == 1
    offered = await memory.assignments.get_request("r-1")
    assert offered is not None and offered.held_by() == "adv-1"


async def test_the_same_choice_delivered_twice_applies_once_and_a_window_outside_opening_hours_is_ignored(
    service: RoutingService, store: FakeCaseStore, memory: InMemoryAssignments
) -> None:
    await queue(memory)
    chosen = slot_chosen()
    await service.apply_person_event(chosen)
    version = store.cases["r-1"].version
    await service.apply_person_event(chosen)
    assert store.cases["r-1"].version == version
    saturday = (FRIDAY_MORNING[0] + timedelta(days=1), FRIDAY_MORNING[1] + timedelta(days=1))
    with capture_logs() as logs:
        assert await service.apply_person_event(slot_chosen(saturday)) is None
    assert store.cases["r-1"].callback_slot_start == FRIDAY_MORNING[0], "the earlier choice stands"
    assert {"event": "callback.slot_refused", "reason": "slot_on_closed_day"}.items() <= logs[-1].items()


async def test_a_withdrawal_frees_the_worker_leaves_the_queue_and_publishes_the_closing(
    service: RoutingService, store: FakeCaseStore, memory: InMemoryAssignments
) -> None:
    await queue(memory, offered_to="adv-1")
    for kind in (TimerKind.CALLBACK_DUE, TimerKind.SLA_BREACH):
        store.timers[(kind, "r-1")] = ScheduleTimer(kind, "r-1", PROMISE, {})
    event = withdrawn()
    await service.apply_person_event(event)

    [closed] = store.published
    assert isinstance(closed, TrainingRequestClosed)
    assert (closed.disposition, closed.worker_id, closed.causation_id) == (Disposition.WITHDRAWN, None, event.id)
    routed = await memory.assignments.get_request("r-1")
    assert routed is not None and routed.status == "closed" and routed.held_by() is None
    worker = await memory.assignments.get_worker("adv-1")
    assert worker is not None and worker.open_count == 0
    assert not store.timers, "its timers are cancelled"

    with capture_logs() as logs:
        assert await service.apply_person_event(withdrawn()) is None
    assert len(store.published) == 1, "withdrawing a closed request does nothing"
    assert any({"event": "request.withdraw_ignored", "reason": "request_closed"}.items() <= log.items() for log in logs)


async def test_a_correction_is_kept_on_the_case_with_the_new_contact_unverified(
    service: RoutingService, store: FakeCaseStore
) -> None:
    corrected = RequestDetailsCorrected(
        source="/intake",
        request_id="r-1",
        person_id="p-1",
        corrected_through="status_page",
        requested_course="EXCEL",
        contact=Contact(phone="+32470111111"),
    )
    await service.apply_person_event(corrected)
    case = store.cases["r-1"]
    assert (case.requested_course, case.unverified_contact["phone"], case.contact["phone"]) == (
        "EXCEL",
        "+32470111111",
        "+32470000000",
    )
    assert (case.target, case.priority) == (a_case().target, a_case().priority)


async def test_an_event_about_a_request_not_routed_yet_is_retried_not_lost(service: RoutingService) -> None:
    with pytest.raises(RequestNotRoutedYet):
        await service.apply_person_event(slot_chosen(request_id="r-unknown"))
