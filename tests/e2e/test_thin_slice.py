"""The four services as separate processes on the real broker and mongod: a request posted to
intake is published, routed once, and the routing event reaches notification."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from scripts.launch import ServiceProcess, running_services
from scripts.tokens import Tokens
from tests.conftest import drop_database

pytestmark = pytest.mark.e2e

PORTS = {"intake": 18001, "routing": 18002, "notification": 18003, "certification": 18004}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, ServiceProcess], str]]:
    database = f"e2e_{uuid.uuid4().hex[:12]}"
    # Topics of their own: the shared ones may hold other runs' backlog.
    env = {"MONGODB_DATABASE": database, "KAFKA_TOPIC_PREFIX": f"{database}."}
    log_dir = Path(tmp_path_factory.mktemp("logs"))
    with running_services(env=env, log_dir=log_dir, ports=PORTS) as started:
        yield started, database
    drop_database(database)


async def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_a_posted_request_is_routed_once_and_notified(
    services: tuple[dict[str, ServiceProcess], str], mongo_client: AsyncMongoClient[dict[str, Any]]
) -> None:
    started, database = services
    db = mongo_client[database]
    async with httpx.AsyncClient(base_url=started["intake"].url) as http:
        response = await http.post(
            "/api/v1/requests",
            json={
                "phone": "+32470999001",
                "language": "nl",
                "need": "Excel online",
                "requested_course": "EXCEL",
                "consent_to_contact": True,
            },
        )
    assert response.status_code == 202
    request_id = response.json()["request_id"]

    async def notified() -> bool:
        return await db["deliveries"].count_documents({"request_id": request_id}) == 1

    await wait_for(notified)
    decision = await db["routing_decisions"].find_one({"_id": request_id})
    assert decision is not None
    assert decision["target"] == "espaces_numeriques"
    assert decision["channel"] == "web"
    assert await db["processed_events"].count_documents({"consumer": "routing"}) >= 1
    outbox_entry = await db["intake_outbox"].find_one({"event_type": "be.bruxellesformation.training.request.received"})
    assert outbox_entry is not None and outbox_entry["sent_at"] is not None


async def test_every_service_reports_ready_and_exposes_metrics(
    services: tuple[dict[str, ServiceProcess], str], tokens: Tokens
) -> None:
    started, _ = services
    async with httpx.AsyncClient() as http:
        for process in started.values():
            ready = await http.get(f"{process.url}/health/ready")
            assert ready.status_code == 200
            assert ready.json() == {"kafka": "up", "mongodb": "up"}
            metrics = await http.get(f"{process.url}/metrics", headers=tokens.headers("ops-1"))
            assert metrics.status_code == 200
        routing_metrics = (await http.get(f"{started['routing'].url}/metrics", headers=tokens.headers("ops-1"))).text
    assert "faststream_received_messages_total" in routing_metrics
