"""Exactly-once effects for at-least-once consumers.

Kafka delivers every record at least once: after a crash, a rebalance or a replay the
same event comes again. `ProcessedEvents.run_once` stores a record unique on
(consumer, event id) in the same MongoDB transaction as the handler's effect, so the
effect happens once. The events the effect wants to publish are stored in that record
too and published after the commit - on the first delivery and again on any
redelivery - because a crash can fall between the commit and the publish. Their ids
are fixed in the record, so downstream consumers see the same events and dedupe them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from schemas import Event
from services.kafka import wire
from services.mongo import MongoDatabase

log = structlog.get_logger(__name__)

Effect = Callable[[AsyncClientSession], Awaitable[Sequence[Event]]]


@dataclass(frozen=True, slots=True)
class Outcome:
    applied: bool
    """False when the event had been processed before and its effect was skipped."""
    published: int


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

    async def run_once(self, event: Event, effect: Effect, *, broker: KafkaBroker | None = None) -> Outcome:
        """Apply `effect` once for `event`, then publish what it produced (again, if redelivered)."""
        record_id = f"{self.consumer}:{event.id}"

        async def transaction(session: AsyncClientSession) -> list[dict[str, Any]]:
            # The insert comes first so that two replicas racing on one event conflict
            # before either applies the effect.
            await self._collection.insert_one(
                {
                    "_id": record_id,
                    "consumer": self.consumer,
                    "event_id": str(event.id),
                    "event_type": event.type,
                    "processed_at": datetime.now(UTC),
                    "outputs": [],
                },
                session=session,
            )
            outputs = [_stored(e) for e in await effect(session)]
            if outputs:
                await self._collection.update_one({"_id": record_id}, {"$set": {"outputs": outputs}}, session=session)
            return outputs

        try:
            async with self._client.start_session() as session:
                outputs = await session.with_transaction(transaction)
            applied = True
        except DuplicateKeyError:
            stored = await self._collection.find_one({"_id": record_id}, {"outputs": 1})
            outputs = stored["outputs"] if stored else []
            applied = False
            log.info("event.duplicate_skipped", consumer=self.consumer, event_id=str(event.id), event_type=event.type)

        if broker is not None:
            for output in outputs:
                await broker.publish(
                    output["value"], topic=output["topic"], key=output["key"], headers=output["headers"]
                )
        return Outcome(applied=applied, published=len(outputs) if broker is not None else 0)


def _stored(event: Event) -> dict[str, Any]:
    topic, key, value, headers = wire(event)
    return {"topic": topic, "key": key, "value": value, "headers": headers, "event_id": str(event.id)}
