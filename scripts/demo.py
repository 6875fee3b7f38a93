"""`make demo`: the services as separate processes on the real broker and mongod, a scripted
scenario played through them, and a table of what happened.

Each run uses a fresh database, so the table shows this run only; the services' logs are kept
under .local/demo/logs/ for reading afterwards (and contain no personal data).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import smtplib
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from html import unescape
from html.parser import HTMLParser
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from certification.signing import new_signing_key
from intake.phone import generic_signature
from scripts.launch import REPO, kafka_bootstrap, kafka_client, kafka_env, mongodb_uri, running_services
from scripts.principals import ADMIN, GRANTS, KAFKA_SECURED, create_kafka_acls, kafka_acls
from scripts.tokens import Tokens
from scripts.tracing import collector_running, otlp_env, trace_summary, trace_url
from services.calendar import BRUSSELS, BrusselsCalendar
from services.kafka import delete_topics_with_prefix
from services.settings import KafkaSettings

console = Console(width=160)
TOKENS = Tokens()
"""The demo's actors sign in through the local Keycloak; each token is fetched when first needed."""

PHONE_SECRET = "demo-phone-webhook-secret"  # noqa: S105 - the demo's own, given to the intake it starts
SMTP_PORT = 8025
INBOX = "formations-en-ligne@bruxellesformation.brussels"
DEMO_ENV = {
    "INTAKE_PHONE_WEBHOOK_SECRET": PHONE_SECRET,
    "INTAKE_SMTP_PORT": str(SMTP_PORT),
    # Routing runs on a simulated clock, so the demo can show a 48-hour deadline passing.
    "ROUTING_CLOCK": "simulated",
    "ROUTING_DISPATCH_INTERVAL": "PT0.3S",
    "ROUTING_TIMER_POLL_INTERVAL": "PT0.3S",
}


def next_working_morning() -> datetime:
    """10:00 in Brussels on the next working day, when the advisors are at their desks."""
    calendar = BrusselsCalendar()
    day = datetime.now(BRUSSELS).date() + timedelta(days=1)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, dtime(10, 0), tzinfo=BRUSSELS)


# The people of the scenario. Numbers are in the range Belgian regulators keep for fiction and
# addresses use example domains: the demo never touches anyone real.
PHONE_CALLS: list[dict[str, Any]] = [
    {
        "event": "answered",
        "caller": "0470 00 01 01",
        "language": "fr",
        "agent_notes": "Pas de diplôme, voudrait apprendre à utiliser un ordinateur.",
        "at": timedelta(hours=-26),
    },
    {"event": "out_of_hours", "caller": "+32 470 00 01 02", "language": "nl", "at": timedelta(hours=-3)},
    # Keyed in the phone menu: no diploma, no computer at home (docs/phone-ivr.md).
    {
        "event": "answered",
        "caller": "0470 00 01 07",
        "language": "fr",
        "ivr": {"qualification": "1", "computer": "no", "internet": "no"},
        "at": timedelta(hours=-2),
    },
]
EMAILS: list[dict[str, Any]] = [
    {
        "from": "Jan Peeters <jan.peeters@example.be>",
        "subject": "Opleiding Excel",
        "body": "Goedendag,\nIk wil graag een online opleiding Excel volgen. Mijn nummer is 0470/00.01.03.\nBedankt!",
        "charset": "iso-8859-1",
    },
    {
        "from": "=?utf-8?q?Andr=C3=A9_Dupont?= <andre.dupont@example.org>",
        "subject": "Formation Photoshop en ligne",
        "body": "Bonjour,\nJe souhaiterais suivre la formation Photoshop en ligne.\nMerci d'avance,\nAndré",
        "charset": "utf-8",
    },
]
WEB_REQUESTS: list[dict[str, Any]] = [
    {
        "name": "Demo Persoon",
        "email": "jan.peeters@example.be",
        "language": "nl",
        "need": "Ik wil mijn Frans verbeteren.",
        "requested_course": "FR-BASE",
        "consent_to_contact": True,
        "campaign": {"utm_source": "facebook", "utm_campaign": "confine-mais-connecte"},
    },
    {
        "phone": "0470 00 01 06",
        "language": "fr",
        "need": "Je n'ai pas d'ordinateur ni internet à la maison.",
        "has_computer": False,
        "has_internet": False,
        "qualification_level": "primary",
        "consent_to_contact": True,
    },
    {
        "email": "career@example.org",
        "language": "en",
        "need": "I am thinking about a career change and do not know which job suits me.",
        "consent_to_contact": True,
        "partner": "actiris",
    },
]


