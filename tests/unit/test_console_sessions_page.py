"""The supervisor's page of course sessions in the console, over a small in-memory stand-in for
`CourseSeats`: signed in as a supervisor, the page lists a course's sessions and plans one from its
form; an advisor without the supervisor's role is refused."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from routing.case import DeskError
from routing.console import desk_console
from routing.console.sessions_page import sessions_page_router
from routing.sessions import CourseSession, InvalidSession, SessionPlan, session_problems
from schemas import Language
from services.catalogue import load_catalogue
from services.console import InMemorySessions, OidcClient, install_forbidden_page, sign_in_router
from services.settings import AuthSettings
from tests.identity_provider import AUDIENCE, ISSUER
from tests.unit.test_console import SIGN_IN, FakeDesk, FakeProvider, browser, csrf_of, sign_in

pytestmark = pytest.mark.unit


class FakeSeats:
    """The part of `CourseSeats` the page uses, in memory."""

    def __init__(self) -> None:
        self.catalogue = load_catalogue()
        self.sessions: list[CourseSession] = [
            CourseSession(
                session_id="EXCEL-APR-FR",
                course_code="EXCEL",
                starts_on=date(2026, 4, 1),
                ends_on=date(2026, 5, 27),
                capacity=12,
                mode="centre",
                centre_id="ctr-anderlecht",
                language=Language.FR,
                enrolled=12,
            )
        ]

    async def waiting(self, course_code: str) -> dict[str, int]:
        return {"EXCEL-APR-FR": 2, "*:nl": 3} if course_code == "EXCEL" else {}

    async def sessions_of(self, course_code: str) -> list[CourseSession]:
        return [s for s in self.sessions if s.course_code == course_code]

    async def plan_session(self, course_code: str, plan: SessionPlan, *, session_id: str | None = None) -> CourseSession:
        if problems := session_problems(plan, self.catalogue.course(course_code), course_code=course_code):
            raise InvalidSession(problems)
        if any(s.session_id == session_id for s in self.sessions):
            raise DeskError(f"session {session_id!r} exists already")
        planned = CourseSession(**plan.model_dump(), session_id=session_id or "new", course_code=course_code)
        self.sessions.append(planned)
        return planned


def app_with(provider: FakeProvider, seats: FakeSeats) -> FastAPI:
    oidc = OidcClient(
        AuthSettings(issuer=ISSUER, audience=AUDIENCE),
        "formation-console",
        http=httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)),
    )
    app = FastAPI()
    app.include_router(sign_in_router)
    app.include_router(sessions_page_router)
    install_forbidden_page(app)
    app.state.runtime = SimpleNamespace(
        app_state={
            "console": desk_console(InMemorySessions(), oidc),
            "desk": FakeDesk(),
            "service": SimpleNamespace(seats=seats),
        }
    )
    app.state.token_verifier = SIGN_IN.verifier
    return app


async def test_a_supervisor_sees_a_courses_sessions_and_plans_one() -> None:
    provider, seats = FakeProvider("adv-sup"), FakeSeats()
    async with browser(app_with(provider, seats)) as http:
        await sign_in(http, provider, "/console/en/sessions?course=EXCEL")
        page = await http.get("/console/en/sessions", params={"course": "EXCEL"})
        assert page.status_code == 200
        assert 'data-session-id="EXCEL-APR-FR"' in page.text and "12 / 12" in page.text and "ctr-anderlecht" in page.text
        assert "Waiting for the course (any session) : NL 3" in page.text
        form = {
            "csrf": csrf_of(page.text),
            "course": "EXCEL",
            "session_id": "EXCEL-MAY-FR",
            "starts_on": "2026-05-04",
            "ends_on": "2026-06-26",
            "capacity": "10",
            "mode": "online",
            "language": "fr",
        }
        planned = await http.post("/console/en/sessions", data=form)
        assert planned.status_code == 303 and planned.headers["location"] == "/console/en/sessions?course=EXCEL&done=planned"
        backwards = await http.post("/console/en/sessions", data=form | {"session_id": "X", "ends_on": "2026-05-01"})
        assert backwards.status_code == 422 and "ends_on 2026-05-01 is before starts_on 2026-05-04" in backwards.text
        missing = await http.post("/console/en/sessions", data=form | {"session_id": "Y", "capacity": ""})
        assert missing.status_code == 422 and "capacity" in missing.text
        forged = await http.post("/console/en/sessions", data=form | {"csrf": "forged"})
        assert forged.status_code == 403
    assert [s.session_id for s in seats.sessions] == ["EXCEL-APR-FR", "EXCEL-MAY-FR"]


async def test_an_advisor_without_the_supervisors_role_is_refused_the_page() -> None:
    provider = FakeProvider("adv-1")
    async with browser(app_with(provider, FakeSeats())) as http:
        await sign_in(http, provider, "/console/fr/sessions")
        page = await http.get("/console/fr/sessions")
    assert page.status_code == 403
