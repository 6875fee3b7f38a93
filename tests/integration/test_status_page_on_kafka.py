"""The job seeker's status page on the real broker and mongod: intake's app in process with its
lifespan (outbox relay and the `intake.status` subscriber). A request gets a sealed link; the page
builds from the events as they come back from Kafka (routing's, put on the topics here through an
outbox like any service's); the person's actions publish their events; after an erasure the link
says that nothing is kept."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from intake.app import create_app
from intake.domain import RequestDraft
from intake.email_server import EmailInboxSettings
from intake.settings import IntakeSettings
from intake.status import LOCAL_STATUS_LINK_KEY, StatusTokens
from schemas import (
    CallbackSlotChosen,
    Channel,
    ContactAttempted,
    ContactOutcome,
    Event,
    Language,
    PersonDataErased,
    RequestDetailsCorrected,
    Target,
    TrainingRequestReceived,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
    decode,
)
from services.kafka import delete_topics_with_prefix, use_topic_prefix
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_CLIENT

pytestmark = pytest.mark.integration

TIMEOUT_S = 120.0


@pytest.fixture
async def intake(
    unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[tuple[FastAPI, str]]:
    prefix = f"test_status_{unique}."
    settings = IntakeSettings(
        kafka=kafka_settings.model_copy(update={"topic_prefix": prefix}),
        mongo=mongo_settings,
        instance_id=f"status-{unique}",
        public_base_url="https://intake.example.org",
    )
    app = create_app(settings, email=EmailInboxSettings(enabled=False))
    try:
        async with app.router.lifespan_context(app):
            yield app, prefix
    finally:
        use_topic_prefix("")
        await delete_topics_with_prefix(kafka_settings, prefix)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://intake.example.org")


async def accept(app: FastAPI, mongo_db: Any) -> tuple[TrainingRequestReceived, str]:
    """A web request through the pipeline; its event as published (unsealed) and the path of its status link."""
    pipeline = app.state.runtime.app_state["pipeline"]
    draft = RequestDraft(
        channel=Channel.WEB,
        source="/tests/status",
        received_at=datetime.now(UTC),
        language=Language.FR,
        consent_to_contact=True,
        phone="0470 55 66 77",
        need="Je voudrais apprendre Excel pour trouver un travail",
    )
    accepted = await pipeline.accept(draft)
    entry = await mongo_db["intake_outbox"].find_one({"_id": {"$exists": True}, "key": accepted.request_id.encode()})
    sealed = decode(entry["value"], list(entry["headers"].items()))
    assert isinstance(sealed, TrainingRequestReceived)
    assert sealed.status_url is None and sealed.sealed is not None and "status_url" in sealed.sealed.fields
    assert b"/status/" not in entry["value"]  # the link is a capability: it travels sealed
    event = await PersonalData(PersonKeys(mongo_db)).unseal(sealed)
    assert event.status_url is not None and event.status_url.startswith("https://intake.example.org/fr/status/s2.")
    return event, event.status_url.removeprefix("https://intake.example.org")


async def page_until(http: httpx.AsyncClient, path: str, condition: Callable[[httpx.Response], bool]) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while True:
        response = await http.get(path)
        if condition(response) or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.3)


async def on_topic(topic: str, key: str, kind: type[Event]) -> Event:
    consumer = AIOKafkaConsumer(topic, **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if (record.key or b"").decode() == key:
                        event = decode(record.value, record.headers)
                        if isinstance(event, kind):
                            return event
    finally:
        await consumer.stop()
    raise AssertionError(f"no {kind.__name__} for {key} on {topic}")


def form(**fields: str) -> dict[str, Any]:
    return {"data": fields, "headers": {"content-type": "application/x-www-form-urlencoded"}}


async def test_the_page_follows_the_request_and_the_persons_actions_are_published(
    intake: tuple[FastAPI, str], mongo_db: Any
) -> None:
    app, prefix = intake
    request, path = await accept(app, mongo_db)
    deadline = datetime.now(UTC) + timedelta(days=2)
    # Routing's events, on routing's topic (an outbox is how every service publishes).
    routing = Outbox(mongo_db, "intake_outbox")
    await routing.add(
        [
            TrainingRequestRouted(
                source="/routing",
                request_id=request.request_id,
                person_id=request.person_id,
                target=Target.ADVISORS,
                rule_id="default",
                rule_set_version="2026.6",
                explanation="internal",
                priority=40,
                callback_deadline=deadline,
                assignee_id="adv-hidden-1",
            ),
            ContactAttempted(
                source="/routing",
                request_id=request.request_id,
                person_id=request.person_id,
                worker_id="adv-hidden-1",
                outcome=ContactOutcome.NO_ANSWER,
                attempt=1,
                notes="hidden note",
            ),
        ]
    )

    async with client(app) as http:
        page = await page_until(http, path, lambda r: "sans réponse" in r.text)
        assert page.status_code == 200, page.text
        shown = html.unescape(page.text)
        assert "Je voudrais apprendre Excel pour trouver un travail" in shown  # their words, unsealed
        assert "l'équipe des conseillers en formation" in shown
        assert "vous contacte au plus tard le" in shown
        assert "Nous avons essayé de vous appeler, sans réponse." in shown
        assert "0800 555 66" in shown
        assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
        for internal in ("adv-hidden-1", "hidden note", request.person_id, "internal", "rule_id", "priority"):
            assert internal not in shown

        # A callback window: the first one offered.
        slot = re.search(r'name="slot" value="([^"]+)"', page.text)
        assert slot is not None
        chosen = await http.post(f"{path}/slot", **form(slot=slot.group(1)))
        assert chosen.status_code == 303
        noted = await http.get(chosen.headers["location"])
        assert "C'est noté" in html.unescape(noted.text)
        published = await on_topic(f"{prefix}training.requests.v1", request.request_id, CallbackSlotChosen)
        assert isinstance(published, CallbackSlotChosen) and published.chosen_through == "status_page"
        assert published.slot_start.astimezone(UTC) > datetime.now(UTC) - timedelta(minutes=1)

        # A correction: the new number travels sealed, and the page says it is not trusted yet.
        corrected = await http.post(f"{path}/details", **form(need="", requested_course="", phone="0470 99 88 77", email=""))
        assert corrected.status_code == 303
        assert "vérifiées par un conseiller" in (await http.get(path)).text
        correction = await on_topic(f"{prefix}training.requests.v1", request.request_id, RequestDetailsCorrected)
        assert isinstance(correction, RequestDetailsCorrected) and correction.contact is None and correction.sealed is not None
        wrong = await http.post(f"{path}/details", **form(need="", requested_course="NOPE", phone="", email=""))
        assert wrong.status_code == 422 and 'aria-describedby="requested_course-error"' in wrong.text

        # Withdrawal: asked to confirm first, then published; the page offers nothing more to do.
        assert "Oui, retirer ma demande" in (await http.get(f"{path}/withdraw")).text
        withdrawn = await http.post(f"{path}/withdraw", **form(confirm="yes"))
        assert withdrawn.status_code == 303
        after = await http.get(path)
        assert "Vous avez retiré votre demande." in after.text and 'name="slot"' not in after.text
        assert isinstance(
            await on_topic(f"{prefix}training.requests.v1", request.request_id, TrainingRequestWithdrawn),
            TrainingRequestWithdrawn,
        )
        refused = await http.post(f"{path}/slot", **form(slot=slot.group(1)))
        assert refused.status_code == 409 and "Votre demande est fermée" in refused.text

        # Erasure: the key goes, the event comes, and the link says nothing is kept.
        await PersonKeys(mongo_db).erase(request.person_id, requested_by="dpo-test")
        await routing.add(
            [
                PersonDataErased(
                    source="/intake/privacy", person_id=request.person_id, erased_at=datetime.now(UTC), requested_by="dpo-test"
                )
            ]
        )
        erased = await page_until(http, path, lambda r: r.status_code == 410)
        assert erased.status_code == 410 and "Nous ne conservons plus rien sur cette demande" in erased.text
        assert "Excel" not in erased.text
        assert await mongo_db["intake_status"].find_one({"_id": request.request_id}) == {
            "_id": request.request_id,
            "erased": True,
        }


def s1_token(request_id: str, expires_at: datetime, link_id: str) -> str:
    """A link of the form sent before s2 (still alive for 90 days), built as the s1 code built it."""
    payload = f"{request_id}|{int(expires_at.timestamp())}|{link_id}".encode()
    mac = hmac.new(LOCAL_STATUS_LINK_KEY.encode(), b"formation-events/request-status/v1\x00" + payload, hashlib.sha256)
    payload_b64, mac_b64 = (base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in (payload, mac.digest()[:16]))
    return f"s1.{payload_b64}.{mac_b64}"


async def test_unknown_expired_and_revoked_links_say_so(intake: tuple[FastAPI, str], mongo_db: Any) -> None:
    app, _ = intake
    request, path = await accept(app, mongo_db)
    tokens = StatusTokens(LOCAL_STATUS_LINK_KEY)
    async with client(app) as http:
        assert (await http.get("/fr/status/s1.bm90.c2ln")).status_code == 404
        assert (await http.get(f"{path[:-1]}{'A' if path[-1] != 'A' else 'B'}")).status_code == 404
        expired = await http.get(f"/nl/status/{tokens.sign(request.request_id, datetime.now(UTC) - timedelta(seconds=1))}")
        assert expired.status_code == 410 and "Deze link is verlopen" in expired.text and "0800 555 66" in expired.text

        page = await page_until(http, path, lambda r: "Ce qui s'est passé" in html.unescape(r.text))
        assert page.status_code == 200
        other = f"/en/status/{tokens.sign(request.request_id, datetime.now(UTC) + timedelta(days=1))}"
        assert (await http.post(f"{path}/revoke", **form())).status_code == 200
        revoked = await http.get(path)
        assert revoked.status_code == 410 and "Ce lien est désactivé" in revoked.text
        # Another link of the same request still works: revoking is per link.
        assert (await http.get(other)).status_code == 200
        # So does one sent in the s1 form, until it is turned off in its turn.
        legacy = f"/nl/status/{s1_token(request.request_id, datetime.now(UTC) + timedelta(days=1), 'a1b2c3d4e5f6')}"
        assert (await http.get(legacy)).status_code == 200
        assert (await http.post(f"{legacy}/revoke", **form())).status_code == 200
        assert (await http.get(legacy)).status_code == 410 and (await http.get(other)).status_code == 200
