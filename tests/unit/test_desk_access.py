"""The desk's routers with a fake desk, signed in at the in-memory provider: a worker acts as themself
(the token's subject, never a body field), sees only their own queue and requests, and a supervisor
sees anyone's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from routing.api import desk_router, get_desk
from routing.desk import DeskError
from schemas import Event, PartnerInformationOverdue
from tests.identity_provider import SignIn

pytestmark = pytest.mark.unit

SIGN_IN = SignIn()
NOW = datetime(2027, 3, 5, 16, 0, tzinfo=UTC)


class FakeDesk:
    """Knows one request, r-1, offered to adv-1; records who accepted what."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []
        self.reassigned: list[tuple[str, str | None, str, str]] = []
        self.questions: list[tuple[str, str, str]] = []
        self.answers: list[tuple[str, str, str, bool]] = []

    async def request(self, request_id: str) -> dict[str, Any]:
        if request_id != "r-1":
            raise DeskError(f"request {request_id} is unknown", status=404)
        return {"status": "reserved", "assignee_id": "adv-1", "history": [{"event": "reserved", "worker_id": "adv-1"}]}

    async def queue(self, worker_id: str) -> list[Any]:
        return []

    async def accept(self, request_id: str, worker_id: str) -> dict[str, str]:
        self.accepted.append((request_id, worker_id))
        return {"request_id": request_id, "status": "assigned"}

    async def ask_partner(self, request_id: str, *, worker_id: str, question: str) -> Event:
        self.questions.append((request_id, worker_id, question))
        return PartnerInformationOverdue(source="/t", request_id=request_id, person_id="p-1", partner="cdm", asked_at=NOW)

    async def record_partner_answer(self, request_id: str, *, answer: str, recorded_by: str, for_team: bool) -> Event:
        self.answers.append((request_id, recorded_by, answer, for_team))
        return PartnerInformationOverdue(source="/t", request_id=request_id, person_id="p-1", partner="cdm", asked_at=NOW)

    async def reassign(self, request_id: str, *, to_worker: str | None, reason: str, actor: str) -> dict[str, Any]:
        self.reassigned.append((request_id, to_worker, reason, actor))
        return {"request_id": request_id, "taken_from": "adv-1", "offered_to": to_worker}


@pytest.fixture
async def desk() -> FakeDesk:
    return FakeDesk()


async def call(desk: FakeDesk, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    app = SIGN_IN.install(FastAPI())
    app.include_router(desk_router)
    app.dependency_overrides[get_desk] = lambda: desk
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routing.test") as http:
        return await http.request(method, path, headers=SIGN_IN.as_user(user), **kwargs)


@pytest.mark.parametrize(("user", "status"), [("adv-1", 200), ("adv-sup", 200), ("adv-2", 404), ("en-1", 404)])
async def test_a_worker_sees_only_the_requests_offered_to_them(desk: FakeDesk, user: str, status: int) -> None:
    assert (await call(desk, user, "GET", "/desk/requests/r-1")).status_code == status


@pytest.mark.parametrize(("user", "status"), [("adv-1", 200), ("adv-sup", 200), ("adv-2", 403), ("en-1", 403)])
async def test_a_worker_sees_only_their_own_queue(desk: FakeDesk, user: str, status: int) -> None:
    assert (await call(desk, user, "GET", "/desk/workers/adv-1/queue")).status_code == status


async def test_the_worker_accepting_is_the_token_subject_whatever_the_body_says(desk: FakeDesk) -> None:
    accepted = await call(desk, "adv-2", "POST", "/desk/requests/r-1/accept", json={"worker_id": "adv-1"})
    assert accepted.status_code == 200
    assert desk.accepted == [("r-1", "adv-2")]


async def test_an_outcome_naming_a_worker_in_its_body_is_refused(desk: FakeDesk) -> None:
    body = {"worker_id": "adv-1", "outcome": "advice_given"}
    assert (await call(desk, "adv-1", "POST", "/desk/requests/r-1/outcome", json=body)).status_code == 422


@pytest.mark.parametrize(("user", "status"), [("adv-sup", 200), ("adv-1", 403), ("ops-1", 403)])
async def test_only_a_supervisor_reassigns_and_is_recorded_as_the_actor(desk: FakeDesk, user: str, status: int) -> None:
    body = {"to_worker_id": "adv-2", "reason": "adv-1 is ill"}
    assert (await call(desk, user, "POST", "/desk/requests/r-1/reassign", json=body)).status_code == status
    assert desk.reassigned == ([("r-1", "adv-2", "adv-1 is ill", "adv-sup")] if status == 200 else [])


@pytest.mark.parametrize("body", [{"to_worker_id": "adv-2"}, {"reason": ""}, {"reason": "x", "actor": "adv-1"}])
async def test_a_reassignment_needs_a_reason_and_takes_no_actor_from_the_body(desk: FakeDesk, body: dict[str, Any]) -> None:
    assert (await call(desk, "adv-sup", "POST", "/desk/requests/r-1/reassign", json=body)).status_code == 422
    assert desk.reassigned == []


async def test_the_worker_asking_a_partner_is_the_token_subject_and_a_question_is_at_most_1000_characters(desk: FakeDesk) -> None:
    path = "/desk/requests/r-1/partner-questions"
    asked = await call(desk, "en-1", "POST", path, json={"question": "Quel niveau de français ?"})
    assert asked.status_code == 200 and asked.json()["waiting_for_partner"] is True
    assert desk.questions == [("r-1", "en-1", "Quel niveau de français ?")]
    assert (await call(desk, "en-1", "POST", path, json={"question": "x" * 1001})).status_code == 422
    assert (await call(desk, "en-1", "POST", path, json={"question": ""})).status_code == 422


@pytest.mark.parametrize(("user", "for_team"), [("en-1", False), ("adv-sup", True)])
async def test_the_partners_answer_is_recorded_by_the_worker_or_for_the_team_by_a_supervisor(
    desk: FakeDesk, user: str, for_team: bool
) -> None:
    answered = await call(desk, user, "POST", "/desk/requests/r-1/partner-answers", json={"answer": "Niveau B2."})
    assert answered.status_code == 200
    assert desk.answers == [("r-1", user, "Niveau B2.", for_team)]
