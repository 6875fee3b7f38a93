"""What the person does about their request, applied by routing on the real mongod: a chosen window
moves or keeps the deadline, its timers and the queue entry, and shows on the desk; a withdrawal
closes the request, takes it from its worker and publishes `TrainingRequestClosed` (withdrawn); a
batch with a request and its window applies both, in order (`routing.handlers.route_records`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from opentelemetry import trace
from pymongo import AsyncMongoClient

from routing.case import DeskError
from routing.desk import Desk
from routing.handlers import route_records
from routing.service import RoutingService
from routing.workers import Availability
from schemas import (
    CallbackSlotChosen,
    Contact,
    ContactDetailsConfirmed,
    Disposition,
    Event,
    QualificationLevel,
    RequestDetailsCorrected,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestWithdrawn,
)
from services.calendar import BRUSSELS
from services.clock import FixedClock
from services.mongo import MongoDatabase
from services.timers import TimerKind
from tests.integration.test_routing_service import (
    TUESDAY_10,
    accepted,
    build_service,
    open_count,
    outbox_events,
    phone_call,
    received,
)

pytestmark = pytest.mark.integration

PROMISE = datetime(2026, 3, 5, 10, 0, tzinfo=BRUSSELS)  # 48 working hours after Tuesday 10:00
WEDNESDAY_AFTERNOON = (datetime(2026, 3, 4, 13, 0, tzinfo=BRUSSELS), datetime(2026, 3, 4, 17, 15, tzinfo=BRUSSELS))
FRIDAY_MORNING = (datetime(2026, 3, 6, 9, 0, tzinfo=BRUSSELS), datetime(2026, 3, 6, 12, 30, tzinfo=BRUSSELS))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(TUESDAY_10)


@pytest.fixture
async def service(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, clock: FixedClock) -> RoutingService:
    return await build_service(mongo_client, mongo_db, clock)


def slot(request: TrainingRequestReceived, window: tuple[datetime, datetime]) -> CallbackSlotChosen:
    return CallbackSlotChosen.following(
        request,
        source="/intake/status",
        request_id=request.request_id,
        person_id=request.person_id,
        slot_start=window[0],
        slot_end=window[1],
        chosen_through="status_page",
    )


def record(event: Event, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic="training.requests.v1",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=None,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=[],
    )


async def test_a_window_within_the_promise_keeps_the_deadline_and_one_beyond_moves_it_and_shows_on_the_desk(
    service: RoutingService, mongo_db: MongoDatabase
) -> None:
    request = phone_call(FixedClock(TUESDAY_10))
    await service.route(await service.personal.seal(request))
    worker = await accepted(service, request.request_id)

    within = await service.apply_person_event(slot(request, WEDNESDAY_AFTERNOON))
    assert within is not None and (within.deadline, within.deadline_by_choice) == (PROMISE, False)
    breach = await service.timers.get(TimerKind.SLA_BREACH.value, request.request_id)
    assert breach is not None and breach.fire_at == PROMISE

    beyond = await service.apply_person_event(slot(request, FRIDAY_MORNING))
    assert beyond is not None and (beyond.deadline, beyond.deadline_by_choice, beyond.promised_deadline) == (
        FRIDAY_MORNING[1],
        True,
        PROMISE,
    )
    breach = await service.timers.get(TimerKind.SLA_BREACH.value, request.request_id)
    assert breach is not None and breach.fire_at == FRIDAY_MORNING[1]
    stored = await mongo_db["routing_cases"].find_one({"_id": request.request_id})
    assert stored is not None and stored["deadline_by_choice"] is True

    [item] = await Desk(service).queue(worker)
    assert (item.callback_slot_start, item.callback_slot_end, item.callback_slot_through) == (*FRIDAY_MORNING, "status_page")
    assert (item.deadline, item.deadline_by_choice, item.promised_deadline, item.scheduled) == (
        FRIDAY_MORNING[1],
        True,
        PROMISE,
        True,
    )

    again = await service.apply_person_event(slot(request, WEDNESDAY_AFTERNOON))
    assert again is not None and (again.deadline, again.deadline_by_choice, again.promised_deadline) == (PROMISE, False, None)
    stored = await mongo_db["routing_cases"].find_one({"_id": request.request_id})
    assert stored is not None and (stored["deadline_by_choice"], stored["promised_deadline"]) == (False, None)


async def test_a_window_beyond_the_promise_is_not_offered_before_it_opens(service: RoutingService, clock: FixedClock) -> None:
    request = phone_call(clock)
    # Routed while nobody is free, then the window chosen: no offer until Friday 9:00.
    roster = await service.assignment.list_workers()
    for worker in roster:
        await service.assignment.set_availability(worker.worker_id, Availability.OFFLINE)
    await service.route(await service.personal.seal(request))
    await service.apply_person_event(slot(request, FRIDAY_MORNING))
    for worker in roster:
        await service.assignment.set_availability(worker.worker_id, worker.availability)

    assert await service.dispatch_once() == 0
    queued = await service.assignment.get_request(request.request_id)
    assert queued is not None and queued.not_before == FRIDAY_MORNING[0]
    clock.at = FRIDAY_MORNING[0]
    await service.dispatch_once()
    offered = await service.assignment.get_request(request.request_id)
    assert offered is not None and offered.held_by() is not None


async def test_a_withdrawal_frees_the_worker_leaves_the_queue_and_publishes_the_closing(
    service: RoutingService, mongo_db: MongoDatabase
) -> None:
    request = phone_call(FixedClock(TUESDAY_10))
    await service.route(await service.personal.seal(request))
    worker = await accepted(service, request.request_id)
    withdrawn = TrainingRequestWithdrawn.following(
        request,
        source="/intake/status",
        request_id=request.request_id,
        person_id=request.person_id,
        withdrawn_through="status_page",
    )

    await service.apply_person_event(withdrawn)
    await service.apply_person_event(withdrawn)  # delivered again

    closings = [e for e in await outbox_events(mongo_db, request.request_id) if isinstance(e, TrainingRequestClosed)]
    assert [(c.disposition, c.worker_id, c.causation_id) for c in closings] == [(Disposition.WITHDRAWN, None, withdrawn.id)]
    routed = await service.assignment.get_request(request.request_id)
    assert routed is not None and routed.status == "closed" and routed.held_by() is None
    assert await open_count(service, worker) == 0
    assert await Desk(service).queue(worker) == []
    breach = await service.timers.get(TimerKind.SLA_BREACH.value, request.request_id)
    assert breach is None or breach.state.value == "cancelled"


async def test_a_batch_with_a_request_and_its_window_routes_it_then_applies_the_window(
    service: RoutingService, mongo_db: MongoDatabase
) -> None:
    request, other = phone_call(FixedClock(TUESDAY_10)), phone_call(FixedClock(TUESDAY_10))
    chosen = slot(request, FRIDAY_MORNING)
    batch: list[Event] = [await service.personal.seal(request), chosen, await service.personal.seal(other)]
    decoded = [(record(event, offset), event) for offset, event in enumerate(batch)]

    failed = await route_records(service, decoded, trace.get_tracer(__name__))

    assert failed == []
    case = await mongo_db["routing_cases"].find_one({"_id": request.request_id})
    assert case is not None and case["callback_slot_through"] == "status_page" and case["deadline_by_choice"] is True
    assert await mongo_db["routing_cases"].count_documents({"_id": other.request_id}) == 1


async def test_a_withdrawn_request_leaves_the_programmes_waitlist_and_is_never_admitted(
    service: RoutingService, clock: FixedClock, mongo_db: MongoDatabase
) -> None:
    year = TUESDAY_10.year
    await service.programme.set_quota(year, 0)
    request = received(clock, has_computer=False, qualification_level=QualificationLevel.HIGHER)
    await service.route(await service.personal.seal(request))
    assert [w["_id"] for w in await service.programme.waitlist(year)] == [request.request_id]

    await service.apply_person_event(
        TrainingRequestWithdrawn.following(
            request,
            source="/intake/status",
            request_id=request.request_id,
            person_id=request.person_id,
            withdrawn_through="status_page",
        )
    )

    assert await service.programme.waitlist(year) == []
    _, admitted = await service.programme.set_quota(year, 5)
    assert request.request_id not in admitted
    routed = await service.assignment.get_request(request.request_id)
    assert routed is None or routed.status == "closed"


async def test_the_advisor_confirms_the_new_contact_after_checking_it_and_it_leaves_sealed(
    service: RoutingService, mongo_db: MongoDatabase
) -> None:
    request = phone_call(FixedClock(TUESDAY_10))
    await service.route(await service.personal.seal(request))
    worker = await accepted(service, request.request_id)
    corrected = RequestDetailsCorrected.following(
        request,
        source="/intake/status",
        request_id=request.request_id,
        person_id=request.person_id,
        corrected_through="status_page",
        contact=Contact(phone="+32470999888"),
    )
    await service.apply_person_event(await service.personal.seal(corrected))
    desk = Desk(service)
    [item] = await desk.queue(worker)
    assert item.unverified_contact and item.unverified_contact["phone"] == "+32470999888"

    with pytest.raises(DeskError):
        await desk.confirm_contact(request.request_id, worker_id="adv-someone-else", for_team=False)
    await desk.confirm_contact(request.request_id, worker_id=worker, for_team=False)

    [confirmed] = [e for e in await outbox_events(mongo_db, request.request_id) if isinstance(e, ContactDetailsConfirmed)]
    assert confirmed.contact is None and confirmed.sealed is not None, "personal data leaves sealed"
    opened = await service.personal.unseal(confirmed)
    assert opened.contact is not None and opened.contact.phone == "+32470999888" and opened.confirmed_by == worker
    [item] = await desk.queue(worker)
    assert item.phone == "+32470999888" and not item.unverified_contact


async def test_withdrawing_a_request_ends_the_call_that_joined_it(service: RoutingService, mongo_db: MongoDatabase) -> None:
    clock = FixedClock(TUESDAY_10)
    web = received(clock, has_computer=True)
    await service.route(web)
    call = phone_call(clock, person_id=web.person_id, linked_request_ids=[web.request_id])
    routed = await service.route(call)
    assert routed is not None and routed.rule_id == "joins-open-request"
    withdrawn = TrainingRequestWithdrawn.following(
        web, source="/intake/status", request_id=web.request_id, person_id=web.person_id, withdrawn_through="status_page"
    )

    await service.apply_person_event(withdrawn)
    await service.apply_person_event(withdrawn)  # delivered again: nothing more

    closings = [e for e in await outbox_events(mongo_db, call.request_id) if isinstance(e, TrainingRequestClosed)]
    [own] = [e for e in await outbox_events(mongo_db, web.request_id) if isinstance(e, TrainingRequestClosed)]
    assert [(c.disposition, c.worker_id, c.causation_id) for c in closings] == [(Disposition.WITHDRAWN, None, own.id)]
    joined = await service.cases.find_one({"_id": call.request_id})
    assert joined is not None and joined["disposition"] == "withdrawn" and joined["sla"] == "met"
