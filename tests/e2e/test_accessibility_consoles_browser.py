"""The staff consoles pass WCAG 2.1 AA checks (axe-core in Debian's headless Chromium) in French, Dutch and English,
signed in through the real Keycloak, with routing and certification run as ops run them on the real broker
and mongod, and holding work, so that cards, tables and their forms are on the pages checked.

- routing: adv-1, the one worker of BF espaces numériques, is offered a request: their queue (before and
  after accepting it, with the notice, and with a form's error), and the consoles' message page telling them the team's board is
  not theirs; their supervisor adv-sup: the team's board and the sessions page.
- certification: cert-1 with a closed centre, a session and a waiting candidate: the centres page (before
  and after opening the centre, with its notices), the seats page and the results page.

On the queue, the board and the centres page, every element Tab reaches shows a focus ring that stands out
3:1 (WCAG 1.4.11)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from schemas import Channel
from scripts.tokens import Tokens
from services.settings import AuthSettings
from tests.accessibility import assert_accessible, assert_focus_visible, require_axe
from tests.conftest import require_identity_provider
from tests.factories import exam_requested, live_request
from tests.processes import ALWAYS, Run, produce, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(bool(os.environ.get("OIDC_ISSUER")), reason="OIDC_ISSUER names a provider without the demo users"),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests", allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402

LANGUAGES = ("fr", "nl", "en")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def team_of_one(path: Path) -> Path:
    """A roster where adv-1 is BF espaces numériques' one worker (the request is theirs), adv-sup its supervisor."""
    skills = ["office", "graphics", "basic_skills", "enrolment", "orientation", "digital_divide"]
    workers = [
        {"worker_id": "adv-1", "display_name": "Awa", "team": "espaces_numeriques"},
        {"worker_id": "adv-sup", "display_name": "Sup", "team": "espaces_numeriques", "supervisor": True},
        {"worker_id": "adv-2", "display_name": "Bram", "team": "advisors"},
    ]
    defaults = {"availability": "available", "working_hours": ALWAYS, "languages": ["fr", "nl", "en"], "capacity": 5}
    defaults["skills"] = skills
    path.write_text(yaml.safe_dump({"defaults": defaults, "workers": workers}))
    return path


async def sign_in_at_keycloak(page: Page, user: str) -> None:
    await expect(page.locator("#kc-login")).to_be_visible(timeout=30_000)
    assert page.url.startswith(AuthSettings().issuer), "Keycloak's own login page, not ours"
    await page.fill("#username", user)
    await page.fill("#password", "local-only")
    await page.click("#kc-login")


async def signed_in(browser: Browser, url: str, user: str) -> Page:
    """A page of a new browser context, signed in as `user` at Keycloak on the way to `url`."""
    # bypass_csp: the consoles forbid scripts, axe's included.
    context = await browser.new_context(locale="fr-BE", bypass_csp=True)
    page = await context.new_page()
    await page.goto(url)
    await sign_in_at_keycloak(page, user)
    return page


