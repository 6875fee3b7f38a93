"""The Kafka side of the service defaults: broker factory, topic creation, and event publishing.

Topics are created with their declared configs (retention, compaction: `schemas.topics`); at
every start the configs of the topics that already existed are compared with the declared ones
and a drift is logged (`kafka.topic_config_mismatch`), never fatal: `python -m services.retention`
shows and fixes it.

Every producer is idempotent with acks=all, so a retried send never duplicates a record
within a partition and an acknowledged record is on every in-sync replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from schemas import Event, codec
from schemas.topics import ALL_TOPICS, TopicSpec, key_for, topic_for
from services.settings import KafkaSettings

log = structlog.get_logger(__name__)


_topic_prefix = ""


def use_topic_prefix(prefix: str) -> None:
    """Set once by the app factory from `KAFKA_TOPIC_PREFIX`; every topic name goes through `topic_name`."""
    global _topic_prefix
    _topic_prefix = prefix


def topic_name(topic: TopicSpec | str) -> str:
    """The name of a declared topic (or of a service's own, such as its dead letters) on this cluster."""
    return _topic_prefix + (topic.name if isinstance(topic, TopicSpec) else topic)


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    if "SSL" not in settings.security_protocol:
        return None
    context = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.ssl_certfile:
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    return context


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    """FastStream security object for SASL and/or TLS, or None for plaintext."""
    context = _ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        if not (settings.sasl_username and settings.sasl_password):
            raise ValueError("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required for SASL")
        kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[
            settings.sasl_mechanism or "PLAIN"
        ]
        return kind(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            ssl_context=context,
            use_ssl=context is not None,
        )
    if context is not None:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None


def admin_client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """Connection keywords for raw aiokafka clients (admin, tools), matching the broker's."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if (context := _ssl_context(settings)) is not None:
        kwargs["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return kwargs


def create_broker(
    settings: KafkaSettings,
    *,
    client_id: str,
    description: str | None = None,
    graceful_timeout: float = 15.0,
    middlewares: Iterable[Any] = (),
    linger_ms: int = 5,
) -> KafkaBroker:
    """The one way services build their broker; nothing connects until it starts."""
    return KafkaBroker(
        settings.bootstrap_servers.split(","),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        security=broker_security(settings),
        graceful_timeout=graceful_timeout,
        middlewares=tuple(middlewares),
        description=description,
        logger=structlog.get_logger("faststream"),
        # Per-message "Received"/"Processed" lines are debug detail, not operational events.
        log_level=logging.DEBUG,
    )


async def wait_and_ensure_topics(
    settings: KafkaSettings, topics: Iterable[TopicSpec] = ALL_TOPICS, *, timeout_s: float = 120.0
) -> None:
    """`ensure_topics`, retried while the cluster is unreachable: services may start before Kafka does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pause = 0.5
    while True:
        try:
            await ensure_topics(settings, topics)
            return
        except KafkaConnectionError as error:
            if loop.time() + pause > deadline:
                raise
            log.warning("kafka.unreachable_at_start", error=str(error), retry_in_s=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


async def ensure_topics(settings: KafkaSettings, topics: Iterable[TopicSpec] = ALL_TOPICS) -> None:
    """Create the declared topics with their partition counts and configs; existing ones are left
    alone, but a config of theirs that differs from the declared one is logged."""
    topics = tuple(topics)
    admin = AIOKafkaAdminClient(**admin_client_kwargs(settings), client_id="formation-events-admin")
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=topic_name(t),
                num_partitions=t.partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=dict(t.configs),
            )
            for t in topics
            if topic_name(t) not in existing
        ]
        if missing:
            # Another replica may win the race: the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("kafka.topics_created", topics=[t.name for t in missing])
        await _log_config_mismatches(admin, [t for t in topics if topic_name(t) in existing])
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class ConfigMismatch:
    """A declared topic config that the cluster does not have (`actual` None: topic or value missing)."""

    topic: str
    setting: str
    declared: str
    actual: str | None


def config_mismatches(
    declared: Mapping[str, Mapping[str, str]], actual: Mapping[str, Mapping[str, str | None]]
) -> list[ConfigMismatch]:
    """Every declared (topic, setting) whose value on the cluster differs, in topic then setting order.

    Only declared settings are compared: the others are the broker's business.
    """
    return [
        ConfigMismatch(topic, setting, value, actual.get(topic, {}).get(setting))
        for topic in sorted(declared)
        for setting, value in sorted(declared[topic].items())
        if actual.get(topic, {}).get(setting) != value
    ]


