"""A person fills the form in a real browser (Debian's headless Chromium), on a phone-sized
screen, in French and in Dutch, and sees the confirmation; the drafts reach the pipeline.

The web router is served by uvicorn on a free port, with a RecordingPipeline behind it: this tier
checks the browser side (markup, form encoding, no-JS submission); the intake service itself is
covered by the other end-to-end tests.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from intake.web import FORM_SOURCE, InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from schemas import CampaignAttribution, Language, QualificationLevel
from services.catalogue import load_catalogue
from services.ratelimits import InMemoryRateLimits
from tests.fakes import RecordingPipeline

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests", allow_module_level=True)

from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect  # noqa: E402

PHONE: ViewportSize = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


@pytest.fixture(scope="module")
def base_url(pipeline: RecordingPipeline) -> Iterator[str]:
    app = FastAPI()
    app.include_router(web_router)
    channel = WebChannel(
        pipeline,
        WebSettings(),
        load_catalogue(),
        rate_limits=InMemoryRateLimits(),
        idempotency_keys=InMemoryIdempotencyKeys(),
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="off"))
    thread = threading.Thread(target=server.run, name="web-form-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=PHONE, locale="fr-BE", java_script_enabled=False)
    yield await context.new_page()
    await context.close()


async def test_a_person_asks_for_a_course_in_french_from_a_campaign_link(
    page: Page, base_url: str, pipeline: RecordingPipeline
) -> None:
    before = len(pipeline.drafts)
    await page.goto(f"{base_url}/?utm_source=facebook&utm_medium=social&utm_campaign=confine-mais-connecte")

    assert page.url.endswith("/fr/?utm_source=facebook&utm_medium=social&utm_campaign=confine-mais-connecte")
    assert await page.get_attribute("html", "lang") == "fr"
    await page.get_by_label("Nom et prénom").fill("Amina El Idrissi")
    await page.get_by_label("Téléphone").fill("0470 12 34 56")
    await page.locator("#need").fill("Je voudrais apprendre Excel pour trouver un emploi.")
    await page.locator("#requested_course").select_option("EXCEL")
    await page.locator("#qualification_level").select_option("upper_secondary")
    await page.locator("#has_computer-yes").check()
    await page.locator("#has_internet-no").check()
    await page.locator("#consent_to_contact").check()
    await page.locator("#submit").click()

    confirmation = page.get_by_test_id("confirmation")
    await expect(confirmation).to_be_visible()
    await expect(confirmation).to_contain_text("Merci, nous avons bien reçu votre demande")
    await expect(confirmation).to_contain_text("va vous contacter pour parler de votre demande")
    request_id = await confirmation.get_attribute("data-request-id")
    assert request_id
    await expect(page.locator("#reference")).to_have_text(request_id[:8])

    [draft] = pipeline.drafts[before:]
    assert draft.source == FORM_SOURCE and draft.language is Language.FR
    assert (draft.name, draft.phone, draft.email) == ("Amina El Idrissi", "0470 12 34 56", None)
    assert draft.requested_course == "EXCEL" and draft.qualification_level is QualificationLevel.UPPER_SECONDARY
    assert (draft.has_computer, draft.has_internet, draft.consent_to_contact) == (True, False, True)
    assert draft.campaign == CampaignAttribution(utm_source="facebook", utm_medium="social", utm_campaign="confine-mais-connecte")


async def test_a_person_corrects_the_form_in_dutch_then_sends_it(page: Page, base_url: str, pipeline: RecordingPipeline) -> None:
    before = len(pipeline.drafts)
    await page.goto(f"{base_url}/fr/?utm_campaign=digitale-kloof")
    await page.get_by_role("link", name="NL").click()  # the language switcher keeps the campaign
    assert await page.get_attribute("html", "lang") == "nl"

    await page.get_by_label("Voor- en achternaam").fill("Jan Peeters")
    await page.get_by_label("E-mailadres").fill("jan.peeters@")
    await page.get_by_label("Wat hebt u nodig?").fill("Ik wil leren werken met een computer.")
    await page.locator("#submit").click()

    # Refused, in Dutch, next to the fields, with what was typed still there.
    await expect(page.get_by_test_id("error-summary")).to_contain_text("Uw aanvraag is niet verstuurd")
    await expect(page.locator("#email-error")).to_contain_text("Dit e-mailadres is ongeldig")
    await expect(page.locator("#consent_to_contact-error")).to_contain_text("Vink het vakje aan")
    await expect(page.get_by_label("Voor- en achternaam")).to_have_value("Jan Peeters")
    await expect(page.locator("#need")).to_have_value("Ik wil leren werken met een computer.")
    assert pipeline.drafts[before:] == []

    await page.get_by_label("E-mailadres").fill("jan.peeters@example.be")
    await page.locator("#language").select_option("nl")
    await page.locator("#has_computer-no").check()
    await page.locator("#consent_to_contact").check()
    await page.locator("#submit").click()

    confirmation = page.get_by_test_id("confirmation")
    await expect(confirmation).to_contain_text("Bedankt, we hebben uw aanvraag goed ontvangen")
    await expect(confirmation).to_contain_text("neemt contact met u op om over uw aanvraag te praten")
    [draft] = pipeline.drafts[before:]
    assert await confirmation.get_attribute("data-request-id")
    assert draft.language is Language.NL and draft.email == "jan.peeters@example.be" and draft.has_computer is False
    assert draft.channel_details["page_language"] == "nl"
    assert draft.campaign is not None and draft.campaign.utm_campaign == "digitale-kloof"


async def test_the_form_fits_a_phone_screen(page: Page, base_url: str) -> None:
    for lang in ("fr", "nl"):
        await page.goto(f"{base_url}/{lang}/")
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        box = await page.locator("#submit").bounding_box()
        assert box is not None and box["height"] >= 44  # a comfortable touch target
