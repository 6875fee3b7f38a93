"""The Kafka side of the service defaults: broker factory, topic creation, and event publishing.

Every producer is idempotent with acks=all, so a retried send never duplicates a record
within a partition and an acknowledged record is on every in-sync replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
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
    """Create the declared topics with their partition counts; existing ones are left alone."""
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
    finally:
        await admin.close()


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
