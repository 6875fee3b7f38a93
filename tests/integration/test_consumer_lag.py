"""Consumer lag against the genuine broker: committed offsets vs end offsets, as Prometheus gauges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from services import ServiceSettings, subscriber_options
from services.app import build_runtime
from services.lag import LagExporter, consumer_groups, read_lag, start_lag_exporter
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_CLIENT

pytestmark = pytest.mark.integration

PARTITIONS = 2


@pytest.fixture
async def topic(unique: str) -> AsyncIterator[str]:
    """A topic of its own with two partitions: 10 records on partition 0, none on partition 1."""
    name = f"test.lag.{unique}"
    admin = AIOKafkaAdminClient(**KAFKA_CLIENT)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=name, num_partitions=PARTITIONS, replication_factor=1)])
        producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(name, f"record {i}".encode(), key=b"k", partition=0)
        finally:
            await producer.stop()
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def commit(group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit `offsets` (partition -> next offset to read) for `group`, as a raw consumer would."""
    consumer = AIOKafkaConsumer(**KAFKA_CLIENT, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in offsets])
        await consumer.commit({TopicPartition(topic, p): offset for p, offset in offsets.items()})
    finally:
        await consumer.stop()


def lag_sample(registry: CollectorRegistry, group: str, topic: str, partition: int | None = None) -> float | None:
    if partition is None:
        return registry.get_sample_value("kafka_consumer_lag_sum", {"group": group, "topic": topic})
    return registry.get_sample_value("kafka_consumer_lag", {"group": group, "topic": topic, "partition": str(partition)})


async def test_lag_is_end_offset_minus_committed_offset(topic: str, unique: str, kafka_settings: KafkaSettings) -> None:
    group = f"test-lag-{unique}"
    await commit(group, topic, {0: 4})
    registry = CollectorRegistry()
    exporter = LagExporter(kafka_settings, lambda: {group: {topic}}, registry=registry)

    reading = await exporter.collect_once()

    assert reading.failures == {}
    assert lag_sample(registry, group, topic, 0) == 6
    # Never committed on partition 1, which is empty: nothing to read there.
    assert lag_sample(registry, group, topic, 1) == 0
    assert lag_sample(registry, group, topic) == 6
    text = generate_latest(registry).decode()
    assert f'kafka_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 6.0' in text


async def test_a_group_that_never_committed_lags_by_the_whole_partition(
    topic: str, unique: str, kafka_settings: KafkaSettings
) -> None:
    reading = await read_lag(kafka_settings, {f"test-lag-new-{unique}": [topic]})
    assert [(p.partition, p.committed, p.lag) for p in reading.partitions] == [(0, None, 10), (1, None, 0)]


async def test_gauges_follow_commits_and_drop_series_of_groups_that_are_gone(
    topic: str, unique: str, kafka_settings: KafkaSettings
) -> None:
    group = f"test-lag-{unique}"
    groups: dict[str, set[str]] = {group: {topic}}
    registry = CollectorRegistry()
    exporter = LagExporter(kafka_settings, lambda: groups, registry=registry)
    await commit(group, topic, {0: 4})
    await exporter.collect_once()
    assert lag_sample(registry, group, topic, 0) == 6

    await commit(group, topic, {0: 10})
    await exporter.collect_once()
    assert lag_sample(registry, group, topic, 0) == 0

    groups.clear()
    await exporter.collect_once()
    assert lag_sample(registry, group, topic, 0) is None
    assert lag_sample(registry, group, topic) is None


async def test_an_unreachable_broker_is_logged_and_counted_not_raised() -> None:
    registry = CollectorRegistry()
    unreachable = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    exporter = LagExporter(unreachable, lambda: {"g": {"t"}}, registry=registry, timeout_s=5.0)
    with capture_logs() as logs:
        reading = await exporter.collect_once()
        await exporter.collect_once()
    assert set(reading.failures) == {"g"}
    failed = [entry for entry in logs if entry["event"] == "lag.read_failed"]
    # A warning when it starts failing, then debug lines: no warning every 15 s while Kafka is down.
    assert [entry["log_level"] for entry in failed] == ["warning", "debug"]
    assert failed[0]["group"] == "g" and failed[0]["error"]
    assert registry.get_sample_value("kafka_consumer_lag_read_failures_total", {"group": "g"}) == 2
    assert registry.get_sample_value("kafka_consumer_lag", {"group": "g", "topic": "t", "partition": "0"}) is None


async def test_a_service_exports_the_lag_of_its_subscribers_groups(
    topic: str, unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> None:
    """The groups come from the broker's subscribers; the exporter runs as the runtime's background task."""
    group = f"test-lag-svc-{unique}"
    settings = ServiceSettings(service_name=f"svc-{unique}", kafka=kafka_settings, mongo=mongo_settings)
    runtime = build_runtime(settings)
    try:

        @runtime.broker.subscriber(topic, **subscriber_options(group))
        async def handle(_: Any) -> None:  # declared only: the broker is never started
            pass

        # The group as the subscriber got it (subscriber_options adds the topic prefix in force, if any).
        (group,) = consumer_groups(runtime.broker)
        assert group.endswith(f"test-lag-svc-{unique}")
        assert consumer_groups(runtime.broker) == {group: frozenset({topic})}
        exporter = start_lag_exporter(runtime, interval_s=0.2)
        assert exporter is not None
        await commit(group, topic, {0: 4, 1: 0})
        runtime.kafka_connected.set()
        for hook in runtime.startup_hooks:
            await hook(runtime)

        async def lag_read() -> None:
            while lag_sample(runtime.metrics, group, topic, 0) != 6:  # noqa: ASYNC110 - the exporter signals nothing
                await asyncio.sleep(0.05)

        await asyncio.wait_for(lag_read(), timeout=30)
        assert lag_sample(runtime.metrics, group, topic) == 6
    finally:
        for task in runtime.background:
            task.cancel()
        await asyncio.gather(*runtime.background, return_exceptions=True)
        await runtime.mongo.close()


async def test_a_service_without_consumer_groups_or_with_lag_disabled_exports_no_lag(
    unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = build_runtime(ServiceSettings(service_name=f"svc-{unique}"))
    try:
        assert start_lag_exporter(runtime) is None  # no subscribers, like intake

        @runtime.broker.subscriber(f"test.lag.{unique}", **subscriber_options(f"g-{unique}"))
        async def handle(_: Any) -> None:
            pass

        monkeypatch.setenv("SERVICE_LAG_ENABLED", "false")
        assert start_lag_exporter(runtime) is None
        assert runtime.startup_hooks == []
    finally:
        await runtime.mongo.close()
