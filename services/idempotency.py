"""Exactly-once effects for at-least-once consumers.

Kafka delivers every record at least once: after a crash, a rebalance or a replay the
same event comes again. `ProcessedEvents.run_once` stores a record unique on
(consumer, event id) in the same MongoDB transaction as the handler's effect, so the
effect happens once. The events the effect produces go into the service's transactional
outbox in that same transaction, and only its relay publishes them: one way out for every
effect, so a crash between the commit and the publish loses nothing, and a redelivery
publishes nothing twice (the outbox entries are keyed by event id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from schemas import Event
from services.mongo import MongoDatabase
from services.outbox import Outbox

log = structlog.get_logger(__name__)

Effect = Callable[[AsyncClientSession], Awaitable[Sequence[Event]]]


@dataclass(frozen=True, slots=True)
class Outcome:
    applied: bool
    """False when the event had been processed before and its effect was skipped."""
    published: int
    """How many events the effect put in the outbox (0 on a redelivery)."""


class ProcessedEvents:
    """The processed-events record of one consumer (one consumer group)."""

    collection_name = "processed_events"

    def __init__(self, client: AsyncMongoClient[Any], db: MongoDatabase, consumer: str) -> None:
        self._client = client
        self._collection = db[self.collection_name]
        self.consumer = consumer

    async def ensure_indexes(self) -> None:
        await self._collection.create_index(
            [("consumer", ASCENDING), ("event_id", ASCENDING)], unique=True, name="consumer_event_unique"
        )

    async def seen(self, event_id: object) -> bool:
        return await self._collection.count_documents({"consumer": self.consumer, "event_id": str(event_id)}) > 0

    async def seen_among(self, event_ids: Iterable[object]) -> set[str]:
        """Which of these events were processed already (as strings), in one query."""
        ids = [f"{self.consumer}:{event_id}" for event_id in event_ids]
        docs = await self._collection.find({"_id": {"$in": ids}}, {"event_id": 1}).to_list(None)
        return {doc["event_id"] for doc in docs}

    async def record_many(self, outputs: Sequence[tuple[Event, Sequence[Event]]], *, session: AsyncClientSession) -> None:
        """Record events as processed with what they produced, inside the caller's transaction
        (`run_once` for a batch): any of them recorded before aborts it with `DuplicateKeyError`."""
        now = datetime.now(UTC)
        docs = [self._record(event, produced, now) for event, produced in outputs]
        if docs:
            await self._collection.insert_many(docs, ordered=True, session=session)

    def _record(self, event: Event, produced: Sequence[Event], now: datetime) -> dict[str, Any]:
        """The record that `event` was processed (by this consumer), with the ids of what it produced."""
        return {
            "_id": f"{self.consumer}:{event.id}",
            "consumer": self.consumer,
            "event_id": str(event.id),
            "event_type": event.type,
            "processed_at": now,
            "output_ids": [str(output.id) for output in produced],
        }

    async def run_once(self, event: Event, effect: Effect, *, outbox: Outbox | None = None) -> Outcome:
        """Apply `effect` once for `event`; what it produces goes into `outbox` in the same transaction.

        An effect that produces events without an `outbox` to hold them is a programming error
        (`ValueError`): they would be lost.
        """
        record_id = f"{self.consumer}:{event.id}"

        async def transaction(session: AsyncClientSession) -> int:
            # The insert comes first so that two replicas racing on one event conflict
            # before either applies the effect.
            await self._collection.insert_one(self._record(event, (), datetime.now(UTC)), session=session)
            outputs = list(await effect(session))
            if outputs:
                if outbox is None:
                    raise ValueError(f"{self.consumer}: an effect produced {len(outputs)} event(s) and there is no outbox")
                await outbox.add(outputs, session=session)
                ids = [str(output.id) for output in outputs]
                await self._collection.update_one({"_id": record_id}, {"$set": {"output_ids": ids}}, session=session)
            return len(outputs)

        try:
            async with self._client.start_session() as session:
                added: int = await session.with_transaction(transaction)
        except DuplicateKeyError:
            log.info("event.duplicate_skipped", consumer=self.consumer, event_id=str(event.id), event_type=event.type)
            return Outcome(applied=False, published=0)
        return Outcome(applied=True, published=added)
