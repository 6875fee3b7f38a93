"""`make demo`: the services as separate processes on the real broker and mongod, a scripted
scenario played through them, and a table of what happened.

Each run uses a fresh database, so the table shows this run only; the services' logs are
kept under .local/demo/logs/ for reading afterwards.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import datetime
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from scripts.launch import REPO, running_services

console = Console(width=160)

SCENARIO: list[dict[str, Any]] = [
    {
        "name": "Demo Person One",
        "phone": "+32470000101",
        "email": "demo.one@example.org",
        "language": "fr",
        "need": "Je cherche une formation en ligne pour apprendre Excel.",
        "requested_course": "BUREAUTIQUE-EXCEL",
        "consent_to_contact": True,
    },
    {
        "name": "Demo Persoon Twee",
        "phone": "+32470000102",
        "language": "nl",
        "need": "Ik wil mijn Frans verbeteren om werk te vinden.",
        "consent_to_contact": True,
    },
    {
        "email": "demo.three@example.org",
        "language": "en",
        "need": "I would like to learn web design online.",
        "requested_course": "WEBDESIGN-INTRO",
        "consent_to_contact": True,
    },
    {
        "phone": "+32470000104",
        "language": "fr",
        "need": "Je n'ai pas d'ordinateur, comment suivre une formation ?",
        "consent_to_contact": True,
    },
]


async def wait_for_outcomes(db: Any, request_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        routed = await db["routing_decisions"].count_documents({"_id": {"$in": request_ids}})
        notified = await db["deliveries"].count_documents({"request_id": {"$in": request_ids}})
        if routed == len(request_ids) and notified == len(request_ids):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"only {routed}/{len(request_ids)} routed and {notified} notified after {timeout:.0f}s")


async def play(database: str) -> Table:
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?replicaSet=rs0")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        await client.drop_database(database)
        with running_services(env={"MONGODB_DATABASE": database}, log_dir=REPO / ".local" / "demo" / "logs") as services:
            intake = services["intake"].url
            request_ids: list[str] = []
            async with httpx.AsyncClient(base_url=intake, timeout=10.0) as http:
                for submission in SCENARIO:
                    response = await http.post("/api/v1/requests", json=submission)
                    response.raise_for_status()
                    request_ids.append(response.json()["request_id"])
                    console.print(f"[green]accepted[/] web request {request_ids[-1][:8]} ({submission['language']})")
            db = client[database]
            await wait_for_outcomes(db, request_ids)
            return await outcome_table(db, request_ids)
    finally:
        await client.close()


async def outcome_table(db: Any, request_ids: list[str]) -> Table:
    table = Table(title="What happened to each request")
    for column in ("request", "channel", "routed to", "rule", "why", "notification"):
        table.add_column(column)
    for request_id in request_ids:
        decision = await db["routing_decisions"].find_one({"_id": request_id})
        delivery = await db["deliveries"].find_one({"request_id": request_id})
        table.add_row(
            request_id[:8],
            decision["channel"],
            decision["target"],
            decision["rule_id"],
            decision["explanation"],
            f"{delivery['template']} ({delivery['status']})" if delivery else "-",
        )
    return table


def main() -> int:
    database = f"demo_{datetime.now():%Y%m%d_%H%M%S}"
    started = time.monotonic()
    table = asyncio.run(play(database))
    console.print(table)
    console.print(f"demo database: {database}; took {time.monotonic() - started:.1f}s; logs in .local/demo/logs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
