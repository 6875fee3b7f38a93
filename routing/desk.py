"""The desk's use cases: what the people who call back, and their supervisors, can do.

A worker sees their queue sorted by deadline and priority with a countdown, accepts or
declines offers, sets their availability and records what came of each call; supervisors
manage the digital-divide programme. Each action is one method of `Desk`, over `RoutingService`
and its stores, which publish the events it implies; `routing.api` serves them over HTTP.
A refusal is a `DeskError` carrying the HTTP status the advisor gets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from routing.assignment import RequestStatus
from routing.case import CallFacts
from routing.service import DeskError, RoutingService
from routing.workers import Availability
from schemas import ContactOutcome, Event, Target
from services.clock import Clock

__all__ = ["Desk", "DeskError", "QueueItem", "countdown"]


class QueueItem(BaseModel):
    request_id: str
    status: Literal["offered", "assigned"]
    offer_expires_in_s: int | None = Field(None, description="Seconds left to accept an offer.")
    deadline: datetime | None
    deadline_in_s: int | None = Field(None, description="Seconds left before the callback deadline (negative: late).")
    deadline_in: str | None = Field(None, description="The countdown for people, e.g. '5 h 12 min' or 'late by 20 min'.")
    priority: int = Field(description="Effective priority: the decision's score plus ageing.")
    channel: str
    language: str
    target: str
    name: str | None
    phone: str | None
    email: str | None
    need: str
    requested_course: str | None
    attempts: int


def countdown(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    text = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    return text if delta >= timedelta(0) else f"late by {text}"


class Desk:
    """The desk's actions over one `RoutingService`; every refusal is a `DeskError`."""

    def __init__(self, service: RoutingService) -> None:
        self._service = service

    @property
    def clock(self) -> Clock:
        return self._service.clock

    # --- workers --------------------------------------------------------------------------

    async def workers(self, team: Target | None = None) -> list[dict[str, Any]]:
        return [
            {
                "worker_id": w.worker_id,
                "display_name": w.display_name,
                "team": w.team,
                "availability": w.availability,
                "open_count": w.open_count,
                "capacity": w.capacity,
                "supervisor": w.supervisor,
            }
            for w in await self._service.assignment.list_workers(team)
        ]

    async def set_availability(self, worker_id: str, availability: Availability) -> dict[str, str]:
        """A worker who becomes available is offered queued requests at once."""
        if not await self._service.assignment.set_availability(worker_id, availability):
            raise DeskError(f"worker {worker_id} is unknown", status=404)
        if availability is Availability.AVAILABLE:
            await self._service.dispatch_once()
        return {"worker_id": worker_id, "availability": availability.value}

    async def queue(self, worker_id: str) -> list[QueueItem]:
        """The worker's offers and assigned requests, earliest deadline first, then highest priority."""
        service = self._service
        if await service.assignment.get_worker(worker_id) is None:
            raise DeskError(f"worker {worker_id} is unknown", status=404)
        now = self.clock.now()
        items = []
        for routed in await service.assignment.queue_for(worker_id, now):
            case = await service.cases.find_one({"_id": routed.request_id}) or {}
            contact = case.get("contact") or {}
            deadline = routed.deadline
            offered = routed.status == RequestStatus.RESERVED
            items.append(
                QueueItem(
                    request_id=routed.request_id,
                    status="offered" if offered else "assigned",
                    offer_expires_in_s=int((routed.reservation.expires_at - now).total_seconds())
                    if offered and routed.reservation
                    else None,
                    deadline=deadline,
                    deadline_in_s=int((deadline - now).total_seconds()) if deadline else None,
                    deadline_in=countdown(deadline - now) if deadline else None,
                    priority=service.effective_priority(routed, now),
                    channel=case.get("channel", "?"),
                    language=routed.language.value,
                    target=routed.team.value,
                    name=contact.get("name"),
                    phone=contact.get("phone"),
                    email=contact.get("email"),
                    need=case.get("need", ""),
                    requested_course=case.get("requested_course"),
                    attempts=case.get("attempts", 0),
                )
            )
        far = datetime.max.replace(tzinfo=now.tzinfo)
        return sorted(items, key=lambda i: (i.deadline or far, -i.priority, i.request_id))

    # --- requests ---------------------------------------------------------------------------

    async def accept(self, request_id: str, worker_id: str) -> dict[str, str]:
        if not await self._service.assignment.accept(request_id, worker_id):
            raise DeskError(f"request {request_id} is not offered to {worker_id} (or the offer expired)")
        return {"request_id": request_id, "status": "assigned", "worker_id": worker_id}

    async def decline(self, request_id: str, worker_id: str) -> dict[str, Any]:
        """The declined request is offered to the next eligible worker at once."""
        if not await self._service.assignment.decline(request_id, worker_id):
            raise DeskError(f"request {request_id} is not offered to {worker_id}")
        reservation = await self._service.assignment.offer_next(request_id)
        return {"request_id": request_id, "status": "declined", "offered_to": reservation.worker_id if reservation else None}

    async def record_outcome(
        self,
        request_id: str,
        *,
        worker_id: str,
        outcome: ContactOutcome,
        notes: str | None = None,
        redirect_to: Target | None = None,
        course_code: str | None = None,
        certification_code: str | None = None,
        retry_at: datetime | None = None,
        facts: CallFacts | None = None,
    ) -> list[Event]:
        """What came of a call; returns the events it publishes (see `RoutingService.record_outcome`)."""
        return await self._service.record_outcome(
            request_id,
            worker_id=worker_id,
            outcome=outcome,
            notes=notes,
            redirect_to=redirect_to,
            course_code=course_code,
            certification_code=certification_code,
            retry_at=retry_at,
            facts=facts,
        )

    async def request(self, request_id: str) -> dict[str, Any]:
        """A request's decision, case (without contact details or need), status and history."""
        service = self._service
        decision = await service.decisions.find_one({"_id": request_id})
        case = await service.cases.find_one({"_id": request_id}, {"contact": 0, "need": 0})
        if decision is None or case is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        routed = await service.assignment.get_request(request_id)
        return {
            "decision": decision,
            "case": case,
            "status": routed.status if routed else case.get("programme"),
            "assignee_id": routed.reservation.worker_id if routed and routed.reservation else None,
            "history": await service.assignment.history(request_id),
        }

    # --- the digital-divide programme and the catalogue ----------------------------------

    async def programme(self, year: int | None = None) -> dict[str, Any]:
        """Quota, admissions and waitlist of `year` (the current one by default)."""
        year = year or self.clock.now().year
        status = await self._service.programme.status(year)
        waitlist = await self._service.programme.waitlist(year)
        return {
            "year": year,
            "quota": status.quota,
            "admitted": status.admitted,
            "suspended": status.suspended,
            "open": status.open,
            "waitlist": [{"request_id": w["_id"], "priority": w["priority"], "since": w["since"]} for w in waitlist],
        }

    async def suspend_programme(self, year: int | None = None) -> dict[str, Any]:
        status = await self._service.programme.suspend(year or self.clock.now().year)
        return {"year": status.year, "suspended": True, "admitted": status.admitted}

    async def resume_programme(self, year: int | None = None) -> dict[str, Any]:
        """Resuming admits from the waitlist up to the quota; the admitted join the team's queue."""
        status, admitted = await self._service.programme.resume(year or self.clock.now().year)
        await self._service.admit_waiting(admitted)
        return {"year": status.year, "suspended": False, "admitted_now": admitted, "admitted": status.admitted}

    async def courses(self) -> list[dict[str, Any]]:
        """The catalogue with the seats taken in each course."""
        return [
            {
                "code": c.code,
                "title": c.title_in(c.languages[0]),
                "languages": list(c.languages),
                "capacity": c.capacity,
                "taken": await self._service.seats.seats_taken(c.code),
                "certification": c.certification,
            }
            for c in self._service.policy.catalogue.courses
        ]
