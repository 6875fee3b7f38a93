"""A Cité des métiers hand-over on the real mongod: routed to BF espaces numériques, the worker
asks the Cité for more information (the callback clock stops), the reminder timer fires once,
the answer comes and the clock runs again with its deadline moved by the working time waited.

Wired as `tests.integration.test_routing_service` wires RoutingService, on a `FixedClock` in a
week of March 2027 without public holidays.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from routing.assignment import RequestStatus
from routing.desk import Desk
from routing.service import DeskError, RoutingService
from routing.sla import resumed_deadline
from schemas import (
    CallbackDue,
    Channel,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    PartnerInformationRequested,
    Target,
)
from services.calendar import BRUSSELS
from services.clock import FixedClock
from services.mongo import MongoDatabase
from services.timers import TimerKind, TimerState
from tests.factories import make_request
from tests.integration.test_routing_service import NEUTRAL_NEED, accepted, build_service, outbox_events

pytestmark = pytest.mark.integration

THURSDAY_10 = datetime(2027, 3, 4, 10, 0, tzinfo=BRUSSELS)
FRIDAY_11 = datetime(2027, 3, 5, 11, 0, tzinfo=BRUSSELS)
MONDAY_10 = datetime(2027, 3, 8, 10, 0, tzinfo=BRUSSELS)
MONDAY_11 = datetime(2027, 3, 8, 11, 0, tzinfo=BRUSSELS)
TUESDAY_10 = datetime(2027, 3, 9, 10, 0, tzinfo=BRUSSELS)
WEDNESDAY_9 = datetime(2027, 3, 10, 9, 0, tzinfo=BRUSSELS)
QUESTION = "La personne a-t-elle un niveau de français suffisant pour le module bureautique ?"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(THURSDAY_10)


@pytest.fixture
async def service(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, clock: FixedClock) -> RoutingService:
    return await build_service(mongo_client, mongo_db, clock)


async def fire_at(service: RoutingService, kind: TimerKind, request_id: str) -> tuple[TimerState, datetime] | None:
    timer = await service.timers.get(kind, request_id)
    return (timer.state, timer.fire_at.astimezone(BRUSSELS)) if timer else None


async def test_asking_the_cite_des_metiers_stops_the_clock_and_its_answer_moves_the_deadline(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    # A phone hand-over from the Cité des métiers: the 48-hour promise applies, due Monday 10:00.
    request = make_request(
        channel=Channel.PHONE, received_at=clock.now(), need=NEUTRAL_NEED, channel_details={"partner": "cite-des-metiers"}
    )
    routed = await service.route(request)
    assert routed is not None
    assert (routed.target, routed.rule_id, routed.callback_deadline) == (
        Target.ESPACES_NUMERIQUES,
        "cite-des-metiers-handover",
        MONDAY_10,
    )
    rid = request.request_id
    worker = await accepted(service, rid)
    handlers = service.timer_handlers()

    # Friday 11:00: the worker asks the Cité.
    clock.advance(FRIDAY_11 - clock.now())
    asked = await service.ask_partner(rid, worker_id=worker, question=QUESTION)
    assert isinstance(asked, PartnerInformationRequested)
    assert await fire_at(service, TimerKind.SLA_BREACH, rid) == (TimerState.CANCELLED, MONDAY_10)
    assert (await fire_at(service, TimerKind.CALLBACK_DUE, rid) or (None,))[0] is TimerState.CANCELLED
    assert await fire_at(service, TimerKind.PARTNER_REMINDER, rid) == (TimerState.PENDING, MONDAY_11)
    with pytest.raises(DeskError, match="already waits"):
        await service.ask_partner(rid, worker_id=worker, question=QUESTION)
    case = await service.cases.find_one({"_id": rid})
    assert case is not None and case["partner_wait"] == "waiting" and case["partner"] == "cite-des-metiers"
    # The worker's queue says so, for the console's "waiting for the partner since".
    [item] = await Desk(service).queue(worker)
    assert (item.partner, item.waiting_for_partner, item.partner_asked_at) == ("cite-des-metiers", True, FRIDAY_11)

    # Monday 11:01: the old deadline passed unnoticed (the clock is stopped); the reminder fires, once.
    clock.advance(MONDAY_11 + timedelta(minutes=1) - clock.now())
    assert await service.timers.run_once(handlers) == 1
    assert await service.timers.run_once(handlers) == 0
    await service.dispatch_once()
    held = await service.assignment.get_request(rid)
    assert held is not None and held.status == RequestStatus.ASSIGNED and held.held_by() == worker

    # Tuesday 10:00: the answer. Waited 6 h 15 on Friday, 8 h 45 on Monday, 1 h 30 on Tuesday.
    clock.advance(TUESDAY_10 - clock.now())
    received = await service.record_partner_answer(rid, recorded_by=worker, answer="Oui, niveau B2.")
    assert isinstance(received, PartnerInformationReceived)
    policy = service.policy
    assert resumed_deadline(MONDAY_10, FRIDAY_11, TUESDAY_10, policy.sla, policy.calendar) == WEDNESDAY_9
    assert received.callback_deadline == WEDNESDAY_9
    tuesday_13_45 = datetime(2027, 3, 9, 13, 45, tzinfo=BRUSSELS)  # 4 working hours before Wednesday 9:00
    assert await fire_at(service, TimerKind.SLA_BREACH, rid) == (TimerState.PENDING, WEDNESDAY_9)
    assert await fire_at(service, TimerKind.CALLBACK_DUE, rid) == (TimerState.PENDING, tuesday_13_45)
    assert (await fire_at(service, TimerKind.PARTNER_REMINDER, rid) or (None,))[0] is TimerState.FIRED
    held = await service.assignment.get_request(rid)
    assert held is not None and held.deadline == WEDNESDAY_9 and held.held_by() == worker
    case = await service.cases.find_one({"_id": rid})
    assert case is not None and (case["partner_wait"], case["sla"]) == ("answered", "pending")

    # The clock runs again: the warning comes before the new deadline.
    clock.advance(tuesday_13_45 + timedelta(minutes=1) - clock.now())
    assert await service.timers.run_once(handlers) == 1

    events = await outbox_events(mongo_db, rid)
    kinds = [PartnerInformationRequested, PartnerInformationOverdue, PartnerInformationReceived, CallbackDue]
    assert [type(e) for e in events] == kinds
    question, overdue, answer, due = events
    assert isinstance(question, PartnerInformationRequested) and isinstance(answer, PartnerInformationReceived)
    # Free text leaves routing sealed with the person's key; routing can read it back.
    assert question.question is None and question.sealed is not None
    assert (await service.personal.unseal(question)).question == QUESTION
    assert answer.answer is None and (await service.personal.unseal(answer)).answer == "Oui, niveau B2."
    assert isinstance(overdue, PartnerInformationOverdue) and (overdue.assignee_id, overdue.asked_at) == (worker, FRIDAY_11)
    assert isinstance(due, CallbackDue) and due.deadline == WEDNESDAY_9
    assert {e.correlation_id for e in events} == {request.correlation_id}


async def test_only_the_worker_holding_a_hand_over_asks_and_only_a_hand_over_has_somebody_to_ask(
    service: RoutingService, clock: FixedClock
) -> None:
    handover = make_request(channel=Channel.WEB, received_at=clock.now(), channel_details={"partner": "cite-des-metiers"})
    assert await service.route(handover) is not None
    with pytest.raises(DeskError, match="accept it first"):
        await service.ask_partner(handover.request_id, worker_id="en-fr-1", question=QUESTION)

    direct = make_request(channel=Channel.EMAIL, received_at=clock.now(), requested_course="EXCEL")
    assert await service.route(direct) is not None
    worker = await accepted(service, direct.request_id)
    with pytest.raises(DeskError, match="not handed over by a partner"):
        await service.ask_partner(direct.request_id, worker_id=worker, question=QUESTION)
    with pytest.raises(DeskError, match="does not wait"):
        await service.record_partner_answer(direct.request_id, recorded_by=worker, answer="?")
