"""Consumer lag per group and partition, exported as Prometheus gauges on the service's `/metrics`.

Lag is how many records of a partition a consumer group has not committed yet: the
partition's end offset minus the group's committed offset. It is what tells whether a
service keeps up (and what KEDA scales the consumers on, see deploy/README.md); the
gauges let dashboards and alerts see the same number per partition.

Every `interval` (15 s by default, `<SERVICE>_LAG_INTERVAL`) one round:
- takes the consumer groups and their topics from the broker's subscribers (each
  `subscriber_options(group)` subscriber, retry subscribers included), so nothing has to
  be listed twice;
- reads the partitions of those topics and the groups' committed offsets with an
  `AIOKafkaAdminClient` (`describe_topics`, `list_consumer_group_offsets`), and the
  partitions' first and end offsets with a short-lived `AIOKafkaConsumer` that has no
  group (it joins nothing and commits nothing);
- sets `kafka_consumer_lag{group,topic,partition}` and `kafka_consumer_lag_sum{group,topic}`.

A partition the group never committed on counts from its first offset, as our consumers
start there (`auto_offset_reset="earliest"`); a committed offset older than the first
one (deleted by retention) counts from the first one too, where the consumer resumes.

A failed read is logged (`lag.read_failed`), counted in `kafka_consumer_lag_read_failures`,
and drops that group's series until the next good read: a stale lag would look healthy.
It never stops the service. Every replica exports the same group-wide numbers; aggregate
with `max by (group, topic, partition)`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kafka import admin_client_kwargs
from services.settings import KafkaSettings, ServiceSettings

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from services.app import Runtime

log = structlog.get_logger(__name__)

Groups = Mapping[str, Collection[str]]
"""Consumer group -> the (prefixed) topic names it reads."""


class LagSettings(BaseSettings):
    """The lag exporter's settings, read with the service's prefix (`ROUTING_LAG_INTERVAL`, ...)."""

    model_config = SettingsConfigDict(extra="ignore")

    lag_enabled: bool = Field(True, description="Export kafka_consumer_lag for the service's consumer groups.")
    lag_interval: timedelta = Field(
        timedelta(seconds=15), gt=timedelta(0), description="How often lag is read (ISO 8601 duration or seconds)."
    )

    @classmethod
    def for_service(cls, settings: ServiceSettings) -> LagSettings:
        prefix = settings.model_config.get("env_prefix") or f"{settings.service_name.upper()}_"
        return cls(_env_prefix=prefix)  # pydantic-settings' init-time prefix


def consumer_groups(broker: KafkaBroker) -> dict[str, frozenset[str]]:
    """The consumer groups of `broker`'s subscribers and the topics each reads (prefixed names).

    Subscribers without a group (manual assignment) or subscribing by pattern have no fixed
    set of committed partitions to compare with, and are left out.
    """
    groups: dict[str, set[str]] = {}
    for subscriber in broker.subscribers:
        group = getattr(subscriber, "group_id", None)
        if not group or getattr(subscriber, "pattern", None) is not None:
            continue
        topics = {topic.name for topic in getattr(subscriber, "topics", ())}
        if topics:
            groups.setdefault(group, set()).update(topics)
    return {group: frozenset(topics) for group, topics in sorted(groups.items())}


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    """The group's committed offset (the next record it will read), None if it never committed."""
    first: int
    end: int

    @property
    def lag(self) -> int:
        position = self.first if self.committed is None else max(self.committed, self.first)
        return max(self.end - position, 0)


@dataclass
class LagReading:
    partitions: list[PartitionLag] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    """Group -> why its lag could not be read."""


