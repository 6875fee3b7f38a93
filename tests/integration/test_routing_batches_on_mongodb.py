"""Routing a batch of requests (`RoutingService.route_batch`) on the real mongod has the effects of
routing them one by one (`route`): the same decisions, cases, timers, outbox entries, queue entries
and processed-event records - for plain requests, a request joining another, one sent to the
digital-divide programme, an event delivered twice in the batch and one delivered before it - and a
request that cannot be routed holds up none of the others.

Two services, wired as in `test_routing_service`, each over a database of its own: one routes the
batch one request at a time, the other at once. No worker is on the roster, so every request stays
queued and the queues compare as they are.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from routing.service import RoutingService
from schemas import Channel, QualificationLevel, Target, TrainingRequestReceived, TrainingRequestRouted, decode
from services.clock import FixedClock
from services.mongo import MongoDatabase
from tests.integration.test_routing_service import TUESDAY_10, build_service, phone_call, received

pytestmark = pytest.mark.integration


async def unstaffed(client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, clock: FixedClock) -> RoutingService:
    service = await build_service(client, db, clock)
    await db["routing_workers"].delete_many({})
    return service


@pytest.fixture
async def alone_db(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase) -> AsyncIterator[MongoDatabase]:
    name = f"{mongo_db.name}_alone"
    yield mongo_client[name]
    await mongo_client.drop_database(name)
    await mongo_client.drop_database(f"{name}_keys")


def mixed_batch(clock: FixedClock) -> tuple[TrainingRequestReceived, list[TrainingRequestReceived]]:
    """A request routed before the batch, and the batch: plain requests of several channels and
    teams, one joining an earlier request of the batch, one for the digital-divide programme, one
    delivered twice and the one routed before, delivered again."""
    earlier = phone_call(clock)
    first = phone_call(clock)
    joining = phone_call(clock, person_id=first.person_id, linked_request_ids=[first.request_id])
    course = received(clock, channel=Channel.EMAIL, requested_course="EXCEL")
    unequipped = received(clock, has_computer=False, qualification_level=QualificationLevel.HIGHER)
    twice = received(clock, channel=Channel.WEB)
    dutch = phone_call(clock, language="nl", need="Ik zoek een opleiding.")
    batch = [first, course, twice, joining, unequipped, twice, earlier, dutch]
    return earlier, batch


async def state(db: MongoDatabase) -> dict[str, Any]:
    """What routing stored, without what differs between any two runs (event ids, write times)."""

    async def docs(collection: str, drop: Sequence[str] = ()) -> list[dict[str, Any]]:
        found = await db[collection].find().sort("_id", 1).to_list(None)
        return [{k: v for k, v in doc.items() if k not in drop} for doc in found]

    outbox = await db["routing_outbox"].find().to_list(None)
    events = [decode(doc["value"], list(doc["headers"].items())) for doc in outbox]
    return {
        "decisions": await docs("routing_decisions", ("decided_at", "routed_event_id")),
        "cases": await docs("routing_cases", ("routed_event_id",)),
        "queue": await docs("routing_requests", ("history", "updated_at")),
        "timers": await docs("routing_timers", ("scheduled_at",)),
        "processed": sorted(doc["event_id"] for doc in await db["processed_events"].find().to_list(None)),
        "outbox": sorted(
            (e.type, getattr(e, "request_id", ""), repr(e.model_dump(exclude={"id", "occurred_at", "time"}))) for e in events
        ),
    }


async def test_a_mixed_batch_has_the_effects_of_its_requests_routed_one_by_one(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, alone_db: MongoDatabase
) -> None:
    clock = FixedClock(TUESDAY_10)
    one_by_one = await unstaffed(mongo_client, alone_db, clock)
    together = await unstaffed(mongo_client, mongo_db, clock)
    earlier, batch = mixed_batch(clock)
    for service in (one_by_one, together):
        await service.route(await service.personal.seal(earlier))

    for request in batch:
        await one_by_one.route(await one_by_one.personal.seal(request))
    failed = await together.route_batch([await together.personal.seal(request) for request in batch])

    assert failed == []
    expected, found = await state(alone_db), await state(mongo_db)
    assert found == expected
    # The batch is all there, each request once: the one delivered twice and the one delivered
    # before included.
    assert len(found["decisions"]) == len({r.request_id for r in batch}) == 7
    assert {d["target"] for d in found["decisions"]} >= {Target.ADVISORS.value, Target.DIGITAL_DIVIDE.value}
    joined = next(d for d in found["decisions"] if d["_id"] == batch[3].request_id)
    assert joined["joined_to"] == batch[0].request_id
    assert sum(1 for kind, *_ in found["outbox"] if kind == TrainingRequestRouted.model_fields["type"].default) == 7


async def test_a_request_that_cannot_be_routed_holds_up_none_of_the_others(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase
) -> None:
    clock = FixedClock(TUESDAY_10)
    service = await unstaffed(mongo_client, mongo_db, clock)
    batch = [await service.personal.seal(request) for request in (phone_call(clock), received(clock), phone_call(clock))]
    sealed = batch[1].sealed
    assert sealed is not None
    # Personal data no key opens (tampered with on the way): unsealing it fails, alone as in the batch.
    poison = batch[1].model_copy(
        update={"sealed": sealed.model_copy(update={"ciphertext": base64.b64encode(b"x" * 64).decode()})}
    )
    batch[1] = poison

    failed = await service.route_batch(batch)

    assert [f.request.request_id for f in failed] == [poison.request_id]
    routed = {d["_id"] for d in await mongo_db["routing_decisions"].find().to_list(None)}
    assert routed == {batch[0].request_id, batch[2].request_id}
    # Routed once: the batch again routes nothing twice, and fails the same way for the poison.
    again = await service.route_batch(batch)
    assert [f.request.request_id for f in again] == [poison.request_id]
    assert await mongo_db["routing_outbox"].count_documents({}) == 2
