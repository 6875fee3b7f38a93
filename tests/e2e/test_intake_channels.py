"""The intake service as ops run it (`python -m intake`), on the real broker and mongod: one
person calls, writes an e-mail and fills the web form in a real browser; each channel's request
is on `training.requests.v1`, and the three are linked to one person."""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from intake.phone import generic_signature
from schemas import Channel, Language, TrainingRequestReceived, decode
from scripts.launch import ServiceProcess, start_service
from services.privacy import PersonalData, PersonKeys
from tests.conftest import KAFKA_CLIENT, drop_database
from tests.factories import last_working_morning

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.e2e

SECRET = "e2e-phone-secret"
SMTP_PORT = 18225
INBOX = "formations-en-ligne@bruxellesformation.brussels"
CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()  # looked up once, not from the event loop
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


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    database = f"e2e_channels_{uuid.uuid4().hex[:12]}"
    process = start_service(
        "intake",
        port=18201,
        env={
            "MONGODB_DATABASE": database,
            "KAFKA_TOPIC_PREFIX": f"{database}.",
            "INTAKE_PHONE_WEBHOOK_SECRET": SECRET,
            "INTAKE_SMTP_PORT": str(SMTP_PORT),
        },
        log_dir=tmp_path_factory.mktemp("logs"),
    )
    try:
        process.wait_ready()
        process.env["topic"] = f"{database}.training.requests.v1"
        process.env["database"] = database
        yield process
    finally:
        process.stop()
        drop_database(database)


async def on_topic(topic: str, request_ids: set[str], *, timeout: float = 60) -> dict[str, TrainingRequestReceived]:
    """The requests' events as any other Kafka client reads them, by key."""
    found: dict[str, TrainingRequestReceived] = {}
    consumer = AIOKafkaConsumer(topic, **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while set(found) != request_ids and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in request_ids:
                        event = decode(record.value, record.headers)
                        assert isinstance(event, TrainingRequestReceived)
                        assert key not in found, f"{key} is on the topic twice"
                        found[key] = event
    finally:
        await consumer.stop()
    return found


def call_webhook(intake: ServiceProcess, payload: dict[str, Any], *, secret: str = SECRET, age_s: int = 0) -> httpx.Response:
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()) - age_s)
    return httpx.post(
        f"{intake.url}/webhooks/phone",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Signature-Timestamp": timestamp,
            "X-Signature": generic_signature(secret, timestamp, body),
        },
    )


def send_mail(subject: str, body: str, *, sender: str, charset: str = "utf-8") -> tuple[int, bytes]:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Jan Peeters <{sender}>"
    message["To"] = INBOX
    message["Subject"] = subject
    message.set_content(body, charset=charset, cte="quoted-printable")
    with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail(sender)
        smtp.rcpt(INBOX)
        return smtp.data(message.as_bytes())


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"{CHROMIUM} is missing: `bash scripts/setup.sh --browser` installs Debian's chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def fill_form(browser: Browser, url: str, *, lang: str, name: str, phone: str, need: str) -> str:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(f"{url}/{lang}/?utm_source=facebook&utm_campaign=confine-mais-connecte")
        await page.locator("#name").fill(name)
        await page.locator("#phone").fill(phone)
        await page.locator("#need").fill(need)
        await page.locator("#consent_to_contact").check()
        await page.locator("#submit").click()
        confirmation = page.get_by_test_id("confirmation")
        await expect(confirmation).to_be_visible()
        request_id = await confirmation.get_attribute("data-request-id")
        assert request_id
        return request_id
    finally:
        await context.close()


