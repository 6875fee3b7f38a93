"""Routing's "physical limit": the same pre-loaded requests moved through Kafka and MongoDB with no
logic at all, the denominator of the routing figure (issue 15).

    KAFKA_*/MONGODB_* as for `python -m routing`, BENCH_LIMIT_TEMPLATES=<file>;  python -m bench.limit_loop

Per batch (`getmany`, up to BENCH_LIMIT_BATCH records):

- one majority transaction that inserts, with one `insert_many` per collection, the documents a
  routing run wrote per request: copies of that run's own documents (decision, case, queue entry,
  processed-event record, outbox entry, timers...) in the proportions it wrote them, so the bytes
  and the shapes are routing's (mongod 6.0 has no bulk write across collections: `insert_many` per
  collection is the fewest round trips routing itself could use);
- one record per request on the routing topic, the size of a routing run's `TrainingRequestRouted`
  (its outbox entry's value and headers), keyed by the request's key, idempotent and acks=all;
- one offset commit.

No decoding, no decision, no reads, no indexes beyond `_id`: nothing routing could do faster than.
The bench samples the documents (`sample_templates`) from a pipeline run's database before it
starts this process on a space of its own (`limit_figure`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bson import ObjectId, encode, json_util
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from bench.harness import ROUTED_TYPE, Bench
from bench.stats import rate
from schemas import TRAINING_REQUESTS, TRAINING_ROUTING, TrainingRequestReceived
from services.kafka import admin_client_kwargs
from services.mongo import create_mongo_client
from services.settings import KafkaSettings, MongoSettings

TEMPLATES_ENV = "BENCH_LIMIT_TEMPLATES"
BATCH_ENV = "BENCH_LIMIT_BATCH"
DEFAULT_BATCH = 200
READY = "limit_loop.ready"
FIRST_BATCH = "limit_loop.first_batch"
JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)
"""Extended JSON that keeps every BSON type (dates, binary values) as the documents had it."""
PER_REQUEST_THRESHOLD = 0.1
"""A collection with fewer documents than this per routed request holds reference data (the
roster, the rules), not what routing writes for a request."""


@dataclass(frozen=True)
class Templates:
    """What routing wrote for one request: documents per request of each collection, sample
    documents of each, and one routed record's value and headers."""

    per_request: Mapping[str, float]
    samples: Mapping[str, Sequence[dict[str, Any]]]
    routed_value: bytes
    routed_headers: Mapping[str, str]

    def dump(self, path: Path) -> Path:
        document = {
            "per_request": dict(self.per_request),
            "samples": {name: list(docs) for name, docs in self.samples.items()},
            "routed_value": self.routed_value,
            "routed_headers": dict(self.routed_headers),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json_util.dumps(document, json_options=JSON_OPTIONS))
        return path

    @classmethod
    def load(cls, path: Path) -> Templates:
        document = json_util.loads(path.read_text(), json_options=JSON_OPTIONS)
        return cls(
            per_request=document["per_request"],
            samples=document["samples"],
            routed_value=bytes(document["routed_value"]),
            routed_headers=document["routed_headers"],
        )

    @property
    def bytes_per_request(self) -> float:
        """The average BSON size of what one request writes (the routed record excluded)."""
        return sum(
            ratio * sum(len(encode(doc)) for doc in self.samples[name]) / len(self.samples[name])
            for name, ratio in self.per_request.items()
        )


class DocumentMix:
    """The documents of a batch of requests in routing's proportions. A fraction of a document per
    request (two timers for a phone request in three) carries over to the next batch, so any run of
    batches writes routing's total; each copy gets a fresh `_id`."""

    def __init__(self, templates: Templates) -> None:
        self._templates = templates
        self._owed = dict.fromkeys(templates.per_request, 0.0)
        self._next = dict.fromkeys(templates.per_request, 0)

    def for_requests(self, count: int) -> dict[str, list[dict[str, Any]]]:
        batch: dict[str, list[dict[str, Any]]] = {}
        for name, per_request in self._templates.per_request.items():
            self._owed[name] += per_request * count
            whole = int(self._owed[name] + 1e-9)
            self._owed[name] -= whole
            samples = self._templates.samples[name]
            docs = []
            for _ in range(whole):
                docs.append({**samples[self._next[name] % len(samples)], "_id": ObjectId()})
                self._next[name] += 1
            if docs:
                batch[name] = docs
        return batch


# --- the process ---------------------------------------------------------------------------------


async def insert_all(
    db: AsyncDatabase[dict[str, Any]], documents: Mapping[str, list[dict[str, Any]]], session: AsyncClientSession
) -> None:
    """One batch's documents, one `insert_many` per collection (the body of its transaction)."""
    for name, docs in documents.items():
        await db[name].insert_many(docs, ordered=False, session=session)


