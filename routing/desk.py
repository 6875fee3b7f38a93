"""The desk's use cases: what the people who call back, and their supervisors, can do.

A worker sees their queue sorted by deadline and priority with a countdown, accepts or
declines offers, sets their availability and records what came of each call; supervisors
manage the digital-divide programme. Each action is one method of `Desk`, over `RoutingService`
and its stores, which publish the events it implies; `routing.api` serves them over HTTP.
A refusal is a `DeskError` carrying the HTTP status the advisor gets.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from opentelemetry import trace
from opentelemetry.trace import Tracer
from pydantic import BaseModel, Field

from routing.assignment import RequestStatus
from routing.case import CallFacts
from routing.service import DeskError, RoutingService
from routing.workers import Availability, Worker
from schemas import ContactOutcome, Event, Target
from services.clock import Clock
from services.tracing import continued

log = structlog.get_logger(__name__)

__all__ = ["BoardItem", "Desk", "DeskError", "QueueItem", "Urgency", "countdown", "urgency"]

Urgency = Literal["breached", "due", "on_time", "no_deadline"]
"""Where a request stands against its promise: past it, inside the callback-due warning, or neither."""


class QueueItem(BaseModel):
    request_id: str
    status: Literal["offered", "assigned"]
    offer_expires_in_s: int | None = Field(None, description="Seconds left to accept an offer.")
    deadline: datetime | None
    deadline_in_s: int | None = Field(None, description="Seconds left before the callback deadline (negative: late).")
    deadline_in: str | None = Field(None, description="The countdown for people, e.g. '5 h 12 min' or 'late by 20 min'.")
    priority: int = Field(description="Effective priority: the decision's score plus ageing.")
    score: int | None = Field(None, description="The score without ageing (the request rescored when the desk learns facts).")
    priority_parts: dict[str, int] = Field(default_factory=dict, description="How the score adds up, part by part.")
    fact_sources: dict[str, str] = Field(
        default_factory=dict, description="Where each fact behind the score came from (web_form, phone_ivr, email_text, desk)."
    )
    channel: str
    language: str
    target: str
    name: str | None
    phone: str | None
    email: str | None
    need: str
    requested_course: str | None
    attempts: int
    waiting_for_partner: bool = Field(False, description="The referring partner was asked; the callback clock is stopped.")
    partner: str | None = Field(None, description="The partner that handed the request over, who may be asked.")
    partner_asked_at: datetime | None = Field(None, description="When the partner was asked, while the desk waits.")
    unanswered: int = Field(0, description="Unanswered calls in a row, toward `max_attempts`.")
    max_attempts: int | None = Field(None, description="Unanswered calls in a row that close the request as unreachable.")
    callback_slot_start: datetime | None = Field(None, description="Start of the window the person chose to be called in.")
    callback_slot_end: datetime | None = Field(None, description="End of the window the person chose.")
    callback_slot_through: str | None = Field(None, description="Where they chose it: status_page or phone_ivr.")
    scheduled: bool = Field(False, description="The person's window has not opened yet: call them then, not before.")
    deadline_by_choice: bool = Field(
        False, description="The deadline is the end of the person's window, later than the promise: their choice, not a delay."
    )
    promised_deadline: datetime | None = Field(None, description="The promise, while the deadline is the person's window.")
    unverified_contact: dict[str, Any] | None = Field(
        None, description="Contact details the person gave on the status page, not yet confirmed: check them on the call."
    )
    corrected_at: datetime | None = Field(None, description="When the person last corrected their need, course or contact.")
    next_attempt_at: datetime | None = Field(None, description="When the next call is planned after an unanswered one.")


class BoardItem(BaseModel):
    """One open request of a team, as its supervisor sees it."""

    request_id: str
    status: Literal["queued", "offered", "assigned"]
    worker_id: str | None = Field(description="Who it is offered to or assigned to.")
    urgency: Urgency
    deadline: datetime | None
    deadline_in_s: int | None = Field(None, description="Seconds left before the callback deadline (negative: late).")
    deadline_in: str | None
    waiting_since: datetime
    priority: int = Field(description="Effective priority: the decision's score plus ageing.")
    dispatch_rank: int = Field(description="Place in the order the dispatcher offers the team's requests in, from 1.")
    priority_parts: dict[str, int] = Field(default_factory=dict, description="How the score adds up, part by part.")
    fact_sources: dict[str, str] = Field(
        default_factory=dict, description="Where each fact behind the score came from (web_form, phone_ivr, email_text, desk)."
    )
    programme: str | None = Field(None, description="admitted or waitlisted in the digital-divide programme, if routed there.")
    escalation: str
    escalated_to: str | None = Field(None, description="Who a breach was escalated to, when known.")
    score: int | None = Field(None, description="The score without ageing.")
    channel: str
    language: str
    name: str | None
    attempts: int


def urgency(*, now: datetime, deadline: datetime | None, due_at: datetime | None, sla: str | None) -> Urgency:
    if sla == "breached" or (deadline is not None and deadline <= now):
        return "breached"
    if deadline is None:
        return "no_deadline"
    return "due" if due_at is not None and due_at <= now else "on_time"


def countdown(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    text = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    return text if delta >= timedelta(0) else f"late by {text}"


def _aware(moment: datetime | None) -> datetime | None:
    # MongoDB gives back UTC without its zone.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class Desk:
    """The desk's actions over one `RoutingService`; every refusal is a `DeskError`."""

    def __init__(self, service: RoutingService, *, tracer: Tracer | None = None) -> None:
        self._service = service
        self._tracer = tracer or trace.get_tracer(__name__)

    @contextlib.asynccontextmanager
    async def _in_request_trace(self, action: str, request_id: str) -> AsyncIterator[None]:
        """A `desk.<action>` span in the trace of the request acted on (stored with its routing
        decision), linked to the staff's HTTP request: one trace follows a request across the desk."""
        decision = await self._service.decisions.find_one({"_id": request_id}, {"trace": 1})
        with continued(self._tracer, f"desk.{action}", (decision or {}).get("trace"), request_id=request_id):
            yield

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

    async def worker(self, worker_id: str) -> Worker | None:
        return await self._service.assignment.get_worker(worker_id)

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
        held = await service.assignment.queue_for(worker_id, now)
        # One query for the page, whatever its length.
        cases = {case["_id"]: case async for case in service.cases.find({"_id": {"$in": [r.request_id for r in held]}})}
        items = []
        for routed in held:
            case = cases.get(routed.request_id, {})
            waiting = case.get("partner_wait") == "waiting"
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
                    score=routed.priority,
                    priority_parts=case.get("priority_parts") or {},
                    fact_sources=case.get("fact_sources") or {},
                    channel=case.get("channel", "?"),
                    language=routed.language.value,
                    target=routed.team.value,
                    name=contact.get("name"),
                    phone=contact.get("phone"),
                    email=contact.get("email"),
                    need=case.get("need", ""),
                    requested_course=case.get("requested_course"),
                    attempts=case.get("attempts", 0),
                    waiting_for_partner=waiting,
                    partner=case.get("partner"),
                    partner_asked_at=_aware(case.get("partner_asked_at")) if waiting else None,
                    unanswered=case.get("unanswered", 0),
                    max_attempts=service.policy.max_attempts,
                    callback_slot_start=_aware(case.get("callback_slot_start")),
                    callback_slot_end=_aware(case.get("callback_slot_end")),
                    callback_slot_through=case.get("callback_slot_through"),
                    scheduled=routed.scheduled_after(now),
                    deadline_by_choice=bool(case.get("deadline_by_choice")),
                    promised_deadline=_aware(case.get("promised_deadline")),
                    unverified_contact=case.get("unverified_contact") or None,
                    corrected_at=_aware(case.get("corrected_at")),
                    next_attempt_at=_aware(case.get("next_attempt_at")),
                )
            )
        far = datetime.max.replace(tzinfo=now.tzinfo)
        return sorted(items, key=lambda i: (i.deadline or far, -i.priority, i.request_id))

    async def team_board(self, team: Target) -> list[BoardItem]:
        """The team's open requests (queued, offered, assigned) in the dispatcher's order: past their
        deadline first, then by effective priority (the score plus ageing), then by deadline."""
        service = self._service
        now = self.clock.now()
        routed = sorted(await service.assignment.open_for_team(team), key=service.queue_key(now))
        cases = {
            case["_id"]: case
            async for case in service.cases.find(
                {"_id": {"$in": [r.request_id for r in routed]}},
                {
                    "channel": 1,
                    "contact.name": 1,
                    "attempts": 1,
                    "sla": 1,
                    "due_at": 1,
                    "priority_parts": 1,
                    "fact_sources": 1,
                    "programme": 1,
                    "escalated_to": 1,
                },
            )
        }
        items = []
        for rank, request in enumerate(routed, start=1):
            case = cases.get(request.request_id, {})
            deadline = request.deadline
            items.append(
                BoardItem(
                    request_id=request.request_id,
                    status="queued"
                    if request.status == RequestStatus.QUEUED
                    else "offered"
                    if request.status == RequestStatus.RESERVED
                    else "assigned",
                    worker_id=request.held_by(),
                    urgency=urgency(now=now, deadline=deadline, due_at=_aware(case.get("due_at")), sla=case.get("sla")),
                    deadline=deadline,
                    deadline_in_s=int((deadline - now).total_seconds()) if deadline else None,
                    deadline_in=countdown(deadline - now) if deadline else None,
                    waiting_since=request.created_at,
                    priority=service.effective_priority(request, now),
                    dispatch_rank=rank,
                    priority_parts=case.get("priority_parts") or {},
                    fact_sources=case.get("fact_sources") or {},
                    programme=case.get("programme"),
                    escalation=request.escalation.value,
                    escalated_to=case.get("escalated_to"),
                    score=request.priority,
                    channel=case.get("channel", "?"),
                    language=request.language.value,
                    name=(case.get("contact") or {}).get("name"),
                    attempts=case.get("attempts", 0),
                )
            )
        return items

    async def reassign(self, request_id: str, *, to_worker: str | None, reason: str, actor: str) -> dict[str, Any]:
        """A supervisor takes a request back from whoever holds it (if anyone) and offers it to
        `to_worker`, or to the next eligible worker when none is named. The one who held it is not
        offered it again."""
        assignment = self._service.assignment
        request = await assignment.get_request(request_id)
        if request is None or request.status not in (RequestStatus.QUEUED, RequestStatus.RESERVED, RequestStatus.ASSIGNED):
            raise DeskError(f"request {request_id} is not open", status=404 if request is None else 409)
        if to_worker is not None:
            worker = await assignment.get_worker(to_worker)
            if worker is None:
                raise DeskError(f"worker {to_worker} is unknown", status=422)
            if request.language not in worker.languages:
                raise DeskError(f"{to_worker} does not speak {request.language.value}", status=409)
        held_by = request.held_by()
        if held_by is not None and held_by == to_worker:
            raise DeskError(f"request {request_id} is already with {to_worker}")
        why = f"{reason} (by {actor})"
        if held_by is not None and not await assignment.reassign(request_id, held_by, reason=why):
            raise DeskError(f"request {request_id} changed meanwhile: reload and try again")
        if to_worker is not None:
            offered = await assignment.offer_to(request_id, to_worker, reason=why)
            if offered is None:
                # Taken back all the same: it is queued and the dispatcher offers it to the next eligible worker.
                await assignment.offer_next(request_id)
                raise DeskError(f"{to_worker} cannot take it now (unavailable, full, or declined it before); it is queued")
        else:
            offered = await assignment.offer_next(request_id)
        log.info(
            "desk.reassigned", request_id=request_id, taken_from=held_by, offered_to=offered and offered.worker_id, actor=actor
        )
        return {"request_id": request_id, "taken_from": held_by, "offered_to": offered.worker_id if offered else None}

    # --- requests ---------------------------------------------------------------------------

    async def accept(self, request_id: str, worker_id: str) -> dict[str, str]:
        async with self._in_request_trace("accept", request_id):
            accepted = await self._service.assignment.accept(request_id, worker_id)
        if not accepted:
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
        session_id: str | None = None,
    ) -> list[Event]:
        """What came of a call; returns the events it publishes (see `RoutingService.record_outcome`)."""
        async with self._in_request_trace("record_outcome", request_id):
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
                session_id=session_id,
            )

    async def record_facts(self, request_id: str, *, facts: CallFacts, recorded_by: str, for_team: bool) -> dict[str, Any]:
        """A worker records what the person said of their situation: the worker holding the request,
        or (`for_team`) a supervisor. The request is scored again; the answer gives the new score."""
        routed = await self._service.assignment.get_request(request_id)
        if routed is None or (not for_team and routed.held_by() != recorded_by):
            # The same answer as an unknown id: a worker cannot probe which requests exist.
            raise DeskError(f"request {request_id} is unknown", status=404)
        recorded = await self._service.record_facts(request_id, facts=facts, recorded_by=recorded_by)
        case = await self._service.cases.find_one({"_id": request_id}, {"priority": 1, "priority_parts": 1, "fact_sources": 1})
        assert case is not None
        return {
            "request_id": request_id,
            "changed": recorded is not None,
            "priority": case["priority"],
            "priority_parts": case.get("priority_parts") or {},
            "fact_sources": case.get("fact_sources") or {},
        }

    async def confirm_contact(self, request_id: str, *, worker_id: str, for_team: bool) -> Event:
        """The worker holding the request, or (`for_team`) a supervisor, confirms the contact details
        the person gave on their status page, having checked them on the call."""
        routed = await self._service.assignment.get_request(request_id)
        if routed is None or (not for_team and routed.held_by() != worker_id):
            raise DeskError(f"request {request_id} is unknown", status=404)
        return await self._service.confirm_contact(request_id, worker_id=worker_id)

    async def ask_partner(self, request_id: str, *, worker_id: str, question: str) -> Event:
        """The worker holding a handed-over request asks the referring partner (`RoutingService.ask_partner`)."""
        return await self._service.ask_partner(request_id, worker_id=worker_id, question=question)

    async def record_partner_answer(self, request_id: str, *, answer: str, recorded_by: str, for_team: bool) -> Event:
        """The partner's answer, recorded by the worker holding the request or (`for_team`) a supervisor."""
        routed = await self._service.assignment.get_request(request_id)
        if routed is None or (not for_team and routed.held_by() != recorded_by):
            # The same answer as an unknown id: a worker cannot probe which requests exist.
            raise DeskError(f"request {request_id} is unknown", status=404)
        return await self._service.record_partner_answer(request_id, recorded_by=recorded_by, answer=answer)

    async def decisions(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The routing decisions of `request_ids` (the rule, its explanation, the priority's parts), in one query."""
        found = self._service.decisions.find({"_id": {"$in": request_ids}})
        return {decision["_id"]: decision async for decision in found}

    async def request(self, request_id: str) -> dict[str, Any]:
        """A request's decision, case (without contact details or need), status and history."""
        service = self._service
        decision = await service.decisions.find_one({"_id": request_id})
        case = await service.cases.find_one({"_id": request_id}, {"contact": 0, "need": 0, "unverified_contact": 0})
        if decision is None or case is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        routed = await service.assignment.get_request(request_id)
        return {
            "decision": decision,
            "case": case,
            "status": routed.status if routed else case.get("programme"),
            "waiting_for_partner": case.get("partner_wait") == "waiting",
            "assignee_id": routed.reservation.worker_id if routed and routed.reservation else None,
            "scheduled_from": routed.not_before if routed else None,
            "history": await service.assignment.history(request_id),
        }

    # --- the digital-divide programme and the catalogue ----------------------------------

    async def programme(self, year: int | None = None) -> dict[str, Any]:
        """Quota, admissions and waitlist of `year` (the current one by default)."""
        year = year or self.clock.now().year
        status = await self._service.programme.status(year)
        # The whole waitlist: it carries over from one year to the next.
        waitlist = await self._service.programme.waitlist()
        return {
            "year": year,
            "quota": status.quota,
            "admitted": status.admitted,
            "suspended": status.suspended,
            "open": status.open,
            "waitlist": [
                {"request_id": w["_id"], "priority": w["priority"], "since": w["since"], "asked_in": w["year"]} for w in waitlist
            ],
        }

    async def suspend_programme(self, year: int | None = None, *, changed_by: str = "desk") -> dict[str, Any]:
        """The suspension is the programme's, not a year's: it holds into the next year until resumed."""
        status = await self._service.programme.suspend(year or self.clock.now().year, changed_by=changed_by)
        return {"year": status.year, "suspended": True, "admitted": status.admitted}

    async def resume_programme(self, year: int | None = None, *, changed_by: str = "desk") -> dict[str, Any]:
        """Resuming admits from the waitlist up to `year`'s quota; the admitted join the team's queue."""
        status, admitted = await self._service.programme.resume(year or self.clock.now().year, changed_by=changed_by)
        await self._service.admit_waiting(admitted)
        return {"year": status.year, "suspended": False, "admitted_now": admitted, "admitted": status.admitted}

    async def courses(self) -> list[dict[str, Any]]:
        """The catalogue with the places taken in each course's sessions."""
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
