"""Poison on the request topic of a running routing process: invalid JSON, a wrong schema, an
unknown schema version and a huge payload each land in routing's dead letters with their reason,
and the requests around them are routed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from schemas import encode
from tests.conftest import KAFKA_CLIENT
from tests.factories import live_request
from tests.processes import Run, produce, roster, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(600)]


def poison() -> dict[str, bytes]:
    valid = json.loads(encode(live_request()))
    # A known type with data that breaks its contract. (A new channel would not do: readers take it.)
    wrong_schema = {**valid, "data": {**valid["data"], "request_id": "", "consent_to_contact": "maybe"}}
    from_the_future = {**valid, "schemaversion": 99}
    huge = {**valid, "data": {**valid["data"], "need": "x" * 900_000}}
    return {
        "MalformedEvent": b"{this is not json",
        "InvalidEvent": json.dumps(wrong_schema).encode(),
        "UnsupportedSchemaVersion": json.dumps(from_the_future).encode(),
        "huge": json.dumps(huge).encode(),
    }


async def test_poison_lands_in_dead_letters_and_routing_goes_on(run: Run, mongo_client: AsyncMongoClient[dict[str, Any]]) -> None:
    run.env["ROUTING_WORKERS_PATH"] = str(roster(run.tmp / "roster.yaml", per_team=1, capacity=5))
    before, after = live_request(), live_request()
    await produce(run.topic("training.requests.v1"), [before])
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True, max_request_size=2_000_000)
    await producer.start()
    try:
        for name, value in poison().items():
            await producer.send_and_wait(run.topic("training.requests.v1"), value, key=f"poison-{name}".encode())
    finally:
        await producer.stop()
    await produce(run.topic("training.requests.v1"), [after])
    run.start("routing", 18701)
    db = mongo_client[run.database]

    async def both_routed() -> bool:
        return await db["routing_decisions"].count_documents({"_id": {"$in": [before.request_id, after.request_id]}}) == 2

    await wait_for(both_routed, timeout=120)
    dead = await read_dead_letters(run, expected=4)
    reasons = {record["key"]: record["dlq_exception_type"] for record in dead}
    print(f"poison sent=4 dead-lettered={len(dead)} reasons={reasons} good requests routed=2")
    assert reasons["poison-MalformedEvent"] == "MalformedEvent"
    assert reasons["poison-InvalidEvent"] == "InvalidEvent"
    assert reasons["poison-UnsupportedSchemaVersion"] == "UnsupportedSchemaVersion"
    assert reasons["poison-huge"] == "EventTooLarge"
    assert all(r["value_size"] > 0 and r["dlq_original_topic"] == run.topic("training.requests.v1") for r in dead)


async def read_dead_letters(run: Run, *, expected: int) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        run.topic("routing.dead-letters.v1"),
        **KAFKA_CLIENT,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_bytes=5_000_000,
        max_partition_fetch_bytes=5_000_000,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        for _ in range(60):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    headers = {k: v.decode(errors="replace") for k, v in record.headers}
                    found.append({"key": (record.key or b"").decode(), "value_size": len(record.value or b""), **headers})
            if len(found) >= expected:
                break
    finally:
        await consumer.stop()
    return found
