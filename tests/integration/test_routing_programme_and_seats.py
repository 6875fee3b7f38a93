"""The digital-divide quota and course sessions on the real mongod, including races between replicas."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from routing.case import DeskError
from routing.enrolment import CourseSeats, LanguageNotOffered, UnknownCourse
from routing.programme import DigitalDivideProgramme
from routing.sessions import InvalidSession, SessionPlan
from schemas import (
    EnrolmentConfirmed,
    Event,
    ExamRequestReason,
    ExamSchedulingRequested,
    Language,
    TrainingAbandoned,
    TrainingCompleted,
    codec,
)
from services.catalogue import load_catalogue
from services.clock import FixedClock
from tests.conftest import MONGODB_URI

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_quota_is_never_exceeded_by_racing_replicas(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any) -> None:
    other_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    try:
        replicas = [
            DigitalDivideProgramme(mongo_client, mongo_db, quota=5),
            DigitalDivideProgramme(other_client, other_client[mongo_db.name], quota=5),
        ]
        await replicas[0].ensure_indexes()
        results = await asyncio.gather(
            *(
                replicas[i % 2].admit_or_waitlist(
                    year=2026, request_id=f"r{i}", person_id=f"p{i}", priority=i % 7, since=T0 + timedelta(minutes=i)
                )
                for i in range(30)
            )
        )
    finally:
        await other_client.close()
    assert sum(results) == 5
    status = await replicas[0].status(2026)
    assert (status.admitted, status.waiting, status.open) == (5, 25, False)


async def test_suspension_waitlists_and_resumption_admits_in_priority_order(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    programme = DigitalDivideProgramme(mongo_client, mongo_db, quota=3)
    await programme.suspend(2020)
    for i, priority in enumerate([10, 50, 30, 50]):
        admitted = await programme.admit_or_waitlist(
            year=2020, request_id=f"r{i}", person_id=f"p{i}", priority=priority, since=T0 + timedelta(hours=i)
        )
        assert not admitted
    status, admitted_ids = await programme.resume(2020)
    # Highest priority first; between the two 50s, the one waiting longer.
    assert admitted_ids == ["r1", "r3", "r2"]
    assert status.admitted == 3 and status.waiting == 1
    assert await programme.release(2020, "p3") == ["r0"]


async def test_the_same_person_takes_one_place(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any) -> None:
    programme = DigitalDivideProgramme(mongo_client, mongo_db, quota=2)
    assert await programme.admit_or_waitlist(year=2026, request_id="a", person_id="p", priority=1, since=T0)
    assert await programme.admit_or_waitlist(year=2026, request_id="b", person_id="p", priority=1, since=T0)
    assert (await programme.status(2026)).admitted == 1


# --- course sessions ------------------------------------------------------------------------

TODAY = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
"""Tuesday 3 March 2026: sessions planned below start after it."""


def april(capacity: int, **fields: Any) -> SessionPlan:
    values: dict[str, Any] = {
        "starts_on": date(2026, 4, 1),
        "ends_on": date(2026, 5, 27),
        "capacity": capacity,
        "mode": "online",
        "centre_id": None,
        "language": Language.FR,
    }
    return SessionPlan(**(values | fields))


async def outbox_events(db: Any) -> list[Event]:
    return [codec.decode(doc["value"], list(doc["headers"].items())) async for doc in db["routing_outbox"].find().sort("seq", 1)]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(TODAY)


@pytest.fixture
async def seats(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any, clock: FixedClock) -> CourseSeats:
    seats = CourseSeats(mongo_client, mongo_db, load_catalogue(), clock=clock)
    await seats.ensure_indexes()
    return seats


async def test_two_replicas_never_overbook_a_session_and_the_rest_wait(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any, clock: FixedClock, seats: CourseSeats
) -> None:
    other_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    try:
        replicas = [seats, CourseSeats(other_client, other_client[mongo_db.name], load_catalogue(), clock=clock)]
        planned = await seats.plan_session("EXCEL", april(4), session_id="EXCEL-APR-FR")
        outcomes = await asyncio.gather(
            *(
                replicas[i % 2].enrol(course_code="excel", person_id=f"p{i}", request_id=f"r{i}", language=Language.FR)
                for i in range(12)
            )
        )
    finally:
        await other_client.close()
    enrolled = [o for o in outcomes if not o.waitlisted]
    assert len(enrolled) == 4 and all(o.session is not None and o.session.session_id == planned.session_id for o in enrolled)
    assert sum(o.waitlisted for o in outcomes) == 8
    assert (await seats.session("EXCEL-APR-FR")).enrolled == 4
    assert await seats.waiting("EXCEL") == {"*:fr": 8}
    # The same request again, or the same person by another request: where the first one stands.
    again = await seats.enrol(course_code="EXCEL", person_id=enrolled[0].person_id, request_id="again", language=Language.FR)
    assert again.already_enrolled and not again.waitlisted
    assert (await seats.session("EXCEL-APR-FR")).enrolled == 4


async def test_completion_frees_the_place_for_the_one_waiting_longest_and_asks_for_the_exam(
    mongo_db: Any, clock: FixedClock, seats: CourseSeats
) -> None:
    await seats.plan_session("EXCEL", april(1), session_id="EXCEL-APR-FR")
    first = await seats.enrol(course_code="EXCEL", person_id="p1", request_id="r1", language=Language.FR)
    for i in (2, 3):
        clock.advance(timedelta(minutes=1))
        waiting = await seats.enrol(course_code="EXCEL", person_id=f"p{i}", request_id=f"r{i}", language=Language.FR)
        assert waiting.waitlisted and waiting.session is None
    assert not first.waitlisted and first.session is not None and first.session.starts_on == date(2026, 4, 1)

    with pytest.raises(DeskError, match="cannot be completed before"):
        await seats.finish("r1", completed=True)
    clock.advance(timedelta(days=40))  # 12 April: the online session runs and still takes people
    published = await seats.finish("r1", completed=True)

    assert [type(e) for e in published] == [TrainingCompleted, ExamSchedulingRequested, EnrolmentConfirmed]
    completed, exam, admitted = published
    assert isinstance(completed, TrainingCompleted) and completed.session_id == "EXCEL-APR-FR"
    assert isinstance(exam, ExamSchedulingRequested)
    assert (exam.person_id, exam.certification_code, exam.reason) == ("p1", "MOS-EXCEL", ExamRequestReason.PATH_COMPLETED)
    assert isinstance(admitted, EnrolmentConfirmed)
    assert (admitted.request_id, admitted.session_id, admitted.starts_on) == ("r2", "EXCEL-APR-FR", date(2026, 4, 1))
    assert await outbox_events(mongo_db) == published
    assert (await seats.session("EXCEL-APR-FR")).enrolled == 1
    assert await seats.waiting("EXCEL") == {"*:fr": 1}
    # Recorded twice: nothing more happens.
    assert await seats.finish("r1", completed=True) == []
    with pytest.raises(DeskError, match="is completed, not in a session"):
        await seats.finish("r1", completed=False, reason="personal")


async def test_an_abandonment_frees_the_place_and_a_new_session_takes_the_course_waitlist(
    clock: FixedClock, seats: CourseSeats
) -> None:
    await seats.plan_session("WORD", april(1), session_id="WORD-APR-FR")
    await seats.enrol(course_code="WORD", person_id="p1", request_id="r1", language=Language.FR)
    waiting = await seats.enrol(
        course_code="WORD", person_id="p2", request_id="r2", language=Language.FR, session_id="WORD-APR-FR"
    )
    assert waiting.waitlisted and waiting.session is not None and waiting.session.session_id == "WORD-APR-FR"
    for i in (3, 4):
        await seats.enrol(course_code="WORD", person_id=f"p{i}", request_id=f"r{i}", language=Language.FR)

    published = await seats.finish("r1", completed=False, reason="found_work")
    assert [type(e) for e in published] == [TrainingAbandoned, EnrolmentConfirmed]
    abandoned, admitted = published
    assert isinstance(abandoned, TrainingAbandoned) and abandoned.reason == "found_work"
    assert isinstance(admitted, EnrolmentConfirmed) and admitted.request_id == "r2"  # no exam: not completed

    # A new session, planned by staff, takes those waiting for the course in its language.
    planned = await seats.plan_session("WORD", april(5, starts_on=date(2026, 5, 4)), session_id="WORD-MAY-FR")
    assert planned.enrolled == 2
    assert await seats.waiting("WORD") == {}


async def test_staff_change_a_session_but_never_below_the_people_enrolled_nor_cancel_an_occupied_one(
    seats: CourseSeats,
) -> None:
    await seats.plan_session("EXCEL", april(2), session_id="EXCEL-APR-FR")
    for i in range(3):
        await seats.enrol(course_code="EXCEL", person_id=f"p{i}", request_id=f"r{i}", language=Language.FR)
    with pytest.raises(InvalidSession, match="capacity 1 is below the 2 people enrolled"):
        await seats.change_session("EXCEL-APR-FR", april(1))
    grown = await seats.change_session("EXCEL-APR-FR", april(3, starts_on=date(2026, 4, 8)))
    assert (grown.capacity, grown.enrolled, grown.starts_on) == (3, 3, date(2026, 4, 8))  # the one waiting is in
    with pytest.raises(DeskError, match="has people enrolled"):
        await seats.cancel_session("EXCEL-APR-FR")
    with pytest.raises(InvalidSession, match="not given in en"):
        await seats.plan_session("OUTLOOK", april(3, language=Language.EN))
    with pytest.raises(DeskError, match="exists already"):
        await seats.plan_session("EXCEL", april(3), session_id="EXCEL-APR-FR")
    empty = await seats.plan_session("EXCEL", april(3, language=Language.NL))
    await seats.cancel_session(empty.session_id)
    assert [s.session_id for s in await seats.sessions_of("EXCEL")] == ["EXCEL-APR-FR"]
    assert await seats.seats_taken("EXCEL") == 3


async def test_enrolment_refuses_an_unknown_course_and_a_language_the_course_is_not_given_in(seats: CourseSeats) -> None:
    with pytest.raises(UnknownCourse, match="not in the catalogue"):
        await seats.enrol(course_code="COBOL", person_id="x", request_id="y", language=Language.FR)
    with pytest.raises(LanguageNotOffered, match="not given in en"):
        await seats.enrol(course_code="OUTLOOK", person_id="x", request_id="y", language=Language.EN)
