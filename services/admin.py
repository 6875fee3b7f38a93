"""The demo's clock admin, shared by the services that run on a simulated clock (routing and
certification): the app includes `admin_router` only when its `<SERVICE>_CLOCK=simulated`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends

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

admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[requires(*may(OPERATIONS))])
"""Moves the simulated clock; a service includes it only when its clock is simulated (the demo)."""


@admin_router.post("/clock/advance", summary="Move the simulated clock forward")
async def advance(clock: Clock, hours: float = 0, minutes: float = 0) -> dict[str, str]:
    return {"now": clock.advance(timedelta(hours=hours, minutes=minutes)).isoformat()}


@admin_router.get("/clock", summary="The simulated clock's time")
async def now(clock: Clock) -> dict[str, str]:
    return {"now": clock.now().isoformat()}
