"""The page of course sessions in the console, over a small in-memory stand-in for `CourseSeats`:
signed in as a supervisor, the page lists a course's sessions, plans, changes and cancels them from
its forms; anyone on the desk records that a person completed or left their course; an advisor sees
no supervisor's form and is refused if they send one; a form the desk cannot take comes back with
each problem beside its field."""

from __future__ import annotations

import re
from datetime import date, datetime
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from routing.case import DeskError
from routing.console import desk_console
from routing.console.sessions_page import WORDS, sessions_page_router
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
        self.finished: list[tuple[str, bool, str | None]] = []

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

    def _find(self, session_id: str) -> CourseSession:
        found = next((s for s in self.sessions if s.session_id == session_id), None)
        if found is None:
            raise DeskError(f"session {session_id!r} is unknown", status=404)
        return found

    async def change_session(self, session_id: str, plan: SessionPlan) -> CourseSession:
        current = self._find(session_id)
        course = self.catalogue.course(current.course_code)
        if problems := session_problems(plan, course, course_code=current.course_code, enrolled=current.enrolled):
            raise InvalidSession(problems)
        changed = CourseSession(
            **plan.model_dump(), session_id=session_id, course_code=current.course_code, enrolled=current.enrolled
        )
        self.sessions[self.sessions.index(current)] = changed
        return changed

    async def cancel_session(self, session_id: str) -> None:
        if self._find(session_id).enrolled:
            raise DeskError(f"session {session_id} has people enrolled: record their completion or move them first")
        self.sessions = [s for s in self.sessions if s.session_id != session_id]

    async def finish(
        self, request_id: str, *, completed: bool, at: datetime | None = None, reason: str | None = None
    ) -> list[object]:
        if request_id not in ("req-1", "req-2"):
            raise DeskError(f"request {request_id} has no enrolment", status=404)
        self.finished.append((request_id, completed, reason))
        return []


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


def error_of(page: str, field_id: str) -> str:
    """The message tied to a field: the element its `aria-describedby` names."""
    described = re.search(rf'id="{re.escape(field_id)}"[^>]*aria-invalid="true" aria-describedby="([^"]+)"', page)
    assert described, f"{field_id} is not marked invalid"
    message = re.search(rf'<p id="{re.escape(described.group(1))}" class="error" role="alert">([^<]*)</p>', page)
    assert message
    return message.group(1)


async def test_a_supervisor_changes_and_cancels_a_session_with_problems_beside_their_fields() -> None:
    provider, seats = FakeProvider("adv-sup"), FakeSeats()
    seats.sessions.append(
        CourseSession(
            session_id="EXCEL-JUN-FR",
            course_code="EXCEL",
            starts_on=date(2026, 6, 1),
            ends_on=date(2026, 6, 30),
            capacity=8,
            mode="online",
            language=Language.FR,
        )
    )
    async with browser(app_with(provider, seats)) as http:
        await sign_in(http, provider, "/console/fr/sessions?course=EXCEL")
        page = await http.get("/console/fr/sessions", params={"course": "EXCEL"})
        csrf = csrf_of(page.text)
        assert 'action="/console/fr/sessions/EXCEL-APR-FR/change"' in page.text
        assert 'id="change-EXCEL-APR-FR-capacity" name="capacity" type="number" min="1" required value="12"' in page.text
        form = {
            "csrf": csrf,
            "course": "EXCEL",
            "starts_on": "2026-04-01",
            "ends_on": "2026-05-27",
            "capacity": "15",
            "mode": "centre",
            "centre_id": "ctr-anderlecht",
            "language": "fr",
        }
        changed = await http.post("/console/fr/sessions/EXCEL-APR-FR/change", data=form)
        assert changed.status_code == 303 and changed.headers["location"] == "/console/fr/sessions?course=EXCEL&done=changed"
        assert (await http.get(changed.headers["location"])).text.count(WORDS[Language.FR]["changed"]) == 1

        below = await http.post("/console/fr/sessions/EXCEL-APR-FR/change", data=form | {"capacity": "10"})
        assert below.status_code == 422
        assert error_of(below.text, "change-EXCEL-APR-FR-capacity") == "capacity 10 is below the 12 people enrolled"
        assert 'value="10"' in below.text  # the form comes back as sent
        no_centre = await http.post("/console/fr/sessions/EXCEL-APR-FR/change", data=form | {"centre_id": ""})
        assert error_of(no_centre.text, "change-EXCEL-APR-FR-centre") == "a session in a centre needs centre_id"
        garbled = await http.post("/console/fr/sessions/EXCEL-APR-FR/change", data=form | {"starts_on": "soon"})
        assert garbled.status_code == 422
        assert error_of(garbled.text, "change-EXCEL-APR-FR-start") == WORDS[Language.FR]["field_invalid"]

        busy = await http.post("/console/fr/sessions/EXCEL-APR-FR/cancel", data={"csrf": csrf, "course": "EXCEL"})
        assert busy.status_code == 409 and "has people enrolled" in busy.text
        assert 'aria-describedby="cancel-EXCEL-APR-FR-hint cancel-EXCEL-APR-FR-error"' in busy.text
        cancelled = await http.post("/console/fr/sessions/EXCEL-JUN-FR/cancel", data={"csrf": csrf, "course": "EXCEL"})
        assert cancelled.status_code == 303 and cancelled.headers["location"].endswith("done=cancelled")
        forged = await http.post("/console/fr/sessions/EXCEL-APR-FR/cancel", data={"csrf": "forged", "course": "EXCEL"})
        assert forged.status_code == 403
    assert [(s.session_id, s.capacity) for s in seats.sessions] == [("EXCEL-APR-FR", 15)]


