"""The desk in a real browser (Debian's headless Chromium), behind the real Keycloak: routing runs as ops
run it (`python -m routing`) on the real broker and mongod.

- A request is queued for adv-1, who opens the console, is sent to Keycloak's own login page, signs in
  there (authorization code with PKCE), accepts the request, records a fact said on the call and sees
  the card's priority grow by its part (its source: said on the call), and records what came of the call,
  with facts learned on it. The `ContactAttempted` event names adv-1 as the worker and as the actor and
  carries those facts, and the case stores the outcome.
- A phone caller waits with nobody of the team available until the 48 hours pass on the simulated
  clock: `CallbackSlaBreached` is published, and the supervisor, signed in the same way, sees the
  request at the top of the team's view (rank 1) marked late and escalated to them, and reassigns it
  to an advisor of another team, who is offered it."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from schemas import CallbackSlaBreached, Channel, ContactAttempted, TrainingRequestClosed
from scripts.tokens import Tokens
from services.settings import AuthSettings
from tests.conftest import require_identity_provider
from tests.factories import live_request
from tests.processes import ALWAYS, Run, policy, produce, read_events, wait_for

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


def only_adv_1(path: Path) -> Path:
    """A roster where adv-1 is the one worker of BF espaces numériques (any skill), so an Excel request is theirs."""
    skills = ["office", "graphics", "basic_skills", "enrolment", "orientation", "digital_divide"]
    workers = [
        {"worker_id": "adv-1", "display_name": "adv 1", "team": "espaces_numeriques", "skills": skills},
        {"worker_id": "adv-2", "display_name": "adv 2", "team": "advisors", "skills": skills},
        {"worker_id": "dd-0", "display_name": "dd 0", "team": "digital_divide", "skills": skills},
        {"worker_id": "cdm-0", "display_name": "cdm 0", "team": "cite_des_metiers", "skills": skills},
    ]
    defaults = {"availability": "available", "working_hours": ALWAYS, "languages": ["fr", "nl", "en"], "capacity": 5}
    path.write_text(yaml.safe_dump({"defaults": defaults, "workers": workers}))
    return path


def nobody_free_in_the_team(path: Path) -> Path:
    """BF espaces numériques' only worker and its supervisor are offline; adv-2 (advisors) is free."""
    skills = ["office", "graphics", "basic_skills", "enrolment", "orientation"]
    workers = [
        {"worker_id": "adv-1", "display_name": "adv 1", "team": "espaces_numeriques", "availability": "offline"},
        {
            "worker_id": "adv-sup",
            "display_name": "sup",
            "team": "espaces_numeriques",
            "supervisor": True,
            "availability": "offline",
        },
        {"worker_id": "adv-2", "display_name": "Bram", "team": "advisors"},
    ]
    defaults = {"availability": "available", "working_hours": ALWAYS, "languages": ["fr", "nl", "en"], "capacity": 5}
    defaults["skills"] = skills
    path.write_text(yaml.safe_dump({"defaults": defaults, "workers": workers}))
    return path


async def sign_in_at_keycloak(page: Any, user: str) -> None:
    # Keycloak's own login page, not ours.
    await expect(page.locator("#kc-login")).to_be_visible(timeout=30_000)
    assert page.url.startswith(AuthSettings().issuer)
    await page.fill("#username", user)
    await page.fill("#password", "local-only")
    await page.click("#kc-login")


