"""The outbox relay and a transaction that commits after the relay was woken, on the real mongod.

`Outbox.add` wakes the relay from inside its caller's transaction; the relay can look before the
commit and find nothing. It must look again shortly after, not sleep until its idle poll.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from services.outbox import Outbox
from tests.factories import enrolled

pytestmark = pytest.mark.integration


class RecordingBroker:
    """What the relay calls on a broker: `publish(..., no_confirm=True)`, whose result it awaits."""

    def __init__(self) -> None:
        self.published: list[bytes] = []
        self.first = asyncio.Event()

    async def publish(self, value: bytes, **_: Any) -> asyncio.Future[None]:
        self.published.append(value)
        self.first.set()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class ObservedOutbox(Outbox):
    """The outbox with each relay round's count reported, so the test knows the relay looked."""

    def __init__(self, db: Any, name: str) -> None:
        super().__init__(db, name)
        self.rounds: asyncio.Queue[int] = asyncio.Queue()

    async def relay_once(self, broker: KafkaBroker, *, limit: int = 500) -> int:
        sent = await super().relay_once(broker, limit=limit)
        self.rounds.put_nowait(sent)
        return sent


async def test_an_entry_committed_after_the_relay_looked_is_sent_without_waiting_for_the_idle_poll(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    outbox = ObservedOutbox(mongo_db, f"outbox_{uuid.uuid4().hex[:8]}")
    await outbox.ensure_indexes()
    broker = RecordingBroker()
    # An idle poll of an hour: only the look after the wake can find the entry within the test.
    relay = asyncio.create_task(
        outbox.run_relay(broker, holder="relay-test", idle_poll_s=3600, commit_waits_s=(0.5, 1.0, 2.0, 4.0, 8.0))  # type: ignore[arg-type]
    )
    try:
        assert await asyncio.wait_for(outbox.rounds.get(), timeout=60) == 0  # the relay is idle now

        async def transaction(session: AsyncClientSession) -> None:
            await outbox.add([enrolled("per_relay")], session=session)
            # Commit only once the woken relay has looked and found nothing.
            assert await asyncio.wait_for(outbox.rounds.get(), timeout=60) == 0

        async with mongo_client.start_session() as session:
            await session.with_transaction(transaction)
        await asyncio.wait_for(broker.first.wait(), timeout=60)
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
    assert len(broker.published) == 1
