"""Routing's HTTP API (OpenAPI at /docs): the desk for the people who call back, a small HTML page
over it, and the demo's clock.

Handlers translate: each parses its request, calls one `Desk` method and shapes the answer; a
`DeskError` becomes its HTTP status. The desk comes from the app through `get_desk`, so the
routers are plain module-level objects the app includes.
"""

from __future__ import annotations

import html
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from routing.case import CallFacts
from routing.desk import BoardItem, Desk, DeskError, QueueItem
from routing.workers import Availability
from schemas import ContactOutcome, EnrolmentConfirmed, EnrolmentWaitlisted, QualificationLevel, Target
from services import Runtime, get_runtime
from services.auth import PROTECTED, Principal, error_responses, requires
from services.auth.roles import ACTS_FOR_OTHERS, DESK_OWN_WORK, DESK_READ, DESK_TEAM, DESK_WORKER, may

__all__ = ["desk_router", "get_desk"]


def get_desk(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Desk:
    """FastAPI dependency: the desk of the app serving the request (`runtime.app_state["desk"]`)."""
    return runtime.app_state["desk"]  # type: ignore[no-any-return]


DeskDep = Annotated[Desk, Depends(get_desk)]


def _refused(error: DeskError) -> HTTPException:
    return HTTPException(status_code=error.status, detail=str(error))


# The worker acting is the token's subject (its `sub` is the roster's worker id), never a body field.
OwnWorker = Annotated[Principal, requires(*may(DESK_OWN_WORK))]
Worker = Annotated[Principal, requires(*may(DESK_WORKER))]
Supervisor = Annotated[Principal, requires(*may(DESK_TEAM))]
Reader = Annotated[Principal, requires(*may(DESK_READ))]


def _as_worker(principal: Principal, worker_id: str) -> str:
    """`worker_id` if the principal is that worker or may act for the team; 403 otherwise."""
    if worker_id != principal.subject and not principal.has_any(ACTS_FOR_OTHERS):
        raise HTTPException(403, "a worker may only see and change their own queue and availability")
    return worker_id


class AvailabilityChange(BaseModel):
    availability: Availability


class Outcome(BaseModel):
    # Forbid, so a client still sending `worker_id` hears it is no longer how the worker is named.
    model_config = ConfigDict(extra="forbid")

    outcome: ContactOutcome = Field(
        description=(
            "What came of the call. `advice_given`, `enrolled` and `exam_wanted` close the request as reached; "
            "`wrong_number` and `withdrawn` close it as such; `no_answer` plans a retry in opening hours, and closes "
            "it as unreachable when it is the last of `desk.max_attempts` unanswered calls in a row; `redirected` "
            "hands it to another team."
        )
    )
    notes: str | None = Field(None, max_length=2000)
    redirect_to: Target | None = Field(None, description="With outcome `redirected`.")
    course_code: str | None = Field(None, description="With outcome `enrolled`: a catalogue course code.")
    session_id: str | None = Field(
        None,
        max_length=64,
        description="With outcome `enrolled`: the course session; omitted, the next one in the person's language with "
        "room. A full session (or none with room) puts the person on the waitlist: the answer says `waitlisted`.",
    )
    certification_code: str | None = Field(None, description="With outcome `exam_wanted`.")
    retry_at: AwareDatetime | None = Field(None, description="With outcome `no_answer`: when to call again.")
    # What the person said of their situation on the call, when it came up.
    qualification_level: QualificationLevel | None = Field(None, description="Highest school qualification, learned on the call.")
    has_computer: bool | None = Field(None, description="Whether the person has a computer at home, learned on the call.")
    has_internet: bool | None = Field(None, description="Whether the person has internet at home, learned on the call.")
    unemployed_since: date | None = Field(None, description="Job seeker since, learned on the call.")

    def facts(self) -> CallFacts:
        return CallFacts(
            qualification_level=self.qualification_level,
            has_computer=self.has_computer,
            has_internet=self.has_internet,
            unemployed_since=self.unemployed_since,
        )


class Facts(BaseModel):
    """What the person said of their situation; a fact left out is not changed."""

    model_config = ConfigDict(extra="forbid")

    qualification_level: QualificationLevel | None = Field(None, description="Highest school qualification.")
    has_computer: bool | None = Field(None, description="Whether the person has a computer at home.")
    has_internet: bool | None = Field(None, description="Whether the person has internet at home.")
    unemployed_since: date | None = Field(None, description="Job seeker since.")

    def facts(self) -> CallFacts:
        return CallFacts(**self.model_dump())


class PartnerQuestion(BaseModel):
    question: str = Field(min_length=1, max_length=1000, description="What the partner is asked; may hold personal data.")


class PartnerAnswer(BaseModel):
    answer: str = Field(min_length=1, max_length=1000, description="What the partner answered; may hold personal data.")


class Reassignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_worker_id: str | None = Field(
        None, min_length=1, max_length=64, description="Offer it to this worker; omitted: to the next eligible one."
    )
    reason: str = Field(min_length=1, max_length=500, description="Why, kept in the request's history.")


# --- the desk ---------------------------------------------------------------------------

desk_router = APIRouter(prefix="/desk", tags=["desk"], responses=error_responses(*PROTECTED))


@desk_router.get("/workers", summary="Workers and their load", dependencies=[requires(*may(DESK_TEAM))])
async def workers(desk: DeskDep, team: Target | None = None) -> list[dict[str, Any]]:
    return await desk.workers(team)


@desk_router.put("/workers/{worker_id}/availability", summary="Set a worker's availability")
async def set_availability(desk: DeskDep, principal: Worker, worker_id: str, change: AvailabilityChange) -> dict[str, str]:
    try:
        return await desk.set_availability(_as_worker(principal, worker_id), change.availability)
    except DeskError as error:
        raise _refused(error) from error


@desk_router.get("/workers/{worker_id}/queue", summary="A worker's queue: offers and assigned requests")
async def queue(desk: DeskDep, principal: Worker, worker_id: str) -> list[QueueItem]:
    try:
        return await desk.queue(_as_worker(principal, worker_id))
    except DeskError as error:
        raise _refused(error) from error


@desk_router.post("/requests/{request_id}/accept", summary="Accept an offered request")
async def accept(desk: DeskDep, worker: OwnWorker, request_id: str) -> dict[str, str]:
    try:
        return await desk.accept(request_id, worker.subject)
    except DeskError as error:
        raise _refused(error) from error


@desk_router.post("/requests/{request_id}/decline", summary="Decline an offer: it goes to the next eligible worker")
async def decline(desk: DeskDep, worker: OwnWorker, request_id: str) -> dict[str, Any]:
    try:
        return await desk.decline(request_id, worker.subject)
    except DeskError as error:
        raise _refused(error) from error


@desk_router.post("/requests/{request_id}/outcome", summary="Record what came of a call")
async def outcome(desk: DeskDep, worker: OwnWorker, request_id: str, body: Outcome) -> dict[str, Any]:
    try:
        events = await desk.record_outcome(
            request_id,
            worker_id=worker.subject,
            outcome=body.outcome,
            notes=body.notes,
            redirect_to=body.redirect_to,
            course_code=body.course_code,
            certification_code=body.certification_code,
            retry_at=body.retry_at,
            facts=body.facts(),
            session_id=body.session_id,
        )
    except DeskError as error:
        raise _refused(error) from error
    answer: dict[str, Any] = {"request_id": request_id, "published": [e.type for e in events]}
    for event in events:
        if isinstance(event, EnrolmentConfirmed | EnrolmentWaitlisted):
            answer["enrolment"] = {
                "course_code": event.course_code,
                "session_id": event.session_id,
                "starts_on": getattr(event, "starts_on", None),
                "waitlisted": isinstance(event, EnrolmentWaitlisted),
            }
    return answer


@desk_router.post(
    "/requests/{request_id}/facts",
    summary="Record or correct what the person said of their situation; the request is scored again",
)
async def record_facts(desk: DeskDep, principal: Reader, request_id: str, body: Facts) -> dict[str, Any]:
    try:
        return await desk.record_facts(
            request_id, facts=body.facts(), recorded_by=principal.subject, for_team=principal.has_any(ACTS_FOR_OTHERS)
        )
    except DeskError as error:
        raise _refused(error) from error


@desk_router.post(
    "/requests/{request_id}/contact-confirmations",
    summary="Confirm the contact details the person gave on their status page, checked with them on the call",
)
async def confirm_contact(desk: DeskDep, principal: Reader, request_id: str) -> dict[str, Any]:
    try:
        event = await desk.confirm_contact(request_id, worker_id=principal.subject, for_team=principal.has_any(ACTS_FOR_OTHERS))
    except DeskError as error:
        raise _refused(error) from error
    return {"request_id": request_id, "published": [event.type]}


@desk_router.post(
    "/requests/{request_id}/partner-questions",
    summary="Ask the partner that handed the request over for more information; the callback clock stops",
)
async def ask_partner(desk: DeskDep, worker: OwnWorker, request_id: str, body: PartnerQuestion) -> dict[str, Any]:
    try:
        event = await desk.ask_partner(request_id, worker_id=worker.subject, question=body.question)
    except DeskError as error:
        raise _refused(error) from error
    return {"request_id": request_id, "published": [event.type], "waiting_for_partner": True}


@desk_router.post(
    "/requests/{request_id}/partner-answers",
    summary="Record the partner's answer; the callback clock runs again, its deadline moved by the wait",
)
async def partner_answer(desk: DeskDep, principal: Reader, request_id: str, body: PartnerAnswer) -> dict[str, Any]:
    try:
        event = await desk.record_partner_answer(
            request_id, answer=body.answer, recorded_by=principal.subject, for_team=principal.has_any(ACTS_FOR_OTHERS)
        )
    except DeskError as error:
        raise _refused(error) from error
    return {"request_id": request_id, "published": [event.type], "callback_deadline": getattr(event, "callback_deadline", None)}


@desk_router.get("/teams/{team}/board", summary="A team's open requests, in the order the dispatcher offers them")
async def team_board(desk: DeskDep, _: Supervisor, team: Target) -> list[BoardItem]:
    return await desk.team_board(team)


@desk_router.post("/requests/{request_id}/reassign", summary="Take a request back and offer it to another worker")
async def reassign(desk: DeskDep, supervisor: Supervisor, request_id: str, body: Reassignment) -> dict[str, Any]:
    try:
        return await desk.reassign(request_id, to_worker=body.to_worker_id, reason=body.reason, actor=supervisor.subject)
    except DeskError as error:
        raise _refused(error) from error


@desk_router.get("/requests/{request_id}", summary="A request: decision, state and history (a worker: their own)")
async def request_view(desk: DeskDep, principal: Reader, request_id: str) -> dict[str, Any]:
    try:
        view = await desk.request(request_id)
    except DeskError as error:
        raise _refused(error) from error
    if not principal.has_any(ACTS_FOR_OTHERS) and not _involves(view, principal.subject):
        # The same answer as an unknown id: a worker cannot probe which requests exist.
        raise HTTPException(404, f"request {request_id} is unknown")
    return view


def _involves(view: dict[str, Any], worker_id: str) -> bool:
    """Whether the request is, or was, offered to or handled by `worker_id`."""
    return view.get("assignee_id") == worker_id or any(entry.get("worker_id") == worker_id for entry in view.get("history", []))


# The programme's years a caller may name: anything else is a 422, not a year MongoDB cannot store.
YearAsked = Annotated[int | None, Query(ge=2000, le=2100)]
YearGiven = Annotated[int | None, Body(embed=True, ge=2000, le=2100)]


@desk_router.get(
    "/programmes/digital-divide",
    summary="Quota, admissions and waitlist of a year",
    dependencies=[requires(*may(DESK_TEAM))],
)
async def programme(desk: DeskDep, year: YearAsked = None) -> dict[str, Any]:
    return await desk.programme(year)


@desk_router.post(
    "/programmes/digital-divide/suspend", summary="Suspend the programme, across years until resumed (new requests wait)"
)
async def suspend(
    desk: DeskDep,
    supervisor: Supervisor,
    year: YearGiven = None,
) -> dict[str, Any]:
    return await desk.suspend_programme(year, changed_by=supervisor.subject)


@desk_router.post(
    "/programmes/digital-divide/resume", summary="Resume the programme and admit from the waitlist into the year's places"
)
async def resume(
    desk: DeskDep,
    supervisor: Supervisor,
    year: YearGiven = None,
) -> dict[str, Any]:
    return await desk.resume_programme(year, changed_by=supervisor.subject)


@desk_router.get("/courses", summary="The catalogue with seats taken", dependencies=[requires(*may(DESK_READ))])
async def courses(desk: DeskDep) -> list[dict[str, Any]]:
    return await desk.courses()


@desk_router.get("/ui/{worker_id}", response_class=HTMLResponse, include_in_schema=False)
async def ui(desk: DeskDep, principal: Worker, worker_id: str) -> HTMLResponse:
    try:
        items = await desk.queue(_as_worker(principal, worker_id))
    except DeskError as error:
        raise _refused(error) from error
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            *(
                html.escape(str(v or ""))
                for v in (i.request_id[:8], i.status, i.deadline_in, i.priority, i.name, i.phone, i.need[:80])
            )
        )
        for i in items
    )
    page = f"""<!doctype html><html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta http-equiv="refresh" content="30"><title>File d'appels – {html.escape(worker_id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1rem}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ccc;padding:.4rem;text-align:left}}</style></head><body>
<h1>File d'appels de {html.escape(worker_id)}</h1><p>{len(items)} demande(s), triées par échéance puis priorité.</p>
<table><thead>
<tr><th>Demande</th><th>État</th><th>Échéance dans</th><th>Priorité</th><th>Nom</th><th>Téléphone</th><th>Besoin</th></tr></thead>
<tbody>{rows}</tbody></table></body></html>"""
    return HTMLResponse(page)
