"""The local infrastructure from scripts/infra.sh is the genuine article.

These tests assume `scripts/infra.sh up` has run (or that KAFKA_BOOTSTRAP_SERVERS
and MONGODB_URI point at other servers) and check, with the same client
libraries the services use, the broker and database features the project
relies on: idempotent producers, consumer groups with committed offsets,
durability across a broker restart, and a MongoDB replica set with
transactions and change streams. Every test uses fresh, uuid-named topics and
databases, so the suite can be rerun against the same servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient, WriteConcern

from tests.conftest import KAFKA_BOOTSTRAP, KAFKA_CLIENT, MONGODB_URI

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_SH = REPO_ROOT / "scripts" / "infra.sh"
BOOTSTRAP = KAFKA_BOOTSTRAP
RECEIVE_TIMEOUT_S = 30.0


def fresh_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def admin() -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**KAFKA_CLIENT)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def topic(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A fresh single-partition topic (one partition: a total order to assert on), deleted afterwards."""
    name = fresh_name("infra-test")
    await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    yield name
    with contextlib.suppress(Exception):  # best effort: a leftover uuid topic harms nobody
        await admin.delete_topics([name])


async def produce(topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=b"same-key")
    finally:
        await producer.stop()


async def consume(consumer: AIOKafkaConsumer, count: int) -> list[bytes | None]:
    """Read exactly `count` messages (one at a time, so the consumer's position stops right after them)."""

    async def read() -> list[bytes | None]:
        return [(await consumer.getone()).value for _ in range(count)]

    return await asyncio.wait_for(read(), RECEIVE_TIMEOUT_S)


async def test_idempotent_producer_round_trip(admin: AIOKafkaAdminClient) -> None:
    # No explicit creation: the broker auto-creates the topic (auto.create.topics.enable).
    name = fresh_name("infra-test-auto")
    values = [f"message-{i}".encode() for i in range(10)]
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        metadata = [await producer.send_and_wait(name, value=v, key=b"same-key") for v in values]
    finally:
        await producer.stop()
    # One key, one partition, consecutive offsets: no duplicates, no gaps.
    assert len({m.partition for m in metadata}) == 1
    offsets = [m.offset for m in metadata]
    assert offsets == list(range(offsets[0], offsets[0] + len(values)))

    consumer = AIOKafkaConsumer(name, **KAFKA_CLIENT, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        assert await consume(consumer, len(values)) == values
    finally:
        await consumer.stop()

    (described,) = await admin.describe_topics([name])
    assert len(described["partitions"]) == 3  # the broker's num.partitions
    await admin.delete_topics([name])


async def test_consumer_group_resumes_from_committed_offset(topic: str) -> None:
    group = fresh_name("infra-test-group")
    values = [f"message-{i}".encode() for i in range(1, 11)]
    await produce(topic, values)

    def group_consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            **KAFKA_CLIENT,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    first = group_consumer()
    await first.start()
    try:
        assert await consume(first, 5) == values[:5]
        await first.commit()
    finally:
        await first.stop()

    second = group_consumer()
    await second.start()
    try:
        assert await second.committed(TopicPartition(topic, 0)) == 5
        # Resumes at message 6, not at the beginning and not at the end.
        assert await consume(second, 5) == values[5:]
    finally:
        await second.stop()


async def test_mongodb_replica_set_transactions_and_change_streams() -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, serverSelectionTimeoutMS=10_000)
    db_name = fresh_name("infra_test").replace("-", "_")
    try:
        hello = await client.admin.command("hello")
        assert hello["isWritablePrimary"] is True
        assert hello.get("setName"), "mongod must run as a replica set (transactions, change streams)"

        db = client[db_name]
        collection = await db.create_collection("events", write_concern=WriteConcern("majority"))

        # A committed multi-document transaction is visible as a whole...
        async with client.start_session() as session, await session.start_transaction():
            await collection.insert_one({"_id": 1, "step": "a"}, session=session)
            await collection.insert_one({"_id": 2, "step": "b"}, session=session)
        assert await collection.count_documents({}) == 2

        # ...and an aborted one leaves no trace.
        async with client.start_session() as session:
            await session.start_transaction()
            await collection.insert_one({"_id": 3, "step": "c"}, session=session)
            await session.abort_transaction()
        assert sorted(await collection.distinct("_id")) == [1, 2]

        # A change stream opened before an insert sees it.
        async with await collection.watch() as stream:
            await collection.insert_one({"_id": 4, "step": "d"})
            change = await asyncio.wait_for(stream.next(), RECEIVE_TIMEOUT_S)
        assert change["operationType"] == "insert"
        assert change["fullDocument"] == {"_id": 4, "step": "d"}
    finally:
        await client.drop_database(db_name)
        await client.close()


@pytest.mark.skipif(
    "KAFKA_BOOTSTRAP_SERVERS" in os.environ,
    reason="restarts the broker that scripts/infra.sh runs; an external broker is not ours to restart",
)
async def test_messages_survive_a_broker_restart(topic: str) -> None:
    values = [f"durable-{i}".encode() for i in range(20)]
    await produce(topic, values)

    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", str(INFRA_SH), "restart-kafka"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"restart-kafka failed:\n{result.stdout}\n{result.stderr}"
    assert "stopping Kafka" in result.stdout  # it really went down

    consumer = AIOKafkaConsumer(topic, **KAFKA_CLIENT, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        assert await consume(consumer, len(values)) == values
    finally:
        await consumer.stop()
