"""Learner coaching end to end on the real mongod: a learner question posted on the web is
stored by intake as one, and routing sends it to BF espaces numériques under its own, shorter
promise (one working day), with the timers of any promise.

Routing is wired as in `test_routing_service` (FixedClock, no Kafka, events read back from
routing's outbox through the wire codec); intake's web channel as in `test_shared_limits`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from intake.pipeline import IntakePipeline
from intake.web import MongoIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from routing.service import RoutingService
from schemas import CallbackDue, CallbackSlaBreached, Channel, RequestKind, Target, TrainingRequestReceived, decode
from services.calendar import BRUSSELS
from services.catalogue import load_catalogue
from services.clock import FixedClock
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.ratelimits import MongoRateLimits
from services.timers import TimerKind, TimerState
from tests.integration.test_routing_service import TUESDAY_10, accepted, build_service, outbox_events, received

pytestmark = pytest.mark.integration

WEDNESDAY_10 = datetime(2026, 3, 4, 10, 0, tzinfo=BRUSSELS)
"""One working day (8 h 45 of opening time) after TUESDAY_10."""


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(TUESDAY_10)


@pytest.fixture
async def service(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, clock: FixedClock) -> RoutingService:
    return await build_service(mongo_client, mongo_db, clock)


async def test_a_learner_question_by_email_gets_the_shorter_deadline_and_its_timers(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    question = received(
        clock,
        channel=Channel.EMAIL,
        kind=RequestKind.LEARNER_QUESTION,
        need="Je suis inscrite à la formation Excel en ligne et le module 3 ne s'ouvre pas.",
    )
    # The same e-mail as a training request carries no promise at all (only calls do).
    plain = received(clock, channel=Channel.EMAIL)

    routed = await service.route(question)
    plain_routed = await service.route(plain)

    assert routed is not None and plain_routed is not None
    assert (routed.target, routed.rule_id, routed.kind) == (
        Target.ESPACES_NUMERIQUES,
        "learner-question",
        RequestKind.LEARNER_QUESTION,
    )
    assert routed.callback_deadline == WEDNESDAY_10
    assert plain_routed.callback_deadline is None and plain_routed.kind is RequestKind.TRAINING_REQUEST
    decision = await service.decisions.find_one({"_id": question.request_id})
    assert decision is not None and decision["callback_deadline"] == WEDNESDAY_10
    # CallbackDue two hours of opening time ahead: Tuesday 16:45 (30 min on Wednesday, 1 h 30 on Tuesday).
    due = datetime(2026, 3, 3, 16, 45, tzinfo=BRUSSELS)
    case = await service.cases.find_one({"_id": question.request_id})
    assert case is not None and (case["sla"], case["deadline"], case["due_at"]) == ("pending", WEDNESDAY_10, due)
    due_timer = await service.timers.get(TimerKind.CALLBACK_DUE, question.request_id)
    breach_timer = await service.timers.get(TimerKind.SLA_BREACH, question.request_id)
    assert due_timer is not None and (due_timer.state, due_timer.fire_at) == (TimerState.PENDING, due)
    assert breach_timer is not None and breach_timer.fire_at == WEDNESDAY_10
    assert await service.timers.get(TimerKind.SLA_BREACH, plain.request_id) is None

    # Nobody answers: the reminder, then the breach, as for a caller.
    worker = await accepted(service, question.request_id)
    handlers = service.timer_handlers()
    clock.advance(due + timedelta(minutes=1) - clock.now())
    assert await service.timers.run_once(handlers) == 1
    clock.advance(WEDNESDAY_10 + timedelta(minutes=1) - clock.now())
    assert await service.timers.run_once(handlers) == 1
    events = await outbox_events(mongo_db, question.request_id)
    [reminder] = [e for e in events if isinstance(e, CallbackDue)]
    [breach] = [e for e in events if isinstance(e, CallbackSlaBreached)]
    assert (reminder.deadline, reminder.assignee_id) == (WEDNESDAY_10, worker)
    assert breach.deadline == WEDNESDAY_10


async def test_a_learner_question_on_the_web_on_friday_afternoon_is_due_on_monday(
    service: RoutingService, clock: FixedClock
) -> None:
    clock.advance(datetime(2026, 3, 6, 16, 0, tzinfo=BRUSSELS) - clock.now())
    question = received(clock, channel=Channel.WEB, kind=RequestKind.LEARNER_QUESTION, need="Question sur ma formation")
    routed = await service.route(question)
    assert routed is not None and routed.callback_deadline == datetime(2026, 3, 9, 16, 0, tzinfo=BRUSSELS)


# --- from the web form's API to routing ----------------------------------------------------


async def test_a_learner_question_posted_on_the_web_is_stored_as_one_and_routed_with_its_promise(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, service: RoutingService
) -> None:
    pipeline = IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"))
    await pipeline.ensure_indexes()
    app = FastAPI()
    app.include_router(web_router)
    channel = WebChannel(
        pipeline,
        WebSettings(rate_per_minute=2, burst=2),
        load_catalogue(),
        clock=lambda: TUESDAY_10,
        rate_limits=MongoRateLimits(mongo_db),
        idempotency_keys=MongoIdempotencyKeys(mongo_db, timedelta(hours=24)),
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    body = {
        "email": "learner@example.org",
        "need": "Je ne trouve plus les exercices du module 3.",
        "language": "fr",
        "consent_to_contact": True,
        "kind": "learner_question",
    }
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as web:
        posted = await web.post("/api/v1/requests", json=body)
        assert posted.status_code == 202, posted.text
        # The same protections as any request: the network's rate limit holds.
        assert (await web.post("/api/v1/requests", json={**body, "email": "other@example.org"})).status_code == 202
        refused = await web.post("/api/v1/requests", json={**body, "email": "third@example.org"})
        assert refused.status_code == 429

    entry = await mongo_db["intake_outbox"].find_one({"key": posted.json()["request_id"].encode()})
    assert entry is not None
    event = decode(entry["value"], list(entry["headers"].items()))
    assert isinstance(event, TrainingRequestReceived)
    assert (event.channel, event.kind) == (Channel.WEB, RequestKind.LEARNER_QUESTION)  # in clear: it is no personal data

    routed = await service.route(event)
    assert routed is not None
    assert (routed.target, routed.rule_id) == (Target.ESPACES_NUMERIQUES, "learner-question")
    assert routed.callback_deadline == WEDNESDAY_10
