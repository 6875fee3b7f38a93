"""Replay: the events of some topics, read as a bystander, into a fresh read model for analysts.

`replay` reads a bounded window of the topics (`analytics.window`: no consumer group, nothing
committed, so the live services never notice) and writes the pseudonymous projection of each
event (`analytics.readmodel`) to the `events` collection of a database of its own, never the
services' one. A reader per partition reads its range, projects it slice by slice and inserts
each slice while it projects the next; the readers share one consumer, which fetches every
partition in the background, and at most `writers` inserts run at once. So reading, projecting
and writing overlap, and no partition waits for another's insert.

Idempotent: a document's `_id` is its event id and events are immutable facts, so "insert unless
present" is the upsert. `insert_many(ordered=False)` does it in one round trip per batch and a
duplicate-key error only means that the event was already there (a re-run, or Kafka delivering a
record twice); that is cheaper than one `ReplaceOne(upsert=True)` per event, which MongoDB
executes as a lookup and a write each.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka.structs import ConsumerRecord, TopicPartition
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from analytics.readmodel import EVENTS_COLLECTION, document_from_record
from analytics.settings import AnalyticsSettings
from analytics.window import PartitionRange, Window, open_window
from schemas.errors import ContractError
from schemas.topics import ALL_TOPICS, TopicSpec

__all__ = ["REPLAYS_COLLECTION", "ReplayStats", "default_database_name", "mongo_client", "replay", "resolve_topics"]

REPLAYS_COLLECTION: Final = "replays"
"""One document per replay into a read model: its window, topics and counts."""

_DUPLICATE_KEY: Final = 11000
_UNCOMPRESSED: Final = {"wiredTiger": {"configString": "block_compressor=none"}}
_RESERVED_DATABASES: Final = frozenset({"admin", "config", "local"})

Progress = Callable[[int, int], None]
"""Called with (records read so far, records in the window) after each batch."""


@dataclass(frozen=True)
class ReplayStats:
    """What a replay read and wrote."""

    database: str
    topics: tuple[str, ...]
    """Declared topic names, without prefix."""
    prefix: str
    start: datetime | None
    end: datetime | None
    records: int
    """Records read within the window (those outside it in time are `outside_window`)."""
    written: int
    """Documents inserted; fewer than `records - unreadable` when events were already there."""
    duplicates: int
    unreadable: int
    """Records that are not events of the contract; skipped, as a consumer dead-letters them."""
    outside_window: int
    missing_topics: tuple[str, ...]
    by_event: Mapping[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def default_database_name(now: datetime | None = None) -> str:
    """`analytics_<UTC timestamp>`: a fresh read model per replay unless one is named."""
    return f"analytics_{(now or datetime.now(UTC)):%Y%m%d_%H%M%S}"


def resolve_topics(names: Iterable[str] | None) -> tuple[TopicSpec, ...]:
    """Declared topics by name (`training.requests.v1`…); every declared topic when `names` is None."""
    if names is None:
        return ALL_TOPICS
    known = {spec.name: spec for spec in ALL_TOPICS}
    chosen: list[TopicSpec] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name not in known:
            raise ValueError(f"unknown topic {name!r}; declared topics: {', '.join(known)}")
        if known[name] not in chosen:
            chosen.append(known[name])
    if not chosen:
        raise ValueError("no topic to replay")
    return tuple(chosen)


def mongo_client(settings: AnalyticsSettings) -> AsyncMongoClient[dict[str, Any]]:
    """A client for read models. Unlike the services' (`services.mongo`), it writes with w=1:
    a read model is rebuilt from Kafka at will, so majority acknowledgement buys nothing."""
    return AsyncMongoClient(
        settings.mongo.uri.get_secret_value(),
        appname="formation-analytics",
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongo.server_selection_timeout_ms,
        w=1,
    )


def _check_database(settings: AnalyticsSettings, into: str) -> None:
    if into == settings.mongo.database:
        raise ValueError(f"{into!r} is the services' database; a read model goes to a database of its own")
    if into in _RESERVED_DATABASES or not into or any(c in into for c in '/\\. "$'):
        raise ValueError(f"{into!r} cannot be a read model's database")


async def replay(
    settings: AnalyticsSettings,
    topics: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    into: str | None = None,
    *,
    on_progress: Progress | None = None,
) -> ReplayStats:
    """Replay `topics` (declared names; all when None) from `start` (inclusive; the beginning when
    None) to `end` (exclusive; the end offsets when the replay starts when None) into the read
    model database `into` (default `analytics_<timestamp>`), with `settings.kafka.topic_prefix`.

    Raises `ValueError` for an unknown topic or a forbidden database (the services' own).
    """
    specs = resolve_topics(topics)
    into = into or default_database_name()
    _check_database(settings, into)
    prefix = settings.kafka.topic_prefix
    declared_by_full_name = {prefix + spec.name: spec.name for spec in specs}

    client = mongo_client(settings)
    started = time.perf_counter()
    tally = _Tally()
    try:
        # Connecting to MongoDB and planning the Kafka window are independent round trips.
        collection = asyncio.ensure_future(_events_collection(client, into))
        try:
            window = await open_window(
                settings.kafka,
                list(declared_by_full_name),
                start=start,
                end=end,
                max_records=settings.fetch_max_records,
                idle_timeout_s=settings.idle_timeout_s,
                client_id="formation-analytics-replay",
            )
        except BaseException:
            collection.cancel()
            await asyncio.gather(collection, return_exceptions=True)
            raise
        try:
            events = await collection
        except BaseException:
            await window.close()
            raise
        writes = asyncio.Semaphore(settings.writers)

        def progressed(records: int) -> None:
            tally.records += records
            if on_progress is not None:
                on_progress(tally.records, window.total)

        try:
            for part in window.ranges:
                if part.size == 0:
                    window.consumer.pause(TopicPartition(part.topic, part.partition))  # nothing to read: fetch nothing
            # A reader per partition: while one waits for its insert, the others read and project.
            readers = [
                asyncio.create_task(_replay_partition(window, part, events, settings.write_batch, writes, tally, progressed))
                for part in window.ranges
                if part.size > 0
            ]
            try:
                await asyncio.gather(*readers)  # the first failure stops the replay
            finally:
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
        finally:
            await window.close()
        seconds = time.perf_counter() - started
        # After the load: maintaining indexes during it would slow every insert.
        await events.create_index([("event", ASCENDING), ("time", ASCENDING)])
        await events.create_index([("request_id", ASCENDING)], sparse=True)
        await events.create_index([("person_id", ASCENDING)], sparse=True)
        stats = ReplayStats(
            database=into,
            topics=tuple(spec.name for spec in specs),
            prefix=prefix,
            start=start,
            end=end,
            records=tally.records,
            written=tally.written,
            duplicates=tally.duplicates,
            unreadable=tally.unreadable,
            outside_window=window.outside_window,
            missing_topics=tuple(declared_by_full_name[t] for t in window.missing_topics),
            by_event=dict(sorted(tally.by_event.items())),
            seconds=seconds,
        )
        await client[into][REPLAYS_COLLECTION].insert_one(
            {
                "_id": str(uuid.uuid4()),
                "finished_at": datetime.now(UTC),
                **asdict(stats),
                "events_per_second": stats.events_per_second,
                "offsets": [
                    {"topic": declared_by_full_name[r.topic], "partition": r.partition, "start": r.start, "stop": r.stop}
                    for r in window.ranges
                ],
            }
        )
        return stats
    finally:
        await client.close()


async def _events_collection(client: AsyncMongoClient[dict[str, Any]], into: str) -> Any:
    """The read model's events collection, created clustered on `_id` and uncompressed when new.

    Clustered, the documents are stored in the `_id` index itself: one B-tree to write per event
    instead of two, which measured 15-40% faster inserts, and inserts are what a replay waits on.
    Uncompressed: with a small WiredTiger cache, a year's documents are evicted while they are
    being inserted, and compressing them on the way out took a quarter of mongod's CPU (a year
    replayed in 16-19 s instead of 24 s, measured here). A read model is rebuilt at will; the
    disk it takes is the cheaper resource.
    """
    db = client[into]
    if EVENTS_COLLECTION not in await db.list_collection_names(filter={"name": EVENTS_COLLECTION}):
        try:
            await db.create_collection(
                EVENTS_COLLECTION, clusteredIndex={"key": {"_id": 1}, "unique": True}, storageEngine=_UNCOMPRESSED
            )
        except CollectionInvalid:
            pass  # a replay running alongside created it
        except OperationFailure:
            # A server before 5.3: no clustered collections.
            await db.create_collection(EVENTS_COLLECTION, storageEngine=_UNCOMPRESSED)
    return db[EVENTS_COLLECTION]


def _project(records: Sequence[ConsumerRecord[bytes, bytes]]) -> tuple[list[dict[str, Any]], int]:
    """Read-model documents of a batch of records, and how many records were not events."""
    documents: list[dict[str, Any]] = []
    append = documents.append
    for record in records:
        try:  # noqa: SIM105 - not contextlib.suppress: this loop runs once per event
            append(document_from_record(record.value, record.headers))
        except ContractError:
            pass
    return documents, len(records) - len(documents)


@dataclass
class _Tally:
    """What the partitions' readers have read and written so far."""

    records: int = 0
    written: int = 0
    duplicates: int = 0
    unreadable: int = 0
    by_event: Counter[str] = field(default_factory=Counter)


