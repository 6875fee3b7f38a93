"""The demo's clock admin, shared by the services that run on a simulated clock (routing and
certification): the app includes `admin_router` only when its `<SERVICE>_CLOCK=simulated`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.app import Runtime, get_runtime
from services.auth import requires
from services.auth.roles import OPERATIONS, may
from services.clock import SimulatedClock

__all__ = ["admin_router", "get_simulated_clock"]


def get_simulated_clock(runtime: Annotated[Runtime, Depends(get_runtime)]) -> SimulatedClock:
    """FastAPI dependency: the demo's clock (`runtime.app_state["clock"]`)."""
    clock: SimulatedClock = runtime.app_state["clock"]
    return clock


Clock = Annotated[SimulatedClock, Depends(get_simulated_clock)]
# Forward only, and by at most a year a call: a negative, infinite or huge step was a 500 (schemathesis found it).
Hours = Annotated[float, Query(ge=0, le=24 * 366, allow_inf_nan=False)]
Minutes = Annotated[float, Query(ge=0, le=24 * 366 * 60, allow_inf_nan=False)]

admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[requires(*may(OPERATIONS))])
"""Moves the simulated clock; a service includes it only when its clock is simulated (the demo)."""


@admin_router.post("/clock/advance", summary="Move the simulated clock forward")
async def advance(clock: Clock, hours: Hours = 0, minutes: Minutes = 0) -> dict[str, str]:
    return {"now": clock.advance(timedelta(hours=hours, minutes=minutes)).isoformat()}


@admin_router.get("/clock", summary="The simulated clock's time")
async def now(clock: Clock) -> dict[str, str]:
    return {"now": clock.now().isoformat()}
