"""Kafka stops while intake is accepting: every request is still accepted, and once the broker
is back every one of them is on `training.requests.v1` exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from scripts.launch import REPO, ServiceProcess, start_service
from tests.conftest import KAFKA_CLIENT, drop_database

pytestmark = [
    pytest.mark.faults,
    pytest.mark.e2e,
    pytest.mark.skipif(
        bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
        reason="KAFKA_BOOTSTRAP_SERVERS names a broker this project did not start: the test cannot stop it",
    ),
]

# One test client sends everything: the per-client abuse brake would be in the way.
NO_RATE_LIMIT = {
    "INTAKE_WEB_RATE_PER_MINUTE": "1000000",
    "INTAKE_WEB_BURST": "100000",
    "INTAKE_WEB_DESTINATION_PER_DAY": "1000000",
}
INFRA = REPO / "scripts" / "infra.sh"


def infra(command: str) -> None:
    subprocess.run(["bash", str(INFRA), command], check=True, capture_output=True, timeout=180)


@pytest.fixture
def intake(tmp_path: Path, unique: str) -> Iterator[ServiceProcess]:
    process = start_service(
        "intake",
        port=18101,
        env={"MONGODB_DATABASE": f"fault_{unique}", "KAFKA_TOPIC_PREFIX": f"fault_{unique}.", **NO_RATE_LIMIT},
        log_dir=tmp_path,
    )
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
        drop_database(f"fault_{unique}")


async def test_requests_accepted_while_kafka_is_down_reach_the_topic_exactly_once(intake: ServiceProcess, unique: str) -> None:
    accepted: list[str] = []
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as http:

        async def post(i: int) -> None:
            response = await http.post(
                "/api/v1/requests",
                json={
                    "phone": f"0470 {i // 100:02d} {i % 100:02d} 99",
                    "need": f"outage test {unique}",
                    "consent_to_contact": True,
                },
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["request_id"])

        for i in range(20):
            await post(i)
        infra("stop-kafka")
        try:
            for i in range(20, 60):
                await post(i)
            ready = await http.get("/health/ready")
            assert ready.status_code == 200 and ready.json()["kafka"] == "down"
        finally:
            started = time.monotonic()
            infra("start-kafka")
            print(f"kafka back after {time.monotonic() - started:.1f}s")
        for i in range(60, 80):
            await post(i)

    wanted = set(accepted)
    counts: Counter[str] = Counter()
    consumer = AIOKafkaConsumer(
        f"fault_{unique}.training.requests.v1",
        **KAFKA_CLIENT,
        group_id=f"outage-check-{unique}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 90
        while asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                counts.update(r.key.decode() for r in records if r.key and r.key.decode() in wanted)
            if set(counts) == wanted:
                # Read a little longer: a duplicate would come right behind.
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    counts.update(r.key.decode() for r in records if r.key and r.key.decode() in wanted)
                break
    finally:
        await consumer.stop()

    lost = wanted - set(counts)
    duplicated = {k: n for k, n in counts.items() if n > 1}
    print(f"sent={len(accepted)} on_topic={len(counts)} lost={len(lost)} duplicated={len(duplicated)}")
    assert len(accepted) == 80
    assert not lost
    assert not duplicated
