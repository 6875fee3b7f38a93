"""The certification staff's console without a browser: the sign-in against an in-memory provider, then
the pages and forms over the real use cases on in-memory repositories (`tests.certification_fakes`),
with results and revocations recorded by a fake (the real `Awards` keeps credentials in MongoDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from certification.app import create_app
from certification.certifications import load_certifications
from certification.console import COOKIE, console_router, staff_console
from certification.console.i18n import ENUM_KEYS
from certification.console.web import WORDS
from certification.errors import Unknown
from certification.seating import CentreState
from certification.settings import CertificationSettings
from schemas import Language
from services.auth import declared_policies
from services.clock import FixedClock
from services.console import InMemorySessions, OidcClient, install_forbidden_page, sign_in_router
from services.settings import AuthSettings
from tests.certification_fakes import FakeCertification, fake_certification
from tests.factories import exam_requested
from tests.identity_provider import AUDIENCE, ISSUER
from tests.unit.test_console import SIGN_IN, FakeProvider, browser, csrf_of, sign_in

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
EXAM_DAY = datetime(2026, 12, 14, 8, 30, tzinfo=UTC)  # 09:30 in Brussels


class FakeAwards:
    """Records results and revocations as `Awards` is asked them; one credential, `cred-1`, exists."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.emails: list[str | None] = []

    async def record_result(
        self, session_id: str, *, person_id: str, passed: bool, score: float | None, email: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("result", session_id, person_id, passed, score))
        self.emails.append(email)
        return {"session_id": session_id, "person_id": person_id, "credential_id": "cred-1" if passed else None}

    async def revoke(self, credential_id: str, reason: str) -> dict[str, Any]:
        if credential_id != "cred-1":
            raise Unknown(f"credential {credential_id} is unknown")
        self.calls.append(("revoke", credential_id, reason))
        return {"credential_id": credential_id, "status": "revoked"}


async def closed_centre_with_waiting_candidates(cert: FakeCertification) -> None:
    await cert.seats.put_centre("ctr-1", state=CentreState.CLOSED, name="Centre d'Anderlecht", address="Rue Exemple 1")
    await cert.seats.add_session(
        session_id="ses-dec", centre_id="ctr-1", certifications=["MOS-EXCEL"], starts_at=EXAM_DAY, seats=2
    )
    for person in ("p-1", "p-2", "p-3"):
        await cert.candidates.on_exam_requested(exam_requested(person))


def console_app(provider: FakeProvider, cert: FakeCertification, awards: FakeAwards) -> FastAPI:
    oidc = OidcClient(
        AuthSettings(issuer=ISSUER, audience=AUDIENCE),
        "formation-console",
        http=httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)),
    )
    service = SimpleNamespace(certifications=load_certifications(), seats=cert.seats, candidates=cert.candidates, awards=awards)
    app = FastAPI()
    app.include_router(sign_in_router)
    app.include_router(console_router)
    install_forbidden_page(app)
    app.state.runtime = SimpleNamespace(app_state={"console": staff_console(InMemorySessions(), oidc), "service": service})
    app.state.token_verifier = SIGN_IN.verifier
    return app


@pytest.fixture
def cert() -> FakeCertification:
    return fake_certification(FixedClock(NOW), offer_window=timedelta(hours=48))


def test_every_language_has_every_key() -> None:
    keys = WORDS.keys(Language.FR)
    assert set(ENUM_KEYS) <= keys
    assert all(WORDS.keys(language) == keys for language in Language)


