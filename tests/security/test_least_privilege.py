"""Least privilege: a stolen service credential reaches only that service's topics and collections.

Against scripts/infra.sh's own servers (SASL/SCRAM with ACLs on the broker, authentication on mongod,
see scripts/principals.py): the intake service's credentials cannot write the routing service's topic
nor read its cases, while the routing service's may read the requests it consumes. Skipped against
external servers or a local one from before least privilege (`scripts/infra.sh restart-kafka` /
`stop-mongo` + `start-mongo` turn it on)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from schemas.topics import NOTIFICATIONS, PRIVACY, TRAINING_REQUESTS, TRAINING_ROUTING
from scripts.launch import kafka_client, mongodb_uri
from scripts.principals import KAFKA_SECURED, MONGO_SECURED
from services.kafka import delete_topics_with_prefix, ensure_topics
from services.settings import KafkaSettings
from tests.conftest import KAFKA_BOOTSTRAP, KAFKA_CLIENT
from tests.security.conftest import Attacks

pytestmark = [pytest.mark.security, pytest.mark.integration]

UNAUTHORIZED = 13  # MongoDB's error code for "not authorized on <db> to execute command"
ROUTING_CASES = "routing_cases"


def local_mongo_secured() -> bool:
    return MONGO_SECURED.exists() and "@" in mongodb_uri("intake")


def local_kafka_secured() -> bool:
    return KAFKA_SECURED.exists() and "sasl_plain_username" in kafka_client("intake")


@pytest.fixture
async def routing_case(mongo_client: AsyncMongoClient[dict[str, Any]], unique: str) -> Any:
    """A case in a database of the demo's kind, written by the suite's own (super) user."""
    database = f"test_{unique}"
    await mongo_client[database][ROUTING_CASES].insert_one({"_id": "case-1", "person": "victim"})
    yield database
    await mongo_client.drop_database(database)


async def test_intake_credentials_cannot_read_routing_cases(routing_case: str, attacks: Attacks) -> None:
    if not local_mongo_secured():
        pytest.skip("the local mongod does not check credentials (external, or from before least privilege)")
    intake: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri("intake"))
    routing: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri("routing"))
    try:
        with pytest.raises(OperationFailure) as refused:
            await intake[routing_case][ROUTING_CASES].find_one({})
        assert refused.value.code == UNAUTHORIZED
        with pytest.raises(OperationFailure) as refused_write:
            await intake[routing_case][ROUTING_CASES].delete_many({})
        assert refused_write.value.code == UNAUTHORIZED
        # Its own collections stay open to it, and the routing user still finds its case intact.
        await intake[routing_case]["intake_requests"].insert_one({"_id": "mine"})
        assert await routing[routing_case][ROUTING_CASES].find_one({"_id": "case-1"}) == {"_id": "case-1", "person": "victim"}
    finally:
        await intake.close()
        await routing.close()
    attacks.record(
        "intake's MongoDB user reads or deletes routing_cases",
        tried="find + delete_many",
        refused=True,
        nothing_lost=True,
    )


async def partitions_of(topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(**KAFKA_CLIENT)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return sorted(partition["partition"] for partition in described["partitions"])
    finally:
        await admin.close()


@pytest.fixture
async def declared_topics() -> None:
    """The production topics exist (created by the suite's super user, as a service would at start)."""
    await ensure_topics(
        KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP), (TRAINING_REQUESTS, TRAINING_ROUTING, PRIVACY, NOTIFICATIONS)
    )


@pytest.mark.usefixtures("declared_topics")
async def test_intake_principal_cannot_produce_to_routing_topic(attacks: Attacks) -> None:
    if not local_kafka_secured():
        pytest.skip("the local broker has no SASL/ACLs (external, or from before least privilege)")
    marker = uuid.uuid4().hex.encode()
    own_topic = f"intake.least-privilege-{marker.decode()[:8]}"
    producer = AIOKafkaProducer(**kafka_client("intake"), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(TRAINING_ROUTING.name, b"forged routing decision", key=marker)
        # Its own topics (`intake.`: retries, dead letters) it may write: the refusal above is the ACL's.
        await producer.send_and_wait(own_topic, b"allowed", key=marker)
    finally:
        await producer.stop()
        await delete_topics_with_prefix(KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP), own_topic)
    # Nothing with the marker reached the routing topic (read as the suite's super user).
    reader = AIOKafkaConsumer(**KAFKA_CLIENT, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(TRAINING_ROUTING.name, p) for p in await partitions_of(TRAINING_ROUTING.name)]
        reader.assign(partitions)
        ends = await reader.end_offsets(partitions)
        for partition in partitions:
            reader.seek(partition, max(ends[partition] - 50, 0))
        records = await reader.getmany(timeout_ms=2000)
        assert all(record.key != marker for batch in records.values() for record in batch)
    finally:
        await reader.stop()
    attacks.record(
        "intake's Kafka principal forges a routing event",
        tried=f"produce to {TRAINING_ROUTING.name}",
        refused=True,
        nothing_lost=True,
    )


