"""Candidates: people on their way to a certification, from enrolment to the waitlist.

An enrolment in a path that prepares for a certification makes the person a candidate; an exam
request puts them on the certification's waitlist, where seats are offered to them in order
(`certification.seats`); staff set priorities, and someone routed with high priority gets a
higher one. Every event is applied once (`ProcessedEvents`), in the transaction of its effect.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from certification.certifications import CertificationInfo, Certifications
from certification.seating import CandidateStatus, waitlist_order
from certification.seats import Seats
from certification.store import CertificationError, CertificationStore, candidate_id, catalogued, waiting_candidate
from schemas import EnrolmentConfirmed, Event, ExamSchedulingRequested, TrainingRequestRouted
from services.clock import Clock
from services.idempotency import ProcessedEvents

__all__ = ["Candidates"]

log = structlog.get_logger(__name__)


class Candidates:
    """Candidates and their waitlists; joining a waitlist offers free seats at once (through `Seats`)."""

    def __init__(
        self,
        store: CertificationStore,
        seats: Seats,
        *,
        certifications: Certifications,
        clock: Clock,
        processed: ProcessedEvents,
        routed_priority_from: int | None = None,
        routed_priority_boost: int = 1,
    ) -> None:
        self._store = store
        self._seats = seats
        self.certifications = certifications
        self.clock = clock
        self.processed = processed
        self.routed_priority_from = routed_priority_from
        self.routed_priority_boost = routed_priority_boost

    # --- events --------------------------------------------------------------------------

    async def on_enrolment(self, event: EnrolmentConfirmed) -> bool:
        """An enrolment in a path that prepares for a certification makes the person a candidate."""
        cert = self.certifications.for_course(event.course_code)
        if cert is None:
            return False
        now = self.clock.now()

        async def effect(session: AsyncClientSession) -> list[Event]:
            await self._ensure_candidate(session, event.person_id, cert, now, course=event.course_code.upper(), event=event)
            return []

        outcome = await self.processed.run_once(event, effect)
        if outcome.applied:
            log.info("candidate.enrolled", person_id=event.person_id, certification=cert.code, course=event.course_code)
        return outcome.applied

    async def on_exam_requested(self, event: ExamSchedulingRequested) -> bool:
        """The candidate joins the certification's waitlist; free seats are offered at once."""
        cert = self.certifications.get(event.certification_code)
        if cert is None:
            log.warning("exam_request.unknown_certification", person_id=event.person_id, certification=event.certification_code)
            return False
        now = self.clock.now()
        reason = await self._seats.waiting_reason_for(cert, now)
        cid = candidate_id(event.person_id, cert.code)

        async def effect(session: AsyncClientSession) -> list[Event]:
            await self._ensure_candidate(session, event.person_id, cert, now, course=None, event=event)
            candidate = await self._store.candidates.find_one({"_id": cid}, {"enrolled_by": 1}, session=session)
            joined = await self._store.candidates.update_one(
                {"_id": cid, "status": {"$in": [CandidateStatus.PREPARING.value, CandidateStatus.FAILED.value]}},
                {
                    "$set": {
                        "status": CandidateStatus.WAITING.value,
                        "waiting_since": now,
                        "waiting_reason": reason.value,
                        "offer_id": None,
                        "session_id": None,
                        "requested_by": {
                            "event_id": str(event.id),
                            "correlation_id": str(_correlation(event, candidate)),
                            "reason": event.reason.value,
                        },
                        "updated_at": now,
                    },
                    "$push": {"history": {"at": now, "what": "joined_waitlist", "reason": event.reason.value}},
                },
                session=session,
            )
            if not joined.modified_count:
                log.info("exam_request.already_in_progress", candidate_id=cid)
            return []

        outcome = await self.processed.run_once(event, effect)
        if outcome.applied:
            log.info("candidate.waitlisted", candidate_id=cid, certification=cert.code, waiting_reason=reason.value)
            await self._seats.fill_for_certification(cert.code)
        return outcome.applied

    async def on_routed(self, event: TrainingRequestRouted) -> bool:
        """Someone routed with high priority gets a higher candidate priority (kept as a hint for later candidacies)."""
        if self.routed_priority_from is None or event.priority < self.routed_priority_from:
            return False
        boost = self.routed_priority_boost
        # $max is idempotent and commutes with staff raising it further: no processed-events record needed.
        await self._store.hints.update_one({"_id": event.person_id}, {"$max": {"boost": boost}}, upsert=True)
        await self._store.candidates.update_many(
            {"person_id": event.person_id, "status": {"$in": [CandidateStatus.PREPARING.value, CandidateStatus.WAITING.value]}},
            {"$max": {"priority": boost}},
        )
        return True

    async def _ensure_candidate(
        self,
        session: AsyncClientSession,
        person_id: str,
        cert: CertificationInfo,
        now: datetime,
        *,
        course: str | None,
        event: Event,
    ) -> None:
        hint = await self._store.hints.find_one({"_id": person_id}, session=session)
        update: dict[str, Any] = {
            "$setOnInsert": {
                "person_id": person_id,
                "certification_code": cert.code,
                "status": CandidateStatus.PREPARING.value,
                "priority": int(hint["boost"]) if hint else 0,
                "waiting_since": None,
                "waiting_reason": None,
                "passed_over_sessions": [],
                "offer_id": None,
                "session_id": None,
                "created_at": now,
            },
            "$push": {"history": {"at": now, "what": event.type, "event_id": str(event.id)}},
        }
        if course:
            update["$addToSet"] = {"courses": course}
        if isinstance(event, EnrolmentConfirmed):
            update["$set"] = {"enrolled_by": {"event_id": str(event.id), "correlation_id": str(event.correlation_id)}}
        await self._store.candidates.update_one({"_id": candidate_id(person_id, cert.code)}, update, upsert=True, session=session)

    # --- staff -----------------------------------------------------------------------------

    async def set_priority(self, cid: str, priority: int) -> dict[str, Any]:
        now = self.clock.now()
        result = await self._store.candidates.update_one(
            {"_id": cid},
            {
                "$set": {"priority": priority, "updated_at": now},
                "$push": {"history": {"at": now, "what": "priority", "priority": priority}},
            },
        )
        if not result.matched_count:
            raise CertificationError(f"candidate {cid} is unknown", status=404)
        return await self.candidate(cid)

    async def candidate(self, cid: str) -> dict[str, Any]:
        doc = await self._store.candidates.find_one({"_id": cid})
        if doc is None:
            raise CertificationError(f"candidate {cid} is unknown", status=404)
        return doc

    async def list_candidates(
        self, *, certification: str | None = None, status: CandidateStatus | None = None, person_id: str | None = None
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if certification:
            query["certification_code"] = certification.upper()
        if status:
            query["status"] = status.value
        if person_id:
            query["person_id"] = person_id
        return (
            await self._store.candidates.find(query, {"history": 0})
            .sort([("certification_code", ASCENDING), ("_id", ASCENDING)])
            .to_list(None)
        )

    async def waitlist(self, certification: str) -> list[dict[str, Any]]:
        """The certification's waitlist, first in line first."""
        cert = catalogued(self.certifications, certification)
        docs = {
            doc["_id"]: doc
            async for doc in self._store.candidates.find(
                {"certification_code": cert.code, "status": CandidateStatus.WAITING.value}, {"history": 0}
            )
        }
        return [docs[c.candidate_id] for c in waitlist_order(waiting_candidate(doc) for doc in docs.values())]


def _correlation(event: ExamSchedulingRequested, candidate: Mapping[str, Any] | None) -> uuid.UUID:
    """The request an exam request belongs to: its own, unless it starts none (a root event from an
    e-learning platform that knows nothing of ours) and the candidate came through an enrolment, whose
    request it then continues - so the certificate can be traced back to the person's first call."""
    enrolled_by = (candidate or {}).get("enrolled_by")
    if event.correlation_id == event.id and enrolled_by:
        return uuid.UUID(enrolled_by["correlation_id"])
    return event.correlation_id