def declared_configs(topics: Iterable[TopicSpec]) -> dict[str, Mapping[str, str]]:
    """Topic name on this cluster -> its declared configs, for topics that declare any."""
    return {topic_name(t): t.configs for t in topics if t.configs}


_DYNAMIC_TOPIC_CONFIG = 1
"""DescribeConfigs v1+ `config_source` of a value set on the topic itself (not a default)."""


@dataclass(frozen=True, slots=True)
class TopicConfigs:
    """A topic's configs as the cluster has them."""

    effective: Mapping[str, str | None]
    """Every config with the value in force, defaults included (None: sensitive, not shown)."""
    overrides: Mapping[str, str | None]
    """Those set on the topic itself: what AlterConfigs replaces as a whole."""


def _topic_configs(entries: Iterable[tuple[Any, ...]], version: int) -> TopicConfigs:
    # Every version of DescribeConfigs starts an entry with (name, value, read_only, ...); the
    # fourth field is `is_default` in v0 and `config_source` from v1 on.
    effective: dict[str, str | None] = {}
    overrides: dict[str, str | None] = {}
    for name, value, _read_only, origin, *_ in entries:
        effective[name] = value
        if (not origin) if version == 0 else origin == _DYNAMIC_TOPIC_CONFIG:
            overrides[name] = value
    return TopicConfigs(effective=effective, overrides=overrides)


async def describe_topic_configs(
    admin: AIOKafkaAdminClient, names: Iterable[str]
) -> tuple[dict[str, TopicConfigs], dict[str, str]]:
    """The current configs of topics, and the topics the cluster would not describe with its
    error message (a missing topic, or no DescribeConfigs ACL)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    configs: dict[str, TopicConfigs] = {}
    refused: dict[str, str] = {}
    if not resources:
        return configs, refused
    for response in await admin.describe_configs(resources):
        # aiokafka's protocol responses are untyped structs: read the fields by name and position.
        results: list[tuple[Any, ...]] = getattr(response, "resources", [])
        version: int = getattr(response, "API_VERSION", 1)
        for error_code, error_message, _type, name, entries in results:
            if error_code:
                refused[name] = error_message or f"error code {error_code}"
            else:
                configs[name] = _topic_configs(entries, version)
    return configs, refused


async def _log_config_mismatches(admin: AIOKafkaAdminClient, topics: Iterable[TopicSpec]) -> None:
    # A check, never a reason not to start: a service that runs with a wrong retention is
    # better than one that does not run, and the fix is an operator's command away.
    declared = declared_configs(topics)
    try:
        actual, refused = await describe_topic_configs(admin, declared)
    except Exception as error:  # noqa: BLE001 - a check that fails must not stop the start either
        log.warning("kafka.topic_configs_unchecked", topics=sorted(declared), error=str(error), error_type=type(error).__name__)
        return
    for name, reason in sorted(refused.items()):
        log.warning("kafka.topic_configs_unchecked", topic=name, error=reason)
    effective = {name: configs.effective for name, configs in actual.items()}
    for mismatch in config_mismatches({t: c for t, c in declared.items() if t in actual}, effective):
        log.warning(
            "kafka.topic_config_mismatch",
            topic=mismatch.topic,
            setting=mismatch.setting,
            declared=mismatch.declared,
            actual=mismatch.actual,
        )


def wire(event: Event) -> tuple[str, bytes, bytes, dict[str, str]]:
    """Topic, key, value and headers of an event as it goes on Kafka."""
    spec = topic_for(type(event))
    headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in codec.headers(event).items()}
    return topic_name(spec), key_for(event), codec.encode(event), headers


async def publish(broker: KafkaBroker, event: Event) -> None:
    """Publish one event on its declared topic, keyed so one request's events stay in order."""
    topic, key, value, headers = wire(event)
    await broker.publish(value, topic=topic, key=key, headers=headers)


async def delete_topics_with_prefix(settings: KafkaSettings, prefix: str) -> list[str]:
    """Remove the topics of a finished test run or demo (names starting with `prefix`)."""
    if not prefix:
        raise ValueError("refusing to delete every topic: give a prefix")
    admin = AIOKafkaAdminClient(**admin_client_kwargs(settings), client_id="formation-events-admin")
    try:
        await admin.start()
        doomed = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()
