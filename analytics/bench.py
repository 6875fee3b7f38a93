"""Replay throughput against a raw aiokafka read of the same topics, on the real broker and mongod.

    uv run python -m analytics.bench [--events 50000]

Publishes a synthetic month (requests and their routing decisions) to topics of a fresh prefix,
times a plain `getmany` loop over them (no decoding, no writing: the ceiling), then `replay`
into a fresh read model, prints both rates and their ratio, and removes the topics and database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from analytics.replay import mongo_client, replay
from analytics.settings import AnalyticsSettings
from schemas import Channel, Contact, Event, Language, Target, TrainingRequestReceived, TrainingRequestRouted, codec
from schemas.topics import TRAINING_REQUESTS, TRAINING_ROUTING, key_for, topic_for
from services.kafka import admin_client_kwargs, delete_topics_with_prefix

TOPICS = (TRAINING_REQUESTS, TRAINING_ROUTING)


def synthetic_events(count: int) -> list[Event]:
    """`count` events: requests over March 2026 and, for each, its routing decision."""
    events: list[Event] = []
    start = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    for i in range(count // 2):
        request_id = str(uuid.uuid4())
        received = start + timedelta(minutes=7 * i % (60 * 24 * 28))
        request = TrainingRequestReceived(
            source="/bench",
            subject=request_id,
            request_id=request_id,
            person_id=f"prs_{uuid.uuid4().hex[:12]}",
            channel=(Channel.PHONE, Channel.EMAIL, Channel.WEB)[i % 3],
            received_at=received,
            time=received,
            contact=Contact(name="Bench Person", phone="+32470000000", email="bench@example.org"),
            language=Language.FR,
            need="Je voudrais apprendre Excel en ligne.",
            requested_course="EXCEL" if i % 2 else None,
            consent_to_contact=True,
        )
        events.append(request)
        events.append(
            TrainingRequestRouted.following(
                request,
                source="/routing",
                time=received + timedelta(seconds=1),
                request_id=request_id,
                person_id=request.person_id,
                target=Target.ESPACES_NUMERIQUES if i % 2 else Target.ADVISORS,
                rule_id="default",
                rule_set_version="2026.1",
                explanation="Bench.",
                priority=20,
            )
        )
    return events


async def publish(settings: AnalyticsSettings, events: list[Event]) -> None:
    admin = AIOKafkaAdminClient(**admin_client_kwargs(settings.kafka))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(settings.kafka.topic_prefix + t.name, t.partitions, 1, topic_configs={"retention.ms": "-1"}) for t in TOPICS]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**admin_client_kwargs(settings.kafka), linger_ms=20, max_batch_size=1 << 20, acks=1)
    await producer.start()
    try:
        sent = []
        for event in events:
            headers = [(k, v) for k, v in codec.headers(event).items()]
            sent.append(
                await producer.send(
                    settings.kafka.topic_prefix + topic_for(type(event)).name,
                    codec.encode(event),
                    key=key_for(event),
                    headers=headers,
                    timestamp_ms=int(event.time.timestamp() * 1000),
                )
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def raw_read(settings: AnalyticsSettings, expected: int) -> float:
    """Records/s of a plain `getmany` loop over the topics from the beginning: the ceiling."""
    consumer = AIOKafkaConsumer(**admin_client_kwargs(settings.kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.kafka.topic_prefix + t.name, p) for t in TOPICS for p in range(t.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started, read = time.perf_counter(), 0
        while read < expected:
            read += sum(len(r) for r in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values())
        return read / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def measure(events: int) -> dict[str, Any]:
    prefix = f"bench_analytics_{uuid.uuid4().hex[:8]}."
    settings = AnalyticsSettings()
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix})})
    into = prefix.rstrip(".")
    batch = synthetic_events(events)
    try:
        await publish(settings, batch)
        raw = await raw_read(settings, len(batch))
        stats = await replay(settings, [t.name for t in TOPICS], into=into)
        return {
            "events": stats.records,
            "raw_read_events_per_s": round(raw),
            "replay_events_per_s": round(stats.events_per_second),
            "ratio": round(stats.events_per_second / raw, 2),
            "written": stats.written,
        }
    finally:
        client = mongo_client(settings)
        await client.drop_database(into)
        await client.close()
        await delete_topics_with_prefix(settings.kafka, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.events))))


if __name__ == "__main__":
    main()