def call(intake_url: str, index: int, spec: dict[str, Any]) -> httpx.Response:
    payload = {k: v for k, v in spec.items() if k != "at"}
    payload |= {"call_id": f"demo-{time.time_ns()}-{index}", "started_at": (datetime.now(UTC) + spec["at"]).isoformat()}
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    return httpx.post(
        f"{intake_url}/webhooks/phone",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Signature-Timestamp": timestamp,
            "X-Signature": generic_signature(PHONE_SECRET, timestamp, body),
        },
        timeout=10,
    )


def mail(spec: dict[str, Any]) -> tuple[int, bytes]:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = spec["from"]
    message["To"] = INBOX
    message["Subject"] = spec["subject"]
    message.set_content(spec["body"], charset=spec["charset"], cte="quoted-printable")
    with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail(INBOX.replace("formations-en-ligne", "demo-sender"))
        smtp.rcpt(INBOX)
        return smtp.data(message.as_bytes())


async def lockdown(routing_url: str) -> None:
    """As in spring 2020: the digital-divide programme is suspended before the requests arrive."""
    async with httpx.AsyncClient(base_url=routing_url, timeout=10, headers=TOKENS.headers("adv-sup")) as http:
        suspended = await http.post("/desk/programmes/digital-divide/suspend", json={})
        suspended.raise_for_status()
    console.print("adv-sup suspends the digital-divide programme (as in the 2020 lockdown): nobody must be stranded")


async def send_scenario(intake_url: str) -> int:
    console.rule("[bold]1. Requests arrive through the three channels")
    sent = 0
    for index, spec in enumerate(PHONE_CALLS):
        response = call(intake_url, index, spec)
        response.raise_for_status()
        console.print(
            f"[cyan]phone[/]  {spec['event']:<13} -> {response.status_code} request {response.json()['request_id'][:8]}"
        )
        sent += 1
    for spec in EMAILS:
        code, _ = await asyncio.to_thread(mail, spec)
        console.print(f"[magenta]e-mail[/] {spec['subject']:<28} -> SMTP {code}")
        sent += 1
    async with httpx.AsyncClient(base_url=intake_url, timeout=10.0) as http:
        for spec in WEB_REQUESTS:
            response = await http.post("/api/v1/requests", json=spec)
            response.raise_for_status()
            console.print(
                f"[green]web[/]    {spec['language']} {spec['need'][:40]:<40} -> {response.status_code}"
                f" request {response.json()['request_id'][:8]}"
            )
            sent += 1
    return sent


async def wait_for_outcomes(db: Any, expected: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        routed = await db["routing_decisions"].count_documents({})
        notified = await db["deliveries"].count_documents({})
        if routed >= expected and notified >= expected:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"only {routed}/{expected} routed and {notified} notified after {timeout:.0f}s")


async def outcome_table(db: Any) -> Table:
    table = Table(title="2. Where each request went")
    columns = ("request", "channel", "person", "linked to", "routed to", "programme", "rule", "why", "offered to", "notification")
    for column in columns:
        table.add_column(column, overflow="fold")
    intake = {doc["_id"]: doc async for doc in db["intake_requests"].find()}
    async for decision in db["routing_decisions"].find().sort("received_at", 1):
        request = intake.get(decision["_id"], {})
        delivery = await db["deliveries"].find_one({"request_id": decision["_id"]})
        queued = await db["routing_requests"].find_one({"_id": decision["_id"]}) or {}
        holder = (queued.get("reservation") or {}).get("worker_id") or queued.get("status", "-")
        table.add_row(
            decision["_id"][:8],
            decision["channel"],
            decision["person_id"][-6:],
            ", ".join(i[:8] for i in request.get("linked_request_ids", [])) or "-",
            decision["target"],
            decision.get("programme") or "-",
            decision["rule_id"],
            decision["explanation"],
            holder,
            f"{delivery['template']} ({delivery['status']})" if delivery else "-",
        )
    return table


