"""The public pages pass WCAG 2.1 AA checks (axe-core in Debian's headless Chromium) in French, Dutch and
English, and the web form can be filled and sent with the keyboard alone.

The pages are served over HTTP by uvicorn on a free port, with their own CSS, so contrast is measured on
what people see: intake's web router over a RecordingPipeline (the form, its errors, its confirmation and
its message page), certification's seat-offer router over the in-memory certification of the unit tests
(a real signed token), and the credential verification page as certification renders it.

To check one more page: serve it from `pages_app` (or start its service), open it in `page`, then
`await assert_accessible(page, "its name")` (tests.accessibility)."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from certification.certifications import load_certifications
from certification.credentials import CredentialLinks, IssuerProfile, build_credential, new_salt
from certification.offer_links import RESPOND_PATH
from certification.offer_page import offer_page_router
from certification.offer_responses import OfferResponses
from certification.seating import CentreState
from certification.signing import CredentialSigner, new_signing_key
from certification.verification import PAGE_HEADERS, assess, render
from intake.i18n import text
from intake.status.page import _message as status_message
from intake.status.page import _render as render_status
from intake.status.projection import apply_to_request
from intake.status.slots import offered_windows
from intake.status.texts import text as text_of_status
from intake.status.view import build_view
from intake.web import FORM_SOURCE, InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from intake.web.form import _render_message
from schemas import (
    ContactAttempted,
    ContactOutcome,
    Event,
    ExamSeatOffered,
    Language,
    Target,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from services.calendar import BrusselsCalendar
from services.catalogue import load_catalogue
from services.clock import FixedClock
from services.ratelimits import InMemoryRateLimits
from tests.accessibility import assert_accessible, focus_indicator, require_axe
from tests.certification_fakes import OFFER_LINKS, fake_certification, fake_unseal
from tests.factories import exam_requested, make_request
from tests.fakes import RecordingPipeline

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests", allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402

LANGUAGES = ("fr", "nl", "en")
T0 = datetime(2020, 5, 18, 9, 0, tzinfo=UTC)
EXAM_DAY = datetime(2020, 6, 2, 7, 0, tzinfo=UTC)
ISSUED = datetime(2020, 6, 2, 14, 30, tzinfo=UTC)
CREDENTIALS = CredentialLinks("https://certification.bruxellesformation.test")
STATUS_NOW = datetime(2020, 5, 18, 8, 0, tzinfo=UTC)  # a Monday, 10:00 in Brussels
STATUS_TOKEN = "s1.example.token"


def status_events(request: TrainingRequestReceived) -> list[Event]:
    """A request routed to the advisors with a promise, then a call nobody answered."""
    routed = TrainingRequestRouted(
        source="/tests",
        request_id=request.request_id,
        person_id=request.person_id,
        target=Target.ADVISORS,
        rule_id="default",
        rule_set_version="t",
        explanation="staff only",
        priority=50,
        callback_deadline=STATUS_NOW + timedelta(hours=48),
    )
    call = ContactAttempted(
        source="/tests",
        request_id=request.request_id,
        person_id=request.person_id,
        worker_id="adv-1",
        outcome=ContactOutcome.NO_ANSWER,
        attempt=1,
        next_attempt_at=STATUS_NOW + timedelta(hours=2),
    )
    return [request, routed, call]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(app: FastAPI, name: str) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="off"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


async def seat_offer() -> tuple[OfferResponses, str]:
    """The in-memory certification with one seat offered to p1, and the offer's accept token."""
    cert = fake_certification(FixedClock(T0))
    await cert.candidates.on_exam_requested(exam_requested("p1"))
    await cert.seats.put_centre("ctr-1", state=CentreState.CLOSED, name="Centre d'Anderlecht", address="Rue Exemple 1")
    await cert.seats.add_session(session_id="ses-1", centre_id="ctr-1", certifications=["MOS-EXCEL"], starts_at=EXAM_DAY, seats=1)
    await cert.seats.put_centre("ctr-1", state=CentreState.OPEN)
    [event] = [e for e in cert.storage.outbox if isinstance(e, ExamSeatOffered)]
    opened = fake_unseal(event)
    assert isinstance(opened, ExamSeatOffered) and opened.accept_url
    [token] = parse_qs(urlsplit(opened.accept_url).query)["token"]
    return OfferResponses(cert.seats, OFFER_LINKS.tokens), token


