"""Reading a bounded window of topics as a bystander: no consumer group, nothing committed.

The live services read the same topics in their consumer groups; a replay must not move their
offsets nor join their groups (a member joining would rebalance them). So the consumer here has
no `group_id`: partitions are assigned by hand, positions are set by `seek`, and nothing is ever
committed. The window is fixed when reading starts: from the beginning (or the first offset at
or after `start`, by `offsets_for_times`) to the end offsets of that moment (or, with `end`, the
first offset at or after `end`), so records published meanwhile are not read and a replay ends.

Kafka timestamps are the producers' (`CreateTime`) and need not grow with offsets; the offsets
found for `start` and `end` are where the log crosses those times, and records in between whose
timestamp is still outside [start, end) are counted apart, not passed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.kafka import admin_client_kwargs
from services.settings import KafkaSettings

__all__ = ["PartitionRange", "ReadError", "Window", "open_window"]


class ReadError(RuntimeError):
    """Kafka stopped delivering before the window's end offsets were reached."""


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets [start, stop) of one partition to read."""

    topic: str
    partition: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return max(self.stop - self.start, 0)


@dataclass
class Window:
    """An open, bounded read of some topics; iterate `batches()` once, then `close()`."""

    consumer: AIOKafkaConsumer
    ranges: tuple[PartitionRange, ...]
    missing_topics: tuple[str, ...]
    start_ms: int | None
    end_ms: int | None
    max_records: int
    idle_timeout_s: float
    outside_window: int = field(default=0, init=False)
    """Records within the offsets whose timestamp lies outside [start, end)."""

    @property
    def total(self) -> int:
        """Records (offsets) the window spans, for progress bars; gaps make it an upper bound."""
        return sum(r.size for r in self.ranges)

    async def batches(self) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        """Lists of records in the window, partition by partition in offset order, until all end offsets."""
        stops = {TopicPartition(r.topic, r.partition): r.stop for r in self.ranges if r.size > 0}
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        while stops:
            fetched = await self.consumer.getmany(*stops, timeout_ms=500, max_records=self.max_records)
            batch: list[ConsumerRecord[bytes, bytes]] = []
            for tp, records in fetched.items():
                stop = stops.get(tp)
                if stop is None:
                    continue
                for record in records:
                    if record.offset >= stop:
                        break
                    if (self.start_ms is not None and record.timestamp < self.start_ms) or (
                        self.end_ms is not None and record.timestamp >= self.end_ms
                    ):
                        self.outside_window += 1
                        continue
                    batch.append(record)
            for tp in list(stops):
                # The position, not the last record: transaction markers and compaction leave gaps.
                if await self.consumer.position(tp) >= stops[tp]:
                    del stops[tp]
                    self.consumer.pause(tp)
            if fetched:
                last_progress = loop.time()
            elif loop.time() - last_progress > self.idle_timeout_s:
                raise ReadError(
                    f"no record for {self.idle_timeout_s:.0f}s with {len(stops)} partition(s) short of their end offsets"
                )
            if batch:
                yield batch

    async def partition_batches(self, part: PartitionRange) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        """Lists of records of one partition's range in offset order, until its end offset.

        One reader per partition may run at once (a replay runs them all): each `getmany` takes
        the records fetched for its own partition only, while the consumer fetches every partition
        in the background.
        """
        tp = TopicPartition(part.topic, part.partition)
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        while part.size > 0:
            fetched = await self.consumer.getmany(tp, timeout_ms=500, max_records=self.max_records)
            records = fetched.get(tp, [])
            batch = [record for record in records if record.offset < part.stop]
            if self.start_ms is not None or self.end_ms is not None:
                inside = [
                    record
                    for record in batch
                    if (self.start_ms is None or record.timestamp >= self.start_ms)
                    and (self.end_ms is None or record.timestamp < self.end_ms)
                ]
                self.outside_window += len(batch) - len(inside)
                batch = inside
            if batch:
                yield batch
            # The position, not the last record: transaction markers and compaction leave gaps.
            if await self.consumer.position(tp) >= part.stop:
                self.consumer.pause(tp)
                return
            if records:
                last_progress = loop.time()
            elif loop.time() - last_progress > self.idle_timeout_s:
                raise ReadError(
                    f"no record for {self.idle_timeout_s:.0f}s from {part.topic}[{part.partition}] short of its end offset"
                )

    async def close(self) -> None:
        await self.consumer.stop()


def _ms(at: datetime | None) -> int | None:
    if at is None:
        return None
    if at.utcoffset() is None:
        raise ValueError("window bounds must be timezone-aware")
    return int(at.timestamp() * 1000)


async def open_window(
    settings: KafkaSettings,
    topics: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    max_records: int = 20_000,
    idle_timeout_s: float = 30.0,
    client_id: str = "formation-analytics",
) -> Window:
    """Assign every partition of `topics` (full names, prefix included) and seek to the window.

    Topics that do not exist are reported in `Window.missing_topics`, not created.
    """
    start_ms, end_ms = _ms(start), _ms(end)
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise ValueError("the window ends before it starts")
    consumer = AIOKafkaConsumer(
        **admin_client_kwargs(settings),
        client_id=client_id,
        group_id=None,  # no group: nothing to join, nothing to commit
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # aiokafka's fetch sizes (1 MiB a partition): larger ones only delay the first records,
        # since a fetch is parsed when its whole response is in.
    )
    # Independent round trips, made at once: for a small replay they are a good part of its time.
    started = asyncio.ensure_future(consumer.start())
    try:
        partitions, missing = await _partitions(settings, topics, client_id)
    except BaseException:
        await started
        await consumer.stop()
        raise
    await started
    try:
        ranges = await _plan(consumer, partitions, start_ms, end_ms)
        consumer.assign([TopicPartition(r.topic, r.partition) for r in ranges])
        for r in ranges:
            consumer.seek(TopicPartition(r.topic, r.partition), r.start)
    except BaseException:
        await consumer.stop()
        raise
    return Window(consumer, ranges, missing, start_ms, end_ms, max_records, idle_timeout_s)


async def _partitions(
    settings: KafkaSettings, topics: Sequence[str], client_id: str
) -> tuple[list[TopicPartition], tuple[str, ...]]:
    """The partitions of the topics that exist, and the topics that do not.

    Metadata of every topic, not of the named ones: asking a broker with
    `auto.create.topics.enable` about a missing topic would create it.
    """
    admin = AIOKafkaAdminClient(**admin_client_kwargs(settings), client_id=client_id)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    found = {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described if not t["error_code"]}
    partitions = [TopicPartition(topic, p) for topic in topics for p in found.get(topic, ())]
    return partitions, tuple(t for t in topics if t not in found)


async def _plan(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], start_ms: int | None, end_ms: int | None
) -> tuple[PartitionRange, ...]:
    if not partitions:
        return ()
    # The end offsets are captured now: what is published from now on is not part of this window.
    ends, firsts = await asyncio.gather(consumer.end_offsets(partitions), consumer.beginning_offsets(partitions))
    starts = dict(firsts)
    if start_ms is not None:
        starts = await _offsets_at(consumer, partitions, start_ms, default=ends)
    stops = dict(ends)
    if end_ms is not None:
        at_end = await _offsets_at(consumer, partitions, end_ms, default=ends)
        stops = {tp: min(ends[tp], offset) for tp, offset in at_end.items()}
    return tuple(PartitionRange(tp.topic, tp.partition, max(starts[tp], firsts[tp]), stops[tp]) for tp in partitions)


async def _offsets_at(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], at_ms: int, *, default: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """First offset of each partition with a timestamp at or after `at_ms`; `default` where there is none."""
    found: dict[TopicPartition, Any] = await consumer.offsets_for_times(dict.fromkeys(partitions, at_ms))
    return {tp: found[tp].offset if found.get(tp) is not None else default[tp] for tp in partitions}