async def wait_for_offers(db: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = await db["routing_requests"].count_documents({"status": "queued"})
        if waiting == 0:
            return
        await asyncio.sleep(0.2)


# The desk's people who have an account in the local realm (deploy/keycloak/formation-realm.json):
# the advisors' team, all of whom can sign in, so an offer declined there is re-offered to one who can.
ADVISORS = ("adv-1", "adv-2", "adv-3", "adv-sup")


async def refusals(routing_url: str) -> None:
    console.rule("[bold]3. Signing in: the desk's actors get their tokens from Keycloak")
    console.print(f"identity provider {TOKENS.issuer} (password grant of the local demo client {TOKENS.client_id})")
    async with httpx.AsyncClient(base_url=routing_url, timeout=10) as http:
        anonymous = await http.get("/desk/workers")
        console.print(f"GET /desk/workers without a token -> [bold red]{anonymous.status_code}[/] {anonymous.json()['detail']}")
        advisor = await http.get("/desk/workers", headers=TOKENS.headers("adv-1"))
        console.print(f"GET /desk/workers as adv-1 (advisor) -> [bold red]{advisor.status_code}[/] {advisor.json()['detail']}")
        supervisor = await http.get("/desk/workers", headers=TOKENS.headers("adv-sup"))
        console.print(
            f"GET /desk/workers as adv-sup (supervisor) -> [bold green]{supervisor.status_code}[/],"
            f" {len(supervisor.json())} workers"
        )


async def at_the_desk(routing_url: str, db: Any) -> None:
    console.rule("[bold]4. At the desk: an offer declined and re-offered, then an enrolment")
    # Not the caller waiting on the suspended programme: step 4b calls them back.
    waiting = [case["_id"] async for case in db["routing_cases"].find({"programme": {"$ne": None}}, {"_id": 1})]
    held = await db["routing_requests"].find_one(
        {"reservation.worker_id": {"$in": list(ADVISORS)}, "_id": {"$nin": waiting}}, sort=[("_id", 1)]
    )
    if held is None:
        raise RuntimeError("no request of the scenario is offered to an advisor who can sign in")
    request_id = held["_id"]
    async with httpx.AsyncClient(base_url=routing_url, timeout=10) as http:
        view = (await http.get(f"/desk/requests/{request_id}", headers=TOKENS.headers("adv-sup"))).json()
        first = view["assignee_id"]
        console.print(f"request {request_id[:8]} is offered to [bold]{first}[/]")
        # Each actor acts as themself: the worker is the token's subject, never a field of the body.
        declined = (await http.post(f"/desk/requests/{request_id}/decline", headers=TOKENS.headers(first))).json()
        second = declined["offered_to"]
        console.print(f"{first} signs in and declines -> re-offered to [bold]{second}[/] (least load, then longest idle)")
        as_second = TOKENS.headers(second)
        await http.post(f"/desk/requests/{request_id}/accept", headers=as_second)
        queue = (await http.get(f"/desk/workers/{second}/queue", headers=as_second)).json()
        console.print(f"{second} accepts; their queue: " + ", ".join(f"{i['request_id'][:8]} ({i['status']})" for i in queue))
        # The supervisor plans an online Excel session in the person's language, starting the day after
        # the routing clock's (Excel is given in French, Dutch and English).
        language = str(held.get("language") or "fr")
        session_id = f"EXCEL-DEMO-{language.upper()}"
        starts_on = next_working_morning().date() + timedelta(days=1)
        planned = await http.post(
            "/desk/courses/EXCEL/sessions",
            json={
                "session_id": session_id,
                "starts_on": starts_on.isoformat(),
                "ends_on": (starts_on + timedelta(weeks=6)).isoformat(),
                "capacity": 12,
                "mode": "online",
                "language": language,
            },
            headers=TOKENS.headers("adv-sup"),
        )
        planned.raise_for_status()
        console.print(f"adv-sup plans session {session_id} (online, {language}, 12 places) from {starts_on:%a %d %b}")
        outcome = await http.post(
            f"/desk/requests/{request_id}/outcome",
            json={"outcome": "enrolled", "course_code": "EXCEL", "notes": "Inscrit au parcours Excel."},
            headers=as_second,
        )
        outcome.raise_for_status()
        published = ", ".join(t.rsplit(".", 2)[-2] + "." + t.rsplit(".", 1)[-1] for t in outcome.json()["published"])
        enrolment = outcome.json().get("enrolment") or {}
        console.print(
            f"{second} records the call: enrolled in EXCEL, session {enrolment.get('session_id')} from "
            f"{enrolment.get('starts_on')} -> published {published}"
        )


async def called_back_while_suspended(routing_url: str, db: Any) -> str:
    """The caller without a computer: the programme is suspended, an advisor calls back all the same."""
    case = await db["routing_cases"].find_one({"channel": "phone", "programme": "waitlisted"})
    if case is None:
        raise RuntimeError("the caller without a computer is not on the suspended programme's waitlist")
    request_id = case["_id"]
    queued = await db["routing_requests"].find_one({"_id": request_id})
    advisor = ((queued or {}).get("reservation") or {}).get("worker_id")
    if advisor not in ADVISORS:
        raise RuntimeError(f"the caller without a computer waits with nobody who can sign in ({advisor})")
    async with httpx.AsyncClient(base_url=routing_url, timeout=10, headers=TOKENS.headers(advisor)) as http:
        if (queued or {}).get("status") == "reserved":
            (await http.post(f"/desk/requests/{request_id}/accept")).raise_for_status()
        called = await http.post(
            f"/desk/requests/{request_id}/outcome",
            json={"outcome": "advice_given", "notes": "Place gardée sur la liste d'attente ; rappel à la reprise."},
        )
        called.raise_for_status()
    case = await db["routing_cases"].find_one({"_id": request_id}) or {}
    console.print(
        f"request {request_id[:8]} (phone, no computer, programme suspended): {advisor} calls back"
        f" -> promise {case.get('sla')}, place on the waitlist kept ({case.get('programme')})"
    )
    return str(request_id)


STATUS_LINK = re.compile(r"https?://[^\s<>\"]+/(?:fr|nl|en)/status/[A-Za-z0-9._~-]+")


class _PageText(HTMLParser):
    """The words a person reads on a page: headings, paragraphs, list items, legends, labels."""

    BLOCKS = frozenset({"h1", "h2", "h3", "p", "li", "dt", "dd", "legend", "label", "summary"})

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._open: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("style", "script"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self._open.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1
        elif tag in self.BLOCKS and self._open:
            line = " ".join(self._open.pop().split())
            if line:
                self.lines.append(("# " if tag in ("h1", "h2", "h3") else "  ") + line)

    def handle_data(self, data: str) -> None:
        if self._open and not self._skip:
            self._open[-1] += data


async def status_page(inbox: Inbox, db: Any, request_id: str, timeout: float = 30.0) -> None:
    """The acknowledgement's status link of the caller just called back, and what their page says."""
    console.rule("[bold]The job seeker's side: the status link in the acknowledgement, and its page")
    case = await db["routing_cases"].find_one({"_id": request_id}) or {}
    phone = str((case.get("contact") or {}).get("phone") or "")
    deadline = time.monotonic() + timeout
    links: list[str] = []
    while not links and time.monotonic() < deadline:
        texts = [str(t.get("text", "")) for t in inbox.sms if phone and str(t.get("to", "")).endswith(phone[-8:])]
        links = [link for text in texts for link in STATUS_LINK.findall(text)]
        if not links:
            await asyncio.sleep(0.3)
    if not links:
        raise RuntimeError(f"no status link reached the caller of request {request_id[:8]}")
    link = links[0]
    # The page reads a projection fed from Kafka: wait until it has the advisor's call (a few seconds).
    while time.monotonic() < deadline:
        entry = await db["intake_status"].find_one({"_id": request_id}, {"history.what": 1}) or {}
        if any(line.get("what") == "attempt" for line in entry.get("history", [])):
            break
        await asyncio.sleep(0.3)
    # Printed whole (the demo's people are made up): a real link is a bearer capability, sealed on Kafka.
    console.print(f"the acknowledgement's status link: {link}", highlight=False, soft_wrap=True)
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(link)
    reader = _PageText()
    reader.feed(page.text)
    console.print(f"GET -> {page.status_code}; what the person reads:", highlight=False)
    for line in reader.lines:
        console.print(line, highlight=False, markup=False)


async def time_passes(routing_url: str, db: Any) -> None:
    console.rule("[bold]5. Time passes (simulated clock, moved by ops-1): a callback nobody made breaches its deadline")
    async with httpx.AsyncClient(base_url=routing_url, timeout=10, headers=TOKENS.headers("ops-1")) as http:
        for hours in (12, 12, 12, 12):
            now = (await http.post("/admin/clock/advance", params={"hours": hours})).json()["now"]
            await asyncio.sleep(1.0)
            due = await db["routing_cases"].count_documents({"due_sent_at": {"$ne": None}})
            breached = await db["routing_cases"].count_documents({"sla": "breached"})
            console.print(f"clock {now[:16]}: {due} callback(s) due soon, {breached} deadline(s) breached")
    async for case in db["routing_cases"].find({"sla": "breached"}):
        console.print(
            f"request {case['_id'][:8]} ({case['channel']}): deadline {case['deadline'].astimezone(BRUSSELS):%a %d %b %H:%M}"
            " passed with no contact -> CallbackSlaBreached, escalated to the team's supervisor"
        )
    # What the supervisor sees: the same board as the console's "My team" page (/console/fr/team).
    async with httpx.AsyncClient(base_url=routing_url, timeout=10, headers=TOKENS.headers("adv-sup")) as http:
        for team in ("advisors", "espaces_numeriques"):
            board = (await http.get(f"/desk/teams/{team}/board")).json()
            late = [
                f"{row['request_id'][:8]} ({row['status']}, {row['worker_id'] or 'nobody'})"
                for row in board
                if row["urgency"] == "breached"
            ]
            console.print(f"adv-sup's board for {team}: {len(board)} open, late first: {', '.join(late) or 'none late'}")
            for row in board:
                if row["programme"] == "waitlisted":
                    console.print(
                        f"  {row['request_id'][:8]}: on the suspended programme's waitlist, still in the {team} queue"
                        f" ({row['status']}, {row['worker_id'] or 'next free advisor'}), dispatch rank {row['dispatch_rank']},"
                        f" priority {row['priority']} from {row['priority_parts']} (sources {row['fact_sources']})"
                    )


async def one_trace(db: Any, *, exported: bool) -> None:
    """The trace of the request followed to its certificate: its id is kept with routing's decision."""
    console.rule("[bold]Tracing: one request, four services")
    enrolled = await db["routing_cases"].find_one({"outcome": "enrolled"})
    decision = await db["routing_decisions"].find_one({"_id": enrolled["_id"]}, {"trace": 1}) if enrolled else None
    traceparent = ((decision or {}).get("trace") or {}).get("traceparent", "")
    if not traceparent:
        console.print("no trace context was stored with the enrolled request's decision")
        return
    trace_id = traceparent.split("-")[1]
    console.print(f"the enrolled request's trace id: [bold]{trace_id}[/]")
    if not exported:
        console.print("no collector runs: `make down && make demo TRACING=1` starts Jaeger and exports the spans")
        return
    wanted = {"intake", "routing", "notification", "certification"}
    summary = await trace_summary(trace_id, 30, services=wanted)
    if summary is None:
        console.print(f"the collector has no span of it yet; open {trace_url(trace_id)} in a moment")
        return
    console.print(f"{summary.span_count} spans from {', '.join(summary.services)}; open {summary.url}")


async def show_events(database: str) -> None:
    from aiokafka import AIOKafkaConsumer

    from schemas import decode

    console.rule("[bold]7. The events on Kafka")
    table = Table()
    for column in ("topic", "event", "request", "actor", "detail"):
        table.add_column(column)
    topics = [
        f"{database}.{t}" for t in ("training.routing.v1", "training.enrolments.v1", "certification.exams.v1", "notifications.v1")
    ]
    consumer = AIOKafkaConsumer(
        *topics,
        **kafka_client(),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
    finally:
        await consumer.stop()
    rows = sorted((r for records in batches.values() for r in records), key=lambda r: r.timestamp)
    for record in rows:
        event = decode(record.value, record.headers)
        detail = {
            "TrainingRequestRouted": lambda e: f"{e.target.value} ({e.rule_id})",
            "CallbackDue": lambda e: f"deadline {e.deadline.astimezone(BRUSSELS):%a %H:%M} (Brussels)",
            "CallbackSlaBreached": lambda e: f"escalated to {e.escalated_to}",
            "ContactAttempted": lambda e: f"{e.outcome.value} by {e.worker_id}",
            "TrainingRequestClosed": lambda e: f"{e.disposition.value} after {e.attempts} call(s)",
            "EnrolmentConfirmed": lambda e: f"{e.course_code}: {e.course_title}",
            "ExamSchedulingRequested": lambda e: f"{e.certification_code} ({e.reason.value})",
            "ExamSeatOffered": lambda e: (
                f"{e.certification_code} at {e.centre_name}, answer by {e.respond_by.astimezone(BRUSSELS):%a %d %b %H:%M} "
                "(links sealed)"
            ),
            "ExamSeatOfferAccepted": lambda e: f"offer {e.offer_id[:8]} accepted",
            "ExamSeatOfferDeclined": lambda e: f"offer {e.offer_id[:8]} declined",
            "ExamSeatOfferExpired": lambda e: f"offer {e.offer_id[:8]} lapsed",
            "ExamScheduled": lambda e: (
                f"{e.certification_code} at {e.centre_name}, {e.exam_at.astimezone(BRUSSELS):%a %d %b %H:%M}"
            ),
            "CertificateIssued": lambda e: f"{e.certification_code}: {e.credential_url}",
            "NotificationSent": lambda e: f"{e.template} by {e.channel.value}",
            "NotificationFailed": lambda e: f"{e.template} by {e.channel.value}: {e.reason}",
        }.get(type(event).__name__, lambda e: "")(event)
        table.add_row(
            record.topic.removeprefix(f"{database}."),
            type(event).__name__,
            str(getattr(event, "request_id", None) or "")[:8],
            event.actor or "",  # who signed in and caused it; empty for what processes did
            detail,
        )
    console.print(table)


class Inbox:
    """The demo's SMTP sink and SMS provider: what the notification service sends lands here."""

    def __init__(self) -> None:
        self.mails: list[Any] = []
        self.sms: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.mails.append(message_from_bytes(envelope.original_content, policy=default_policy))
        return "250 OK"

    def start(self) -> tuple[int, int]:
        from aiosmtpd.controller import Controller

        smtp_port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=smtp_port)
        self.controller.start()
        sms_app = FastAPI()

        @sms_app.post("/sms")
        async def send(body: dict[str, Any]) -> dict[str, str]:
            self.sms.append(body)
            return {"status": "queued"}

        sms_port = free_port()
        self.sms_server = uvicorn.Server(
            uvicorn.Config(sms_app, host="127.0.0.1", port=sms_port, log_level="warning", lifespan="off")
        )
        threading.Thread(target=self.sms_server.run, daemon=True).start()
        while not self.sms_server.started:
            time.sleep(0.05)
        return smtp_port, sms_port

    def stop(self) -> None:
        self.controller.stop()
        self.sms_server.should_exit = True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SEAT_OFFER_LINK = re.compile(r"https?://[^\s\"'<>]+/seat-offers/respond\?token=[^\s\"'<>&]+(?:&lang=[a-z]{2})?")
"""A seat offer's accept or decline link, as the e-mail's text and the SMS carry it."""


def shown_link(link: str) -> str:
    """A link for the screen: its token is a bearer capability, so only its first characters are shown."""
    return re.sub(r"(token=[^.&]+\.[^.&]{6})[^&]*", r"\1…", link)


async def seat_offer_reached(inbox: Inbox, mails_before: int, sms_before: int, timeout: float = 30.0) -> list[str]:
    """Wait for the seat offer's e-mail and SMS, print them (addresses masked), and return the links
    they carry (the SMS's first: the link a candidate on the move taps)."""
    deadline = time.monotonic() + timeout
    while True:
        mails = [m for m in inbox.mails[mails_before:] if SEAT_OFFER_LINK.search(plain_text(m))]
        texts = [t for t in inbox.sms[sms_before:] if SEAT_OFFER_LINK.search(str(t.get("text", "")))]
        # Both, unless the person gave only one of an e-mail address and a mobile number.
        if (mails and texts) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    if not mails and not texts:
        raise TimeoutError("the seat offer reached the candidate neither by e-mail nor by SMS")
    links: list[str] = []
    for sms in texts:
        text = str(sms.get("text", ""))
        console.print(
            f"  [bold]SMS[/] to {mask(str(sms.get('to', '')))}: {SEAT_OFFER_LINK.sub(lambda m: shown_link(m[0]), text)}"
        )
        links += SEAT_OFFER_LINK.findall(text)
    for mail in mails:
        found = SEAT_OFFER_LINK.findall(plain_text(mail))
        console.print(
            f"  [bold]e-mail[/] to {mask(str(mail['To']))}: {mail['Subject']}\n"
            + "".join(f"    {shown_link(link)}\n" for link in found).rstrip()
        )
        links += found
    return links


def plain_text(mail: Any) -> str:
    """The text part of a message the sink received."""
    body = mail.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


def page_form(page: str, action: str) -> dict[str, str]:
    """The fields of the seat-offer page's form whose button says `action`, as a browser posts them."""
    for form in re.findall(r"<form method=\"post\".*?</form>", page, flags=re.S):
        if f'value="{action}"' in form:
            fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form))
            return {name: unescape(value) for name, value in fields.items()} | {"action": action}
    raise ValueError(f"no {action} form on the seat-offer page")