def say(event: str, **fields: Any) -> None:
    """A JSON line on stdout (the bench reads the log file): no structlog set-up, no personal data."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def run() -> None:
    kafka = KafkaSettings()
    mongo_settings = MongoSettings()
    templates = Templates.load(Path(os.environ[TEMPLATES_ENV]))
    batch_size = int(os.environ.get(BATCH_ENV) or DEFAULT_BATCH)
    mix = DocumentMix(templates)
    client = create_mongo_client(mongo_settings, app_name="bench-limit-loop")  # w=majority, as the services
    db: AsyncDatabase[dict[str, Any]] = client[mongo_settings.database]
    connection = admin_client_kwargs(kafka)
    consumer = AIOKafkaConsumer(
        kafka.topic_prefix + TRAINING_REQUESTS.name,
        **connection,
        group_id=f"{kafka.topic_prefix}limit-loop",  # a group of its own: no other run's member joins it
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**connection, enable_idempotence=True, acks="all", linger_ms=5)
    routed_topic = kafka.topic_prefix + TRAINING_ROUTING.name
    headers = [(key, value.encode()) for key, value in templates.routed_headers.items()]
    await consumer.start()
    await producer.start()
    moved = batches = 0

    async def loop() -> None:
        nonlocal moved, batches
        while True:
            taken = await consumer.getmany(timeout_ms=100, max_records=batch_size)
            records = [record for partition in taken.values() for record in partition]
            if not records:
                continue
            if batches == 0:
                say(FIRST_BATCH, at=time.time(), records=len(records))
            async with client.start_session() as session:
                await session.with_transaction(functools.partial(insert_all, db, mix.for_requests(len(records))))
            deliveries = [await producer.send(routed_topic, templates.routed_value, key=r.key, headers=headers) for r in records]
            await asyncio.gather(*deliveries)
            await consumer.commit()
            moved += len(records)
            batches += 1

    task = asyncio.create_task(loop())
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    say(READY, batch_size=batch_size)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()
        await producer.stop()
        await client.close()
        say("limit_loop.stopped", moved=moved, batches=batches)


# --- the figure (run by the bench) ------------------------------------------------------------


DECISIONS = "routing_decisions"
"""Routing stores one decision per request it routes: the count of requests its database holds."""


async def sample_templates(db: AsyncDatabase[dict[str, Any]], *, samples: int = 20) -> Templates:
    """What a routing run wrote per request, read from its database: every collection with at least
    `PER_REQUEST_THRESHOLD` documents per decision, `samples` documents of each, and the value and
    headers of one outbox entry holding a `TrainingRequestRouted`. The counts are read together,
    after the run's process has stopped, so that they describe the same requests."""
    routed = await db[DECISIONS].count_documents({})
    if routed < 1:
        raise ValueError(f"no decision in {db.name} to take documents from")
    per_request: dict[str, float] = {}
    sampled: dict[str, list[dict[str, Any]]] = {}
    routed_entry: dict[str, Any] | None = None
    for name in sorted(await db.list_collection_names()):
        count = await db[name].count_documents({})
        if count / routed < PER_REQUEST_THRESHOLD:
            continue
        per_request[name] = count / routed
        sampled[name] = await db[name].find({}).limit(samples).to_list(samples)
        routed_entry = routed_entry or await db[name].find_one({"event_type": ROUTED_TYPE, "value": {"$type": "binData"}})
    if routed_entry is None:
        raise RuntimeError(f"no outbox entry of {ROUTED_TYPE} in {db.name}")
    return Templates(per_request, sampled, bytes(routed_entry["value"]), routed_entry["headers"])


def first_batch_at(log_path: Path) -> float | None:
    """When the loop took its first records (its own clock: `time.time()`), from its log."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        if FIRST_BATCH in line:
            try:
                return float(json.loads(line)["at"])
            except (ValueError, KeyError, TypeError):
                continue
    return None


async def limit_figure(
    bench: Bench,
    events: list[TrainingRequestReceived],
    *,
    templates_from: str,
    budget: float,
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, Any]:
    """The limit loop on the same pre-loaded requests, in a space of its own, with the documents of
    the pipeline run whose database is `templates_from`. The window
    runs from the loop's first batch to the CreateTime of the last routed-sized record, like the
    pipeline's from its first processed event to its last `TrainingRequestRouted`."""
    templates = await sample_templates(bench.mongo[templates_from])
    path = templates.dump(bench.work_dir / "limit-templates.json")
    space = bench.space("limit")
    await bench.create_topics(space)
    loaded = await bench.produce(space.topic(TRAINING_REQUESTS.name), events)
    watcher = await bench.watch(space.topic(TRAINING_ROUTING.name)).start()
    env = {TEMPLATES_ENV: str(path), BATCH_ENV: str(batch_size)}
    process = bench.start_module("bench.limit_loop", space, instance="limit-loop", service="routing", env=env)
    try:
        await bench.wait_ready(process, log_line=READY)
        if not await watcher.wait_for(1, timeout=120.0):
            raise RuntimeError(f"limit loop: nothing moved within 120 s; log: {process.log_path}\n{process.tail()}")
        complete = await watcher.wait_for(loaded, timeout=budget)
    finally:
        await bench.stop(process)
        await asyncio.sleep(0.5)
        await watcher.stop()
    opened = first_batch_at(process.log_path)
    if opened is None:
        raise RuntimeError(f"limit loop logged no first batch; log: {process.log_path}")
    moved = len(watcher.created_at)
    closed = max(watcher.created_at.values())
    return {
        "requests": loaded,
        "moved": moved,
        "complete": complete,
        "batch_size": batch_size,
        "window_s": closed - opened,
        "per_s": rate(moved, closed - opened),
        "documents_per_request": dict(templates.per_request),
        "bson_bytes_per_request": templates.bytes_per_request,
        "routed_record_bytes": len(templates.routed_value),
        "templates_from": templates_from,
        "log": str(process.log_path),
    }


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
