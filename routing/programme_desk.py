"""The digital-divide programme's lifecycle at the desk: release a place, change a year's quota,
keep the EPN partners and the self-training room, assign a member to one, and book self-training
slots on a person's behalf.

`ProgrammeDesk` holds the use cases (each refusal a `DeskError` with its HTTP status); the router
below serves them under `/desk/programmes/digital-divide`, each route role-checked: supervisors
change the programme and its spaces, anyone on the desk books slots for the people they call.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from routing.case import DeskError
from routing.programme import NotAMember
from routing.programme_rules import BRUSSELS, QuotaBelowAdmitted, SlotRefused, SpaceSpec
from routing.service import RoutingService
from routing.spaces import BookingRefused, Bookings, Spaces
from schemas.events import ReleaseReason
from services import Runtime, get_runtime
from services.auth import PROTECTED, Principal, error_responses, requires
from services.auth.roles import DESK_READ, DESK_TEAM, DESK_WORKER, may

__all__ = ["ProgrammeDesk", "programme_router"]

log = structlog.get_logger(__name__)


class ProgrammeDesk:
    def __init__(self, service: RoutingService, spaces: Spaces, bookings: Bookings) -> None:
        self._service = service
        self.spaces = spaces
        self.bookings = bookings

    def _year(self, year: int | None) -> int:
        return year or self._service.clock.now().year

    async def release(self, person_id: str, *, reason: ReleaseReason, year: int | None, by: str) -> dict[str, Any]:
        """The member leaves; the next on the waitlist is admitted and joins the programme team's queue."""
        year = self._year(year)
        try:
            admitted = await self._service.programme.release(year, person_id, reason=reason, released_by=by)
        except NotAMember as error:
            raise DeskError(str(error), status=404) from error
        await self._service.admit_waiting(admitted)
        log.info("programme.released", year=year, reason=reason, by=by, admitted_count=len(admitted))
        status = await self._service.programme.status(year)
        return {"year": year, "released": person_id, "admitted_now": admitted, "admitted": status.admitted}

    async def set_quota(self, quota: int, *, year: int | None, by: str) -> dict[str, Any]:
        """A year's quota, not below those admitted; raised, it admits from the waitlist."""
        year = self._year(year)
        try:
            status, admitted = await self._service.programme.set_quota(year, quota, changed_by=by)
        except QuotaBelowAdmitted as error:
            raise DeskError(str(error), status=409) from error
        await self._service.admit_waiting(admitted)
        log.info("programme.quota_changed", year=year, quota=quota, by=by, admitted_count=len(admitted))
        return {"year": year, "quota": status.quota, "admitted": status.admitted, "admitted_now": admitted}

    async def assign_space(self, person_id: str, space_id: str | None, *, year: int | None, by: str) -> dict[str, Any]:
        year = self._year(year)
        if space_id is not None and await self.spaces.get(space_id) is None:
            raise DeskError(f"space {space_id} is unknown", status=422)
        if not await self._service.programme.assign_space(year, person_id, space_id, assigned_by=by):
            raise DeskError(f"{person_id} holds no place in {year}", status=404)
        return {"year": year, "person_id": person_id, "space_id": space_id}

    async def delete_space(self, space_id: str, *, by: str) -> None:
        if await self._service.programme.members.find_one({"space_id": space_id}, {"_id": 1}) is not None:
            raise DeskError(f"members are assigned to {space_id}: assign them elsewhere first", status=409)
        if not await self.spaces.delete(space_id, changed_by=by):
            raise DeskError(f"space {space_id} is unknown", status=404)

    async def add_slot(self, space_id: str, day: date, start: time, end: time, capacity: int, *, by: str) -> dict[str, Any]:
        try:
            return await self.bookings.add_slot(space_id, day, start, end, capacity, opened_by=by)
        except LookupError as error:
            raise DeskError(str(error), status=404) from error
        except SlotRefused as error:
            raise DeskError(str(error), status=422) from error
        except FileExistsError as error:
            raise DeskError(str(error), status=409) from error

    async def book(self, slot_id: str, person_id: str, *, by: str) -> dict[str, Any]:
        try:
            event = await self.bookings.book(slot_id, person_id, booked_by=by)
        except BookingRefused as error:
            raise DeskError(str(error), status=error.status) from error
        log.info("self_training.booked", slot_id=slot_id, by=by)
        return {"slot_id": slot_id, "person_id": person_id, "starts_at": event.starts_at, "ends_at": event.ends_at}

    async def cancel(self, slot_id: str, person_id: str, *, by: str) -> dict[str, Any]:
        try:
            await self.bookings.cancel(slot_id, person_id, cancelled_by=by)
        except BookingRefused as error:
            raise DeskError(str(error), status=error.status) from error
        log.info("self_training.cancelled", slot_id=slot_id, by=by)
        return {"slot_id": slot_id, "person_id": person_id, "cancelled": True}


# --- HTTP ---------------------------------------------------------------------------------


def get_programme_desk(runtime: Annotated[Runtime, Depends(get_runtime)]) -> ProgrammeDesk:
    return runtime.app_state["programme_desk"]  # type: ignore[no-any-return]


ProgrammeDeskDep = Annotated[ProgrammeDesk, Depends(get_programme_desk)]
Supervisor = Annotated[Principal, requires(*may(DESK_TEAM))]
DeskWorker = Annotated[Principal, requires(*may(DESK_WORKER))]


def _refused(error: DeskError) -> HTTPException:
    return HTTPException(status_code=error.status, detail=str(error))


