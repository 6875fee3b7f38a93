"""The advisor's console without a browser: PKCE, CSRF and sessions as pure pieces, then the whole sign-in
(login, the provider's redirect back, the code exchange with the PKCE verifier) against an in-memory
provider, and the desk's forms over a fake desk."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from routing.case import CallFacts
from routing.console import COOKIE, console_router, desk_console
from routing.console.i18n import ENUM_KEYS
from routing.console.web import WORDS
from routing.desk import BoardItem, DeskError, QueueItem
from schemas import ContactOutcome, Event, Language, QualificationLevel, Target
from services.console import ConsoleSession, InMemorySessions, OidcClient, install_forbidden_page, sign_in_router
from services.console.sessions import csrf_matches, pkce_challenge, pkce_verifier
from services.settings import AuthSettings
from tests.identity_provider import AUDIENCE, ISSUER, SignIn
from tests.realm import DEMO_USERS

pytestmark = pytest.mark.unit

SIGN_IN = SignIn()


# --- the pieces ------------------------------------------------------------------------------------


def test_the_pkce_challenge_is_rfc_7636s_worked_example() -> None:
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_pkce_verifier_is_long_random_and_unreserved() -> None:
    verifiers = {pkce_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    assert all(43 <= len(v) <= 128 and re.fullmatch(r"[A-Za-z0-9._~-]+", v) for v in verifiers)


@pytest.mark.parametrize(("sent", "ok"), [("token", True), ("tokem", False), ("", False), (None, False)])
def test_csrf_matches_only_the_sessions_token(sent: str | None, ok: bool) -> None:
    assert csrf_matches("token", sent) is ok
    assert not csrf_matches("", "")


async def test_sessions_expire_and_are_kept_under_a_hash_of_their_id() -> None:
    store = InMemorySessions()
    now = datetime.now(UTC)
    await store.save("the-id", ConsoleSession(csrf="c", expires_at=now + timedelta(minutes=1)))
    assert "the-id" not in store.sessions
    assert await store.find("the-id", now) is not None
    assert await store.find("the-id", now + timedelta(minutes=2)) is None
    await store.delete("the-id")
    assert await store.find("the-id", now) is None


def test_every_language_has_every_key() -> None:
    keys = WORDS.keys(Language.FR)
    assert set(ENUM_KEYS) <= keys
    assert all(WORDS.keys(language) == keys for language in Language)


# --- the flow --------------------------------------------------------------------------------------


class FakeProvider:
    """Discovery, the authorization endpoint's result (a code), and the token endpoint, which gives the
    token only for the code and the verifier whose challenge was sent with it."""

    def __init__(self, user: str, *, refreshable: bool = False) -> None:
        self.user = user
        self.challenges: dict[str, str] = {}
        self.exchanges: list[dict[str, str]] = []
        self.refreshable = refreshable
        self.refresh_tokens: set[str] = set()

    def authorize(self, url: str) -> tuple[str, str]:
        """What the login page does once the user signed in: (code, state) for the redirect back."""
        query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
        assert query["code_challenge_method"] == "S256" and query["client_id"] == "formation-console"
        code = f"code-{len(self.challenges)}"
        self.challenges[code] = query["code_challenge"]
        return code, query["state"]

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
                    "token_endpoint": f"{ISSUER}/protocol/openid-connect/token",
                    "end_session_endpoint": f"{ISSUER}/protocol/openid-connect/logout",
                },
            )
        form = {name: values[0] for name, values in parse_qs(request.content.decode()).items()}
        self.exchanges.append(form)
        now = datetime.now(UTC)
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return httpx.Response(400, json={"error": "invalid_grant"})
            return self._tokens(now, refresh=f"refresh-{len(self.exchanges)}")
        if self.challenges.pop(form.get("code", ""), None) != pkce_challenge(form.get("code_verifier", "")):
            return httpx.Response(400, json={"error": "invalid_grant"})
        return self._tokens(now, refresh=f"refresh-{len(self.exchanges)}" if self.refreshable else None)

    def _tokens(self, issued_at: datetime, refresh: str | None = None) -> httpx.Response:
        roles = sorted(DEMO_USERS[self.user])
        token = SIGN_IN.provider.token(
            issued_at, roles=tuple(roles), sub=self.user, preferred_username=self.user, azp="formation-console"
        )
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": 300, "id_token": "id"}
        if refresh:
            self.refresh_tokens.add(refresh)
            body |= {"refresh_token": refresh, "refresh_expires_in": 1800}
        return httpx.Response(200, json=body)


def _item(request_id: str, status: str, **more: Any) -> QueueItem:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {"priority": 72} | more
    return QueueItem(
        request_id=request_id,
        status=status,  # type: ignore[arg-type]  # a literal the test spells as a str
        deadline=now + timedelta(hours=5),
        deadline_in_s=5 * 3600,
        deadline_in="5 h 00 min",
        channel="web",
        language="fr",
        target="advisors",
        name="Awa Diallo",
        phone="+32470123456",
        email=None,
        need="Excel",
        requested_course=None,
        attempts=0,
        **fields,
    )


class FakeDesk:
    """r-1 offered and r-2 assigned to adv-1, r-2 handed over by a partner and scored again with a fact
    said on the call; r-4 assigned and waiting for its partner's answer. Records what each action was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def queue(self, worker_id: str) -> list[QueueItem]:
        self.calls.append(("queue", worker_id))
        rescored = {
            "priority": 117,
            "score": 115,
            "priority_parts": {"qualification": 25, "no_computer": 15, "long_unemployment": 45, "phone": 30},
            "fact_sources": {"has_computer": "desk", "unemployed_since": "phone_ivr"},
            "partner": "mission locale",
        }
        asked = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
        waiting = {"partner": "cité des métiers", "waiting_for_partner": True, "partner_asked_at": asked}
        return [_item("r-1", "offered"), _item("r-2", "assigned", **rescored), _item("r-4", "assigned", **waiting)]

    async def record_facts(self, request_id: str, *, facts: CallFacts, recorded_by: str, for_team: bool) -> dict[str, Any]:
        self.calls.append(("facts", request_id, facts, recorded_by, for_team))
        return {}

    async def ask_partner(self, request_id: str, *, worker_id: str, question: str) -> Event:
        self.calls.append(("ask", request_id, worker_id, question))
        if request_id == "r-1":
            raise DeskError(f"request {request_id} was not handed over by a partner: there is nobody to ask")
        return None  # type: ignore[return-value]  # the console does not read it

    async def record_partner_answer(self, request_id: str, *, answer: str, recorded_by: str, for_team: bool) -> Event:
        self.calls.append(("answer", request_id, answer, recorded_by, for_team))
        return None  # type: ignore[return-value]  # the console does not read it

    async def decisions(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        decision = {
            "rule_id": "advisors-default",
            "explanation": "Besoin de conseil : conseillers formation.",
            "explanation_fr": "Besoin de conseil : conseillers formation.",
            "priority": 70,
            "priority_parts": {"long_unemployment": 20, "phone": 30, "from_a_newer_rule_set": 5},
        }
        return dict.fromkeys(request_ids, decision)

    async def courses(self) -> list[dict[str, Any]]:
        return [{"code": "BUR-EXCEL-01", "title": "Excel"}]

    async def accept(self, request_id: str, worker_id: str) -> dict[str, str]:
        self.calls.append(("accept", request_id, worker_id))
        if request_id != "r-1":
            raise DeskError(f"request {request_id} is not offered to {worker_id}")
        return {}

    async def decline(self, request_id: str, worker_id: str) -> dict[str, Any]:
        self.calls.append(("decline", request_id, worker_id))
        return {}

    async def record_outcome(self, request_id: str, **fields: Any) -> list[Event]:
        self.calls.append(("outcome", request_id, fields))
        return []

    # The supervisor's view: r-3 breached and queued with nobody, r-1 offered to adv-1.
    async def worker(self, worker_id: str) -> Any:
        return SimpleNamespace(team=Target.ESPACES_NUMERIQUES) if worker_id == "adv-sup" else None

    async def workers(self, team: Target | None = None) -> list[dict[str, Any]]:
        return [
            {"worker_id": "adv-1", "display_name": "Awa", "team": "espaces_numeriques"},
            {"worker_id": "adv-2", "display_name": "Bram", "team": "advisors"},
        ]

    async def team_board(self, team: Target) -> list[BoardItem]:
        self.calls.append(("board", team))
        now = datetime.now(UTC)
        common: dict[str, Any] = {"waiting_since": now - timedelta(hours=50), "priority": 80, "escalation": "team"}
        ranks = iter(range(1, 3))
        return [
            BoardItem(
                request_id="r-3",
                status="queued",
                worker_id=None,
                urgency="breached",
                escalated_to="adv-sup",
                programme="admitted",
                score=75,
                priority_parts={"qualification": 40, "no_internet": 35},
                fact_sources={"qualification_level": "email_text", "has_internet": "desk"},
                deadline=now - timedelta(hours=2),
                deadline_in_s=-7200,
                deadline_in="late by 2 h 00 min",
                channel="phone",
                language="fr",
                name="Chloé",
                attempts=0,
                dispatch_rank=next(ranks),
                **common,
            ),
            BoardItem(
                request_id="r-1",
                status="offered",
                worker_id="adv-1",
                urgency="on_time",
                deadline=now + timedelta(hours=30),
                deadline_in_s=30 * 3600,
                deadline_in="30 h 00 min",
                channel="web",
                language="fr",
                name="Awa Diallo",
                attempts=0,
                dispatch_rank=next(ranks),
                **common,
            ),
        ]

    async def programme(self, year: int | None = None) -> dict[str, Any]:
        return {"year": 2026, "quota": 350, "admitted": 12, "suspended": False, "open": True, "waitlist": []}

    async def suspend_programme(self, year: int | None = None) -> dict[str, Any]:
        self.calls.append(("suspend",))
        return {}

    async def reassign(self, request_id: str, *, to_worker: str | None, reason: str, actor: str) -> dict[str, Any]:
        self.calls.append(("reassign", request_id, to_worker, reason, actor))
        return {}


def console_app(provider: FakeProvider, desk: FakeDesk) -> tuple[FastAPI, InMemorySessions]:
    sessions = InMemorySessions()
    oidc = OidcClient(
        AuthSettings(issuer=ISSUER, audience=AUDIENCE),
        "formation-console",
        http=httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)),
    )
    app = FastAPI()
    app.include_router(sign_in_router)
    app.include_router(console_router)
    install_forbidden_page(app)
    app.state.runtime = SimpleNamespace(app_state={"console": desk_console(sessions, oidc), "desk": desk})
    app.state.token_verifier = SIGN_IN.verifier
    return app, sessions


