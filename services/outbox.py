"""A transactional outbox: events are stored in MongoDB before anyone is told "accepted".

A channel writes the event to the outbox (with its own state change, in one
transaction where it has one) and only then acknowledges. The relay publishes pending
entries to Kafka in order and marks them sent. If Kafka is down, entries wait and the
relay retries; if the relay dies between publishing and marking, the entry is published
again with the same event id, which consumers dedupe. One relay runs at a time per
outbox (a lease), so replicas do not publish the same backlog twice over.

Each entry keeps the W3C trace context it was added in (`traceparent`/`tracestate` among its
headers): the relay publishes it under an `outbox.relay` span in that trace, so the consumer
continues the request's trace, not the relay's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.trace import Tracer
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from schemas import Event
from services.kafka import wire
from services.leases import Lease
from services.mongo import MongoDatabase
from services.tracing import carrier, context_of, headers_carrier, outgoing_context

log = structlog.get_logger(__name__)

COMMIT_WAITS_S = (0.002, 0.004, 0.008, 0.016, 0.032, 0.064)
"""How long the relay, woken by an `add` but finding nothing yet, waits before each look again: the
add's transaction commits meanwhile (a majority commit waits for the journal)."""


class Outbox:
    def __init__(self, db: MongoDatabase, name: str = "outbox", *, tracer: Tracer | None = None) -> None:
        self._db = db
        self.name = name
        self._tracer = tracer or trace.get_tracer(__name__)
        self._collection = db[name]
        self._wake = asyncio.Event()

    @property
    def tracer(self) -> Tracer:
        """The tracer of the service this outbox belongs to, for its users' own spans."""
        return self._tracer

    async def ensure_indexes(self) -> None:
        await self._collection.create_index([("sent_at", ASCENDING), ("seq", ASCENDING)], name="pending_in_order")

    async def add(self, events: Sequence[Event], *, session: AsyncClientSession | None = None) -> None:
        """Store events for publishing; the caller acknowledges its client only after this returns."""
        now = datetime.now(UTC)
        first_seq = time.time_ns()
        docs = []
        for index, event in enumerate(events):
            topic, key, value, headers = wire(event)
            # The context the event was decided in (its cause's own, within a batch): kept with the
            # entry, as the headers it goes out with, for the relay to publish it in that trace.
            headers.update(carrier(outgoing_context(event.causation_id)))
            docs.append(
                {
                    "_id": str(event.id),
                    "seq": first_seq + index,
                    "created_at": now,
                    "topic": topic,
                    "key": key,
                    "value": value,
                    "headers": headers,
                    "event_type": event.type,
                    "sent_at": None,
                    "attempts": 0,
                }
            )
        if docs:
            await self._collection.insert_many(docs, ordered=True, session=session)
            self._wake.set()

    async def pending_count(self) -> int:
        return await self._collection.count_documents({"sent_at": None})

    async def relay_once(self, broker: KafkaBroker, *, limit: int = 500) -> int:
        """Publish up to `limit` pending entries in order; returns how many were sent."""
        entries = await self._collection.find({"sent_at": None}).sort([("seq", ASCENDING), ("_id", ASCENDING)]).to_list(limit)
        if not entries:
            return 0
        # Send all, then wait for every acknowledgement: the idempotent producer keeps order per
        # partition. Entries acknowledged are marked even if others failed, so a broker that dies
        # mid-batch costs a retry of the unacknowledged ones only, not duplicates of the rest.
        results: list[Any] = []
        failure: BaseException | None = None
        for entry in entries:
            try:
                # FastStream's middleware publishes under this span, and its `traceparent` replaces
                # the stored one: the consumer's span is a child of the publishing, in the same trace.
                with self._tracer.start_as_current_span(
                    "outbox.relay",
                    context=context_of(headers_carrier(entry["headers"])),
                    attributes={"outbox": self.name, "event_type": entry["event_type"]},
                ):
                    results.append(
                        await broker.publish(
                            entry["value"], topic=entry["topic"], key=entry["key"], headers=entry["headers"], no_confirm=True
                        )
                    )
            except Exception as error:  # noqa: BLE001 - the producer refused: keep the rest for the next round
                failure = error
                break
        acknowledged = await asyncio.gather(*results, return_exceptions=True)
        sent_ids = [entry["_id"] for entry, ack in zip(entries, acknowledged, strict=False) if not isinstance(ack, BaseException)]
        if sent_ids:
            await self._collection.update_many({"_id": {"$in": sent_ids}}, {"$set": {"sent_at": datetime.now(UTC)}})
        failure = failure or next((a for a in acknowledged if isinstance(a, BaseException)), None)
        if failure is not None:
            raise failure
        return len(sent_ids)

    async def run_relay(
        self,
        broker: KafkaBroker,
        *,
        holder: str,
        idle_poll_s: float = 0.25,
        connected: asyncio.Event | None = None,
        commit_waits_s: Sequence[float] = COMMIT_WAITS_S,
    ) -> None:
        """Relay forever while holding the outbox's lease; retries with a pause while Kafka is down."""
        if connected is not None:
            await connected.wait()
        lease = Lease(self._db, f"relay:{self.name}", holder, ttl=timedelta(seconds=15))
        # Renewed a third of the way into its time, not before every round: a busy relay runs rounds
        # back to back, and a write per round would cost as much as the relaying.
        renew_every_s = lease.ttl.total_seconds() / 3
        renew_at = 0.0
        pause = 0.5
        expected = 0
        while True:
            if time.monotonic() >= renew_at:
                if not await lease.acquire():
                    await asyncio.sleep(2.0)
                    continue
                renew_at = time.monotonic() + renew_every_s
            try:
                sent = await self.relay_once(broker)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Kafka or Mongo unavailable: keep the entries, retry
                log.warning("outbox.relay_failed", outbox=self.name, error_type=type(error).__name__, pause_s=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
                continue
            pause = 0.5
            if sent:
                expected = 0
                log.debug("outbox.relayed", outbox=self.name, count=sent)
                continue
            if expected:
                # `add` wakes the relay from inside its caller's transaction, before the commit makes
                # the entry visible: the entry is due within milliseconds, not at the next idle poll.
                await asyncio.sleep(commit_waits_s[-expected])
                expected -= 1
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=idle_poll_s)
            expected = len(commit_waits_s) if self._wake.is_set() else 0