@pytest.mark.parametrize("user", ["adv-1", "adv-sup"])
async def test_anyone_on_the_desk_records_a_completion_or_a_drop_out(user: str) -> None:
    provider, seats = FakeProvider(user), FakeSeats()
    async with browser(app_with(provider, seats)) as http:
        await sign_in(http, provider, "/console/nl/sessions")
        page = await http.get("/console/nl/sessions", params={"course": "EXCEL"})
        assert page.status_code == 200
        csrf = csrf_of(page.text)
        done = await http.post("/console/nl/enrolments/completed", data={"csrf": csrf, "course": "EXCEL", "request_id": "req-1"})
        assert done.status_code == 303 and done.headers["location"] == "/console/nl/sessions?course=EXCEL&done=finished_completed"
        left = {"csrf": csrf, "course": "EXCEL", "request_id": "req-2", "reason": "found_work"}
        assert (await http.post("/console/nl/enrolments/abandoned", data=left)).status_code == 303

        unknown = await http.post(
            "/console/nl/enrolments/completed", data={"csrf": csrf, "course": "EXCEL", "request_id": "req-9"}
        )
        assert unknown.status_code == 404
        assert error_of(unknown.text, "finish-completed-request") == "request req-9 has no enrolment"
        no_reason = await http.post("/console/nl/enrolments/abandoned", data=left | {"reason": ""})
        assert no_reason.status_code == 422
        assert error_of(no_reason.text, "finish-abandoned-reason") == WORDS[Language.NL]["field_invalid"]
        assert 'value="req-2"' in no_reason.text
        made_up = await http.post("/console/nl/enrolments/abandoned", data=left | {"reason": "bored"})
        assert error_of(made_up.text, "finish-abandoned-reason") == WORDS[Language.NL]["field_invalid"]
        forged = await http.post("/console/nl/enrolments/completed", data={"csrf": "x", "request_id": "req-1"})
        assert forged.status_code == 403
    assert seats.finished == [("req-1", True, None), ("req-2", False, "found_work")]


async def test_an_advisor_sees_no_supervisors_form_and_is_refused_if_they_send_one() -> None:
    provider, seats = FakeProvider("adv-1"), FakeSeats()
    async with browser(app_with(provider, seats)) as http:
        await sign_in(http, provider, "/console/fr/sessions")
        page = await http.get("/console/fr/sessions", params={"course": "EXCEL"})
        assert page.status_code == 200 and 'data-session-id="EXCEL-APR-FR"' in page.text
        # The masthead links the page to everyone on the desk, the team's page only to supervisors.
        assert '<a href="/console/fr/sessions" aria-current="page">Sessions</a>' in page.text
        assert 'href="/console/fr/team"' not in page.text
        assert "/change" not in page.text and "/cancel" not in page.text and 'id="plan"' not in page.text
        csrf = csrf_of(page.text)
        refused = await http.post("/console/fr/sessions/EXCEL-APR-FR/cancel", data={"csrf": csrf, "course": "EXCEL"})
        assert refused.status_code == 403
        planned = await http.post("/console/fr/sessions", data={"csrf": csrf, "course": "EXCEL"})
        assert planned.status_code == 403
    assert [s.session_id for s in seats.sessions] == ["EXCEL-APR-FR"]


def test_every_language_has_every_word_of_the_page() -> None:
    assert {lang: set(words) for lang, words in WORDS.items()} == {lang: set(WORDS[Language.FR]) for lang in WORDS}
