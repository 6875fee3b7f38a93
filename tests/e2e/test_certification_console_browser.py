"""The certification staff's console in a real browser (Debian's headless Chromium), behind the real
Keycloak: certification runs as ops run it (`python -m certification`) on the real broker and mongod.

A candidate waits for MOS-EXCEL while the only centre is closed. cert-1 opens the console, is sent to
Keycloak's own login page, signs in there (authorization code with PKCE), opens the centre from the
console, is told one seat was offered, and finds the offer with its deadline on the offers page; the
staff API reads the centre open."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.tokens import Tokens
from services.settings import AuthSettings
from tests.conftest import require_identity_provider
from tests.factories import exam_requested
from tests.processes import Run, produce, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(bool(os.environ.get("OIDC_ISSUER")), reason="OIDC_ISSUER names a provider without the demo users"),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests", allow_module_level=True)

from playwright.async_api import Browser, async_playwright, expect  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def keycloak() -> None:
    require_identity_provider()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def test_certification_staff_sign_in_through_keycloak_and_open_a_centre(
    keycloak: None, run: Run, browser: Browser, mongo_client: Any, tokens: Tokens
) -> None:
    certification = run.start("certification", free_port())
    staff = tokens.headers("cert-1")
    async with httpx.AsyncClient(base_url=certification.url, timeout=10) as api:
        centre = {"state": "closed", "name": "Centre e2e", "address": "Rue de l'Exemple 1, 1000 Bruxelles"}
        assert (await api.put("/centres/ctr-e2e", json=centre, headers=staff)).status_code == 200
        starts_at = (datetime.now(UTC) + timedelta(days=10)).isoformat()
        session = {
            "session_id": "ses-e2e",
            "centre_id": "ctr-e2e",
            "certifications": ["MOS-EXCEL"],
            "starts_at": starts_at,
            "seats": 3,
        }
        assert (await api.post("/sessions", json=session, headers=staff)).status_code == 201
        await produce(run.topic("training.enrolments.v1"), [exam_requested("p-e2e")])

        async def waiting() -> bool:
            listed = await api.get("/waitlist", params={"certification": "MOS-EXCEL"}, headers=staff)
            return listed.status_code == 200 and [c["person_id"] for c in listed.json()] == ["p-e2e"]

        await wait_for(waiting, timeout=60)

        # 127.0.0.1, not localhost: the realm's console client accepts loopback redirects on any port.
        base = certification.url.replace("localhost", "127.0.0.1")
        page = await browser.new_page(locale="fr-BE")
        await page.goto(f"{base}/console/fr/")
        await expect(page.locator("#kc-login")).to_be_visible(timeout=30_000)
        assert page.url.startswith(AuthSettings().issuer), "Keycloak's own login page, not ours"
        await page.fill("#username", "cert-1")
        await page.fill("#password", "local-only")
        await page.click("#kc-login")

        await expect(page.get_by_role("heading", name="Centres d'examen")).to_be_visible(timeout=30_000)
        row = page.locator('tr[data-centre-id="ctr-e2e"]')
        await expect(row.locator(".status")).to_have_text("Fermé")
        await row.get_by_role("button", name="Ouvrir Centre e2e").click()

        await expect(page.get_by_role("status").first).to_have_text("Centre ouvert.")
        await expect(page.get_by_role("status").nth(1)).to_contain_text("1 place(s) proposée(s)")
        await expect(page.locator('tr[data-centre-id="ctr-e2e"] .status')).to_have_text("Ouvert")

        await page.get_by_role("link", name="Offres et listes d'attente").click()
        offer = page.locator("tr[data-offer-id]")
        await expect(offer).to_have_count(1)
        await expect(offer.locator("th")).to_have_text("p-e2e")

        centres = await api.get("/centres", headers=staff)
    assert [c["state"] for c in centres.json() if c["centre_id"] == "ctr-e2e"] == ["open"]
