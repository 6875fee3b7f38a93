"""Enrolling a person in a course of the catalogue, within the course's capacity.

A seat is one conditional increment on the course's counter, in the same transaction as the
enrolment record (unique per course and person), so a full course fails clearly and a repeated
enrolment is a no-op rather than a second seat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from schemas import Language
from services.catalogue import Catalogue, Course
from services.mongo import MongoDatabase


class EnrolmentError(Exception):
    """Why an enrolment cannot be made, in words an advisor can act on."""


class UnknownCourse(EnrolmentError):
    pass


class CourseFull(EnrolmentError):
    pass


class LanguageNotOffered(EnrolmentError):
    pass


@dataclass(frozen=True, slots=True)
class Enrolment:
    course: Course
    person_id: str
    request_id: str
    already_enrolled: bool


class CourseSeats:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, catalogue: Catalogue) -> None:
        self._client = client
        self._seats = db["routing_course_seats"]
        self._enrolments = db["routing_enrolments"]
        self.catalogue = catalogue

    async def enrol(self, *, course_code: str, person_id: str, request_id: str, language: Language) -> Enrolment:
        course = self.catalogue.course(course_code)
        if course is None:
            known = ", ".join(c.code for c in self.catalogue.courses)
            raise UnknownCourse(f"course {course_code!r} is not in the catalogue ({known})")
        if language not in course.languages:
            offered = ", ".join(lang.value for lang in course.languages)
            raise LanguageNotOffered(f"{course.code} is not given in {language.value} (offered in: {offered})")

        async def transaction(session: AsyncClientSession) -> bool:
            # Checked before inserting: a duplicate-key error would abort the whole transaction.
            if await self._enrolments.find_one({"_id": f"{course.code}:{person_id}"}, session=session):
                return True
            await self._enrolments.insert_one(
                {
                    "_id": f"{course.code}:{person_id}",
                    "course_code": course.code,
                    "person_id": person_id,
                    "request_id": request_id,
                },
                session=session,
            )
            await self._seats.update_one({"_id": course.code}, {"$setOnInsert": {"enrolled": 0}}, upsert=True, session=session)
            taken = await self._seats.update_one(
                {"_id": course.code, "enrolled": {"$lt": course.capacity}}, {"$inc": {"enrolled": 1}}, session=session
            )
            if taken.modified_count == 0:
                raise CourseFull(f"{course.code} is full ({course.capacity} seats taken)")
            return False

        try:
            async with self._client.start_session() as session:
                already = await session.with_transaction(transaction)
        except DuplicateKeyError:
            already = True  # a concurrent enrolment of the same person won the race
        return Enrolment(course, person_id, request_id, already_enrolled=already)

    async def seats_taken(self, course_code: str) -> int:
        doc = await self._seats.find_one({"_id": course_code.upper()})
        return int(doc["enrolled"]) if doc else 0