async def certification_journey(services: dict[str, Any], db: Any, database: str, inbox: Inbox) -> None:
    console.rule("[bold]6. From enrolment to a certificate (centres closed, then reopened)")
    enrolled = await db["routing_cases"].find_one({"outcome": "enrolled"})
    person_id = enrolled["person_id"]
    # The person finished the online Excel session at their own pace: the desk records the completion,
    # which frees the place and, Excel preparing for MOS-EXCEL, makes routing ask for the exam by itself.
    async with httpx.AsyncClient(base_url=services["routing"].url, timeout=10, headers=TOKENS.headers("adv-sup")) as http:
        completion = await http.post(f"/desk/enrolments/{enrolled['_id']}/completed", json={})
        completion.raise_for_status()
        published = ", ".join(t.rsplit(".", 2)[-2] + "." + t.rsplit(".", 1)[-1] for t in completion.json()["published"])
        console.print(f"adv-sup records that the person completed the Excel session -> published {published}")
    # Certification staff sign in as cert-1; checking the credential afterwards needs no account.
    async with httpx.AsyncClient(base_url=services["certification"].url, timeout=10, headers=TOKENS.headers("cert-1")) as http:
        waitlist: list[dict[str, Any]] = []
        for _ in range(100):
            waitlist = (await http.get("/waitlist", params={"certification": "MOS-EXCEL"})).json()
            if waitlist:
                break
            await asyncio.sleep(0.2)
        console.print(f"the Excel path is completed: the candidate waits for an exam ({waitlist[0]['waiting_reason']})")
        await http.put(
            "/centres/ctr-anderlecht", json={"state": "closed", "name": "Centre d'examens d'Anderlecht", "address": "Anderlecht"}
        )
        exam_at = (next_working_morning() + timedelta(days=14)).isoformat()
        await http.post(
            "/sessions",
            json={
                "session_id": "ses-excel-1",
                "centre_id": "ctr-anderlecht",
                "certifications": ["MOS-EXCEL"],
                "starts_at": exam_at,
                "seats": 8,
            },
        )
        console.print("a session with 8 seats is planned, but the centre is closed (lockdown): nobody is offered a seat yet")
        mails_before, sms_before = len(inbox.mails), len(inbox.sms)
        opened = (await http.put("/centres/ctr-anderlecht", json={"state": "open"})).json()
        offer = opened["offers"][0]
        console.print(
            f"the centre reopens -> seat offered ({offer['offer_id'][:12]}), to answer by {offer['expires_at']} "
            "(ExamSeatOffered: its links travel sealed with the person's key)"
        )
        # The offer reaches the candidate: notification opens the links and sends them by e-mail and SMS.
        links = await seat_offer_reached(inbox, mails_before, sms_before)
        # The candidate opens the link (GET changes nothing) and presses "accept" on the page.
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await browser.get(links[0])
            page.raise_for_status()
            answered = await browser.post(links[0].split("?", 1)[0], data=page_form(page.text, "accept"))
        said = re.search(r'<p role="status">(.*?)</p>', answered.text, flags=re.S)
        console.print(
            f"the candidate opens the link and presses accept -> {answered.status_code}: "
            f"{unescape(said.group(1)) if said else '-'}"
        )
        status = (await http.get(f"/offers/{offer['offer_id']}")).json()["status"]
        console.print(f"offer {offer['offer_id'][:12]} is {status} -> ExamScheduled (the notice to attend follows)")
        result = (
            await http.post("/sessions/ses-excel-1/results", json={"person_id": person_id, "passed": True, "score": 870})
        ).json()
        credential = (await http.get(f"/credentials/{result['credential_id']}", headers={"Authorization": ""})).json()
        subject = credential["credentialSubject"]
        console.print(
            f"passed with 870 -> CertificateIssued; Open Badges 3.0 credential {credential['id']}\n"
            f"  type {credential['type']}, issuer {credential['issuer']['name']},"
            f" achievement '{subject['achievement']['name']}',\n"
            f"  subject identified only by {subject['identifier'][0]['identityHash'][:20]}… (salted hash),"
            f" proof {[p['cryptosuite'] for p in credential.get('proof', [])]}, status {credential['credentialStatus']['type']}"
        )
        page = await http.get(f"/verify/{result['credential_id']}", params={"lang": "en"}, headers={"Authorization": ""})
        verdict = re.search(r'<p role="status"><strong>(.*?)</strong>', page.text)
        console.print(
            f"  public verification page (no account needed): {page.url}\n"
            f"  verdict: {unescape(verdict.group(1)) if verdict else page.status_code}"
        )


