"""The desk: the HTTP API (and a small HTML page over it) for the people who call back.

A worker sees their queue sorted by deadline and priority with a countdown, accepts or
declines offers, sets their availability and records what came of each call; supervisors
manage the digital-divide programme. Every action goes through `RoutingService` or the
stores, which publish the events it implies.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field

from routing.assignment import RequestStatus
from routing.service import DeskError, RoutingService
from routing.workers import Availability
from schemas import ContactOutcome, Target
from services.clock import SimulatedClock


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


class AvailabilityChange(BaseModel):
    availability: Availability


class WorkerAction(BaseModel):
    worker_id: str = Field(min_length=1)


class Outcome(BaseModel):
    worker_id: str = Field(min_length=1)
    outcome: ContactOutcome
    notes: str | None = Field(None, max_length=2000)
    redirect_to: Target | None = Field(None, description="With outcome `redirected`.")
    course_code: str | None = Field(None, description="With outcome `enrolled`: a catalogue course code.")
    certification_code: str | None = Field(None, description="With outcome `exam_wanted`.")
    retry_at: AwareDatetime | None = Field(None, description="With outcome `no_answer`: when to call again.")


def countdown(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    text = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    return text if delta >= timedelta(0) else f"late by {text}"


def desk_router(service: RoutingService) -> APIRouter:
    router = APIRouter(prefix="/desk", tags=["desk"])
    clock = service.clock

    def refused(error: DeskError) -> HTTPException:
        return HTTPException(status_code=error.status, detail=str(error))

    @router.get("/workers", summary="Workers and their load")
    async def workers(team: Target | None = None) -> list[dict[str, Any]]:
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
            for w in await service.assignment.list_workers(team)
        ]

    @router.put("/workers/{worker_id}/availability", summary="Set a worker's availability")
    async def set_availability(worker_id: str, change: AvailabilityChange) -> dict[str, str]:
        if not await service.assignment.set_availability(worker_id, change.availability):
            raise HTTPException(404, f"worker {worker_id} is unknown")
        if change.availability is Availability.AVAILABLE:
            await service.dispatch_once()
        return {"worker_id": worker_id, "availability": change.availability.value}

    @router.get("/workers/{worker_id}/queue", summary="A worker's queue: offers and assigned requests")
    async def queue(worker_id: str) -> list[QueueItem]:
        if await service.assignment.get_worker(worker_id) is None:
            raise HTTPException(404, f"worker {worker_id} is unknown")
        now = clock.now()
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

    @router.post("/requests/{request_id}/accept", summary="Accept an offered request")
    async def accept(request_id: str, action: WorkerAction) -> dict[str, str]:
        if not await service.assignment.accept(request_id, action.worker_id):
            raise HTTPException(409, f"request {request_id} is not offered to {action.worker_id} (or the offer expired)")
        return {"request_id": request_id, "status": "assigned", "worker_id": action.worker_id}

    @router.post("/requests/{request_id}/decline", summary="Decline an offer: it goes to the next eligible worker")
    async def decline(request_id: str, action: WorkerAction) -> dict[str, Any]:
        if not await service.assignment.decline(request_id, action.worker_id):
            raise HTTPException(409, f"request {request_id} is not offered to {action.worker_id}")
        reservation = await service.assignment.offer_next(request_id)
        return {"request_id": request_id, "status": "declined", "offered_to": reservation.worker_id if reservation else None}

    @router.post("/requests/{request_id}/outcome", summary="Record what came of a call")
    async def outcome(request_id: str, body: Outcome) -> dict[str, Any]:
        try:
            events = await service.record_outcome(
                request_id,
                worker_id=body.worker_id,
                outcome=body.outcome,
                notes=body.notes,
                redirect_to=body.redirect_to,
                course_code=body.course_code,
                certification_code=body.certification_code,
                retry_at=body.retry_at,
            )
        except DeskError as error:
            raise refused(error) from error
        return {"request_id": request_id, "published": [e.type for e in events]}

    @router.get("/requests/{request_id}", summary="A request: decision, state and history")
    async def request_view(request_id: str) -> dict[str, Any]:
        decision = await service.decisions.find_one({"_id": request_id})
        case = await service.cases.find_one({"_id": request_id}, {"contact": 0, "need": 0})
        if decision is None or case is None:
            raise HTTPException(404, f"request {request_id} is unknown")
        routed = await service.assignment.get_request(request_id)
        return {
            "decision": decision,
            "case": case,
            "status": routed.status if routed else case.get("programme"),
            "assignee_id": routed.reservation.worker_id if routed and routed.reservation else None,
            "history": await service.assignment.history(request_id),
        }

    @router.get("/programmes/digital-divide", summary="Quota, admissions and waitlist of a year")
    async def programme(year: Annotated[int | None, Query()] = None) -> dict[str, Any]:
        year = year or clock.now().year
        status = await service.programme.status(year)
        waitlist = await service.programme.waitlist(year)
        return {
            "year": year,
            "quota": status.quota,
            "admitted": status.admitted,
            "suspended": status.suspended,
            "open": status.open,
            "waitlist": [{"request_id": w["_id"], "priority": w["priority"], "since": w["since"]} for w in waitlist],
        }

    @router.post("/programmes/digital-divide/suspend", summary="Suspend the programme (new requests wait)")
    async def suspend(year: Annotated[int | None, Body(embed=True)] = None) -> dict[str, Any]:
        status = await service.programme.suspend(year or clock.now().year)
        return {"year": status.year, "suspended": True, "admitted": status.admitted}

    @router.post("/programmes/digital-divide/resume", summary="Resume the programme and admit from the waitlist")
    async def resume(year: Annotated[int | None, Body(embed=True)] = None) -> dict[str, Any]:
        status, admitted = await service.programme.resume(year or clock.now().year)
        await service.admit_waiting(admitted)
        return {"year": status.year, "suspended": False, "admitted_now": admitted, "admitted": status.admitted}

    @router.get("/courses", summary="The catalogue with seats taken")
    async def courses() -> list[dict[str, Any]]:
        return [
            {
                "code": c.code,
                "title": c.title_in(c.languages[0]),
                "languages": list(c.languages),
                "capacity": c.capacity,
                "taken": await service.seats.seats_taken(c.code),
                "certification": c.certification,
            }
            for c in service.policy.catalogue.courses
        ]

    @router.get("/ui/{worker_id}", response_class=HTMLResponse, include_in_schema=False)
    async def ui(worker_id: str) -> HTMLResponse:
        items = await queue(worker_id)
        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                *(html.escape(str(v or "")) for v in (i.request_id[:8], i.status, i.deadline_in, i.priority, i.name, i.phone, i.need[:80]))
            )
            for i in items
        )
        page = f"""<!doctype html><html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta http-equiv="refresh" content="30"><title>File d'appels – {html.escape(worker_id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1rem}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ccc;padding:.4rem;text-align:left}}</style></head><body>
<h1>File d'appels de {html.escape(worker_id)}</h1><p>{len(items)} demande(s), triées par échéance puis priorité.</p>
<table><thead><tr><th>Demande</th><th>État</th><th>Échéance dans</th><th>Priorité</th><th>Nom</th><th>Téléphone</th><th>Besoin</th></tr></thead>
<tbody>{rows}</tbody></table></body></html>"""
        return HTMLResponse(page)

    return router


def admin_router(clock: SimulatedClock) -> APIRouter:
    """Moves the simulated clock; mounted only when ROUTING_CLOCK=simulated (the demo)."""
    router = APIRouter(prefix="/admin", tags=["admin"])

    @router.post("/clock/advance", summary="Move the simulated clock forward")
    async def advance(hours: float = 0, minutes: float = 0) -> dict[str, str]:
        now = clock.advance(timedelta(hours=hours, minutes=minutes))
        return {"now": now.isoformat()}

    @router.get("/clock", summary="The simulated clock's time")
    async def now() -> dict[str, str]:
        return {"now": clock.now().isoformat()}

    return router
