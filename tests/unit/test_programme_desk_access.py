"""The programme's lifecycle routes with a fake desk, signed in at the in-memory provider: only a
supervisor releases a place, changes the quota or keeps the spaces; anyone on the desk books a slot
for a person; the actor recorded is the token's subject, never a body field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from routing.desk import DeskError
from routing.programme_desk import get_programme_desk, programme_router
from tests.identity_provider import SignIn

pytestmark = pytest.mark.unit

SIGN_IN = SignIn()
PREFIX = "/desk/programmes/digital-divide"


class FakeSpaces:
    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []

    async def create(self, space_id: str, spec: Any, *, changed_by: str) -> bool:
        self.created.append((space_id, changed_by))
        return True


class FakeProgrammeDesk:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.spaces = FakeSpaces()

    async def release(self, person_id: str, *, reason: str, year: int | None, by: str) -> dict[str, Any]:
        self.calls.append(("release", person_id, reason, year, by))
        return {}

    async def set_quota(self, quota: int, *, year: int | None, by: str) -> dict[str, Any]:
        if quota < 3:
            raise DeskError("3 people are admitted this year", status=409)
        self.calls.append(("quota", quota, year, by))
        return {}

    async def book(self, slot_id: str, person_id: str, *, by: str) -> dict[str, Any]:
        self.calls.append(("book", slot_id, person_id, by))
        return {}

    async def assign_space(self, person_id: str, space_id: str | None, *, year: int | None, by: str) -> dict[str, Any]:
        self.calls.append(("assign", person_id, space_id, year, by))
        return {}

    async def add_slot(self, space_id: str, day: Any, start: Any, end: Any, capacity: int, *, by: str) -> dict[str, Any]:
        self.calls.append(("slot", space_id, str(day), capacity, by))
        return {}


async def call(desk: FakeProgrammeDesk, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    app = SIGN_IN.install(FastAPI())
    app.include_router(programme_router)
    app.dependency_overrides[get_programme_desk] = lambda: desk
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routing.test") as http:
        return await http.request(method, PREFIX + path, headers=SIGN_IN.as_user(user), **kwargs)


@pytest.mark.parametrize(("user", "status"), [("adv-sup", 200), ("adv-1", 403), ("en-1", 403)])
async def test_only_a_supervisor_releases_a_place_and_is_recorded_as_who(user: str, status: int) -> None:
    desk = FakeProgrammeDesk()
    body = {"reason": "moved", "year": 2026}
    assert (await call(desk, user, "POST", "/members/p-1/release", json=body)).status_code == status
    assert desk.calls == ([("release", "p-1", "moved", 2026, "adv-sup")] if status == 200 else [])


@pytest.mark.parametrize("body", [{"reason": "bored"}, {"reason": "completed", "released_by": "adv-1"}, {}])
async def test_a_release_needs_one_of_the_known_reasons_and_takes_no_actor_from_the_body(body: dict[str, Any]) -> None:
    desk = FakeProgrammeDesk()
    assert (await call(desk, "adv-sup", "POST", "/members/p-1/release", json=body)).status_code == 422


async def test_a_quota_below_those_admitted_is_a_conflict() -> None:
    desk = FakeProgrammeDesk()
    assert (await call(desk, "adv-sup", "PUT", "/quota", json={"quota": 2})).status_code == 409
    assert (await call(desk, "adv-sup", "PUT", "/quota", json={"quota": 5, "year": 2027})).status_code == 200
    assert (await call(desk, "adv-1", "PUT", "/quota", json={"quota": 5})).status_code == 403
    assert desk.calls == [("quota", 5, 2027, "adv-sup")]


@pytest.mark.parametrize(("user", "status"), [("adv-1", 201), ("en-1", 201), ("adv-sup", 201), ("ops-1", 403)])
async def test_anyone_on_the_desk_books_a_slot_for_a_person(user: str, status: int) -> None:
    desk = FakeProgrammeDesk()
    response = await call(desk, user, "POST", "/slots/room:2026-03-02:0900/bookings", json={"person_id": "p-1"})
    assert response.status_code == status
    assert desk.calls == ([("book", "room:2026-03-02:0900", "p-1", user)] if status == 201 else [])


async def test_only_a_supervisor_adds_a_space_and_its_hours_must_make_sense() -> None:
    desk = FakeProgrammeDesk()
    space = {
        "space_id": "epn-ixelles",
        "name": "EPN Ixelles",
        "address": "Rue Mercelis 19, 1050 Ixelles",
        "capacity": 8,
        "opening_hours": [{"weekday": 0, "opens": "09:00", "closes": "17:00"}],
    }
    assert (await call(desk, "adv-1", "POST", "/spaces", json=space)).status_code == 403
    backwards = space | {"opening_hours": [{"weekday": 0, "opens": "17:00", "closes": "09:00"}]}
    assert (await call(desk, "adv-sup", "POST", "/spaces", json=backwards)).status_code == 422
    assert (await call(desk, "adv-sup", "POST", "/spaces", json=space)).status_code == 201
    assert desk.spaces.created == [("epn-ixelles", "adv-sup")]


async def test_the_supervisor_who_assigns_a_space_or_opens_a_slot_is_recorded_from_the_token() -> None:
    desk = FakeProgrammeDesk()
    assign = {"space_id": "epn-ixelles", "year": 2026}
    assert (await call(desk, "adv-1", "PUT", "/members/p-1/space", json=assign)).status_code == 403
    assert (await call(desk, "adv-sup", "PUT", "/members/p-1/space", json=assign)).status_code == 200
    slot = {"date": "2026-03-02", "start": "09:00", "end": "11:00", "capacity": 4}
    assert (await call(desk, "adv-1", "POST", "/spaces/room/slots", json=slot)).status_code == 403
    assert (await call(desk, "adv-sup", "POST", "/spaces/room/slots", json=slot)).status_code == 201
    assert desk.calls == [("assign", "p-1", "epn-ixelles", 2026, "adv-sup"), ("slot", "room", "2026-03-02", 4, "adv-sup")]