@pytest.fixture(scope="module")
def keycloak() -> None:
    require_identity_provider()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_axe()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def test_the_routing_console_pages_pass_wcag_21_aa(keycloak: None, run: Run, browser: Browser, tokens: Tokens) -> None:
    run.env["ROUTING_WORKERS_PATH"] = str(team_of_one(run.tmp / "roster.yaml"))
    routing = run.start("routing", free_port())
    request = live_request(channel=Channel.EMAIL, requested_course="EXCEL", need="Apprendre Excel pour un emploi")
    await produce(run.topic("training.requests.v1"), [request])
    async with httpx.AsyncClient(base_url=routing.url, timeout=10) as http:

        async def offered() -> bool:
            queue = await http.get("/desk/workers/adv-1/queue", headers=tokens.headers("adv-1"))
            return queue.status_code == 200 and [item["request_id"] for item in queue.json()] == [request.request_id]

        await wait_for(offered, timeout=60)

    # 127.0.0.1, not localhost: the realm's console client accepts loopback redirects on any port.
    base = routing.url.replace("localhost", "127.0.0.1")
    page = await signed_in(browser, f"{base}/console/fr/", "adv-1")
    card = page.locator(f'article[data-request-id="{request.request_id}"]')
    await expect(card).to_be_visible(timeout=30_000)
    for lang in LANGUAGES:
        await page.goto(f"{base}/console/{lang}/")
        await expect(card).to_be_visible()
        await assert_accessible(page, f"routing queue ({lang})")
    await assert_focus_visible(page, "routing queue")
    await card.locator('form[action$="/accept"] button').click()
    await expect(page.get_by_role("status")).to_be_visible()
    await assert_accessible(page, "routing queue after accepting (nl)")
    # A form sent empty: its error is shown beside it, tied to its fields.
    await card.locator('form[action$="/facts"] button[type="submit"]').click()
    await expect(page.locator("p.error[role=alert]").first).to_be_visible()
    await assert_accessible(page, "routing queue with a form's error (nl)")
    for lang in LANGUAGES:  # the team's board is for supervisors: adv-1 is told so, on the consoles' message page
        answer = await page.goto(f"{base}/console/{lang}/team")
        assert answer is not None and answer.status == 403
        await assert_accessible(page, f"console message page, forbidden ({lang})")
    await page.context.close()

    page = await signed_in(browser, f"{base}/console/fr/team", "adv-sup")
    row = page.locator(f'tr[data-request-id="{request.request_id}"]')
    await expect(row).to_be_visible(timeout=30_000)
    for lang in LANGUAGES:
        await page.goto(f"{base}/console/{lang}/team")
        await expect(row).to_be_visible()
        await assert_accessible(page, f"routing team board ({lang})")
        await assert_focus_visible(page, f"routing team board ({lang})")
        await page.goto(f"{base}/console/{lang}/sessions")
        await expect(page.locator("h1")).to_be_visible()
        await assert_accessible(page, f"routing sessions ({lang})")
    await page.context.close()


async def test_the_certification_console_pages_pass_wcag_21_aa(
    keycloak: None, run: Run, browser: Browser, tokens: Tokens
) -> None:
    certification = run.start("certification", free_port())
    staff = tokens.headers("cert-1")
    async with httpx.AsyncClient(base_url=certification.url, timeout=10) as api:
        centre = {"state": "closed", "name": "Centre a11y", "address": "Rue de l'Exemple 1, 1000 Bruxelles"}
        assert (await api.put("/centres/ctr-a11y", json=centre, headers=staff)).status_code == 200
        session = {
            "session_id": "ses-a11y",
            "centre_id": "ctr-a11y",
            "certifications": ["MOS-EXCEL"],
            "starts_at": (datetime.now(UTC) + timedelta(days=10)).isoformat(),
            "seats": 3,
        }
        assert (await api.post("/sessions", json=session, headers=staff)).status_code == 201
        await produce(run.topic("training.enrolments.v1"), [exam_requested("p-a11y")])

        async def waiting() -> bool:
            listed = await api.get("/waitlist", params={"certification": "MOS-EXCEL"}, headers=staff)
            return listed.status_code == 200 and [c["person_id"] for c in listed.json()] == ["p-a11y"]

        await wait_for(waiting, timeout=60)

    base = certification.url.replace("localhost", "127.0.0.1")
    page = await signed_in(browser, f"{base}/console/fr/", "cert-1")
    row = page.locator('tr[data-centre-id="ctr-a11y"]')
    await expect(row).to_be_visible(timeout=30_000)
    for lang in LANGUAGES:
        await page.goto(f"{base}/console/{lang}/")
        await expect(row).to_be_visible()
        await assert_accessible(page, f"certification centres ({lang})")
        await assert_focus_visible(page, f"certification centres ({lang})")
        await page.goto(f"{base}/console/{lang}/seats")
        await expect(page.locator("h1")).to_be_visible()
        await assert_accessible(page, f"certification seats ({lang})")
        await page.goto(f"{base}/console/{lang}/results")
        await expect(page.locator("h1")).to_be_visible()
        await assert_accessible(page, f"certification results ({lang})")

    await page.goto(f"{base}/console/fr/")
    await row.get_by_role("button", name="Ouvrir Centre a11y").click()
    await expect(page.get_by_role("status").first).to_have_text("Centre ouvert.")
    await assert_accessible(page, "certification centres after opening one (fr)")
    await page.goto(f"{base}/console/nl/seats")
    await expect(page.locator("tr[data-offer-id]")).to_have_count(1)
    await assert_accessible(page, "certification seats with an offer (nl)")
    await page.context.close()
