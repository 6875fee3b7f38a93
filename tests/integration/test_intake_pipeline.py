"""The intake pipeline on the real mongod and broker: durable before acknowledged, deduplicated,
one person across channels, and relayed to Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from intake.domain import SITUATION_FACTS, FactSource, RequestDraft
from intake.identity_links import IdentityLinks, LinkRefused
from intake.pipeline import IntakePipeline
from schemas import Channel, Language, TrainingRequestReceived, decode
from services.kafka import create_broker, ensure_topics
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.settings import KafkaSettings
from tests.conftest import KAFKA_BOOTSTRAP, KAFKA_CLIENT

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


async def test_the_event_says_where_each_known_fact_came_from(pipeline: IntakePipeline, mongo_db: Any) -> None:
    sources = dict.fromkeys(SITUATION_FACTS, FactSource.PHONE_IVR)
    accepted = await pipeline.accept(draft(Channel.PHONE, has_computer=False, has_internet=True, fact_sources=sources))
    entry = await mongo_db["intake_outbox"].find_one({"key": accepted.request_id.encode()})
    assert entry is not None
    event = decode(entry["value"], list(entry["headers"].items()))
    assert isinstance(event, TrainingRequestReceived)
    # Only the facts the caller gave have a source; the qualification and the date stay unknown.
    assert event.fact_sources == {"has_computer": "phone_ivr", "has_internet": "phone_ivr"}
    assert (event.has_computer, event.has_internet, event.qualification_level) == (False, True, None)


async def test_a_dedup_key_makes_one_request(pipeline: IntakePipeline, mongo_db: Any) -> None:
    first = await pipeline.accept(draft(Channel.PHONE, dedup_key="phone:generic:CA1"))
    again = await asyncio.gather(*(pipeline.accept(draft(Channel.PHONE, dedup_key="phone:generic:CA1")) for _ in range(5)))
    assert not first.duplicate
    assert all(a.duplicate and a.request_id == first.request_id for a in again)
    assert await mongo_db["intake_outbox"].count_documents({}) == 1


async def test_a_person_is_found_again_by_the_contact_details_they_already_gave(pipeline: IntakePipeline, mongo_db: Any) -> None:
    call = await pipeline.accept(draft(Channel.PHONE, phone="+32 470 55 66 77", email=None))
    mail = await pipeline.accept(draft(Channel.EMAIL, phone=None, email="jan@voorbeeld.be"))
    both = await pipeline.accept(draft(Channel.WEB, phone="0470/55.66.77", email=None))
    other = await pipeline.accept(draft(Channel.WEB, phone="0471 00 00 00", email=None))
    assert call.person_id == both.person_id != other.person_id and mail.person_id not in (call.person_id, other.person_id)
    assert both.linked_request_ids == (call.request_id,)
    stored = await PersonalData(PersonKeys(mongo_db)).unseal(
        decode((await mongo_db["intake_outbox"].find_one({"_id": {"$exists": True}, "key": both.request_id.encode()}))["value"])
    )
    assert isinstance(stored, TrainingRequestReceived)
    assert stored.linked_request_ids == [call.request_id]


async def test_a_new_detail_given_with_a_known_one_is_not_linked_until_staff_confirm(
    pipeline: IntakePipeline, mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    known = await pipeline.accept(draft(Channel.PHONE, phone="0470 55 66 77", email=None))
    # Someone types that number with their own address: a person of their own, the known one a possible match.
    claim = await pipeline.accept(draft(Channel.WEB, phone="+32 470 55 66 77", email="stranger@example.org"))
    assert claim.person_id != known.person_id and claim.linked_request_ids == ()
    stored = await mongo_db["intake_requests"].find_one({"_id": claim.request_id})
    assert stored["possible_person_ids"] == [known.person_id]
    identities = {doc["_id"]: doc["person_id"] async for doc in mongo_db["intake_identities"].find()}
    assert identities["phone:+32470556677"] == known.person_id, "a known key is never re-pointed by a request"
    assert identities["email:stranger@example.org"] == claim.person_id
    # The address alone, and the same pair again, lead to the claimant, never to the known person.
    alone = await pipeline.accept(draft(Channel.EMAIL, phone=None, email="stranger@example.org"))
    again = await pipeline.accept(draft(Channel.WEB, phone="0470 55 66 77", email="stranger@example.org"))
    assert alone.person_id == again.person_id == claim.person_id
    # The number alone still leads to the person it belongs to.
    assert (await pipeline.accept(draft(Channel.PHONE, phone="0470 55 66 77", email=None))).person_id == known.person_id

    links = IdentityLinks(mongo_client, mongo_db)
    with pytest.raises(LinkRefused):
        await links.confirm(claim.request_id, "per_someone_else", confirmed_by="adv-1")
    assert await links.confirm(claim.request_id, known.person_id, confirmed_by="adv-1") >= 1
    confirmed = await pipeline.accept(draft(Channel.EMAIL, phone=None, email="stranger@example.org"))
    assert confirmed.person_id == known.person_id, "once staff confirmed, the address leads to the known person"
    link = await mongo_db["intake_identities"].find_one({"_id": "email:stranger@example.org"})
    assert link["verified"] is True and link["confirmed_by"] == "adv-1"


async def test_concurrent_first_contacts_of_one_person_get_one_person_id(pipeline: IntakePipeline) -> None:
    accepted = await asyncio.gather(*(pipeline.accept(draft(phone="0472 11 22 33")) for _ in range(6)))
    assert len({a.person_id for a in accepted}) == 1
    assert len({a.request_id for a in accepted}) == 6


async def test_requests_accepted_together_are_stored_as_each_alone(pipeline: IntakePipeline, mongo_db: Any) -> None:
    known = await pipeline.accept(draft(phone="0472 00 00 01"))
    drafts = [draft(phone=f"0472 00 01 {i:02d}", email=f"new{i}@example.org") for i in range(8)]
    drafts += [draft(phone="0472 00 00 01"), draft(phone="0472 00 02 00"), draft(phone="0472 00 02 00")]

    accepted = await asyncio.gather(*(pipeline.accept(d) for d in drafts))

    assert len({a.person_id for a in accepted[:8]} | {known.person_id}) == 9, "each new person their own"
    assert accepted[8].person_id == known.person_id and accepted[8].linked_request_ids == (known.request_id,)
    assert accepted[9].person_id == accepted[10].person_id, "one new person's two requests: one person"
    keys = PersonalData(PersonKeys(mongo_db))
    for a, d in zip(accepted, drafts, strict=True):
        record = await mongo_db["intake_requests"].find_one({"_id": a.request_id})
        assert record["person_id"] == a.person_id and record["linked_request_ids"] == list(a.linked_request_ids)
        entry = await mongo_db["intake_outbox"].find_one({"key": a.request_id.encode()})
        event = await keys.unseal(decode(entry["value"]))
        assert isinstance(event, TrainingRequestReceived) and event.person_id == a.person_id
        assert event.contact.email == d.email
    identity = await mongo_db["intake_identities"].find_one({"_id": "email:new3@example.org"})
    assert identity["person_id"] == accepted[3].person_id and identity["last_seen_at"] == identity["first_seen_at"]


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
    consumer = AIOKafkaConsumer("training.requests.v1", **KAFKA_CLIENT, group_id=f"check-{unique}", auto_offset_reset="earliest")
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
