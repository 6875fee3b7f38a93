"""Module-level HTTP routers, each mounted on a bare app with its use case replaced by a fake
(`app.dependency_overrides`): the clock admin, intake's erasures and notification's support API.
Tokens come from the in-memory provider (`SignIn`), so each router's policy is enforced as in production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from intake.erasure import ErasureRefused, ErasureRequest, erasure_router, get_erasures
from notification.http import get_notifications, notification_router
from schemas import NotificationChannel, PersonDataErased
from schemas.codec import decode, encode
from schemas.envelope import acting_as
from services.admin import admin_router, get_simulated_clock
from services.clock import SimulatedClock
from tests.identity_provider import SignIn

pytestmark = pytest.mark.unit


SIGN_IN = SignIn()


async def client_for(router: APIRouter, overrides: dict[Any, Any], *, user: str) -> httpx.AsyncClient:
    """A client of `router` on a bare app, signed in as the realm user `user`."""
    app = SIGN_IN.install(FastAPI())
    app.include_router(router)
    app.dependency_overrides.update(overrides)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://service.test", headers=SIGN_IN.as_user(user))


# -- the demo's clock ------------------------------------------------------------------


@pytest.fixture
async def admin() -> AsyncIterator[tuple[httpx.AsyncClient, SimulatedClock]]:
    clock = SimulatedClock()
    async with await client_for(admin_router, {get_simulated_clock: lambda: clock}, user="ops-1") as http:
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
    """`Erasures` as the endpoints see it: knows one person by phone, keeps asked erasures in memory."""

    def __init__(self) -> None:
        self.asked: dict[str, tuple[ErasureRequest, str]] = {}
        self.approved: set[str] = set()
        self.forgotten: list[tuple[ErasureRequest, str]] = []

    async def ask(self, request: ErasureRequest, *, requested_by: str) -> str:
        erasure_id = f"e-{len(self.asked) + 1}"
        self.asked[erasure_id] = (request, requested_by)
        return erasure_id

    async def approve(self, erasure_id: str, *, approved_by: str) -> str | None:
        if erasure_id not in self.asked:
            raise ErasureRefused(404, "no erasure with this id")
        request, requested_by = self.asked[erasure_id]
        if requested_by == approved_by:
            raise ErasureRefused(403, "an erasure is approved by a second, different dpo")
        if erasure_id in self.approved:
            raise ErasureRefused(409, "this erasure was already approved")
        self.approved.add(erasure_id)
        return await self.forget(request, requested_by=requested_by)

    async def forget(self, request: ErasureRequest, *, requested_by: str) -> str | None:
        if request.person_id is None and request.phone != "0470 12 34 56":
            return None
        self.forgotten.append((request, requested_by))
        return request.person_id or "p-known"


async def asked_and_approved(erasures: RecordingErasures, body: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
    async with await client_for(erasure_router, {get_erasures: lambda: erasures}, user="dpo-1") as first:
        asked = await first.post("/api/v1/privacy/erasures", json=body)
    async with await client_for(erasure_router, {get_erasures: lambda: erasures}, user="dpo-2") as second:
        approved = await second.post(f"/api/v1/privacy/erasures/{asked.json()['erasure_id']}/approval")
    return asked, approved


async def test_an_erasure_answers_the_same_whether_the_person_is_known_or_not() -> None:
    erasures = RecordingErasures()
    known_asked, known = await asked_and_approved(erasures, {"phone": "0470 12 34 56"})
    unknown_asked, unknown = await asked_and_approved(erasures, {"phone": "0470 99 99 99"})
    assert (known_asked.status_code, known_asked.json()["status"]) == (202, "awaiting_approval")
    assert (unknown_asked.status_code, unknown_asked.json()["status"]) == (202, "awaiting_approval")
    assert (known.status_code, known.json()) == (202, {"status": "accepted"})
    assert (unknown.status_code, unknown.json()) == (202, {"status": "accepted"})
    assert [(r.phone, by) for r, by in erasures.forgotten] == [("0470 12 34 56", "dpo-1")]


async def test_an_erasure_takes_two_different_dpos_and_a_named_person() -> None:
    erasures = RecordingErasures()
    async with await client_for(erasure_router, {get_erasures: lambda: erasures}, user="dpo-1") as http:
        nobody = await http.post("/api/v1/privacy/erasures", json={})
        self_named = await http.post("/api/v1/privacy/erasures", json={"phone": "0470 12 34 56", "requested_by": "x"})
        asked = (await http.post("/api/v1/privacy/erasures", json={"phone": "0470 12 34 56"})).json()["erasure_id"]
        alone = await http.post(f"/api/v1/privacy/erasures/{asked}/approval")
        unknown = await http.post("/api/v1/privacy/erasures/e-404/approval")
    assert nobody.status_code == 422
    assert self_named.status_code == 422, "who asks is the token's subject, never a body field"
    assert (alone.status_code, unknown.status_code) == (403, 404)
    assert erasures.forgotten == [], "nothing is erased on one DPO's word"
    async with await client_for(erasure_router, {get_erasures: lambda: erasures}, user="dpo-2") as http:
        assert (await http.post(f"/api/v1/privacy/erasures/{asked}/approval")).status_code == 202
        assert (await http.post(f"/api/v1/privacy/erasures/{asked}/approval")).status_code == 409


async def test_only_a_dpo_may_ask_for_or_approve_an_erasure() -> None:
    erasures = RecordingErasures()
    erasures.asked["e-1"] = (ErasureRequest(phone="0470 12 34 56"), "dpo-1")
    async with await client_for(erasure_router, {get_erasures: lambda: erasures}, user="adv-sup") as http:
        refused = await http.post("/api/v1/privacy/erasures", json={"phone": "0470 12 34 56"})
        anonymous = await http.post("/api/v1/privacy/erasures", json={"phone": "0470 12 34 56"}, headers={"Authorization": ""})
        not_approved = await http.post("/api/v1/privacy/erasures/e-1/approval")
    assert (refused.status_code, anonymous.status_code, not_approved.status_code) == (403, 401, 403)
    assert erasures.forgotten == []


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
    async with await client_for(notification_router, {get_notifications: lambda: notifications}, user="adv-sup") as http:
        out = await http.post("/people/p-1/opt-out", json={"channel": "sms"})
        assert out.json()["opted_out"] == ["sms"]
        assert (await http.get("/people/p-1")).json()["opted_out"] == ["sms"]
        assert (await http.post("/people/p-1/opt-in", json={"channel": "sms"})).json()["opted_out"] == []
        assert (await http.get("/people/p-2")).status_code == 404
        listed = (await http.get("/deliveries", params={"person_id": "p-1"})).json()
        assert listed["deliveries"] == []
        assert [w["template"] for w in listed["waiting"]] == ["routed"]
        assert (await http.get("/deliveries")).status_code == 422


# -- the actor ----------------------------------------------------------------------------


async def test_the_events_a_request_causes_record_the_signed_in_actor_and_only_there() -> None:
    made: list[PersonDataErased] = []

    class MakingErasures(RecordingErasures):
        async def forget(self, request: ErasureRequest, *, requested_by: str) -> str | None:
            made.append(
                PersonDataErased(source="/tests", person_id="p-1", erased_at=datetime.now(UTC), requested_by=requested_by)
            )
            return "p-1"

    erasures = MakingErasures()
    _, approved = await asked_and_approved(erasures, {"person_id": "p-1"})
    assert approved.status_code == 202
    outside = PersonDataErased(source="/tests", person_id="p-2", erased_at=datetime.now(UTC), requested_by="retention")
    assert [(e.actor, e.requested_by) for e in made] == [("dpo-2", "dpo-1")], "asked by one DPO, carried out by the other"
    assert outside.actor is None, "the request's actor does not leak into events made after it"
    assert decode(encode(made[0])).actor == "dpo-2"
    with acting_as("adv-1"):
        assert decode(encode(outside)).actor is None, "a decoded event keeps its own actor, not the reader's"
