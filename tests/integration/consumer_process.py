"""A consumer in a process of its own, for the at-least-once test.

`crash` mode dies with SIGKILL right after receiving (nothing stored, nothing committed);
`store` mode stores the event through the idempotent helper and exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from pymongo.asynchronous.client_session import AsyncClientSession

from schemas import Event, TrainingRequestReceived
from services import ServiceSettings, subscriber_options
from services.app import build_runtime
from services.settings import MongoSettings


async def main(topic: str, group: str, database: str, mode: str) -> None:
    runtime = build_runtime(ServiceSettings(service_name=group, mongo=MongoSettings(database=database)))
    done = asyncio.Event()

    @runtime.broker.subscriber(topic, **subscriber_options(group))
    async def handle(event: TrainingRequestReceived) -> None:
        if mode == "crash":
            os.kill(os.getpid(), signal.SIGKILL)

        async def store(session: AsyncClientSession) -> list[Event]:
            await runtime.db["stored"].insert_one({"_id": event.request_id}, session=session)
            return []

        await runtime.processed.run_once(event, store)
        done.set()

    await runtime.processed.ensure_indexes()
    await runtime.broker.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=90)
    finally:
        await runtime.broker.stop()
        await runtime.mongo.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