@pytest.mark.usefixtures("declared_topics")
@pytest.mark.usefixtures("declared_topics")
async def test_routing_principal_reads_requests_and_intake_cannot_read_what_was_sent(attacks: Attacks) -> None:
    """Intake reads routing's decisions now (the status pages' projection), never what notification sent."""
    if not local_kafka_secured():
        pytest.skip("the local broker has no SASL/ACLs (external, or from before least privilege)")
    group = f"routing.least-privilege-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        TRAINING_REQUESTS.name, **kafka_client("routing"), group_id=group, enable_auto_commit=False, auto_offset_reset="latest"
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=1000)  # joins its group and reads: allowed
        assert consumer.assignment()
    finally:
        await consumer.stop()
    stranger = AIOKafkaConsumer(**kafka_client("intake"), enable_auto_commit=False)
    await stranger.start()
    try:
        stranger.assign([TopicPartition(NOTIFICATIONS.name, 0)])
        with pytest.raises(TopicAuthorizationFailedError):
            await stranger.seek_to_beginning(TopicPartition(NOTIFICATIONS.name, 0))
            await stranger.getmany(timeout_ms=3000)
            # Bounded: a fetch that is allowed waits for a record, and must fail the test, not hang it.
            await asyncio.wait_for(stranger.getone(), timeout=10)
    finally:
        await stranger.stop()
    attacks.record(
        "intake's Kafka principal reads what notification sent",
        tried=f"fetch from {NOTIFICATIONS.name}",
        refused=True,
        nothing_lost=True,
    )


@pytest.mark.usefixtures("declared_topics")
async def test_certification_principal_reads_requests_and_erasures_but_not_notifications(attacks: Attacks) -> None:
    """Certification keeps the holder's e-mail from intake's requests and honours erasures (its groups
    `certification.contacts`, `certification.privacy`); what notification sent is none of its business."""
    if not local_kafka_secured():
        pytest.skip("the local broker has no SASL/ACLs (external, or from before least privilege)")
    suffix = uuid.uuid4().hex[:8]
    for topic, group in ((TRAINING_REQUESTS, "certification.contacts"), (PRIVACY, "certification.privacy")):
        consumer = AIOKafkaConsumer(
            topic.name,
            **kafka_client("certification"),
            group_id=f"{group}-least-privilege-{suffix}",
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=1000)  # joins its group and reads: allowed
            assert consumer.assignment(), topic.name
        finally:
            await consumer.stop()
    stranger = AIOKafkaConsumer(**kafka_client("certification"), enable_auto_commit=False)
    await stranger.start()
    try:
        stranger.assign([TopicPartition(NOTIFICATIONS.name, 0)])
        with pytest.raises(TopicAuthorizationFailedError):
            await stranger.seek_to_beginning(TopicPartition(NOTIFICATIONS.name, 0))
            await stranger.getmany(timeout_ms=3000)
            await asyncio.wait_for(stranger.getone(), timeout=10)
    finally:
        await stranger.stop()
    attacks.record(
        "certification's Kafka principal reads the notifications sent",
        tried=f"fetch from {NOTIFICATIONS.name}",
        refused=True,
        nothing_lost=True,
    )


async def test_certification_credentials_reach_the_holder_contacts_but_not_notifications_people(routing_case: str) -> None:
    if not local_mongo_secured():
        pytest.skip("the local mongod does not check credentials (external, or from before least privilege)")
    certification: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri("certification"))
    try:
        await certification[routing_case]["certification_contacts"].insert_one({"_id": "p-1", "email": None})
        assert await certification[routing_case]["privacy_person_keys"].find_one({"_id": "nobody"}) is None
        with pytest.raises(OperationFailure) as refused:
            await certification[routing_case]["notification_people"].find_one({})
        assert refused.value.code == UNAUTHORIZED
    finally:
        await certification.close()
