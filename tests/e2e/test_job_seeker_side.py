"""The job seeker's side of a request, end to end (issue 17's first "Done when"), played through the
services as ops run them (`python -m intake|routing|notification`, and intake's privacy surface) on
the real broker, mongod and Keycloak.

A person asks for training on the web API, in French, with a phone number and an e-mail address.
The acknowledgement carries their status link; the page shows what they wrote, the team and why in
plain words, and who calls by when. An advisor calls without an answer: the page shows the attempt.
The person picks a callback window on the page: the advisor's desk shows it. The person withdraws:
the request leaves the advisor's queue. Two DPOs erase the person: the link answers that nothing is kept.

Time: every service runs on the real clock, so the story holds on any date. The windows the page
offers start from intake's "now", and routing ignores a window already past on its own clock
(`routing.case.slot_refusal`): a simulated routing clock days ahead would refuse every window the page
offers. Nothing here waits for a timer: the promise (two working days) is far off whenever the test
runs, and the roster's advisors work round the clock so that requests are offered at night too. The
test picks its window among those the page offers and formats the deadline as the page does.

Policy: the shipped policy promises a callback to callers of the 0800 line only; a web request gets
"as soon as possible". The issue's story needs the promise on a web request's page, so the test's
policy (`tests.processes.policy`) gives web requests the same promise (`sla.applies_to: [phone, web]`).

Every broken expectation is collected with its step and asserted at the end; a step whose result the
next steps need (the link, the advisor) stops the story at once.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from intake.status.texts import TEAM_NAMES, rule_reason
from intake.status.view import format_moment, window_label
from schemas import (
    CallbackSlotChosen,
    ContactAttempted,
    Event,
    Language,
    PersonDataErased,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from scripts.demo import Inbox, free_port
from scripts.tokens import Tokens
from services.calendar import BRUSSELS
from tests.conftest import require_identity_provider
from tests.processes import Run, policy, read_events, roster

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(os.environ.get("OIDC_ISSUER")), reason="OIDC_ISSUER names a provider without the demo users"),
]

NAME, PHONE, PHONE_E164, EMAIL = "Amina Test", "0470 31 41 59", "+32470314159", "amina.statut@example.org"
NEED = "Bonjour, je cherche une formation pour retrouver du travail dans l'accueil. Je suis libre le matin."
NOTES = "Messagerie pleine, rappeler en matinée"
"""The advisor's notes on the unanswered call: for the desk, never for the page."""
WAIT = 120.0
"""Generous: the services may share a loaded machine; every wait ends as soon as its condition holds."""
STATUS_LINK = re.compile(r"https?://[^\s\"'<>]+/(?:fr|nl|en)/status/[^\s\"'<>]+")
SLOT_CHOICE = re.compile(r'<input type="radio" name="slot" value="(?P<key>[^"]+)"[^>]*>\s*<span>(?P<label>.*?)</label>', re.S)


@dataclass
class Services:
    run: Run
    intake: str
    routing: str
    privacy: str
    inbox: Inbox


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    require_identity_provider()
    inbox = Inbox()
    smtp_port, sms_port = inbox.start()
    # Free ports: other e2e tests may run beside this one; intake's links must name its own port.
    intake_port, routing_port, notification_port, privacy_port = (free_port() for _ in range(4))
    intake_url = f"http://127.0.0.1:{intake_port}"
    workers = roster(tmp_path / "roster.yaml", per_team=2, capacity=5)
    rules = policy(tmp_path / "policy.yaml", sla={"applies_to": ["phone", "web"]})
    run = Run(
        tmp_path,
        ROUTING_DISPATCH_INTERVAL="PT0.2S",
        ROUTING_TIMER_POLL_INTERVAL="PT0.2S",
        ROUTING_WORKERS_PATH=str(workers),
        ROUTING_RULES_PATH=str(rules),
        INTAKE_SMTP_ENABLED="false",
        INTAKE_PUBLIC_BASE_URL=intake_url,
        NOTIFICATION_SMTP_PORT=str(smtp_port),
        NOTIFICATION_SMS_URL=f"http://127.0.0.1:{sms_port}/sms",
        # Equal times: no quiet hours, so the acknowledgement's SMS is sent whenever the test runs.
        NOTIFICATION_QUIET_HOURS_START="00:00",
        NOTIFICATION_QUIET_HOURS_END="00:00",
    )
    try:
        routing = run.start("routing", routing_port)
        intake = run.start("intake", intake_port)
        run.start("notification", notification_port)
        # The DPOs' surface, a process of its own: the public app serves no erasure route.
        privacy = run.start("intake", privacy_port, INTAKE_SURFACES="privacy")
        yield Services(run=run, intake=intake.url, routing=routing.url, privacy=privacy.url, inbox=inbox)
    finally:
        run.close()
        inbox.stop()


