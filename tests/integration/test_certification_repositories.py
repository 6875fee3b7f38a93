"""The MongoDB adapters of the certification repositories on the real mongod: the contract the fakes
keep too, documents stored before versions existed, and two replicas racing to accept one offer or to
take the last seat (one wins, never over capacity)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from certification.candidate import SetPriority, decide
from certification.mongo_repositories import MongoUnitOfWork
from certification.seating import CentreState, OfferStatus
from certification.service import CertificationService
from certification.store import CertificationStore
from schemas import ExamRequestReason, ExamSchedulingRequested
from services.clock import FixedClock
from services.idempotency import ProcessedEvents
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.timers import TimerStore
from tests.certification_contract import T0, Backend, UnitOfWorkContract, new_candidate
from tests.conftest import MONGODB_URI
from tests.integration.test_certification_service import build

pytestmark = pytest.mark.integration

EXAM_DAY = datetime(2020, 6, 2, 7, 0, tzinfo=UTC)


async def unit_of_work_factory(client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase) -> Callable[[], MongoUnitOfWork]:
    store = CertificationStore(client, db)
    outbox = Outbox(db, "certification_outbox")
    timers = TimerStore(client, db, clock=FixedClock(T0), owner="test", collection="certification_timers")
    processed = ProcessedEvents(client, db, consumer="certification")
    await asyncio.gather(store.ensure_indexes(), outbox.ensure_indexes(), timers.ensure_indexes(), processed.ensure_indexes())

    def uow() -> MongoUnitOfWork:
        return MongoUnitOfWork(store, outbox=outbox, timers=timers, processed=processed)

    return uow


class TestMongoUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    async def backend(self, mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase) -> Backend:
        uow = await unit_of_work_factory(mongo_client, mongo_db)

        async def published() -> list[str]:
            return [doc["_id"] async for doc in mongo_db["certification_outbox"].find().sort("seq", 1)]

        async def pending_timers() -> set[tuple[str, str]]:
            return {(doc["kind"], doc["key"]) async for doc in mongo_db["certification_timers"].find({"state": "pending"})}

        return Backend(uow, published, pending_timers)


async def test_a_candidate_stored_before_versions_loads_as_version_0_and_saves_as_version_1(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase
) -> None:
    uow_factory = await unit_of_work_factory(mongo_client, mongo_db)
    old = {k: v for k, v in new_candidate("p1").as_document().items() if k != "version"}
    await mongo_db["certification_candidates"].insert_one({**old, "note_from_a_newer_replica": "kept"})
    loaded = await uow_factory().candidates.get("MOS-EXCEL:p1")
    assert loaded is not None and loaded.version == 0
    async with uow_factory() as uow:
        uow.candidates.save(decide(loaded, SetPriority(2, T0))[0])
        await uow.commit()
    doc = await mongo_db["certification_candidates"].find_one({"_id": "MOS-EXCEL:p1"})
    assert doc is not None and (doc["version"], doc["priority"], doc["note_from_a_newer_replica"]) == (1, 2, "kept")


@pytest.fixture
async def second_client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    yield client
    await client.close()


async def replicas(
    mongo_client: AsyncMongoClient[dict[str, Any]],
    second_client: AsyncMongoClient[dict[str, Any]],
    mongo_db: MongoDatabase,
    clock: FixedClock,
) -> tuple[CertificationService, CertificationService]:
    return (
        await build(mongo_client, mongo_db, clock, owner="replica-a"),
        await build(second_client, second_client[mongo_db.name], clock, owner="replica-b"),
    )


async def test_two_replicas_accepting_one_offer_at_once_book_one_seat_and_publish_once(
    mongo_client: AsyncMongoClient[dict[str, Any]],
    second_client: AsyncMongoClient[dict[str, Any]],
    mongo_db: MongoDatabase,
) -> None:
    clock = FixedClock(T0)
    a, b = await replicas(mongo_client, second_client, mongo_db, clock)
    await a.candidates.on_exam_requested(
        ExamSchedulingRequested(
            source="/tests", subject="p1", person_id="p1", certification_code="MOS-EXCEL", reason=ExamRequestReason.PATH_COMPLETED
        )
    )
    await a.seats.put_centre("ctr-1", state=CentreState.CLOSED, name="Centre 1", address="Rue Exemple 1, 1000 Bruxelles")
    await a.seats.add_session(session_id="ses-1", centre_id="ctr-1", certifications=["MOS-EXCEL"], starts_at=EXAM_DAY, seats=1)
    [offer] = (await a.seats.put_centre("ctr-1", state=CentreState.OPEN))[1]

    answers = await asyncio.gather(*(r.seats.accept(offer.offer_id) for r in (a, b, a, b)))

    assert all(accepted.status is OfferStatus.ACCEPTED for accepted, _ in answers)
    assert sum(event is not None for _, event in answers) == 1
    session = await a.seats.session("ses-1")
    assert (session.held, session.booked) == (0, 1)
    # The offer, its acceptance and the booking: each once, however many replicas answered.
    assert await mongo_db["certification_outbox"].count_documents({}) == 3


async def test_two_replicas_racing_for_the_last_seat_offer_it_once(
    mongo_client: AsyncMongoClient[dict[str, Any]],
    second_client: AsyncMongoClient[dict[str, Any]],
    mongo_db: MongoDatabase,
) -> None:
    clock = FixedClock(T0)
    a, b = await replicas(mongo_client, second_client, mongo_db, clock)
    for person in ("p1", "p2", "p3"):
        await a.candidates.on_exam_requested(
            ExamSchedulingRequested(
                source="/tests",
                subject=person,
                person_id=person,
                certification_code="MOS-EXCEL",
                reason=ExamRequestReason.PATH_COMPLETED,
            )
        )
        clock.advance(timedelta(minutes=1))
    await a.seats.put_centre("ctr-1", state=CentreState.OPEN, name="Centre 1", address="Rue Exemple 1, 1000 Bruxelles")
    # Added through the store: no fill yet, so both replicas find the seat free.
    await a.store.sessions.insert_one(
        {
            "_id": "ses-1",
            "centre_id": "ctr-1",
            "certifications": ["MOS-EXCEL"],
            "starts_at": EXAM_DAY,
            "seats": 1,
            "held": 0,
            "booked": 0,
        }
    )

    made = await asyncio.gather(*(r.seats.fill_session("ses-1") for r in (a, b, a, b)))

    assert [o.person_id for batch in made for o in batch] == ["p1"]
    session = await a.seats.session("ses-1")
    assert (session.held, session.booked, session.seats) == (1, 0, 1)
    assert await mongo_db["certification_offers"].count_documents({}) == 1
