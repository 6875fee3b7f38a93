"""Module-level HTTP routers, each mounted on a bare app with its use case replaced by a fake
(`app.dependency_overrides`): the clock admin, intake's erasures and notification's support API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from intake.erasure import ErasureRequest, erasure_router, get_erasures
from notification.http import get_notifications, notification_router
from schemas import NotificationChannel
from services.admin import admin_router, get_simulated_clock
from services.clock import SimulatedClock

pytestmark = pytest.mark.unit


async def client_for(router: APIRouter, overrides: dict[Any, Any]) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides.update(overrides)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service.test")


# -- the demo's clock ------------------------------------------------------------------


@pytest.fixture
async def admin() -> AsyncIterator[tuple[httpx.AsyncClient, SimulatedClock]]:
    clock = SimulatedClock()
    async with await client_for(admin_router, {get_simulated_clock: lambda: clock}) as http:
        yield http, clock


async def test_the_clock_advances_by_hours_and_minutes(admin: tuple[httpx.AsyncClient, SimulatedClock]) -> None:
    http, clock = admin
    before = clock.now()
    moved = await http.post("/admin/clock/advance", params={"hours": 2, "minutes": 30})
    assert moved.status_code == 200
    now = datetime.fromisoformat(moved.json()["now"])
    assert timedelta(hours=2, minutes=30) <= now - before < timedelta(hours=2, minutes=31)
    shown = datetime.fromisoformat((await http.get("/admin/clock")).json()["now"])
    assert shown >= now


# -- erasures --------------------------------------------------------------------------


class RecordingErasures:
    """`Erasures.forget` as the endpoint sees it: knows one person by phone."""

    def __init__(self) -> None:
        self.forgotten: list[ErasureRequest] = []

    async def forget(self, request: ErasureRequest) -> str | None:
        if request.person_id is None and request.phone != "0470 12 34 56":
            return None
        self.forgotten.append(request)
        return request.person_id or "p-known"


async def test_an_erasure_is_accepted_for_a_known_person_and_refused_for_an_unknown_one() -> None:
    erasures = RecordingErasures()
    async with await client_for(erasure_router, {get_erasures: lambda: erasures}) as http:
        known = await http.post("/api/v1/privacy/erasures", json={"phone": "0470 12 34 56", "requested_by": "dpo"})
        unknown = await http.post("/api/v1/privacy/erasures", json={"phone": "0470 99 99 99", "requested_by": "dpo"})
        nobody = await http.post("/api/v1/privacy/erasures", json={"requested_by": "dpo"})
    assert (known.status_code, known.json()) == (202, {"person_id": "p-known", "status": "erased"})
    assert unknown.status_code == 404
    assert nobody.status_code == 422
    assert [r.phone for r in erasures.forgotten] == ["0470 12 34 56"]


# -- notification support --------------------------------------------------------------


def described(person_id: str, opted_out: list[str]) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "known": True,
        "language": "fr",
        "consent": True,
        "has_email": True,
        "has_mobile": True,
        "opted_out": opted_out,
        "erased": False,
    }


class RecordingNotifications:
    """The support use cases of `NotificationService`, over one known person."""

    def __init__(self) -> None:
        self.opted_out: set[str] = set()

    async def preferences(self, person_id: str) -> dict[str, Any] | None:
        return described(person_id, sorted(self.opted_out)) if person_id == "p-1" else None

    async def change_preference(self, person_id: str, channel: NotificationChannel, *, opted_out: bool) -> dict[str, Any]:
        (self.opted_out.add if opted_out else self.opted_out.discard)(channel.value)
        return described(person_id, sorted(self.opted_out))

    async def deliveries_of(self, person_id: str, *, limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        waiting = {
            "about_event_id": "e-1",
            "about_event_type": "routed",
            "request_id": "r-1",
            "kind": "routed",
            "created_at": datetime(2026, 1, 5, 9, tzinfo=UTC),
        }
        return [], [waiting][:limit]


async def test_support_sees_and_changes_a_persons_preferences_and_deliveries() -> None:
    notifications = RecordingNotifications()
    async with await client_for(notification_router, {get_notifications: lambda: notifications}) as http:
        out = await http.post("/people/p-1/opt-out", json={"channel": "sms"})
        assert out.json()["opted_out"] == ["sms"]
        assert (await http.get("/people/p-1")).json()["opted_out"] == ["sms"]
        assert (await http.post("/people/p-1/opt-in", json={"channel": "sms"})).json()["opted_out"] == []
        assert (await http.get("/people/p-2")).status_code == 404
        listed = (await http.get("/deliveries", params={"person_id": "p-1"})).json()
        assert listed["deliveries"] == []
        assert [w["template"] for w in listed["waiting"]] == ["routed"]
        assert (await http.get("/deliveries")).status_code == 422