@pytest.fixture(scope="module")
def keycloak() -> None:
    require_identity_provider()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def test_an_advisor_signs_in_through_keycloak_accepts_and_records_an_outcome(
    keycloak: None, run: Run, browser: Browser, mongo_client: Any, tokens: Tokens
) -> None:
    run.env["ROUTING_WORKERS_PATH"] = str(only_adv_1(run.tmp / "roster.yaml"))
    routing = run.start("routing", free_port())
    request = live_request(channel=Channel.EMAIL, requested_course="EXCEL", need="Apprendre Excel pour un emploi")
    await produce(run.topic("training.requests.v1"), [request])

    async with httpx.AsyncClient(base_url=routing.url, timeout=10) as http:

        async def offered_to_adv_1() -> bool:
            queue = await http.get("/desk/workers/adv-1/queue", headers=tokens.headers("adv-1"))
            return queue.status_code == 200 and [item["request_id"] for item in queue.json()] == [request.request_id]

        await wait_for(offered_to_adv_1, timeout=60)

    # 127.0.0.1, not localhost: the realm's console client accepts loopback redirects on any port.
    base = routing.url.replace("localhost", "127.0.0.1")
    page = await browser.new_page(locale="fr-BE")
    await page.goto(f"{base}/console/fr/")
    await sign_in_at_keycloak(page, "adv-1")

    await expect(page.get_by_role("heading", name="Ma file d'appels")).to_be_visible(timeout=30_000)
    card = page.locator(f'article[data-request-id="{request.request_id}"]')
    await expect(card.locator(".status")).to_have_text("Proposée")
    await card.get_by_role("button", name="Accepter").click()

    await expect(page.get_by_role("status")).to_have_text("Demande acceptée.")
    card = page.locator(f'article[data-request-id="{request.request_id}"]')
    await expect(card.locator(".status")).to_have_text("Acceptée")
    # Attempts toward the limit, and the outcomes that close a request without reaching anyone.
    await expect(card.get_by_text("0 sur 3", exact=False)).to_be_visible()

    # A fact said on the call: the request is scored again, the part shown with where its fact came from.
    priority = card.locator("dt", has_text=re.compile(r"^Priorité \d+$"))
    before = int((await priority.inner_text()).split()[-1])
    facts = card.locator('form[action$="/facts"]')
    await facts.get_by_label("A un ordinateur").select_option("false")
    await facts.get_by_role("button", name="Enregistrer les faits").click()
    await expect(page.get_by_role("status")).to_have_text("Faits enregistrés : la priorité est recalculée.")
    card = page.locator(f'article[data-request-id="{request.request_id}"]')
    await expect(card.locator("dt", has_text=re.compile(r"^Priorité \d+$"))).not_to_have_text(f"Priorité {before}")
    assert int((await card.locator("dt", has_text=re.compile(r"^Priorité \d+$")).inner_text()).split()[-1]) >= before + 15
    await expect(card.locator("details li", has_text="pas d'ordinateur")).to_have_text(re.compile(r"source : dit à l'appel"))

    wrong_number = card.locator('select[name="outcome"] option[value="wrong_number"]')
    await expect(wrong_number).to_have_text("Mauvais numéro (clôture la demande)")
    outcome = card.locator('form[action$="/outcome"]')
    await outcome.get_by_label("Résultat", exact=True).select_option("advice_given")
    await outcome.get_by_label("Notes").fill("Conseillé : module Excel en ligne")
    await outcome.get_by_label("Diplôme le plus élevé").select_option("upper_secondary")
    await outcome.get_by_label("A un ordinateur").select_option("false")
    await outcome.get_by_role("button", name="Enregistrer", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Résultat enregistré.")
    await page.close()

    # The request's events share a partition: its closing comes after the call.
    events = await read_events(
        run.topic("training.routing.v1"), until=lambda found: any(isinstance(e, TrainingRequestClosed) for e in found)
    )
    attempts = [e for e in events if isinstance(e, ContactAttempted) and e.request_id == request.request_id]
    assert [(e.worker_id, e.outcome, e.actor) for e in attempts] == [("adv-1", "advice_given", "adv-1")]
    learned = (attempts[0].qualification_level, attempts[0].has_computer, attempts[0].has_internet)
    assert learned == ("upper_secondary", False, None), "the facts learned on the call, and only those"
    [closed] = [e for e in events if isinstance(e, TrainingRequestClosed) and e.request_id == request.request_id]
    assert (closed.disposition, closed.attempts, closed.worker_id) == ("reached", 1, "adv-1")
    case = await mongo_client[run.database]["routing_cases"].find_one({"_id": request.request_id})
    assert case is not None and (case["outcome"], case["disposition"]) == ("advice_given", "reached")


async def test_a_supervisor_sees_a_breach_at_the_top_of_the_team_and_reassigns_it(
    keycloak: None, run: Run, browser: Browser, tokens: Tokens
) -> None:
    routing = run.start(
        "routing",
        free_port(),
        ROUTING_CLOCK="simulated",
        ROUTING_RULES_PATH=str(policy(run.tmp / "policy.yaml", sla={"mode": "calendar"})),
        ROUTING_WORKERS_PATH=str(nobody_free_in_the_team(run.tmp / "roster.yaml")),
    )
    call = live_request(channel=Channel.PHONE, requested_course="EXCEL", need="Apprendre Excel")
    await produce(run.topic("training.requests.v1"), [call])

    async with httpx.AsyncClient(base_url=routing.url, timeout=10) as http:
        board_url = "/desk/teams/espaces_numeriques/board"

        async def urgency() -> str | None:
            board = await http.get(board_url, headers=tokens.headers("adv-sup"))
            rows = [row for row in board.json() if row["request_id"] == call.request_id] if board.status_code == 200 else []
            return rows[0]["urgency"] if rows else None

        async def on_the_board() -> bool:
            return await urgency() is not None

        await wait_for(on_the_board, timeout=60)
        assert await urgency() == "on_time"
        moved = await http.post("/admin/clock/advance", params={"hours": 49}, headers=tokens.headers("ops-1"))
        assert moved.status_code == 200
        breaches = await read_events(
            run.topic("training.routing.v1"),
            until=lambda found: any(isinstance(e, CallbackSlaBreached) and e.request_id == call.request_id for e in found),
        )
        assert any(isinstance(e, CallbackSlaBreached) for e in breaches)
        assert await urgency() == "breached"

    base = routing.url.replace("localhost", "127.0.0.1")
    page = await browser.new_page(locale="fr-BE")
    await page.goto(f"{base}/console/fr/team")
    await sign_in_at_keycloak(page, "adv-sup")

    await expect(page.get_by_role("heading", name="File de l'équipe — Espaces numériques")).to_be_visible(timeout=30_000)
    first_row = page.locator("tbody tr").first
    await expect(first_row).to_have_attribute("data-request-id", call.request_id)
    await expect(first_row.locator(".urgency")).to_have_text("En retard")
    await expect(first_row).to_have_attribute("data-rank", "1")
    await expect(first_row).to_contain_text("signalé à adv-sup")
    await first_row.get_by_label("Confier à").select_option("adv-2")
    await first_row.get_by_label("Motif").fill("Délai dépassé, Bram est libre")
    await first_row.get_by_role("button", name="Réattribuer").click()
    await expect(page.get_by_role("status")).to_have_text("Demande réattribuée.")
    row = page.locator(f'tr[data-request-id="{call.request_id}"]')
    await expect(row.locator("td").nth(3)).to_have_text("adv-2")
    await page.close()

    async with httpx.AsyncClient(base_url=routing.url, timeout=10) as http:
        queue = await http.get("/desk/workers/adv-2/queue", headers=tokens.headers("adv-2"))
        assert [(item["request_id"], item["status"]) for item in queue.json()] == [(call.request_id, "offered")]
        view = await http.get(f"/desk/requests/{call.request_id}", headers=tokens.headers("adv-sup"))
        reasons = [entry.get("reason") or "" for entry in view.json()["history"]]
        assert any("(by adv-sup)" in reason for reason in reasons), reasons