async def wait_for_mail(inbox: Inbox, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(inbox.mails) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - filled by the SMTP server's thread
        await asyncio.sleep(0.2)


def show_inbox(inbox: Inbox) -> None:
    console.rule("[bold]8. What the job seekers received (the demo's SMTP sink and SMS provider)")
    table = Table()
    for column in ("channel", "to", "language", "subject / text"):
        table.add_column(column, overflow="fold")
    for mail in inbox.mails:
        table.add_row("e-mail", mask(str(mail["To"])), str(mail.get("Content-Language", "")), str(mail["Subject"]))
    for sms in inbox.sms:
        table.add_row("sms", mask(str(sms.get("to", ""))), "", str(sms.get("text", ""))[:90])
    console.print(table)


def mask(address: str) -> str:
    """Shown on the demo's screen only, and masked all the same: it is a habit worth having."""
    return re.sub(r"(?<=.)[^@<>\s](?=[^@<>\s]*[^@<>\s]{2}(@|$|>))", "•", address)


async def analysts_report(database: str) -> None:
    """What an analyst sees: the demo's topics replayed into a pseudonymous read model, and the report."""
    from pydantic import SecretStr

    from analytics.replay import replay
    from analytics.report import run_report
    from analytics.settings import AnalyticsSettings
    from services.settings import MongoSettings

    console.rule("[bold]9. The analysts' report, from a replay of the demo's events")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap(), topic_prefix=f"{database}.")
    # The analysts' read model as analytics itself: its own MongoDB user (its `events` collection only).
    mongo = MongoSettings(uri=SecretStr(mongodb_uri("analytics")), database=database)
    settings = AnalyticsSettings(kafka=kafka, mongo=mongo)
    stats = await replay(settings, into=f"{database}_analytics")
    console.print(f"replayed {stats.records} events into {database}_analytics (pseudonymous: no names, numbers or free text)")
    out = REPO / "reports" / "demo"
    report = await run_report(settings, f"{database}_analytics", out)
    console.print(report)
    console.print(f"CSV files and charts (sla_trend.png, volume_trend.png) in {out.relative_to(REPO)}/")


