"""Identity hijack: a stranger who knows someone's phone number tries to learn who they are and to attach
their own address to them, through the web API, an e-mail and a phone call, against the real pipeline on
the running mongod."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from intake.domain import RequestDraft
from intake.pipeline import IntakePipeline
from intake.web import InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from schemas import Channel, Language, TrainingRequestReceived, decode
from services.catalogue import load_catalogue
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.ratelimits import InMemoryRateLimits
from tests.security.conftest import Attacks

pytestmark = [pytest.mark.security, pytest.mark.integration]

VICTIM_PHONE, VICTIM_EMAIL = "+32470556677", "victim@example.be"
ATTACKER = "attacker@example.org"


def draft(channel: Channel, **fields: Any) -> RequestDraft:
    return RequestDraft(
        channel=channel,
        source=f"/intake/{channel.value}",
        received_at=datetime.now(UTC),
        language=Language.FR,
        consent_to_contact=True,
        need="Excel",
        **fields,
    )


@pytest.fixture
async def pipeline(mongo_client: Any, mongo_db: Any) -> IntakePipeline:
    pipeline = IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"))
    await pipeline.ensure_indexes()
    return pipeline


@pytest.fixture
async def http(pipeline: IntakePipeline) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(web_router)
    channel = WebChannel(
        pipeline,
        WebSettings(),
        load_catalogue(),
        clock=lambda: datetime.now(UTC),
        rate_limits=InMemoryRateLimits(),
        idempotency_keys=InMemoryIdempotencyKeys(),
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as client:
        yield client


async def person_of(mongo_db: Any, request_id: str) -> str:
    entry = await mongo_db["intake_outbox"].find_one({"key": request_id.encode()})
    event = await PersonalData(PersonKeys(mongo_db)).unseal(decode(entry["value"]))
    assert isinstance(event, TrainingRequestReceived)
    return event.person_id


async def test_a_strangers_form_with_someones_number_learns_nothing_and_links_nothing(
    pipeline: IntakePipeline, http: httpx.AsyncClient, mongo_db: Any, attacks: Attacks
) -> None:
    victim = await pipeline.accept(draft(Channel.PHONE, phone=VICTIM_PHONE, email=VICTIM_EMAIL))
    before = {doc["_id"]: doc["person_id"] async for doc in mongo_db["intake_identities"].find()}

    answer = await http.post(
        "/api/v1/requests",
        json={"name": "Eve", "phone": "0470 55 66 77", "email": ATTACKER, "need": "Excel", "consent_to_contact": True},
    )
    assert answer.status_code == 202, answer.text
    assert set(answer.json()) == {"request_id", "status"}, "no person id, no earlier request ids"
    assert victim.person_id not in answer.text and victim.request_id not in answer.text

    stranger = await person_of(mongo_db, answer.json()["request_id"])
    after = {doc["_id"]: doc["person_id"] async for doc in mongo_db["intake_identities"].find()}
    assert stranger != victim.person_id, "what is sent to the victim's person never follows the stranger's request"
    assert all(after[key] == person for key, person in before.items()), "no known key re-pointed"
    assert after[f"email:{ATTACKER}"] == stranger
    # Nothing lost: the stranger's request is stored and on its way like any other.
    assert await mongo_db["intake_requests"].count_documents({"_id": answer.json()["request_id"]}) == 1
    attacks.record(
        "web form with someone's number learns their id", tried="POST /api/v1/requests", refused=True, nothing_lost=True
    )
    attacks.record(
        "web form links the attacker's address to someone", tried="POST /api/v1/requests", refused=True, nothing_lost=True
    )


@pytest.mark.parametrize(
    ("channel", "fields"),
    [
        (Channel.EMAIL, {"email": ATTACKER, "phone": "0470/55.66.77"}),  # From: the attacker, the number in the body
        (Channel.PHONE, {"phone": VICTIM_PHONE, "email": ATTACKER}),  # a spoofed caller id, an address said on the IVR
    ],
    ids=["e-mail From", "caller id"],
)
async def test_an_email_or_a_call_with_someones_number_does_not_link_another_address(
    pipeline: IntakePipeline, mongo_db: Any, attacks: Attacks, channel: Channel, fields: dict[str, str]
) -> None:
    victim = await pipeline.accept(draft(Channel.WEB, phone=VICTIM_PHONE, email=VICTIM_EMAIL))
    claim = await pipeline.accept(draft(channel, **fields))
    assert claim.person_id != victim.person_id and claim.linked_request_ids == ()
    victims_keys = await mongo_db["intake_identities"].count_documents({"person_id": victim.person_id})
    assert victims_keys == 2, "the victim's number and address, and nothing else"
    attacks.record(
        f"{channel.value} with someone's number links the attacker",
        tried=f"{channel.value} channel",
        refused=True,
        nothing_lost=await mongo_db["intake_requests"].count_documents({"_id": claim.request_id}) == 1,
    )
