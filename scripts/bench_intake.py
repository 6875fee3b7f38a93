"""Intake throughput: requests/s accepted by the JSON API (HTTP 202, stored in the outbox) and
requests/s that reach Kafka, with one intake process on the real broker and mongod.

    uv run python -m scripts.bench_intake [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from scripts.launch import REPO, start_service

UNLIMITED = {
    "INTAKE_WEB_RATE_PER_MINUTE": "100000000",
    "INTAKE_WEB_BURST": "10000000",
    "INTAKE_WEB_DESTINATION_PER_DAY": "100000000",
    "INTAKE_LOG_LEVEL": "WARNING",
}


async def measure(requests: int, concurrency: int, port: int = 18301) -> dict[str, float]:
    database = f"bench_intake_{uuid.uuid4().hex[:8]}"
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?replicaSet=rs0")
    process = start_service(
        "intake",
        port=port,
        env={"MONGODB_DATABASE": database, "KAFKA_TOPIC_PREFIX": f"{database}.", "INTAKE_SMTP_ENABLED": "false", **UNLIMITED},
        log_dir=REPO / ".local" / "bench" / "logs",
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await asyncio.to_thread(process.wait_ready)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)
        failures = 0

        async def worker(http: httpx.AsyncClient) -> None:
            nonlocal failures
            while not queue.empty():
                i = queue.get_nowait()
                response = await http.post(
                    "/api/v1/requests",
                    json={"phone": f"+3247{i:07d}", "need": "Excel", "requested_course": "EXCEL", "consent_to_contact": True},
                )
                failures += response.status_code != 202

        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=process.url, limits=limits, timeout=30) as http:
            started = time.perf_counter()
            await asyncio.gather(*(worker(http) for _ in range(concurrency)))
            accepted_s = time.perf_counter() - started
        outbox = client[database]["intake_outbox"]
        # Polled: the outbox is drained by another process, which tells us nothing.
        while await outbox.count_documents({"sent_at": None}):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        on_kafka_s = time.perf_counter() - started
        return {
            "requests": requests,
            "failures": failures,
            "accepted_per_s": requests / accepted_s,
            "on_kafka_per_s": requests / on_kafka_s,
        }
    finally:
        process.stop()
        await client.drop_database(database)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    result = asyncio.run(measure(args.requests, args.concurrency))
    print(
        f"intake JSON API: {result['accepted_per_s']:.0f} requests/s accepted (202, in the outbox), "
        f"{result['on_kafka_per_s']:.0f} requests/s on training.requests.v1 "
        f"({result['requests']:.0f} requests, {result['failures']:.0f} failures)"
    )


if __name__ == "__main__":
    main()