async def play(database: str) -> None:
    uri = mongodb_uri()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        for old in await client.list_database_names():
            if old.startswith("demo_"):
                await client.drop_database(old)  # the previous runs' data: one demo at a time
        await delete_topics_with_prefix(KafkaSettings(bootstrap_servers=kafka_bootstrap()), "demo_")
        # The services run as their own principals (scripts.launch): their ACLs, for this run's topics.
        if KAFKA_SECURED.exists() and kafka_env(ADMIN):
            await create_kafka_acls(kafka_client(ADMIN), [acl for s in GRANTS for acl in kafka_acls(s, f"{database}.")])
        # Its own topics too, so that no other run's backlog shows up in the demo's table.
        env = {
            "MONGODB_DATABASE": database,
            "KAFKA_TOPIC_PREFIX": f"{database}.",
            "ROUTING_CLOCK_START": next_working_morning().isoformat(),
            # A key of this run's own: the credential is signed (eddsa-rdfc-2022) and the verification page says so.
            "CERTIFICATION_SIGNING_KEY": new_signing_key(),
            **DEMO_ENV,
        }
        # `make demo TRACING=1` runs Jaeger: the services export their spans to it.
        exported = collector_running()
        env |= otlp_env() if exported else {}
        inbox = Inbox()
        smtp_port, sms_port = inbox.start()
        env |= {
            "NOTIFICATION_SMTP_PORT": str(smtp_port),
            "NOTIFICATION_SMS_URL": f"http://127.0.0.1:{sms_port}/sms",
            "NOTIFICATION_QUIET_HOURS_START": "23:59",
            "NOTIFICATION_QUIET_HOURS_END": "00:00",
        }
        with running_services(env=env, log_dir=REPO / ".local" / "demo" / "logs") as services:
            await lockdown(services["routing"].url)
            sent = await send_scenario(services["intake"].url)
            db = client[database]
            await wait_for_outcomes(db, sent)
            await wait_for_offers(db)
            console.print(await outcome_table(db))
            await refusals(services["routing"].url)
            await at_the_desk(services["routing"].url, db)
            suspended_caller = await called_back_while_suspended(services["routing"].url, db)
            await status_page(inbox, db, suspended_caller)
            await time_passes(services["routing"].url, db)
            await certification_journey(services, db, database, inbox)
            await wait_for_mail(inbox, 5)
            await one_trace(db, exported=exported)
            await show_events(database)
            show_inbox(inbox)
        inbox.stop()
        await analysts_report(database)
    finally:
        await client.close()


def main() -> int:
    database = f"demo_{datetime.now(UTC):%Y%m%d_%H%M%S}"
    # The demo itself (it resets, watches and replays every topic) as the local servers' admin.
    os.environ.update(kafka_env(ADMIN))
    started = time.monotonic()
    asyncio.run(play(database))
    console.print(f"demo database: {database}; took {time.monotonic() - started:.1f}s; service logs in .local/demo/logs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
