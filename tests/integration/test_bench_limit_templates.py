"""The limit loop copies what routing stored per request, read from a real database, and writes it
back in one transaction per batch."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from bench.harness import ROUTED_TYPE
from bench.limit_loop import DocumentMix, insert_all, sample_templates

pytestmark = pytest.mark.integration


async def test_documents_per_decision_are_sampled_and_written_back_in_one_transaction(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # whole milliseconds, as BSON stores them
    await mongo_db["routing_decisions"].insert_many([{"_id": f"r{i}", "decided_at": now} for i in range(30)])
    await mongo_db["routing_timers"].insert_many([{"_id": f"t{i}", "due_at": now} for i in range(20)])
    await mongo_db["routing_workers"].insert_many([{"_id": "w1"}, {"_id": "w2"}])  # reference data: left out
    await mongo_db["routing_outbox"].insert_many(
        [{"_id": f"o{i}", "event_type": ROUTED_TYPE, "value": b"x" * 700, "headers": {"ce_type": ROUTED_TYPE}} for i in range(30)]
    )
    templates = await sample_templates(mongo_db, samples=5)
    assert templates.per_request == {"routing_decisions": 1.0, "routing_outbox": 1.0, "routing_timers": pytest.approx(2 / 3)}
    assert len(templates.samples["routing_timers"]) == 5 and templates.samples["routing_decisions"][0]["decided_at"] == now
    assert templates.routed_value == b"x" * 700 and templates.routed_headers == {"ce_type": ROUTED_TYPE}

    copy = mongo_db.client[f"{mongo_db.name}_copy"]
    try:
        async with mongo_client.start_session() as session:
            await session.with_transaction(functools.partial(insert_all, copy, DocumentMix(templates).for_requests(30)))
        assert await copy["routing_decisions"].count_documents({}) == 30
        assert await copy["routing_timers"].count_documents({}) == 20
    finally:
        await mongo_client.drop_database(copy.name)