def browser(app: FastAPI, host: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


async def sign_in(http: httpx.AsyncClient, provider: FakeProvider, page: str = "/console/fr/") -> httpx.Response:
    """From a console page to signed in, as a browser would follow the redirects."""
    to_login = await http.get(page)
    assert to_login.status_code == 303 and to_login.headers["location"].startswith("/console/login?")
    to_provider = await http.get(to_login.headers["location"])
    assert to_provider.status_code == 303
    code, state = provider.authorize(to_provider.headers["location"])
    return await http.get("/console/callback", params={"code": code, "state": state})


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def test_an_advisor_signs_in_sees_their_queue_and_accepts() -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        back = await sign_in(http, provider, "/console/nl/")
        assert back.status_code == 303 and back.headers["location"] == "/console/nl/"
        page = await http.get("/console/nl/")
        assert page.status_code == 200
        assert 'lang="nl"' in page.text and "Mijn belwachtrij" in page.text
        assert "Besoin de conseil" in page.text and "langdurige werkloosheid : +20" in page.text and "wachttijd" in page.text
        assert "from_a_newer_rule_set : +5" in page.text, "a part without words is shown by its key, not hidden"
        accepted = await http.post("/console/nl/requests/r-1/accept", data={"csrf": csrf_of(page.text)})
        assert accepted.status_code == 303 and accepted.headers["location"] == "/console/nl/?done=accepted"
    assert ("accept", "r-1", "adv-1") in desk.calls
    # The token was asked for with the verifier whose challenge went to the login page.
    assert provider.exchanges[0]["grant_type"] == "authorization_code" and provider.exchanges[0]["code_verifier"]


async def test_an_outcome_form_reaches_the_desk_use_case_as_the_signed_in_worker() -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        csrf = csrf_of((await http.get("/console/fr/")).text)
        form = {
            "csrf": csrf,
            "outcome": "no_answer",
            "notes": "messagerie",
            "retry_at": "2026-12-07T10:30",
            "worker_id": "adv-2",
            "qualification_level": "upper_secondary",
            "has_computer": "false",
            "has_internet": "",
            "unemployed_since": "2025-03-01",
        }
        saved = await http.post("/console/fr/requests/r-2/outcome", data=form)
    assert saved.status_code == 303
    ((_, request_id, fields),) = [call for call in desk.calls if call[0] == "outcome"]
    assert request_id == "r-2" and fields["worker_id"] == "adv-1"
    assert fields["outcome"] is ContactOutcome.NO_ANSWER and fields["notes"] == "messagerie"
    assert fields["retry_at"].utcoffset() == timedelta(hours=1)  # Brussels in December
    assert fields["facts"] == CallFacts(QualificationLevel.UPPER_SECONDARY, False, None, date(2025, 3, 1))


async def test_a_form_without_the_sessions_csrf_token_is_refused() -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        for data in ({}, {"csrf": "forged"}):
            refused = await http.post("/console/fr/requests/r-1/accept", data=data)
            assert refused.status_code == 403
    assert not [call for call in desk.calls if call[0] == "accept"]


async def test_a_desk_refusal_is_shown_in_the_pages_language() -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        csrf = csrf_of((await http.get("/console/en/")).text)
        refused = await http.post("/console/en/requests/r-9/accept", data={"csrf": csrf})
    assert refused.status_code == 409 and "Not possible" in refused.text


async def test_without_a_session_a_browser_is_sent_to_sign_in_not_answered_401() -> None:
    app, _ = console_app(FakeProvider("adv-1"), FakeDesk())
    async with browser(app) as http:
        page = await http.get("/console/en/")
        http.cookies.set(COOKIE, "made-up", domain="127.0.0.1", path="/console")
        post = await http.post("/console/en/requests/r-1/accept", data={"csrf": "x"})
    assert page.status_code == 303 and page.headers["location"] == "/console/login?lang=en&next=%2Fconsole%2Fen%2F"
    assert post.status_code == 303 and post.headers["location"].startswith("/console/login?lang=en")


async def test_a_worker_without_a_desk_role_is_refused() -> None:
    provider = FakeProvider("ops-1")
    app, _ = console_app(provider, FakeDesk())
    async with browser(app) as http:
        await sign_in(http, provider)
        assert (await http.get("/console/fr/")).status_code == 403


async def test_the_callback_refuses_a_state_that_is_not_this_browsers() -> None:
    provider = FakeProvider("adv-1")
    app, _ = console_app(provider, FakeDesk())
    async with browser(app) as http:
        to_provider = await http.get("/console/login")
        code, _ = provider.authorize(to_provider.headers["location"])
        refused = await http.get("/console/callback", params={"code": code, "state": "another"})
        assert refused.status_code == 400
        assert (await http.get("/console/fr/")).status_code == 303
    assert provider.exchanges == []


async def test_the_session_cookie_is_httponly_lax_secure_off_loopback_and_renewed_at_sign_in() -> None:
    provider = FakeProvider("adv-1")
    app, sessions = console_app(provider, FakeDesk())
    async with browser(app) as http:
        before = (await http.get("/console/login")).headers["set-cookie"]
        assert "HttpOnly" in before and "SameSite=lax" in before and "Path=/console" in before and "Secure" not in before
        pending_id = http.cookies[COOKIE]
        code, state = provider.authorize((await http.get("/console/login")).headers["location"])
        signed_in = await http.get("/console/callback", params={"code": code, "state": state})
        assert http.cookies[COOKIE] != pending_id
        assert "HttpOnly" in signed_in.headers["set-cookie"]
    async with browser(app, host="desk.example.be") as remote:
        assert "Secure" in (await remote.get("/console/login")).headers["set-cookie"]
    assert all(s.verifier is None for s in sessions.sessions.values() if s.signed_in)


async def test_the_page_to_return_to_is_only_ever_a_console_path() -> None:
    provider = FakeProvider("adv-1")
    app, _ = console_app(provider, FakeDesk())
    async with browser(app) as http:
        await http.get("/console/login", params={"next": "https://evil.example/console/"})
        code, state = provider.authorize(
            (await http.get("/console/login", params={"next": "//evil.example"})).headers["location"]
        )
        back = await http.get("/console/callback", params={"code": code, "state": state})
    assert back.headers["location"] == "/console/fr/"


async def test_signing_out_ends_the_session_here_and_at_the_provider() -> None:
    provider = FakeProvider("adv-1")
    app, sessions = console_app(provider, FakeDesk())
    async with browser(app) as http:
        await sign_in(http, provider)
        csrf = csrf_of((await http.get("/console/fr/")).text)
        assert (await http.post("/console/logout", data={"csrf": "forged", "lang": "fr"})).status_code == 403
        out = await http.post("/console/logout", data={"csrf": csrf, "lang": "fr"})
        assert out.status_code == 303 and out.headers["location"].startswith(f"{ISSUER}/protocol/openid-connect/logout?")
        assert "id_token_hint=id" in out.headers["location"]
        assert sessions.sessions == {}
        assert (await http.get("/console/fr/")).status_code == 303


def expire_access_tokens(sessions: InMemorySessions) -> None:
    """As if the access tokens' few minutes had passed: each session holds one issued an hour ago."""
    stale = SIGN_IN.provider.token(datetime.now(UTC) - timedelta(hours=1), roles=("advisor",), sub="adv-1")
    for key, session in sessions.sessions.items():
        sessions.sessions[key] = replace(session, access_token=stale)


async def test_an_expired_access_token_is_refreshed_and_the_session_goes_on() -> None:
    provider = FakeProvider("adv-1", refreshable=True)
    app, sessions = console_app(provider, FakeDesk())
    async with browser(app) as http:
        await sign_in(http, provider)
        expire_access_tokens(sessions)
        page = await http.get("/console/fr/")
        assert page.status_code == 200, "the expired access token was refreshed, not sent back to sign in"
        again = await http.get("/console/fr/")
        assert again.status_code == 200
    grants = [exchange["grant_type"] for exchange in provider.exchanges]
    assert grants == ["authorization_code", "refresh_token"], "refreshed once, then the new token holds"
    (session,) = sessions.sessions.values()
    assert session.refresh_token == "refresh-2"
    assert "Awa Diallo" in page.text


async def test_a_session_whose_refresh_is_refused_is_sent_to_sign_in() -> None:
    provider = FakeProvider("adv-1", refreshable=True)
    app, sessions = console_app(provider, FakeDesk())
    async with browser(app) as http:
        await sign_in(http, provider)
        expire_access_tokens(sessions)
        provider.refresh_tokens.clear()  # the provider ended the session (logout elsewhere, idle timeout)
        page = await http.get("/console/fr/")
    assert page.status_code == 303 and page.headers["location"].startswith("/console/login?")
    assert sessions.sessions == {}


async def test_a_signed_in_person_without_the_pages_role_gets_a_page_saying_so() -> None:
    provider = FakeProvider("adv-1")
    app, _ = console_app(provider, FakeDesk())
    async with browser(app) as http:
        await sign_in(http, provider)
        refused = await http.get("/console/nl/team")
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert "Met uw rol kunt u deze pagina niet openen." in refused.text


async def test_a_supervisor_lands_on_the_team_sees_the_breach_first_and_reassigns_it() -> None:
    provider, desk = FakeProvider("adv-sup"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        code, state = provider.authorize((await http.get("/console/login", params={"lang": "en"})).headers["location"])
        landed = await http.get("/console/callback", params={"code": code, "state": state})
        assert landed.headers["location"] == "/console/en/", "adv-sup is an advisor too: their own queue first"
        page = await http.get("/console/en/team")
        assert page.status_code == 200
        assert page.text.index('data-request-id="r-3"') < page.text.index('data-request-id="r-1"')
        assert 'data-urgency="breached"' in page.text and "1 late" in page.text
        assert ("board", Target.ESPACES_NUMERIQUES) in desk.calls, "the supervisor's own team by default"
        csrf = csrf_of(page.text)
        empty = await http.post("/console/en/team/requests/r-3/reassign", data={"csrf": csrf, "to_worker_id": "adv-2"})
        assert empty.status_code == 422, "a reassignment needs a reason"
        done = await http.post(
            "/console/en/team/requests/r-3/reassign",
            data={"csrf": csrf, "to_worker_id": "adv-2", "reason": "late, adv-2 is free", "team": "espaces_numeriques"},
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/console/en/team?team=espaces_numeriques&done=reassigned"
        forged = await http.post("/console/en/team/programme/suspend", data={"csrf": "forged"})
        assert forged.status_code == 403
    assert ("reassign", "r-3", "adv-2", "late, adv-2 is free", "adv-sup") in desk.calls
    assert ("suspend",) not in desk.calls


# --- the facts said on the call, the partner, the team's order -------------------------------------


def session_csrf(sessions: InMemorySessions) -> str:
    """The signed-in session's CSRF token, for one who may not open a page that shows it."""
    (session,) = [s for s in sessions.sessions.values() if s.signed_in]
    return session.csrf


async def test_a_card_shows_each_part_with_where_its_fact_came_from_and_the_partner_wait() -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider, "/console/en/")
        page = (await http.get("/console/en/")).text
        french = (await http.get("/console/fr/")).text
    r2 = page[page.index('data-request-id="r-2"') : page.index('data-request-id="r-4"')]
    assert "Priority 117" in r2
    assert "qualification level : +25 (source: not given)" in r2, "an unknown qualification's middle value"
    assert "no computer : +15 (source: said on the call)" in r2
    assert "long-term unemployment : +45 (source: phone voice menu)" in r2
    assert "phone call : +30</li>" in r2, "a part that reads the request itself has no source"
    assert "waiting : +2" in r2, "the ageing above the score"
    assert "Handed over by" in r2 and "/requests/r-2/partner-questions" in r2 and "partner-answers" not in r2
    r4 = page[page.index('data-request-id="r-4"') :]
    assert "Waiting for the partner since 04/12 10:30" in r4, "Brussels time"
    assert "long-term unemployment : +20</li>" in r4, "a case stored before sources were kept shows none"
    assert "/requests/r-4/partner-answers" in r4 and "partner-questions" not in r4
    r1 = page[page.index('data-request-id="r-1"') : page.index('data-request-id="r-2"')]
    assert "partner-questions" not in r1 and "/requests/r-1/facts" in r1
    assert "pas d'ordinateur : +15 (source : dit à l'appel)" in html.unescape(french)
    assert '<dd lang="fr">Excel</dd>' in page, "the person's own words carry their language"
    for outcome in ("wrong_number", "withdrawn"):
        assert f'<option value="{outcome}">' in page


async def test_the_facts_form_reaches_record_facts_as_the_signed_in_worker() -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        csrf = csrf_of((await http.get("/console/nl/")).text)
        form = {"csrf": csrf, "qualification_level": "", "has_computer": "false", "unemployed_since": "2024-01-15"}
        saved = await http.post("/console/nl/requests/r-2/facts", data=form)
        assert saved.status_code == 303 and saved.headers["location"] == "/console/nl/?done=facts"
        after = await http.get(saved.headers["location"])
    assert "Feiten opgeslagen" in after.text
    assert ("facts", "r-2", CallFacts(None, False, None, date(2024, 1, 15)), "adv-1", False) in desk.calls


async def test_a_supervisor_records_facts_for_the_team() -> None:
    provider, desk = FakeProvider("adv-sup"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        csrf = csrf_of((await http.get("/console/fr/")).text)
        await http.post("/console/fr/requests/r-2/facts", data={"csrf": csrf, "has_internet": "true"})
    assert ("facts", "r-2", CallFacts(has_internet=True), "adv-sup", True) in desk.calls


async def test_a_facts_form_without_a_fact_or_with_a_wrong_date_is_answered_with_the_error_on_its_field() -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        csrf = csrf_of((await http.get("/console/en/")).text)
        empty = await http.post("/console/en/requests/r-2/facts", data={"csrf": csrf, "has_computer": ""})
        wrong = await http.post("/console/en/requests/r-2/facts", data={"csrf": csrf, "unemployed_since": "2024-13-45"})
    assert empty.status_code == 422
    assert 'aria-describedby="fa-r-2-hint fa-r-2-facts-error"' in empty.text
    assert '<p id="fa-r-2-facts-error" class="error" role="alert">Give at least one fact.</p>' in empty.text
    assert wrong.status_code == 422
    field = 'id="fa-r-2-unemployed_since" name="unemployed_since" type="date" value="2024-13-45" aria-invalid="true" '
    assert field in wrong.text
    assert 'aria-describedby="fa-r-2-unemployed_since-error"' in wrong.text and "Not a valid value." in wrong.text
    assert 'id="fa-r-1-unemployed_since" name="unemployed_since" type="date" value="">' in wrong.text, "other cards untouched"
    assert not [call for call in desk.calls if call[0] == "facts"]


async def test_asking_the_partner_and_recording_the_answer_reach_the_desk() -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        csrf = csrf_of((await http.get("/console/fr/")).text)
        asked = await http.post("/console/fr/requests/r-2/partner-questions", data={"csrf": csrf, "question": " Son CV ? "})
        assert asked.headers["location"] == "/console/fr/?done=asked"
        answered = await http.post("/console/fr/requests/r-4/partner-answers", data={"csrf": csrf, "answer": "CV envoyé"})
        assert answered.headers["location"] == "/console/fr/?done=answered"
        blank = await http.post("/console/fr/requests/r-4/partner-answers", data={"csrf": csrf, "answer": "  "})
        nobody = await http.post("/console/fr/requests/r-1/partner-questions", data={"csrf": csrf, "question": "?"})
    assert ("ask", "r-2", "adv-1", "Son CV ?") in desk.calls
    assert ("answer", "r-4", "CV envoyé", "adv-1", False) in desk.calls
    assert blank.status_code == 422 and 'aria-describedby="p-r-4-answer-error"' in blank.text
    assert "Écrivez un texte" in blank.text
    assert nobody.status_code == 409 and "nobody to ask" in nobody.text


@pytest.mark.parametrize("form", ["facts", "partner-questions", "partner-answers"])
async def test_the_new_forms_refuse_a_missing_or_forged_csrf_token(form: str) -> None:
    provider, desk = FakeProvider("adv-1"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        fields = {"has_computer": "true", "question": "?", "answer": "!"}
        for csrf in ({}, {"csrf": "forged"}):
            refused = await http.post(f"/console/fr/requests/r-2/{form}", data=fields | csrf)
            assert refused.status_code == 403 and "Le formulaire a expiré" in refused.text
    assert [call[0] for call in desk.calls] == []


@pytest.mark.parametrize("form", ["facts", "partner-questions", "partner-answers"])
async def test_the_new_forms_refuse_a_role_without_desk_work(form: str) -> None:
    provider, desk = FakeProvider("ops-1"), FakeDesk()
    app, sessions = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        fields = {"csrf": session_csrf(sessions), "has_computer": "true", "question": "?", "answer": "!"}
        refused = await http.post(f"/console/en/requests/r-2/{form}", data=fields)
    assert refused.status_code == 403 and "Your role does not let you open this page." in refused.text
    assert desk.calls == []


async def test_the_team_page_shows_the_dispatchers_order_the_parts_the_programme_and_the_escalation() -> None:
    provider, desk = FakeProvider("adv-sup"), FakeDesk()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider)
        page = (await http.get("/console/en/team")).text
    r3 = page[page.index('data-request-id="r-3"') : page.index('data-request-id="r-1"')]
    assert 'data-rank="1"' in r3 and page.index('data-rank="1"') < page.index('data-rank="2"')
    assert "escalated to adv-sup" in r3 and "Programme: admitted" in r3
    assert "qualification level : +40 (source: e-mail text)" in r3
    assert "no internet : +35 (source: said on the call)" in r3
    assert "waiting : +5" in r3, "80 effective over a score of 75"
    assert "waiting :" not in page[page.index('data-request-id="r-1"') :], "no score, no ageing made up"
    assert "In the order the dispatcher offers them" in page
    r1 = page[page.index('data-request-id="r-1"') :]
    assert "escalated to" not in r1 and "Programme:" not in r1


class DeskWithAChosenWindow(FakeDesk):
    """r-1 assigned with a window the person chose beyond the promise, and a contact they corrected."""

    async def queue(self, worker_id: str) -> list[QueueItem]:
        self.calls.append(("queue", worker_id))
        start = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)  # Tuesday 9:00 in Brussels
        chosen = {
            "callback_slot_start": start,
            "callback_slot_end": start + timedelta(hours=3),
            "callback_slot_through": "status_page",
            "scheduled": True,
            "deadline_by_choice": True,
            "promised_deadline": start - timedelta(days=1),
            "unverified_contact": {"phone": "+32470111111", "email": None, "name": None},
        }
        return [_item("r-1", "assigned", **chosen)]


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("fr", ["Rappel souhaité : mardi 9:00–12:00 (08/12)", "proposé à l'ouverture du créneau", "pas encore confirmées"]),
        ("nl", ["Gewenst terugbelmoment: dinsdag 9:00–12:00 (08/12)", "geen vertraging", "nog niet bevestigd"]),
        ("en", ["Callback wanted: Tuesday 9:00–12:00 (08/12)", "not a delay", "not yet confirmed"]),
    ],
)
async def test_the_queue_shows_the_window_the_person_chose_and_their_unverified_contact(language: str, words: list[str]) -> None:
    provider, desk = FakeProvider("adv-1"), DeskWithAChosenWindow()
    app, _ = console_app(provider, desk)
    async with browser(app) as http:
        await sign_in(http, provider, f"/console/{language}/")
        page = html.unescape((await http.get(f"/console/{language}/")).text)
    for said in words:
        assert said in page
    assert "+32470111111" in page
