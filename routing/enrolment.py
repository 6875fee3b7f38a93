"""Enrolling a person in a session of a course of the catalogue, or on its waitlist.

Sessions (`routing.sessions`) are stored in `routing_course_sessions`, each with a counter of the
places taken; a place is one conditional increment of that counter (`enrolled < capacity`), in the
same transaction as the enrolment record, so two replicas never overbook a session and a repeated
enrolment is a no-op. An enrolment (`routing_session_enrolments`, one per request, one active per
course and person) is `enrolled` in a session, `waitlisted` (for a session, or for the course in a
language), then `completed` or `abandoned`. Completing or abandoning frees the place and, in the same
transaction, enrols the person who waited longest, whose `EnrolmentConfirmed` goes out through the
outbox with the `TrainingCompleted` or `TrainingAbandoned` that freed it; completing a course that
prepares for a certification asks for the exam (`ExamSchedulingRequested`, `path_completed`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import structlog
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from routing.case import LOGIN_INSTRUCTIONS, SOURCE, DeskError
from routing.sessions import CourseSession, InvalidSession, SessionPlan, place_in_session, session_problems
from schemas import (
    EnrolmentConfirmed,
    Event,
    ExamRequestReason,
    ExamSchedulingRequested,
    Language,
    TrainingAbandoned,
    TrainingCompleted,
)
from schemas.events import AbandonReason
from services.calendar import BRUSSELS
from services.catalogue import Catalogue, Course
from services.clock import Clock, SystemClock
from services.mongo import MongoDatabase
from services.outbox import Outbox

log = structlog.get_logger(__name__)

SESSIONS_COLLECTION = "routing_course_sessions"
ENROLMENTS_COLLECTION = "routing_session_enrolments"
SESSIONS_SOURCE = f"{SOURCE}/sessions"

EnrolmentState = Literal["enrolled", "waitlisted", "completed", "abandoned"]


class EnrolmentError(DeskError):
    """Why an enrolment cannot be made, in words an advisor can act on."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message, status=status)


class UnknownCourse(EnrolmentError):
    pass


class LanguageNotOffered(EnrolmentError):
    pass


@dataclass(frozen=True, slots=True)
class Enrolment:
    """Where an enrolment stands: a place in `session`, or waitlisted (for `session` when named)."""

    course: Course
    person_id: str
    request_id: str
    session: CourseSession | None
    waitlisted: bool
    already_enrolled: bool


