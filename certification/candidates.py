"""Candidates: people on their way to a certification, from enrolment to the waitlist.

An enrolment in a path that prepares for a certification makes the person a candidate; an exam
request puts them on the certification's waitlist, where seats are offered to them in order
(`certification.seats`); staff set priorities, and someone routed with high priority gets a
higher one. Every event is applied once (the unit of work records it), in the transaction of its
effect. Each change loads the candidate, decides (`certification.candidate.decide`, pure) and saves
it with a compare-and-set on its version; a lost race loads and decides again.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import structlog

from certification.candidate import (
    BoostPriority,
    Candidate,
    JoinWaitlist,
    Register,
    SetPriority,
    Trace,
    candidate_id,
    decide,
)
from certification.certifications import CertificationInfo, Certifications
from certification.errors import Unknown
from certification.repositories import CertificationUnitOfWork, UnitOfWorkFactory, retry_on_conflict
from certification.seating import CandidateStatus
from certification.seats import Seats
from certification.store import catalogued
from schemas import EnrolmentConfirmed, ExamSchedulingRequested, TrainingRequestRouted
from services.clock import Clock
from services.tracing import carrier

__all__ = ["Candidates"]

log = structlog.get_logger(__name__)


def _view(candidate: Candidate) -> dict[str, Any]:
    """A candidate as lists show it: without its history."""
    doc = candidate.as_document()
    del doc["history"]
    return doc


class Candidates:
    """Candidates and their waitlists; joining a waitlist offers free seats at once (through `Seats`)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        seats: Seats,
        *,
        certifications: Certifications,
        clock: Clock,
        routed_priority_from: int | None = None,
        routed_priority_boost: int = 1,
    ) -> None:
        self._uow = uow
        self._seats = seats
        self.certifications = certifications
        self.clock = clock
        self.routed_priority_from = routed_priority_from
        self.routed_priority_boost = routed_priority_boost

    # --- events --------------------------------------------------------------------------

    async def on_enrolment(self, event: EnrolmentConfirmed) -> bool:
        """An enrolment in a path that prepares for a certification makes the person a candidate."""
        cert = self.certifications.for_course(event.course_code)
        if cert is None:
            return False
        now = self.clock.now()

        async def attempt() -> bool:
            async with self._uow() as uow:
                existing, registered = await self._register(
                    uow,
                    Register(
                        person_id=event.person_id,
                        certification_code=cert.code,
                        at=now,
                        event_type=event.type,
                        event_id=str(event.id),
                        course=event.course_code.upper(),
                        enrolled_by=Trace(str(event.id), str(event.correlation_id)),
                    ),
                )
                self._stage(uow, existing, registered)
                return await uow.commit(once_for=event)

        applied = await retry_on_conflict(attempt)
        if applied:
            log.info("candidate.enrolled", person_id=event.person_id, certification=cert.code, course=event.course_code)
        return applied

    async def on_exam_requested(self, event: ExamSchedulingRequested) -> bool:
        """The candidate joins the certification's waitlist; free seats are offered at once."""
        cert = self.certifications.get(event.certification_code)
        if cert is None:
            log.warning("exam_request.unknown_certification", person_id=event.person_id, certification=event.certification_code)
            return False
        now = self.clock.now()
        reason = await self._seats.waiting_reason_for(cert, now)
        cid = candidate_id(event.person_id, cert.code)

        async def attempt() -> bool:
            async with self._uow() as uow:
                existing, registered = await self._register(
                    uow,
                    Register(
                        person_id=event.person_id,
                        certification_code=cert.code,
                        at=now,
                        event_type=event.type,
                        event_id=str(event.id),
                    ),
                )
                joined, facts = decide(
                    registered,
                    JoinWaitlist(
                        at=now,
                        reason=reason,
                        event_id=str(event.id),
                        correlation_id=str(event.correlation_id),
                        request_reason=event.reason.value,
                        trace_context=carrier() or None,
                    ),
                )
                if not facts:
                    log.info("exam_request.already_in_progress", candidate_id=cid)
                self._stage(uow, existing, joined)
                return await uow.commit(once_for=event)

        applied = await retry_on_conflict(attempt)
        if applied:
            log.info("candidate.waitlisted", candidate_id=cid, certification=cert.code, waiting_reason=reason.value)
            await self._seats.fill_for_certification(cert.code)
        return applied

    async def on_routed(self, event: TrainingRequestRouted) -> bool:
        """Someone routed with high priority gets a higher candidate priority (kept as a hint for later candidacies)."""
        if self.routed_priority_from is None or event.priority < self.routed_priority_from:
            return False
        boost = self.routed_priority_boost
        # A maximum is idempotent and commutes with staff raising it further: no processed-events record needed.
        await self._uow().hints.raise_to(event.person_id, boost)
        statuses = (CandidateStatus.PREPARING, CandidateStatus.WAITING)
        for listed in await self._uow().candidates.of_person(event.person_id, statuses):
            await retry_on_conflict(partial(self._change, listed.candidate_id, BoostPriority(boost)))
        return True

    async def _register(self, uow: CertificationUnitOfWork, command: Register) -> tuple[Candidate | None, Candidate]:
        """The candidate as stored (None if new) and as registered by `command`."""
        existing = await uow.candidates.get(candidate_id(command.person_id, command.certification_code))
        if existing is None:
            hint = await uow.hints.boost(command.person_id)
            command = replace(command, priority_hint=hint)
        registered, _ = decide(existing, command)
        return existing, registered

    @staticmethod
    def _stage(uow: CertificationUnitOfWork, existing: Candidate | None, candidate: Candidate) -> None:
        if existing is None:
            uow.candidates.add(candidate)
        else:
            uow.candidates.save(candidate)

    async def _change(self, cid: str, command: BoostPriority | SetPriority) -> Candidate:
        async with self._uow() as uow:
            candidate = await uow.candidates.get(cid)
            if candidate is None:
                raise Unknown(f"candidate {cid} is unknown")
            changed, facts = decide(candidate, command)
            if facts:
                uow.candidates.save(changed)
                await uow.commit()
            return changed

    # --- staff -----------------------------------------------------------------------------

    async def set_priority(self, cid: str, priority: int) -> dict[str, Any]:
        await retry_on_conflict(lambda: self._change(cid, SetPriority(priority, self.clock.now())))
        return await self.candidate(cid)

    async def candidate(self, cid: str) -> dict[str, Any]:
        found = await self._uow().candidates.get(cid)
        if found is None:
            raise Unknown(f"candidate {cid} is unknown")
        return found.as_document()

    async def list_candidates(
        self, *, certification: str | None = None, status: CandidateStatus | None = None, person_id: str | None = None
    ) -> list[dict[str, Any]]:
        listed = await self._uow().candidates.find(certification=certification, status=status, person_id=person_id)
        return [_view(c) for c in listed]

    async def waitlist(self, certification: str) -> list[dict[str, Any]]:
        """The certification's waitlist, first in line first."""
        cert: CertificationInfo = catalogued(self.certifications, certification)
        return [_view(c) for c in await self._uow().candidates.waiting([cert.code])]