async def test_one_person_through_three_channels_is_three_linked_events_on_kafka(
    intake: ServiceProcess, browser: Browser, mongo_client: Any
) -> None:
    call = call_webhook(
        intake,
        {
            "call_id": f"CA-{time.time_ns()}",
            "event": "answered",
            "caller": "0476 12 34 56",
            # A working day's morning, now or lately: intake links requests within 14 days of its clock.
            "started_at": last_working_morning().isoformat(),
            "language": "nl",
            "agent_notes": "Wil een online opleiding Excel volgen.",
            "ivr": {"qualification": "3", "computer": "2"},
        },
    )
    assert call.status_code == 202, call.text
    phone_request = call.json()["request_id"]

    code, reply = await asyncio.to_thread(
        send_mail,
        "Opleiding Excel",
        "Goedendag,\nIk wil graag een online opleiding Excel volgen. Ik heb geen internet thuis.\n"
        "Mijn nummer is 0476/12.34.56.\nBedankt!",
        sender="jan.peeters@voorbeeld.be",
        charset="iso-8859-1",
    )
    assert code == 250, reply
    mail_reference = reply.decode().rsplit("request ", 1)[1].rstrip(")")

    web_nl = await fill_form(browser, intake.url, lang="nl", name="Jan Peeters", phone="+32 476 12 34 56", need="Excel leren")
    web_fr = await fill_form(
        browser, intake.url, lang="fr", name="Amina El Idrissi", phone="0470 98 76 54", need="Je voudrais apprendre le français."
    )

    # The e-mail's request id is only known by its reference: look it up where intake keeps requests.
    requests = mongo_client[intake.env["database"]]["intake_requests"]
    stored_mail = await requests.find_one({"_id": {"$regex": f"^{mail_reference}"}, "channel": "email"})
    assert stored_mail is not None
    mail_request = stored_mail["_id"]
    events = await on_topic(intake.env["topic"], {phone_request, web_nl, web_fr, mail_request})
    nl_event = events[web_nl]

    # Personal data is on Kafka only as ciphertext; intake's keys open it.
    assert all(e.sealed is not None and e.contact.phone is None and e.contact.email is None for e in events.values())
    personal = PersonalData(PersonKeys(mongo_client[intake.env["database"]]))
    events = {request_id: await personal.unseal(event) for request_id, event in events.items()}
    phone_event, mail_event, fr_event = events[phone_request], events[mail_request], events[web_fr]
    assert phone_event.channel is Channel.PHONE and phone_event.contact.phone == "+32476123456"
    assert phone_event.language is Language.NL
    assert phone_event.channel_details["out_of_hours"] is False  # a working day, 9:15 in Brussels
    assert mail_event.channel is Channel.EMAIL and mail_event.contact.email == "jan.peeters@voorbeeld.be"
    assert mail_event.language is Language.NL and mail_event.requested_course == "EXCEL"
    # Situation facts from the voice menu and from the mail's words, each with where it came from.
    assert (phone_event.qualification_level, phone_event.has_computer) == ("lower_secondary", False)
    assert phone_event.fact_sources == {"qualification_level": "phone_ivr", "has_computer": "phone_ivr"}
    assert mail_event.has_internet is False and mail_event.fact_sources == {"has_internet": "email_text"}
    assert nl_event.channel is Channel.WEB and nl_event.campaign is not None
    assert nl_event.campaign.utm_campaign == "confine-mais-connecte"
    # The caller and the form with the same number are one person, linked. The e-mail gave that number
    # with an address never seen: it cannot be told from a stranger typing someone's number, so it is a
    # person of its own until an advisor confirms, the caller kept as its possible match.
    assert phone_event.person_id == nl_event.person_id != fr_event.person_id
    assert list(nl_event.linked_request_ids) == [phone_request]
    assert mail_event.person_id not in (phone_event.person_id, fr_event.person_id) and not mail_event.linked_request_ids
    assert stored_mail["possible_person_ids"] == [phone_event.person_id]
    assert fr_event.language is Language.FR and not fr_event.linked_request_ids


def test_forged_stale_and_unsigned_webhooks_are_refused(intake: ServiceProcess) -> None:
    payload = {"call_id": "CA-forged", "event": "missed", "caller": "0476 00 00 00", "started_at": "2026-11-27T09:15:00+01:00"}
    assert call_webhook(intake, payload, secret="not-the-secret").status_code == 401
    assert call_webhook(intake, payload, age_s=3600).status_code == 401
    unsigned = httpx.post(f"{intake.url}/webhooks/phone", json=payload)
    assert unsigned.status_code == 401