# The days a caller may name: anything else is a 422, not a date MongoDB cannot store.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ReleaseReason = Field(description="completed, abandoned or moved.")
    year: int | None = Field(None, ge=2000, le=2100, description="The year the place counts in; this year if omitted.")


class Quota(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quota: int = Field(ge=0, le=100_000, description="People the year admits; not below those admitted.")
    year: int | None = Field(None, ge=2000, le=2100)


class SpaceAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    space_id: str | None = Field(max_length=64, description="The space; null to unassign.")
    year: int | None = Field(None, ge=2000, le=2100)


class NewSpace(SpaceSpec):
    space_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")


class NewSlot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
    start: time = Field(description="Local time in Brussels.")
    end: time
    capacity: int = Field(ge=1, le=500)


class Booking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str = Field(min_length=1, max_length=64, description="A member of the programme in the slot's year.")


PREFIX = "/desk/programmes/digital-divide"
programme_router = APIRouter(prefix=PREFIX, tags=["desk"], responses=error_responses(*PROTECTED))


@programme_router.post("/members/{person_id}/release", summary="Release a member's place; the next waiting is admitted")
async def release(desk: ProgrammeDeskDep, supervisor: Supervisor, person_id: str, body: Release) -> dict[str, Any]:
    try:
        return await desk.release(person_id, reason=body.reason, year=body.year, by=supervisor.subject)
    except DeskError as error:
        raise _refused(error) from error


@programme_router.put("/quota", summary="Change a year's quota (not below those admitted); raised, it admits waiting people")
async def set_quota(desk: ProgrammeDeskDep, supervisor: Supervisor, body: Quota) -> dict[str, Any]:
    try:
        return await desk.set_quota(body.quota, year=body.year, by=supervisor.subject)
    except DeskError as error:
        raise _refused(error) from error


@programme_router.put("/members/{person_id}/space", summary="Assign a member to an EPN or the self-training room")
async def assign_space(desk: ProgrammeDeskDep, supervisor: Supervisor, person_id: str, body: SpaceAssignment) -> dict[str, Any]:
    try:
        return await desk.assign_space(person_id, body.space_id, year=body.year, by=supervisor.subject)
    except DeskError as error:
        raise _refused(error) from error


@programme_router.get("/spaces", summary="The EPN partners and the self-training room", dependencies=[requires(*may(DESK_READ))])
async def spaces(desk: ProgrammeDeskDep) -> list[dict[str, Any]]:
    return await desk.spaces.list()


@programme_router.post("/spaces", summary="Add a space (an EPN partner or the self-training room)", status_code=201)
async def add_space(desk: ProgrammeDeskDep, supervisor: Supervisor, body: NewSpace) -> dict[str, Any]:
    spec = SpaceSpec.model_validate(body.model_dump(exclude={"space_id"}))
    if not await desk.spaces.create(body.space_id, spec, changed_by=supervisor.subject):
        raise HTTPException(409, f"space {body.space_id} exists")
    return {"space_id": body.space_id, **spec.model_dump(mode="json")}


@programme_router.put("/spaces/{space_id}", summary="Change a space")
async def change_space(desk: ProgrammeDeskDep, supervisor: Supervisor, space_id: str, body: SpaceSpec) -> dict[str, Any]:
    if not await desk.spaces.replace(space_id, body, changed_by=supervisor.subject):
        raise HTTPException(404, f"space {space_id} is unknown")
    return {"space_id": space_id, **body.model_dump(mode="json")}


@programme_router.delete("/spaces/{space_id}", summary="Remove a space no member is assigned to", status_code=204)
async def delete_space(desk: ProgrammeDeskDep, supervisor: Supervisor, space_id: str) -> None:
    try:
        await desk.delete_space(space_id, by=supervisor.subject)
    except DeskError as error:
        raise _refused(error) from error


@programme_router.post("/spaces/{space_id}/slots", summary="Open a self-training slot in a space", status_code=201)
async def add_slot(desk: ProgrammeDeskDep, supervisor: Supervisor, space_id: str, body: NewSlot) -> dict[str, Any]:
    try:
        return await desk.add_slot(space_id, body.date, body.start, body.end, body.capacity, by=supervisor.subject)
    except DeskError as error:
        raise _refused(error) from error


@programme_router.get("/slots", summary="Self-training slots and their free seats", dependencies=[requires(*may(DESK_READ))])
async def slots(
    desk: ProgrammeDeskDep,
    start: Annotated[date, Query(alias="from", ge=FIRST_DAY, le=LAST_DAY, description="First day (in Brussels).")],
    days: Annotated[int, Query(ge=1, le=62)] = 7,
    space_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    first = datetime.combine(start, time(0), tzinfo=BRUSSELS)
    return await desk.bookings.slots(space_id=space_id, start=first, end=first + timedelta(days=days))


@programme_router.post("/slots/{slot_id}/bookings", summary="Book a member a seat in a slot", status_code=201)
async def book(desk: ProgrammeDeskDep, worker: DeskWorker, slot_id: str, body: Booking) -> dict[str, Any]:
    try:
        return await desk.book(slot_id, body.person_id, by=worker.subject)
    except DeskError as error:
        raise _refused(error) from error


@programme_router.delete("/slots/{slot_id}/bookings/{person_id}", summary="Cancel a booking; the seat is free again")
async def cancel(desk: ProgrammeDeskDep, worker: DeskWorker, slot_id: str, person_id: str) -> dict[str, Any]:
    try:
        return await desk.cancel(slot_id, person_id, by=worker.subject)
    except DeskError as error:
        raise _refused(error) from error