async def _replay_partition(
    window: Window,
    part: PartitionRange,
    events: Any,
    write_batch: int,
    writes: asyncio.Semaphore,
    tally: _Tally,
    progressed: Callable[[int], None],
) -> None:
    """Read, project and insert one partition's range. One insert of it is in flight while the
    next slice is projected: memory stays bounded by a slice per partition."""
    inserting: asyncio.Task[None] | None = None

    async def insert(documents: list[dict[str, Any]]) -> None:
        async with writes:
            inserted, duplicates = await _insert(events, documents)
        tally.written += inserted
        tally.duplicates += duplicates

    try:
        async for batch in window.partition_batches(part):
            for at in range(0, len(batch), write_batch):
                documents, bad = _project(batch[at : at + write_batch])
                tally.unreadable += bad
                tally.by_event.update(document["event"] for document in documents)
                if inserting is not None:
                    await inserting
                inserting = asyncio.create_task(insert(documents)) if documents else None
            progressed(len(batch))
        if inserting is not None:
            await inserting
    finally:
        if inserting is not None and not inserting.done():
            inserting.cancel()
            await asyncio.gather(inserting, return_exceptions=True)


async def _insert(collection: Any, documents: list[dict[str, Any]]) -> tuple[int, int]:
    """Insert what is not there yet; (inserted, already there)."""
    try:
        result = await collection.insert_many(documents, ordered=False)
        return len(result.inserted_ids), 0
    except BulkWriteError as error:
        details = error.details
        others = [e for e in details.get("writeErrors", ()) if e.get("code") != _DUPLICATE_KEY]
        if others or details.get("writeConcernErrors"):
            raise
        return details.get("nInserted", 0), len(details.get("writeErrors", ()))
