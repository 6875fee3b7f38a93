"""Topic retention on the real broker: declared at creation, a drift found by `--check` and fixed
by `--apply` without losing a setting an operator made on the topic."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas.topics import TRAINING_REQUESTS
from services.kafka import admin_client_kwargs, delete_topics_with_prefix, describe_topic_configs, ensure_topics, use_topic_prefix
from services.retention import run
from services.settings import KafkaSettings
from tests.conftest import KAFKA_BOOTSTRAP

pytestmark = pytest.mark.integration


async def test_topics_keep_their_declared_retention_and_apply_restores_it(unique: str) -> None:
    prefix = f"ret{unique}."
    settings = KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP, topic_prefix=prefix)
    requests = f"{prefix}{TRAINING_REQUESTS.name}"
    use_topic_prefix(prefix)
    try:
        await ensure_topics(settings)
    finally:
        use_topic_prefix("")
    admin = AIOKafkaAdminClient(**admin_client_kwargs(settings), client_id=f"retention-test-{unique}")
    await admin.start()
    try:
        assert await run(settings, apply=False) == 0  # created as declared

        # An operator's hand: a day's retention, and a setting of their own the fix must keep.
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, requests, configs={"retention.ms": "86400000", "min.insync.replicas": "1"})]
        )
        # The broker applies an accepted change a moment later (cluster metadata): wait to see it.
        for _ in range(150):
            configs, _refused = await describe_topic_configs(admin, [requests])
            if configs[requests].effective.get("retention.ms") == "86400000":
                break
            await asyncio.sleep(0.1)
        assert await run(settings, apply=False) == 1

        assert await run(settings, apply=True) == 0
        configs, refused = await describe_topic_configs(admin, [requests])
        assert not refused
        assert configs[requests].effective["retention.ms"] == TRAINING_REQUESTS.configs["retention.ms"]
        assert configs[requests].overrides["min.insync.replicas"] == "1"
    finally:
        await admin.close()
        await delete_topics_with_prefix(settings, prefix)
