"""The digital-divide quota and course capacities on the real mongod, including races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from routing.enrolment import CourseFull, CourseSeats, LanguageNotOffered, UnknownCourse
from routing.programme import DigitalDivideProgramme
from schemas import Language
from services.catalogue import Catalogue, load_catalogue
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


async def test_a_full_course_fails_clearly_and_concurrent_enrolments_respect_capacity(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    base = load_catalogue()
    small = Catalogue(
        version=base.version,
        courses=tuple(c.model_copy(update={"capacity": 4}) if c.code == "EXCEL" else c for c in base.courses),
        certifications=base.certifications,
    )
    seats = CourseSeats(mongo_client, mongo_db, small)
    outcomes = await asyncio.gather(
        *(seats.enrol(course_code="excel", person_id=f"p{i}", request_id=f"r{i}", language=Language.FR) for i in range(10)),
        return_exceptions=True,
    )
    assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 4
    full = [o for o in outcomes if isinstance(o, CourseFull)]
    assert len(full) == 6 and "EXCEL is full" in str(full[0])
    assert await seats.seats_taken("EXCEL") == 4
    enrolled = next(i for i, o in enumerate(outcomes) if not isinstance(o, BaseException))
    again = await seats.enrol(course_code="EXCEL", person_id=f"p{enrolled}", request_id="again", language=Language.FR)
    assert again.already_enrolled
    assert await seats.seats_taken("EXCEL") == 4

    with pytest.raises(UnknownCourse, match="not in the catalogue"):
        await seats.enrol(course_code="COBOL", person_id="x", request_id="y", language=Language.FR)
    with pytest.raises(LanguageNotOffered, match="not given in en"):
        await seats.enrol(course_code="OUTLOOK", person_id="x", request_id="y", language=Language.EN)