async def test_staff_sign_in_see_centres_and_sessions_and_open_a_centre(cert: FakeCertification) -> None:
    await closed_centre_with_waiting_candidates(cert)
    provider = FakeProvider("cert-1")
    app = console_app(provider, cert, FakeAwards())
    async with browser(app) as http:
        back = await sign_in(http, provider, "/console/en/")
        assert back.status_code == 303 and back.headers["location"] == "/console/en/"
        assert COOKIE in back.headers["set-cookie"]
        page = await http.get("/console/en/")
        assert page.status_code == 200 and 'lang="en"' in page.text
        assert "Centre d&#39;Anderlecht" in page.text and 'data-state="closed"' in page.text
        assert "ses-dec" in page.text and "14/12/2026 09:30" in page.text, "times are Brussels time"
        waiting = await http.get("/console/en/seats")
        assert "MOS-EXCEL" in waiting.text and "p-3" in waiting.text and "training centres closed" in waiting.text

        opened = await http.post("/console/en/centres", data={"csrf": csrf_of(page.text), "centre_id": "ctr-1", "state": "open"})
        assert opened.status_code == 303 and opened.headers["location"] == "/console/en/?done=centre_open&offers=2"
        after = await http.get(opened.headers["location"])
        assert 'data-state="open"' in after.text
        assert 'role="status">Centre opened.' in after.text and "2 seat(s) offered" in after.text
        offers = await http.get("/console/en/seats")
    assert (await cert.seats.list_centres())[0].state is CentreState.OPEN
    # The two offers, each with its deadline (48 hours after now, in Brussels time).
    assert offers.text.count("data-offer-id=") == 2 and "03/12/2026 09:00" in offers.text


async def test_staff_add_a_session_in_brussels_time(cert: FakeCertification) -> None:
    await cert.seats.put_centre("ctr-1", state=CentreState.OPEN, name="Centre", address="Rue Exemple 1")
    provider = FakeProvider("cert-1")
    app = console_app(provider, cert, FakeAwards())
    async with browser(app) as http:
        await sign_in(http, provider)
        csrf = csrf_of((await http.get("/console/fr/")).text)
        form = {
            "csrf": csrf,
            "centre_id": "ctr-1",
            "certifications": ["MOS-WORD", "MOS-EXCEL"],
            "starts_at": "2026-12-15T13:00",
            "seats": "12",
            "session_id": "ses-pm",
        }
        added = await http.post("/console/fr/sessions", data=form)
        assert added.status_code == 303 and added.headers["location"] == "/console/fr/?done=session_added&offers=0"
        unknown = await http.post("/console/fr/sessions", data={**form, "centre_id": "ctr-none", "session_id": "ses-x"})
        assert unknown.status_code == 404 and 'lang="fr"' in unknown.text and "Action impossible" in unknown.text
        invalid = await http.post("/console/fr/sessions", data={**form, "seats": "0", "session_id": "ses-y"})
        assert invalid.status_code == 422 and "seats" in invalid.text
        no_start = await http.post("/console/fr/sessions", data={**form, "starts_at": "demain", "session_id": "ses-z"})
        assert no_start.status_code == 422 and "starts_at" in no_start.text
    (session,) = await cert.seats.list_sessions()
    assert session.certifications == ("MOS-WORD", "MOS-EXCEL") and session.seats == 12
    assert session.starts_at == datetime(2026, 12, 15, 12, 0, tzinfo=UTC)


async def test_staff_record_a_result_and_revoke_a_credential(cert: FakeCertification) -> None:
    await closed_centre_with_waiting_candidates(cert)
    provider, awards = FakeProvider("cert-1"), FakeAwards()
    app = console_app(provider, cert, awards)
    async with browser(app) as http:
        await sign_in(http, provider, "/console/nl/results")
        page = await http.get("/console/nl/results")
        assert page.status_code == 200 and "Een resultaat registreren" in page.text and "ses-dec" in page.text
        csrf = csrf_of(page.text)
        assert 'name="email" type="email"' in page.text
        form = {
            "csrf": csrf,
            "session_id": "ses-dec",
            "person_id": "p-1",
            "passed": "true",
            "score": "812",
            "email": " Amina@Example.org ",
        }
        recorded = await http.post("/console/nl/results", data=form)
        assert recorded.status_code == 303
        assert recorded.headers["location"] == "/console/nl/results?done=result_passed&credential=cred-1"
        assert "Certificaat uitgereikt: cred-1" in (await http.get(recorded.headers["location"])).text
        revoked = await http.post(
            "/console/nl/credentials/revoke", data={"csrf": csrf, "credential_id": "cred-1", "reason": "Fout uitgereikt"}
        )
        assert revoked.status_code == 303 and revoked.headers["location"] == "/console/nl/results?done=revoked"
        unknown = await http.post(
            "/console/nl/credentials/revoke", data={"csrf": csrf, "credential_id": "cred-none", "reason": "?"}
        )
        assert unknown.status_code == 404 and "Niet mogelijk: credential cred-none is unknown" in unknown.text
        no_reason = await http.post("/console/nl/credentials/revoke", data={"csrf": csrf, "credential_id": "cred-1"})
        assert no_reason.status_code == 422 and "reason" in no_reason.text
    assert awards.calls == [("result", "ses-dec", "p-1", True, 812.0), ("revoke", "cred-1", "Fout uitgereikt")]
    assert awards.emails == ["Amina@Example.org"]  # passed on for the holder's hash (which lower-cases it)