def credential_record() -> tuple[dict[str, Any], CredentialSigner]:
    cert = load_certifications().get("MOS-EXCEL")
    assert cert is not None
    signer = CredentialSigner.from_seed(new_signing_key(), verification_method=CREDENTIALS.signing_key)
    issuer = IssuerProfile(id=CREDENTIALS.issuer, name="Bruxelles Formation", url="https://www.bruxellesformation.brussels")
    document = build_credential(
        credential_id="c0ffee",
        certification=cert,
        person_id="prs_1",
        salt=new_salt(),
        issued_at=ISSUED,
        links=CREDENTIALS,
        issuer=issuer,
        status_index=5,
        evidence=[{"type": ["Evidence"], "name": "Examen « Microsoft Office Specialist: Excel » (Microsoft)"}],
    )
    return {"_id": "c0ffee", "status": "active", "document": signer.sign(document, created=ISSUED)}, signer


@pytest.fixture(scope="module")
async def pages(pipeline: RecordingPipeline) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """One uvicorn serving every public page under test; the second item holds what the tests need to reach them."""
    responses, token = await seat_offer()
    record, signer = credential_record()
    app = FastAPI()
    app.include_router(web_router)
    app.include_router(offer_page_router)
    channel = WebChannel(
        pipeline, WebSettings(), load_catalogue(), rate_limits=InMemoryRateLimits(), idempotency_keys=InMemoryIdempotencyKeys()
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    app.state.runtime = SimpleNamespace(app_state={"offer_responses": responses})

    # Intake's message page (a refusal: rate limit, malformed form) as intake renders it.
    @app.get("/messages/{lang}")
    async def message(lang: str) -> HTMLResponse:
        language = Language(lang)
        return _render_message(language, 429, text(language, "rate_limited", seconds=60), back=f"/{lang}/")

    @app.get("/credentials/c0ffee/verify")
    async def verification(lang: str = "fr", revoked: bool = False) -> HTMLResponse:
        shown = {**record, "status": "revoked", "revoked_at": ISSUED, "revocation_reason": "erreur"} if revoked else record
        assessment = assess(
            shown,
            public_key=signer.public_key,
            verification_method=signer.verification_method,
            credential_url=CREDENTIALS.credential("c0ffee"),
            page_url=CREDENTIALS.verification_page("c0ffee"),
        )
        return HTMLResponse(render(assessment, Language(lang)), headers=PAGE_HEADERS)

    # The job seeker's status page as intake renders it: a request routed, an unanswered call, the
    # windows to choose from; with an error tied to its field; the withdrawal's confirmation; a gone link.
    @app.get("/status-pages/{lang}")
    async def status(lang: str, error: bool = False) -> HTMLResponse:
        language = Language(lang)
        request = make_request(received_at=STATUS_NOW - timedelta(hours=2))
        entry = None
        for event in status_events(request):
            entry = apply_to_request(entry, event)
        assert entry is not None
        windows = offered_windows(BrusselsCalendar(), STATUS_NOW, entry["callback_deadline"])
        view = build_view(entry, None, need="Je voudrais apprendre Excel.", language=language, windows=windows)
        values = {"need": "", "requested_course": "", "phone": "12" if error else "", "email": ""}
        wrong = {"error": text_of_status(language, "refused_phone"), "error_field": "phone"} if error else {}
        return render_status(
            "status.html", language, 422 if error else 200, STATUS_TOKEN, view=view, base=f"/{lang}/status/{STATUS_TOKEN}",
            notice=None, values=values, **({"error": None, "error_field": None} | wrong),
        )  # fmt: skip

    @app.get("/status-pages/{lang}/withdraw")
    async def status_withdraw(lang: str) -> HTMLResponse:
        return render_status("status_withdraw.html", Language(lang), 200, STATUS_TOKEN, base=f"/{lang}/status/{STATUS_TOKEN}")

    @app.get("/status-pages/{lang}/gone")
    async def status_gone(lang: str) -> HTMLResponse:
        return status_message(Language(lang), 410, "erased_title", "erased", STATUS_TOKEN)

    with serve(app, "accessibility-pages") as base:
        yield base, {"offer_token": token}


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    require_axe()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    # bypass_csp: the seat-offer and verification pages forbid scripts, axe's included.
    context = await browser.new_context(locale="fr-BE", bypass_csp=True)
    yield await context.new_page()
    await context.close()


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_web_form_its_errors_and_its_confirmation_pass_wcag_21_aa(
    page: Page, pages: tuple[str, dict[str, Any]], lang: str
) -> None:
    base, _ = pages
    await page.goto(f"{base}/{lang}/")
    assert await page.get_attribute("html", "lang") == lang
    await assert_accessible(page, f"web form ({lang})")

    await page.locator("#email").fill("not-an-address")
    await page.locator("#submit").click()
    await expect(page.get_by_test_id("error-summary")).to_be_visible()
    # Each message is tied to its field: announced with it, and the field marked invalid.
    assert await page.get_attribute("#email", "aria-invalid") == "true"
    assert "email-error" in (await page.get_attribute("#email", "aria-describedby") or "").split()
    assert "consent_to_contact-error" in (await page.get_attribute("#consent_to_contact", "aria-describedby") or "").split()
    await assert_accessible(page, f"web form with errors ({lang})")

    await page.locator("#email").fill("")
    await page.locator("#phone").fill("0470 12 34 56")
    await page.locator("#need").fill("Apprendre Excel.")
    await page.locator("#consent_to_contact").check()
    await page.locator("#submit").click()
    await expect(page.get_by_test_id("confirmation")).to_be_visible()
    await assert_accessible(page, f"confirmation ({lang})")

    await page.goto(f"{base}/messages/{lang}")
    await expect(page.get_by_test_id("message")).to_be_visible()
    await assert_accessible(page, f"intake message page ({lang})")


async def test_an_unknown_page_of_the_web_form_passes_wcag_21_aa(page: Page, pages: tuple[str, dict[str, Any]]) -> None:
    base, _ = pages
    await page.goto(f"{base}/de/")
    await expect(page.get_by_test_id("message")).to_be_visible()
    await assert_accessible(page, "intake not-found page")


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_seat_offer_page_and_its_answer_pass_wcag_21_aa(
    page: Page, pages: tuple[str, dict[str, Any]], lang: str
) -> None:
    base, found = pages
    await page.goto(f"{base}{RESPOND_PATH}?token={found['offer_token']}&lang={lang}")
    assert await page.get_attribute("html", "lang") == lang
    await expect(page.get_by_role("button")).to_have_count(2)
    await assert_accessible(page, f"seat offer ({lang})")

    await page.goto(f"{base}{RESPOND_PATH}?token=v1.not.valid&lang={lang}")
    await assert_accessible(page, f"seat offer, invalid link ({lang})")


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_status_page_its_errors_the_withdrawal_and_a_gone_link_pass_wcag_21_aa(
    page: Page, pages: tuple[str, dict[str, Any]], lang: str
) -> None:
    base, _ = pages
    await page.goto(f"{base}/status-pages/{lang}")
    assert await page.get_attribute("html", "lang") == lang
    await expect(page.locator('input[name="slot"]').first).to_be_visible()
    await assert_accessible(page, f"status page ({lang})")

    await page.goto(f"{base}/status-pages/{lang}?error=true")
    assert await page.get_attribute("#phone", "aria-invalid") == "true"
    await assert_accessible(page, f"status page with an error ({lang})")

    await page.goto(f"{base}/status-pages/{lang}/withdraw")
    await assert_accessible(page, f"status page, withdrawal ({lang})")
    await page.goto(f"{base}/status-pages/{lang}/gone")
    await assert_accessible(page, f"status page, nothing kept ({lang})")


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("revoked", [False, True])
async def test_the_credential_verification_page_passes_wcag_21_aa(
    page: Page, pages: tuple[str, dict[str, Any]], lang: str, revoked: bool
) -> None:
    base, _ = pages
    await page.goto(f"{base}/credentials/c0ffee/verify?lang={lang}&revoked={str(revoked).lower()}")
    assert await page.get_attribute("html", "lang") == lang
    await assert_accessible(page, f"credential verification ({lang}{', revoked' if revoked else ''})")


# --- the keyboard alone ------------------------------------------------------------------------------------

# What a focused element shows, to compare with the same element unfocused.
_FOCUS_STYLE = """(el) => {
  const s = getComputedStyle(el);
  return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow].join(" | ");
}"""

_FOCUSED = """() => {
  const el = document.activeElement;
  const box = el.getBoundingClientRect();
  return { id: el.id || el.textContent.trim(), tag: el.tagName.toLowerCase(), top: box.top + window.scrollY, left: box.left };
}"""


async def test_the_web_form_is_filled_and_sent_with_the_keyboard_alone(
    browser: Browser, pages: tuple[str, dict[str, Any]], pipeline: RecordingPipeline, figures: Any
) -> None:
    base, _ = pages
    context = await browser.new_context(locale="fr-BE", viewport={"width": 1024, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/fr/")
    before = len(pipeline.drafts)

    # What to type when focus reaches a field; anything else is passed with Tab.
    typed = {
        "name": "Amina El Idrissi",
        "phone": "0470 12 34 56",
        "need": "Je voudrais apprendre Excel.",
    }
    keys = {
        "requested_course": ["ArrowDown"],  # the first course after "not sure"
        "has_computer-yes": ["Space"],
        "has_internet-yes": ["ArrowRight"],  # moves to and checks "no" in the group
        "consent_to_contact": ["Space"],
    }
    # Each element as it looks unfocused, to prove its focus indicator is a change one can see.
    unfocused_styles: dict[str, str] = dict(
        await page.evaluate(
            """(script) => { const style = eval(script);
              return [...document.querySelectorAll("a[href], input:not([type=hidden]), select, textarea, button")]
                .map((el) => [el.id || el.textContent.trim(), style(el)]); }""",
            _FOCUS_STYLE,
        )
    )
    visited: list[dict[str, Any]] = []
    for _ in range(60):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(_FOCUSED)
        indicator = await focus_indicator(page)
        if visited and focused["id"] == visited[-1]["id"]:
            # The day, month, year and calendar button of a date field are Tab stops of one field: each shows focus.
            visited[-1]["focus_contrast"] = min(visited[-1]["focus_contrast"], indicator["contrast"])
            continue
        focused["focus_style"], focused["focus_contrast"] = indicator["style"], indicator["contrast"]
        visited.append(focused)
        if focused["id"] in typed:
            await page.keyboard.type(typed[focused["id"]])
        for key in keys.get(focused["id"], []):
            await page.keyboard.press(key)
        if focused["id"] == "has_internet-yes":
            focused["id"] = "has_internet-no"
        if focused["id"] == "submit":
            break
    ids = [v["id"] for v in visited]
    assert ids[-1] == "submit", f"Tab never reached the send button: {ids}"

    fields = [
        i
        for i in ids
        if i
        in {
            "name",
            "phone",
            "email",
            "language",
            "need",
            "kind",
            "requested_course",
            "qualification_level",
            "has_computer-yes",
            "has_internet-no",
            "unemployed_since",
            "consent_to_contact",
            "submit",
        }
    ]
    assert fields == [
        "name",
        "phone",
        "email",
        "language",
        "need",
        "kind",
        "requested_course",
        "qualification_level",
        "has_computer-yes",
        "has_internet-no",
        "unemployed_since",
        "consent_to_contact",
        "submit",
    ], f"every field is reached by Tab, in the order of the page: {ids}"
    # Focus order follows what is seen: from the top down, and left to right on one line.
    in_form = [v for v in visited if v["id"] in fields]
    for earlier, later in itertools.pairwise(in_form):
        same_line = abs(later["top"] - earlier["top"]) < 1
        assert later["top"] > earlier["top"] or (same_line and later["left"] > earlier["left"]), (
            f"focus goes back up or left from {earlier['id']} to {later['id']}"
        )
    for v in visited:
        assert v["focus_contrast"] >= 3, (
            f"{v['id']}: its focus outline or shadow has a contrast of {v['focus_contrast']:.2f}:1 with what is around it "
            f"(3:1 needed): {v['focus_style']}"
        )
        assert v["focus_style"] != unfocused_styles[v["id"] if v["id"] != "has_internet-no" else "has_internet-yes"], (
            f"{v['id']} looks the same focused and unfocused"
        )

    await page.keyboard.press("Enter")
    confirmation = page.get_by_test_id("confirmation")
    await expect(confirmation).to_be_visible()
    await expect(confirmation).to_contain_text("Merci")
    [draft] = pipeline.drafts[before:]
    assert draft.source == FORM_SOURCE and (draft.name, draft.phone) == ("Amina El Idrissi", "0470 12 34 56")
    assert draft.need == "Je voudrais apprendre Excel." and draft.requested_course
    assert (draft.has_computer, draft.has_internet, draft.consent_to_contact) == (True, False, True)
    await context.close()
    figures.record("keyboard only", f"{len(visited)} Tab stops in the order of the page, each with a focus ring of 3:1 or more")
