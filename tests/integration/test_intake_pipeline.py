"""The intake pipeline on the real mongod and broker: durable before acknowledged, deduplicated,
one person across channels, and relayed to Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from intake.domain import RequestDraft
from intake.pipeline import IntakePipeline
from schemas import Channel, Language, TrainingRequestReceived, decode
from services.kafka import create_broker, ensure_topics
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.settings import KafkaSettings
from tests.conftest import KAFKA_BOOTSTRAP

pytestmark = pytest.mark.integration


def draft(channel: Channel = Channel.WEB, **overrides: Any) -> RequestDraft:
    fields: dict[str, Any] = {
        "channel": channel,
        "source": f"/intake/{channel.value}",
        "received_at": datetime.now(UTC),
        "language": Language.FR,
        "consent_to_contact": True,
        "phone": "0470 12 34 56",
        "need": "Excel",
    }
    fields.update(overrides)
    return RequestDraft(**fields)


@pytest.fixture
async def pipeline(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any) -> IntakePipeline:
    p = IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"))
    await p.ensure_indexes()
    return p


async def test_accepted_request_is_in_the_outbox_before_the_call_returns(pipeline: IntakePipeline, mongo_db: Any) -> None:
    accepted = await pipeline.accept(draft(name="Amina", email="Amina@Example.org"))
    entry = await mongo_db["intake_outbox"].find_one({"sent_at": None})
    assert entry is not None and entry["topic"] == "training.requests.v1"
    assert entry["key"] == accepted.request_id.encode()
    sealed = decode(entry["value"], list(entry["headers"].items()))
    assert isinstance(sealed, TrainingRequestReceived)
    assert sealed.request_id == accepted.request_id and sealed.person_id == accepted.person_id
    # Personal data leaves intake only as ciphertext under the person's key.
    for clear in (b"+32470123456", b"amina@example.org", b"Amina", b"Excel"):
        assert clear not in entry["value"]
    assert sealed.contact.phone is None and sealed.sealed is not None
    event = await PersonalData(PersonKeys(mongo_db)).unseal(sealed)
    assert event.contact.phone == "+32470123456" and event.contact.email == "amina@example.org"
    assert event.contact.name == "Amina" and event.need == "Excel"


async def test_a_dedup_key_makes_one_request(pipeline: IntakePipeline, mongo_db: Any) -> None:
    first = await pipeline.accept(draft(Channel.PHONE, dedup_key="phone:generic:CA1"))
    again = await asyncio.gather(*(pipeline.accept(draft(Channel.PHONE, dedup_key="phone:generic:CA1")) for _ in range(5)))
    assert not first.duplicate
    assert all(a.duplicate and a.request_id == first.request_id for a in again)
    assert await mongo_db["intake_outbox"].count_documents({}) == 1


async def test_one_person_who_calls_writes_and_fills_the_form_is_linked(pipeline: IntakePipeline, mongo_db: Any) -> None:
    call = await pipeline.accept(draft(Channel.PHONE, phone="+32 470 55 66 77", email=None))
    mail = await pipeline.accept(draft(Channel.EMAIL, phone="0470/55.66.77", email="jan@voorbeeld.be"))
    form = await pipeline.accept(draft(Channel.WEB, phone=None, email=" JAN@voorbeeld.be"))
    other = await pipeline.accept(draft(Channel.WEB, phone="0471 00 00 00", email=None))
    assert call.person_id == mail.person_id == form.person_id != other.person_id
    assert mail.linked_request_ids == (call.request_id,)
    assert set(form.linked_request_ids) == {call.request_id, mail.request_id}
    stored = await PersonalData(PersonKeys(mongo_db)).unseal(
        decode((await mongo_db["intake_outbox"].find_one({"_id": {"$exists": True}, "key": form.request_id.encode()}))["value"])
    )
    assert isinstance(stored, TrainingRequestReceived)
    assert set(stored.linked_request_ids) == {call.request_id, mail.request_id}


async def test_concurrent_first_contacts_of_one_person_get_one_person_id(pipeline: IntakePipeline) -> None:
    accepted = await asyncio.gather(*(pipeline.accept(draft(phone="0472 11 22 33")) for _ in range(6)))
    assert len({a.person_id for a in accepted}) == 1
    assert len({a.request_id for a in accepted}) == 6


async def test_unusable_contact_is_accepted_for_triage(pipeline: IntakePipeline, mongo_db: Any) -> None:
    accepted = await pipeline.accept(draft(phone="call me maybe", email="nope"))
    entry = await mongo_db["intake_outbox"].find_one({"key": accepted.request_id.encode()})
    event = await PersonalData(PersonKeys(mongo_db)).unseal(decode(entry["value"]))
    assert isinstance(event, TrainingRequestReceived)
    assert event.needs_triage and event.triage_reason == "no usable phone number or e-mail address"
    assert event.channel_details["phone_as_given"] == "call me maybe"


async def test_relay_publishes_the_backlog_in_order_and_marks_it_sent(
    pipeline: IntakePipeline, mongo_db: Any, unique: str
) -> None:
    accepted = [await pipeline.accept(draft(phone=f"0470 00 00 {i:02d}")) for i in range(10)]
    settings = KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP)
    await ensure_topics(settings)
    broker = create_broker(settings, client_id=f"relay-{unique}")
    await broker.start()
    try:
        sent = await Outbox(mongo_db, "intake_outbox").relay_once(broker)
    finally:
        await broker.stop()
    assert sent == 10
    assert await mongo_db["intake_outbox"].count_documents({"sent_at": None}) == 0

    wanted = {a.request_id for a in accepted}
    consumer = AIOKafkaConsumer(
        "training.requests.v1", bootstrap_servers=KAFKA_BOOTSTRAP, group_id=f"check-{unique}", auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[str] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while wanted - set(seen) and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [r.key.decode() for r in records if r.key and r.key.decode() in wanted]
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(wanted)  # each exactly once