async def read_lag(
    settings: KafkaSettings,
    groups: Groups,
    *,
    client_id: str = "formation-events-lag",
    timeout_s: float = 10.0,
) -> LagReading:
    """One reading of every group's lag on its topics. Raises only if Kafka cannot be reached at all."""
    reading = LagReading()
    topics = sorted({topic for group_topics in groups.values() for topic in group_topics})
    if not topics:
        return reading
    kwargs = admin_client_kwargs(settings)
    request_timeout_ms = max(int(timeout_s * 1000), 1000)
    admin = AIOKafkaAdminClient(**kwargs, client_id=client_id, request_timeout_ms=request_timeout_ms)
    consumer = AIOKafkaConsumer(
        **kwargs,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=request_timeout_ms,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            await consumer.start()
            partitions: list[TopicPartition] = []
            missing: set[str] = set()
            for described in await admin.describe_topics(topics):
                if described.get("error_code") or not described.get("partitions"):
                    missing.add(described["topic"])
                    continue
                partitions += [TopicPartition(described["topic"], p["partition"]) for p in described["partitions"]]
            missing |= set(topics) - {tp.topic for tp in partitions}
            for topic in sorted(missing):
                log.warning("lag.topic_unknown", topic=topic)
            partitions.sort()
            first = await consumer.beginning_offsets(partitions) if partitions else {}
            end = await consumer.end_offsets(partitions) if partitions else {}
            for group, group_topics in groups.items():
                mine = [tp for tp in partitions if tp.topic in group_topics]
                if not mine:
                    continue
                try:
                    committed = await admin.list_consumer_group_offsets(group, partitions=mine)
                except Exception as error:  # noqa: BLE001 - one group's coordinator failing must not hide the others
                    reading.failures[group] = repr(error)
                    continue
                for tp in mine:
                    meta = committed.get(tp)
                    offset = meta.offset if meta is not None and meta.offset >= 0 else None
                    reading.partitions.append(PartitionLag(group, tp.topic, tp.partition, offset, first[tp], end[tp]))
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()
    return reading


class LagExporter:
    """Reads the lag of `groups()` every `interval_s` and keeps the gauges on `registry` up to date."""

    def __init__(
        self,
        settings: KafkaSettings,
        groups: Callable[[], Groups],
        *,
        registry: CollectorRegistry | None,
        interval_s: float = 15.0,
        timeout_s: float = 10.0,
        client_id: str = "formation-events-lag",
        ready: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.groups = groups
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.client_id = client_id
        self.ready = ready
        self.lag = Gauge(
            "kafka_consumer_lag",
            "Records not yet committed by a consumer group, per partition (end offset minus committed offset).",
            ("group", "topic", "partition"),
            registry=registry,
        )
        self.lag_sum = Gauge(
            "kafka_consumer_lag_sum",
            "Records not yet committed by a consumer group, summed over a topic's partitions.",
            ("group", "topic"),
            registry=registry,
        )
        self.read_failures = Counter(
            "kafka_consumer_lag_read_failures",
            "Lag readings that failed, per consumer group.",
            ("group",),
            registry=registry,
        )
        self._series: dict[str, set[tuple[str, str]]] = {}
        """Group -> the (topic, partition) label values exported for it."""
        self._failing: set[str] = set()

    async def collect_once(self) -> LagReading:
        """One round: read, update the gauges, log failures. Never raises (but for cancellation)."""
        groups = dict(self.groups())
        try:
            reading = await read_lag(self.settings, groups, client_id=self.client_id, timeout_s=self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a failed round is logged below; the next round tries again
            reading = LagReading(failures={group: repr(error) for group in groups})
        self._apply(groups, reading)
        return reading

    def _apply(self, groups: Groups, reading: LagReading) -> None:
        by_group: dict[str, list[PartitionLag]] = {}
        for p in reading.partitions:
            by_group.setdefault(p.group, []).append(p)
        for group in groups:
            if group in reading.failures:
                self.read_failures.labels(group).inc()
                self._drop(group)
                if group not in self._failing:
                    log.warning("lag.read_failed", group=group, error=reading.failures[group])
                    self._failing.add(group)
                else:
                    log.debug("lag.read_failed", group=group, error=reading.failures[group])
                continue
            if group in self._failing:
                self._failing.discard(group)
                log.info("lag.read_recovered", group=group)
            current = by_group.get(group, [])
            sums: dict[str, int] = {}
            for p in current:
                self.lag.labels(group, p.topic, str(p.partition)).set(p.lag)
                sums[p.topic] = sums.get(p.topic, 0) + p.lag
            for topic, total in sums.items():
                self.lag_sum.labels(group, topic).set(total)
            seen = {(p.topic, str(p.partition)) for p in current}
            self._drop(group, keep=seen)
        for group in set(self._series) - set(groups):
            self._drop(group)

    def _drop(self, group: str, keep: set[tuple[str, str]] | None = None) -> None:
        """Remove the group's series that are not in `keep` (all of them by default)."""
        keep = keep or set()
        previous = self._series.get(group, set())
        for topic, partition in previous - keep:
            with contextlib.suppress(KeyError):
                self.lag.remove(group, topic, partition)
        for topic in {t for t, _ in previous} - {t for t, _ in keep}:
            with contextlib.suppress(KeyError):
                self.lag_sum.remove(group, topic)
        if keep:
            self._series[group] = set(keep)
        else:
            self._series.pop(group, None)

    async def run_forever(self) -> None:
        if self.ready is not None:
            await self.ready.wait()
        log.info("lag.exporter_started", groups=sorted(self.groups()), interval_s=self.interval_s)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.collect_once()
            await asyncio.sleep(max(self.interval_s - (loop.time() - started), 0.0))


def start_lag_exporter(runtime: Runtime, *, interval_s: float | None = None) -> LagExporter | None:
    """Export the lag of the service's consumer groups; called by `create_service_app` after `register`.

    A service without consumer groups (intake) or with `<SERVICE>_LAG_ENABLED=false` gets none.
    """
    config = LagSettings.for_service(runtime.settings)
    if not config.lag_enabled or not consumer_groups(runtime.broker):
        return None
    exporter = LagExporter(
        runtime.settings.kafka,
        lambda: consumer_groups(runtime.broker),
        registry=runtime.metrics,
        interval_s=interval_s if interval_s is not None else config.lag_interval.total_seconds(),
        client_id=f"{runtime.settings.service_name}-lag",
        ready=runtime.kafka_connected,
    )
    runtime.app_state["lag_exporter"] = exporter
    runtime.run_in_background("kafka.lag", exporter.run_forever)
    return exporter


__all__ = [
    "LagExporter",
    "LagReading",
    "LagSettings",
    "PartitionLag",
    "consumer_groups",
    "read_lag",
    "start_lag_exporter",
]
