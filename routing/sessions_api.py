"""The staff API of course sessions (under `/desk`): everyone on the desk lists a course's sessions and
records that a person completed or abandoned their course; the desk's supervisors plan, change and
cancel sessions. Handlers translate: each calls one `CourseSeats` method (`routing.enrolment`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from routing.case import DeskError
from routing.enrolment import CourseSeats
from routing.sessions import CourseSession, SessionPlan
from schemas.events import AbandonReason
from services import Runtime, get_runtime
from services.auth import PROTECTED, Principal, error_responses, requires
from services.auth.roles import DESK_READ, DESK_TEAM, may

__all__ = ["sessions_router"]


def get_seats(runtime: Annotated[Runtime, Depends(get_runtime)]) -> CourseSeats:
    """FastAPI dependency: the sessions and places of the app serving the request."""
    return runtime.app_state["service"].seats  # type: ignore[no-any-return]


SeatsDep = Annotated[CourseSeats, Depends(get_seats)]
Supervisor = Annotated[Principal, requires(*may(DESK_TEAM))]
# Completion and drop-out: the worker who enrolled the person or anyone on the desk who hears of it.
DeskMember = Annotated[Principal, requires(*may(DESK_READ))]


def _refused(error: DeskError) -> HTTPException:
    return HTTPException(status_code=error.status, detail=str(error))


class NewSession(SessionPlan):
    session_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="Omitted: one is made up."
    )


class SessionView(CourseSession):
    waiting: int = Field(0, description="People waiting for this very session.")


class Completion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(None, description="When; omitted: now.")


class Abandonment(Completion):
    reason: AbandonReason = Field(description="Why the person left, from a closed list.")


sessions_router = APIRouter(prefix="/desk", tags=["sessions"], responses=error_responses(*PROTECTED))


@sessions_router.get(
    "/courses/{course_code}/sessions",
    summary="A course's sessions, places taken and people waiting",
    dependencies=[requires(*may(DESK_READ))],
)
async def list_sessions(seats: SeatsDep, course_code: str) -> dict[str, Any]:
    try:
        course = seats.course(course_code)
    except DeskError as error:
        raise _refused(error) from error
    waiting = await seats.waiting(course.code)
    sessions = [SessionView(**s.model_dump(), waiting=waiting.get(s.session_id, 0)) for s in await seats.sessions_of(course.code)]
    return {
        "course_code": course.code,
        "sessions": sessions,
        "waiting_for_course": {k.split(":", 1)[1]: n for k, n in waiting.items() if k.startswith("*:")},
    }


@sessions_router.post(
    "/courses/{course_code}/sessions",
    status_code=201,
    summary="Plan a session; the people waiting for the course in its language are enrolled in it",
)
async def plan_session(seats: SeatsDep, _: Supervisor, course_code: str, body: NewSession) -> CourseSession:
    try:
        return await seats.plan_session(
            course_code, SessionPlan(**body.model_dump(exclude={"session_id"})), session_id=body.session_id
        )
    except DeskError as error:
        raise _refused(error) from error


@sessions_router.put(
    "/sessions/{session_id}", summary="Change a session's dates, capacity (never below the people enrolled) or place"
)
async def change_session(seats: SeatsDep, _: Supervisor, session_id: str, body: SessionPlan) -> CourseSession:
    try:
        return await seats.change_session(session_id, body)
    except DeskError as error:
        raise _refused(error) from error


@sessions_router.delete(
    "/sessions/{session_id}", status_code=204, summary="Cancel a session nobody is enrolled in; its waitlist waits for the course"
)
async def cancel_session(seats: SeatsDep, _: Supervisor, session_id: str) -> Response:
    try:
        await seats.cancel_session(session_id)
    except DeskError as error:
        raise _refused(error) from error
    return Response(status_code=204)


def _published(request_id: str, events: list[Any]) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "published": [e.type for e in events],
        "admitted": [e.request_id for e in events if e.type.endswith("enrolment.confirmed")],
    }


@sessions_router.post(
    "/enrolments/{request_id}/completed",
    summary="The person completed their course: the place frees, a certification path asks for the exam",
)
async def completed(seats: SeatsDep, _: DeskMember, request_id: str, body: Completion) -> dict[str, Any]:
    try:
        return _published(request_id, await seats.finish(request_id, completed=True, at=body.at))
    except DeskError as error:
        raise _refused(error) from error


@sessions_router.post(
    "/enrolments/{request_id}/abandoned", summary="The person left their course: the place frees for the next one waiting"
)
async def abandoned(seats: SeatsDep, _: DeskMember, request_id: str, body: Abandonment) -> dict[str, Any]:
    try:
        return _published(request_id, await seats.finish(request_id, completed=False, at=body.at, reason=body.reason))
    except DeskError as error:
        raise _refused(error) from error