@dataclass
class Story:
    """What the test tells as it goes, and every expectation that failed, with its step."""

    step: str = ""
    problems: list[str] = field(default_factory=list)

    def begin(self, step: str) -> None:
        self.step = step
        print(f"\n{step}", flush=True)

    def say(self, line: str) -> None:
        print(f"   {line}", flush=True)

    def check(self, holds: bool, problem: str) -> bool:
        if not holds:
            self.problems.append(f"{self.step.split(':')[0]}: {problem}")
            print(f"   PROBLEM: {problem}", flush=True)
        return holds


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("style", "script", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "script", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    """The page's words as a person reads them: tags gone, entities decoded, spaces collapsed."""
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def offered_windows(html: str) -> list[tuple[str, str]]:
    """(value, label) of each callback window the page's form offers."""
    return [(m["key"], visible_text(m["label"])) for m in SLOT_CHOICE.finditer(html)]


def plain(mail: Any) -> str:
    return str(mail.get_body(("plain",)).get_content())


async def poll(what: str, probe: Any, timeout: float = WAIT) -> Any:
    """`probe()`'s first truthy answer; fails with `what` when none comes in time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await probe()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def event_of(topic: str, kind: type, request_id: str, what: str, **fields: Any) -> Any:
    def matching(events: list[Event]) -> list[Any]:
        return [
            e
            for e in events
            if isinstance(e, kind)
            and getattr(e, "request_id", None) == request_id
            and all(getattr(e, k) == v for k, v in fields.items())
        ]

    events = await read_events(topic, until=lambda events: bool(matching(events)), timeout=WAIT)
    found = matching(events)
    assert found, f"timed out waiting for {what} on {topic}"
    return found[-1]


class Desk:
    """The desk's HTTP calls on routing, each signed in at the real Keycloak as the person acting."""

    def __init__(self, routing: str, tokens: Tokens) -> None:
        self.tokens = tokens
        self.http = httpx.AsyncClient(base_url=routing, timeout=30)

    async def call(self, method: str, path: str, as_: str, **kwargs: Any) -> httpx.Response:
        headers = await asyncio.to_thread(self.tokens.headers, as_)
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def view(self, request_id: str, as_: str = "adv-sup") -> dict[str, Any]:
        response = await self.call("GET", f"/desk/requests/{request_id}", as_)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def queue(self, worker: str) -> dict[str, dict[str, Any]]:
        response = await self.call("GET", f"/desk/workers/{worker}/queue", worker)
        assert response.status_code == 200, response.text
        return {item["request_id"]: item for item in response.json()}

    async def take(self, request_id: str) -> str:
        """The worker the request is offered to accepts it (an offer that timed out meanwhile is offered again)."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            view = await self.view(request_id)
            worker = view["assignee_id"]
            if view["status"] == "assigned" and worker:
                return str(worker)
            if view["status"] == "reserved" and worker:
                accepted = await self.call("POST", f"/desk/requests/{request_id}/accept", worker)
                if accepted.status_code == 200:
                    return str(worker)
            assert asyncio.get_running_loop().time() < deadline, f"{request_id} is never offered: {view['status']}"
            await asyncio.sleep(0.3)


@pytest.fixture
async def desk(services: Services, tokens: Tokens) -> AsyncIterator[Desk]:
    desk = Desk(services.routing, tokens)
    try:
        yield desk
    finally:
        await desk.http.aclose()


async def test_a_job_seeker_follows_chooses_withdraws_and_is_forgotten(services: Services, desk: Desk, tokens: Tokens) -> None:
    run, story = services.run, Story()
    requests_topic, routing_topic, privacy_topic = (
        run.topic("training.requests.v1"),
        run.topic("training.routing.v1"),
        run.topic("privacy.v1"),
    )
    web = httpx.AsyncClient(base_url=services.intake, timeout=30)
    try:
        # 1. The request.
        story.begin("1. Amina asks for training on the web (JSON API), in French, with a phone and an e-mail")
        accepted = await web.post(
            "/api/v1/requests",
            json={"name": NAME, "phone": PHONE, "email": EMAIL, "language": "fr", "need": NEED, "consent_to_contact": True},
        )
        assert accepted.status_code == 202, accepted.text
        request_id = str(accepted.json()["request_id"])
        received: TrainingRequestReceived = await event_of(
            requests_topic, TrainingRequestReceived, request_id, "the request's TrainingRequestReceived"
        )
        routed: TrainingRequestRouted = await event_of(
            routing_topic, TrainingRequestRouted, request_id, "the request's TrainingRequestRouted"
        )
        story.say(f"accepted as {request_id[:8]}…; routed to {routed.target.value} ({routed.rule_id})")
        assert routed.callback_deadline is not None, "the test's policy promises web requests a callback"
        deadline_words = format_moment(routed.callback_deadline, Language.FR)
        story.say(f"promise: a call by {deadline_words} (Brussels)")

        # 2. The acknowledgement and its link.
        story.begin("2. The acknowledgement reaches her (SMS or e-mail), with her status link")

        async def acknowledged() -> tuple[list[str], list[str]] | None:
            mails = [plain(m) for m in services.inbox.mails if EMAIL in str(m["To"]) and STATUS_LINK.search(plain(m))]
            texts = [
                str(s.get("text", ""))
                for s in services.inbox.sms
                if s.get("to") == PHONE_E164 and STATUS_LINK.search(str(s.get("text", "")))
            ]
            # One channel is enough: notification sends a short update by SMS when it knows a mobile
            # number, and by e-mail otherwise (README "Notification").
            return (mails, texts) if mails or texts else None

        mails, texts = await poll("the acknowledgement by e-mail or SMS with a status link", acknowledged)
        links = {link for message in mails + texts for link in STATUS_LINK.findall(message)}
        for message in texts + mails:
            story.say(f"{'SMS' if message in texts else 'e-mail'}: {STATUS_LINK.sub('<link>', message)[:300]}")
        story.check(len(links) == 1, f"the messages carry {len(links)} different status links")
        link = sorted(links)[0]
        story.check(link.startswith(f"{services.intake}/fr/status/"), f"the link is not intake's French status page: {link[:60]}")
        story.check(any("Suivez votre demande" in m for m in mails + texts), "no message says 'Suivez votre demande'")
        path = link.removeprefix(services.intake)
        story.say(f"link: {path[:30]}… (a bearer capability: not printed in full)")

        # 3. The page.
        story.begin("3. She opens the link: what she wrote, the team and why, who calls by when, the 0800 line")
        team = TEAM_NAMES[routed.target.value][Language.FR]

        async def routed_page() -> str | None:
            page = await web.get(path)
            assert page.status_code == 200, f"{page.status_code}: {visible_text(page.text)[:300]}"
            return page.text if deadline_words in visible_text(page.text) else None

        html = await poll("the page to show the promise", routed_page)
        words = visible_text(html)
        story.say(f"page: {words[:400]}…")
        story.check(NEED in words, "her words are not on the page")
        story.check(f"Votre demande est suivie par {team}." in words, f"the team ({team}) is not named")
        reason = rule_reason(routed.rule_id, Language.FR)
        story.check(reason in words, f"the plain reason is missing: {reason!r}")
        story.check(
            f"{team[:1].upper()}{team[1:]} vous contacte au plus tard le {deadline_words}." in words,
            f"the promise 'au plus tard le {deadline_words}' is missing",
        )
        story.check("0800 555 66" in words, "the 0800 line is missing")
        story.check(f"Votre demande a été confiée à {team}." in words, "the history does not say who has it")
        worker_ids = {"adv-1", "adv-2", "adv-3", "adv-sup", "en-1"}
        internal = {received.person_id, routed.rule_id, routed.rule_set_version, *worker_ids} - {None, ""}
        shown = [value for value in internal if value and re.search(rf"(?<![\w-]){re.escape(str(value))}(?![\w-])", html)]
        story.check(not shown, f"internal values on the page: {shown}")
        for secret in (PHONE_E164, EMAIL):
            story.check(secret not in html, f"the page shows a contact detail ({secret[:4]}…)")

        # 4. An advisor calls; nobody answers.
        story.begin("4. The advisor it is offered to accepts it, calls, and nobody answers")
        advisor = await desk.take(request_id)
        recorded = await desk.call(
            "POST", f"/desk/requests/{request_id}/outcome", advisor, json={"outcome": "no_answer", "notes": NOTES}
        )
        assert recorded.status_code == 200, recorded.text
        attempted: ContactAttempted = await event_of(
            routing_topic, ContactAttempted, request_id, "the unanswered call's ContactAttempted"
        )
        story.say(f"{advisor} accepted it and recorded no_answer (attempt {attempted.attempt})")
        attempt_line = f"{format_moment(attempted.time, Language.FR)} Nous avons essayé de vous appeler, sans réponse."

        async def attempt_page() -> str | None:
            page = await web.get(path)
            return page.text if page.status_code == 200 and attempt_line in visible_text(page.text) else None

        html = await poll(f"the page to show the attempt: {attempt_line!r}", attempt_page)
        words = visible_text(html)
        story.say(f"page history: …{words[words.find('Ce qui s') :][:300]}…")
        story.check(NOTES not in words and "Messagerie" not in words, "the advisor's notes are on the page")
        story.check(
            not re.search(rf"(?<![\w-]){re.escape(advisor)}(?![\w-])", html), f"the advisor's id {advisor} is on the page"
        )

        # 5. She picks a callback window.
        story.begin("5. She picks a callback window among those the page offers; the advisor's desk shows it")
        for _ in range(3):
            windows = offered_windows(html)
            assert windows, f"the page offers no callback window: {visible_text(html)}"
            within = [w for w in windows if "après le délai promis" not in w[1]]
            key, label = (within or windows)[0]
            story.say(f"{len(windows)} windows offered ({len(within)} within the promise); she picks {label}")
            chosen = await web.post(f"{path}/slot", data={"slot": key}, follow_redirects=False)
            if chosen.status_code != 422:
                break
            # The window opened between the page and the choice (a page shown at 12:59): no longer
            # offered, the page says so; she picks again from the page it shows.
            story.say(f"refused: {visible_text(chosen.text)[:120]}")
            html = chosen.text
        assert chosen.status_code == 303, f"{chosen.status_code}: {visible_text(chosen.text)[:300]}"
        after = await web.get(chosen.headers["location"])
        start = datetime.strptime(key, "%Y-%m-%dT%H:%M").replace(tzinfo=BRUSSELS)
        slot_event: CallbackSlotChosen = await event_of(
            requests_topic, CallbackSlotChosen, request_id, "CallbackSlotChosen", slot_start=start
        )
        when = window_label(slot_event.slot_start, slot_event.slot_end, Language.FR)
        story.check(
            f"C'est noté : nous vous appelons le {when}." in visible_text(after.text),
            f"the page does not confirm the window: {visible_text(after.text)[:200]}",
        )
        story.check(slot_event.chosen_through == "status_page", f"chosen through {slot_event.chosen_through}")
        story.say(f"CallbackSlotChosen on training.requests.v1: {slot_event.slot_start} – {slot_event.slot_end}")

        async def on_the_desk() -> dict[str, Any] | None:
            # Routing saves the window on the case, then schedules the queued request: the item is
            # read once both are done (`scheduled` while the window has not opened).
            item = (await desk.queue(advisor)).get(request_id)
            if item and item.get("callback_slot_start") and (item["scheduled"] or start <= datetime.now(BRUSSELS)):
                return item
            return None

        item = await poll("the advisor's queue to show the chosen window", on_the_desk)
        story.check(
            datetime.fromisoformat(item["callback_slot_start"]) == slot_event.slot_start
            and datetime.fromisoformat(item["callback_slot_end"]) == slot_event.slot_end,
            f"the queue shows {item['callback_slot_start']}–{item['callback_slot_end']}",
        )
        story.check(item.get("callback_slot_through") == "status_page", f"queue: through {item.get('callback_slot_through')}")
        story.check(item["status"] == "assigned", f"the request left its advisor: {item['status']}")
        # A window ending within the promise keeps the deadline; one ending after it moves it there.
        expected_deadline = max(routed.callback_deadline, slot_event.slot_end)
        story.check(
            item.get("deadline") is not None and datetime.fromisoformat(item["deadline"]) == expected_deadline,
            f"the queue's deadline is {item.get('deadline')}, expected {expected_deadline}",
        )
        case = (await desk.view(request_id, as_=advisor))["case"]
        story.check(case.get("callback_slot_start") is not None, "the advisor's view of the request does not show the window")
        story.say(
            f"{advisor}'s queue: window {item['callback_slot_start']} – {item['callback_slot_end']}"
            f" (scheduled: {item.get('scheduled')}), deadline {item.get('deadline')}"
        )
        page = visible_text((await web.get(path)).text)
        story.check(f"Vous avez demandé d'être appelé·e le {when}." in page, "the page does not show the chosen window")

        # 6. She withdraws.
        story.begin("6. She withdraws (confirmation page, then confirm); the request leaves the advisor's queue")
        confirm = await web.get(f"{path}/withdraw")
        story.check(
            confirm.status_code == 200 and "Voulez-vous vraiment retirer votre demande ?" in visible_text(confirm.text),
            f"no confirmation page: {confirm.status_code} {visible_text(confirm.text)[:200]}",
        )
        withdrawn = await web.post(f"{path}/withdraw", data={"confirm": "yes"}, follow_redirects=False)
        assert withdrawn.status_code == 303, f"{withdrawn.status_code}: {visible_text(withdrawn.text)[:300]}"
        confirmed = visible_text((await web.get(withdrawn.headers["location"])).text)
        story.check("Votre demande est retirée. Personne ne vous appellera." in confirmed, f"not confirmed: {confirmed[:300]}")
        closed: TrainingRequestClosed = await event_of(
            routing_topic, TrainingRequestClosed, request_id, "TrainingRequestClosed (withdrawn)"
        )
        story.check(closed.disposition.value == "withdrawn", f"closed {closed.disposition.value}, not withdrawn")
        story.check(closed.worker_id is None, f"the withdrawal names a worker: {closed.worker_id}")
        story.say(f"TrainingRequestClosed on training.routing.v1: {closed.disposition.value}")

        async def off_the_queue() -> bool:
            return request_id not in await desk.queue(advisor)

        await poll(f"the request to leave {advisor}'s queue", off_the_queue)
        story.say(f"{advisor}'s queue no longer holds it")

        async def closed_page() -> str | None:
            page = await web.get(path)
            text = visible_text(page.text)
            return text if page.status_code == 200 and "Votre demande est fermée à votre demande." in text else None

        page = await poll("the page to say the request is closed at her request", closed_page)
        story.check("Vous avez retiré votre demande." in page, "the history does not show the withdrawal")
        story.check("au plus tard" not in page, "a withdrawn request still promises a call")
        story.check("Choisir ce moment" not in page and "Retirer ma demande" not in page, "the page still offers actions")
        again = await web.post(f"{path}/slot", data={"slot": key}, follow_redirects=False)
        story.check(
            again.status_code == 409 and "Votre demande est fermée" in visible_text(again.text),
            f"choosing a window after the withdrawal: {again.status_code}",
        )
        twice = await web.get(f"{path}/withdraw")
        story.check(twice.status_code == 409, f"the withdrawal's confirmation after it: {twice.status_code}")
        story.say(f"the page says it is withdrawn; a new choice answers {again.status_code}, a withdrawal {twice.status_code}")

        # 7. Erasure.
        story.begin("7. Two DPOs erase her on intake's privacy surface; the link answers that nothing is kept")
        async with httpx.AsyncClient(base_url=services.privacy, timeout=30) as privacy:
            asked = await privacy.post(
                "/api/v1/privacy/erasures", json={"phone": PHONE}, headers=await asyncio.to_thread(tokens.headers, "dpo-1")
            )
            assert asked.status_code == 202, asked.text
            approval = f"/api/v1/privacy/erasures/{asked.json()['erasure_id']}/approval"
            approved = await privacy.post(approval, headers=await asyncio.to_thread(tokens.headers, "dpo-2"))
            assert approved.status_code == 202, approved.text
        erased = await read_events(
            privacy_topic,
            until=lambda events: any(isinstance(e, PersonDataErased) and e.person_id == received.person_id for e in events),
            timeout=WAIT,
        )
        story.check(
            any(isinstance(e, PersonDataErased) and e.person_id == received.person_id for e in erased),
            "no PersonDataErased for her on privacy.v1",
        )
        story.say("dpo-1 asked, dpo-2 approved; PersonDataErased on privacy.v1")

        async def gone() -> httpx.Response | None:
            page = await web.get(path)
            return page if page.status_code == 410 else None

        page_gone = await poll("the link to answer 410", gone)
        words = visible_text(page_gone.text)
        story.say(f"the link answers {page_gone.status_code}: {words[:200]}")
        story.check("Rien n'est conservé" in words, "the page does not say nothing is kept")
        story.check("Nous ne conservons plus rien sur cette demande." in words, "the page's words on erasure are missing")
        story.check(NEED not in words and "accueil" not in words, "her words are still on the page")
        story.check("0800 555 66" in words, "the 0800 line is missing after erasure")
    finally:
        await web.aclose()

    print()
    for problem in story.problems:
        print(f"PROBLEM {problem}")
    assert story.problems == []