class CourseSeats:
    """The sessions of every course and the places in them."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: MongoDatabase,
        catalogue: Catalogue,
        *,
        clock: Clock | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._client = client
        self._sessions = db[SESSIONS_COLLECTION]
        self._enrolments = db[ENROLMENTS_COLLECTION]
        self.catalogue = catalogue
        self.clock = clock or SystemClock()
        self.outbox = outbox or Outbox(db, "routing_outbox")

    async def ensure_indexes(self) -> None:
        await self._sessions.create_index([("course_code", ASCENDING), ("starts_on", ASCENDING)], name="by_course")
        # One active enrolment (enrolled or waiting) per course and person; `active` is unset once it ends.
        await self._enrolments.create_index("active", name="one_active_per_course_and_person", unique=True, sparse=True)
        await self._enrolments.create_index(
            [("state", ASCENDING), ("course_code", ASCENDING), ("language", ASCENDING), ("since", ASCENDING)],
            name="waitlist_in_order",
        )

    def _today(self) -> date:
        return self.clock.now().astimezone(BRUSSELS).date()

    def course(self, course_code: str) -> Course:
        course = self.catalogue.course(course_code)
        if course is None:
            known = ", ".join(c.code for c in self.catalogue.courses)
            raise UnknownCourse(f"course {course_code!r} is not in the catalogue ({known})", status=404)
        return course

    # --- sessions, managed by staff ------------------------------------------------------------

    async def sessions_of(self, course_code: str, *, session: AsyncClientSession | None = None) -> list[CourseSession]:
        cursor = self._sessions.find({"course_code": course_code.upper()}, session=session).sort([("starts_on", 1), ("_id", 1)])
        return [CourseSession.from_document(doc) async for doc in cursor]

    async def session(self, session_id: str) -> CourseSession:
        doc = await self._sessions.find_one({"_id": session_id})
        if doc is None:
            raise DeskError(f"session {session_id!r} is unknown", status=404)
        return CourseSession.from_document(doc)

    async def waiting(self, course_code: str) -> dict[str, int]:
        """People waiting for the course, by the session waited for (`*`: the course in a language)."""
        counts: dict[str, int] = {}
        async for doc in self._enrolments.find({"state": "waitlisted", "course_code": course_code.upper()}):
            key = doc.get("session_id") or f"*:{doc['language']}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def plan_session(self, course_code: str, plan: SessionPlan, *, session_id: str | None = None) -> CourseSession:
        """A new session; the people waiting for the course in its language are enrolled in it."""
        course = self.catalogue.course(course_code)
        if problems := session_problems(plan, course, course_code=course_code):
            raise InvalidSession(problems)
        assert course is not None
        planned = CourseSession(
            **plan.model_dump(),
            session_id=session_id or f"{course.code}-{plan.starts_on:%Y%m%d}-{plan.language.value}-{uuid.uuid4().hex[:6]}",
            course_code=course.code,
        )
        try:
            await self._sessions.insert_one(planned.to_document())
        except DuplicateKeyError:
            raise DeskError(f"session {planned.session_id!r} exists already") from None
        admitted = await self.admit_waiting(planned.session_id)
        log.info("session.planned", session_id=planned.session_id, course=course.code, capacity=plan.capacity, admitted=admitted)
        return await self.session(planned.session_id)

    async def change_session(self, session_id: str, plan: SessionPlan) -> CourseSession:
        """New dates, capacity or place; never a capacity below the people enrolled (checked again in
        the update, so an enrolment racing the change cannot be left without a place)."""
        current = await self.session(session_id)
        if plan.language is not current.language and (
            current.enrolled or (await self.waiting(current.course_code)).get(session_id)
        ):
            raise InvalidSession([f"the language of session {session_id} cannot change: people are enrolled or waiting"])
        course = self.catalogue.course(current.course_code)
        if problems := session_problems(plan, course, course_code=current.course_code, enrolled=current.enrolled):
            raise InvalidSession(problems)
        changed = await self._sessions.update_one(
            {"_id": session_id, "enrolled": {"$lte": plan.capacity}}, {"$set": plan.model_dump(mode="json")}
        )
        if changed.matched_count == 0:
            raise DeskError(f"session {session_id} changed meanwhile: more people are enrolled than {plan.capacity}")
        admitted = await self.admit_waiting(session_id)
        log.info("session.changed", session_id=session_id, capacity=plan.capacity, admitted=admitted)
        return await self.session(session_id)

    async def cancel_session(self, session_id: str) -> None:
        """Remove a session nobody is enrolled in; whoever waited for it waits for the course instead."""
        await self.session(session_id)

        async def transaction(txn: AsyncClientSession) -> None:
            removed = await self._sessions.delete_one({"_id": session_id, "enrolled": 0}, session=txn)
            if removed.deleted_count == 0:
                raise DeskError(f"session {session_id} has people enrolled: record their completion or move them first")
            await self._enrolments.update_many(
                {"state": "waitlisted", "session_id": session_id}, {"$set": {"session_id": None}}, session=txn
            )

        async with self._client.start_session() as txn:
            await txn.with_transaction(transaction)
        log.info("session.cancelled", session_id=session_id)

    async def seats_taken(self, course_code: str) -> int:
        """Places taken in the course's sessions."""
        return sum(s.enrolled for s in await self.sessions_of(course_code))

    # --- enrolment ------------------------------------------------------------------------------

    async def enrol(
        self,
        *,
        course_code: str,
        person_id: str,
        request_id: str,
        language: Language,
        session_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Enrolment:
        """A place in the named session, else in the next one with room (`routing.sessions`); the
        waitlist when there is none. Repeated (same request, or the same person already enrolled or
        waiting for the course), it answers where the first one stands. `correlation_id` and
        `causation_id` are the request's conversation and the event that routed it: what comes of the
        enrolment later (a completion, a place freed for the person) follows them."""
        course = self.course(course_code)
        if language not in course.languages:
            offered = ", ".join(lang.value for lang in course.languages)
            raise LanguageNotOffered(f"{course.code} is not given in {language.value} (offered in: {offered})")
        active = f"{course.code}:{person_id}"
        today, now = self._today(), self.clock.now()

        async def transaction(txn: AsyncClientSession) -> tuple[dict[str, Any], bool]:
            # Checked before inserting: a duplicate-key error would abort the whole transaction.
            existing = await self._enrolments.find_one({"_id": request_id}, session=txn)
            existing = existing or await self._enrolments.find_one({"active": active}, session=txn)
            if existing is not None:
                return existing, True
            sessions = await self.sessions_of(course.code, session=txn)
            placement = place_in_session(sessions, language=language, today=today, wanted=session_id)
            doc: dict[str, Any] = {
                "_id": request_id,
                "person_id": person_id,
                "course_code": course.code,
                "language": language.value,
                "session_id": placement.session.session_id if placement.session else None,
                "state": "waitlisted",
                "active": active,
                "since": now,
                "correlation_id": correlation_id,
                "causation_id": causation_id,
            }
            if placement.session is not None and not placement.waitlisted and await self._take(placement.session, txn):
                doc |= {"state": "enrolled", "enrolled_at": now}
            await self._enrolments.insert_one(doc, session=txn)
            return doc, False

        try:
            async with self._client.start_session() as txn:
                doc, already = await txn.with_transaction(transaction)
        except DuplicateKeyError:
            # A concurrent enrolment of the same person in the course won the race.
            doc, already = await self._enrolments.find_one({"active": active}) or {}, True
            if not doc:
                raise
        session = await self.session(doc["session_id"]) if doc.get("session_id") else None
        return Enrolment(
            course, person_id, request_id, session, waitlisted=doc["state"] == "waitlisted", already_enrolled=already
        )

    async def _take(self, session: CourseSession, txn: AsyncClientSession) -> bool:
        """One place of `session` if one is left: the conditional increment that prevents overbooking."""
        taken = await self._sessions.update_one(
            {"_id": session.session_id, "$expr": {"$lt": ["$enrolled", "$capacity"]}}, {"$inc": {"enrolled": 1}}, session=txn
        )
        return taken.modified_count == 1

    # --- completion, drop-out, admission from the waitlist -------------------------------------

    async def finish(
        self,
        request_id: str,
        *,
        completed: bool,
        at: datetime | None = None,
        reason: AbandonReason | None = None,
    ) -> list[Event]:
        """Record that the person completed (or abandoned) their session: the place frees and the next
        person waiting is enrolled. Returns the events published (none when already recorded)."""
        state: EnrolmentState = "completed" if completed else "abandoned"
        at = at or self.clock.now()

        async def transaction(txn: AsyncClientSession) -> list[Event]:
            doc = await self._enrolments.find_one({"_id": request_id}, session=txn)
            if doc is None:
                raise DeskError(f"request {request_id} has no enrolment", status=404)
            if doc["state"] == state:
                return []
            if doc["state"] != "enrolled":
                raise DeskError(f"the enrolment of request {request_id} is {doc['state']}, not in a session")
            session = await self._sessions.find_one({"_id": doc["session_id"]}, session=txn)
            if completed and session is not None and at.astimezone(BRUSSELS).date() < date.fromisoformat(session["starts_on"]):
                raise DeskError(f"session {doc['session_id']} starts on {session['starts_on']}: it cannot be completed before")
            await self._enrolments.update_one(
                {"_id": request_id},
                {"$set": {"state": state, "ended_at": at, "reason": reason}, "$unset": {"active": ""}},
                session=txn,
            )
            await self._sessions.update_one(
                {"_id": doc["session_id"], "enrolled": {"$gt": 0}}, {"$inc": {"enrolled": -1}}, session=txn
            )
            common: dict[str, Any] = {
                "source": SESSIONS_SOURCE,
                "subject": request_id,
                "request_id": request_id,
                "person_id": doc["person_id"],
                "course_code": doc["course_code"],
                "session_id": doc["session_id"],
                "at": at,
                **_conversation(doc),
            }
            freed: Event = TrainingCompleted(**common) if completed else TrainingAbandoned(**common, reason=reason or "other")
            events: list[Event] = [freed]
            course = self.catalogue.course(doc["course_code"])
            if completed and course is not None and course.certification:
                events.append(
                    ExamSchedulingRequested.following(
                        freed,
                        source=SESSIONS_SOURCE,
                        request_id=request_id,
                        person_id=doc["person_id"],
                        certification_code=course.certification,
                        reason=ExamRequestReason.PATH_COMPLETED,
                    )
                )
            await self.outbox.add(events, session=txn)
            if session is not None:
                events += await self._admit(doc["session_id"], txn, cause=freed)
            return events

        async with self._client.start_session() as txn:
            events = await txn.with_transaction(transaction)
        if events:
            log.info("enrolment.finished", request_id=request_id, state=state, admitted=len(events) - 1)
        return events

    async def admit_waiting(self, session_id: str) -> int:
        """Enrol the people waiting, in order, in the places left in a session (after it was planned or
        grew); returns how many."""

        async def transaction(txn: AsyncClientSession) -> list[Event]:
            return await self._admit(session_id, txn, cause=None)

        async with self._client.start_session() as txn:
            admitted = await txn.with_transaction(transaction)
        return len(admitted)

    async def _admit(self, session_id: str, txn: AsyncClientSession, *, cause: Event | None) -> list[Event]:
        doc = await self._sessions.find_one({"_id": session_id}, session=txn)
        if doc is None:
            return []
        session = CourseSession.from_document(doc)
        if not session.admits_on(self._today()):
            return []
        course = self.catalogue.course(session.course_code)
        admitted: list[Event] = []
        while session.room > 0:
            waiting = await self._enrolments.find_one(
                {
                    "state": "waitlisted",
                    "course_code": session.course_code,
                    "language": session.language.value,
                    "session_id": {"$in": [session.session_id, None]},
                },
                sort=[("since", ASCENDING), ("_id", ASCENDING)],
                session=txn,
            )
            if waiting is None or not await self._take(session, txn):
                break
            now = self.clock.now()
            await self._enrolments.update_one(
                {"_id": waiting["_id"]},
                {"$set": {"state": "enrolled", "session_id": session.session_id, "enrolled_at": now}},
                session=txn,
            )
            session = session.model_copy(update={"enrolled": session.enrolled + 1})
            chain = _conversation(waiting) | ({"causation_id": cause.id} if cause is not None else {})
            admitted.append(
                EnrolmentConfirmed(
                    source=SESSIONS_SOURCE,
                    subject=waiting["_id"],
                    request_id=waiting["_id"],
                    person_id=waiting["person_id"],
                    course_code=session.course_code,
                    course_title=course.title_in(session.language) if course else session.course_code,
                    starts_on=session.starts_on,
                    language=session.language,
                    login_instructions=LOGIN_INSTRUCTIONS if session.mode == "online" else None,
                    session_id=session.session_id,
                    **chain,
                )
            )
        if admitted:
            await self.outbox.add(admitted, session=txn)
            log.info("enrolment.admitted_from_waitlist", session_id=session_id, admitted=len(admitted))
        return admitted


def _conversation(doc: dict[str, Any]) -> dict[str, Any]:
    """The request's conversation an enrolment belongs to and the event that routed the request, when
    the desk knew them: a completion or drop-out, recorded without an event in hand, follows them."""
    chain: dict[str, Any] = {}
    if doc.get("correlation_id"):
        chain["correlation_id"] = uuid.UUID(doc["correlation_id"])
    if doc.get("causation_id"):
        chain["causation_id"] = uuid.UUID(doc["causation_id"])
    return chain