async def test_a_form_without_the_sessions_csrf_token_is_refused(cert: FakeCertification) -> None:
    await closed_centre_with_waiting_candidates(cert)
    provider, awards = FakeProvider("cert-1"), FakeAwards()
    app = console_app(provider, cert, awards)
    async with browser(app) as http:
        await sign_in(http, provider)
        for data in ({}, {"csrf": "forged"}):
            refused = await http.post("/console/fr/centres", data={**data, "centre_id": "ctr-1", "state": "open"})
            assert refused.status_code == 403 and "Le formulaire a expiré" in refused.text
            revoke = await http.post("/console/fr/credentials/revoke", data={**data, "credential_id": "cred-1", "reason": "x"})
            assert revoke.status_code == 403
    assert (await cert.seats.list_centres())[0].state is CentreState.CLOSED
    assert awards.calls == []


async def test_an_advisor_gets_the_forbidden_page_in_the_pages_language(cert: FakeCertification) -> None:
    provider = FakeProvider("adv-1")
    app = console_app(provider, cert, FakeAwards())
    async with browser(app) as http:
        await sign_in(http, provider, "/console/nl/")
        for path in ("/console/nl/", "/console/nl/seats", "/console/nl/results"):
            page = await http.get(path)
            assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
            assert 'lang="nl"' in page.text and "Met uw rol kunt u deze pagina niet openen." in page.text
        posted = await http.post("/console/nl/centres", data={"centre_id": "ctr-1", "state": "open"})
        assert posted.status_code == 403


@pytest.mark.parametrize(
    ("lang", "words"),
    [("fr", "Centres d&#39;examen"), ("nl", "Examencentra"), ("en", "Exam centres")],
)
async def test_pages_are_in_the_asked_language(cert: FakeCertification, lang: str, words: str) -> None:
    provider = FakeProvider("cert-1")
    app = console_app(provider, cert, FakeAwards())
    async with browser(app) as http:
        await sign_in(http, provider, f"/console/{lang}/")
        page = await http.get(f"/console/{lang}/")
    assert page.status_code == 200 and f'lang="{lang}"' in page.text and words in page.text


async def test_without_a_session_a_page_sends_the_browser_to_sign_in(cert: FakeCertification) -> None:
    app = console_app(FakeProvider("cert-1"), cert, FakeAwards())
    async with browser(app) as http:
        page = await http.get("/console/en/seats")
    assert page.status_code == 303 and page.headers["location"] == "/console/login?lang=en&next=%2Fconsole%2Fen%2Fseats"


@pytest.mark.parametrize(("surfaces", "has_console"), [("public", False), ("staff", True), ("public,staff", True)])
def test_only_the_staff_surface_serves_the_console(monkeypatch: pytest.MonkeyPatch, surfaces: str, has_console: bool) -> None:
    monkeypatch.setenv("CERTIFICATION_SURFACES", surfaces)
    routes = declared_policies(create_app(CertificationSettings()))
    assert any(route.split(" ", 1)[1].startswith("/console/") for route in routes) is has_console
