"""Operators' tool for a service's dead letters: list them, show one, redrive them to their topic.

    python -m services.deadletters list --service routing [--since 2h] [--error-type InvalidEvent]
    python -m services.deadletters show --service routing --offset 12
    python -m services.deadletters redrive --service routing --offset 12 [--offset 13 ...]
    python -m services.deadletters redrive --service routing --all --error-type InvalidEvent

It reads the services' own environment: KAFKA_BOOTSTRAP_SERVERS (and the other KAFKA_*
settings), KAFKA_TOPIC_PREFIX, MONGODB_URI and MONGODB_DATABASE.

A redrive republishes a dead letter's original bytes, key and headers (without the
`dlq_*` ones) to its original topic, adding `redriven_from_dlq_offset`, and records the
dead letter in the `dead_letter_redrives` collection: redriving it again republishes
nothing. The record is claimed before the publish and marked done after it; a run that
died in between left it pending, and the next run publishes it again, which is harmless
because consumers apply an event once by its id (`services.idempotency`). For the same
reason a redriven event that had in fact been processed has no second effect.

Republishing to the original topic reaches every consumer group of that topic, not only
the service that gave up on it; the others have processed the event already and skip it.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from collections.abc import Collection, Iterable, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from schemas import ContractError, codec
from services.calendar import BRUSSELS
from services.consumers import dead_letter_topic
from services.kafka import admin_client_kwargs, use_topic_prefix
from services.logging import mask_fields, scrub
from services.settings import KafkaSettings, MongoSettings

__all__ = ["REDRIVES_COLLECTION", "DeadLetter", "RedrivePlan", "app", "matches", "parse_since", "plan_redrive", "select"]

REDRIVES_COLLECTION = "dead_letter_redrives"
REDRIVEN_FROM = "redriven_from_dlq_offset"

app = typer.Typer(
    name="deadletters",
    help="List, show and redrive the dead letters of a formation-events service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# -- the dead letters, as read from Kafka ----------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter topic: the original bytes and the headers saying why."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def original_topic(self) -> str:
        return self.header("dlq_original_topic") or ""

    @property
    def error_type(self) -> str:
        return self.header("dlq_exception_type") or ""

    @property
    def error_message(self) -> str:
        return self.header("dlq_exception_message") or ""

    @property
    def attempts(self) -> int:
        return int(self.header("dlq_attempts") or 1)

    @property
    def failed_at(self) -> datetime:
        """When it was given up on: the last failure, else the record's own time."""
        text = self.header("dlq_last_failure_at")
        return datetime.fromisoformat(text) if text else datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def redrive_headers(self) -> list[tuple[str, bytes]]:
        """The original headers, byte for byte, without ours, plus where the redrive came from."""
        kept = [(k, v) for k, v in self.headers if not k.startswith(("dlq_", "retry_")) and k != REDRIVEN_FROM]
        return [*kept, (REDRIVEN_FROM, str(self.offset).encode())]


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from now (`90s`, `15m`, `2h`, `3d`, `1w`) or an ISO 8601 time
    (Brussels time when it has no offset)."""
    if match := _RELATIVE.match(text):
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a duration like 2h nor an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=BRUSSELS)


def matches(letter: DeadLetter, *, error_type: str | None = None, since: datetime | None = None) -> bool:
    return (error_type is None or letter.error_type == error_type) and (since is None or letter.failed_at >= since)


def select(
    letters: Iterable[DeadLetter],
    *,
    offsets: Collection[int] = (),
    partition: int = 0,
    take_all: bool = False,
    error_type: str | None = None,
    since: datetime | None = None,
) -> list[DeadLetter]:
    """The dead letters a redrive is about: those named by offset (on `partition`), or with
    `take_all` every one; both narrowed by the error type and time filters."""
    if bool(offsets) == take_all:
        raise typer.BadParameter("give either --offset (one or more) or --all")
    wanted = set(offsets)
    return [
        letter
        for letter in letters
        if (take_all or (letter.partition == partition and letter.offset in wanted))
        and matches(letter, error_type=error_type, since=since)
    ]


@dataclass(frozen=True, slots=True)
class RedrivePlan:
    send: list[DeadLetter] = field(default_factory=list)
    already_redriven: list[DeadLetter] = field(default_factory=list)
    not_found: list[int] = field(default_factory=list)
    """Offsets asked for that are not (or no longer) in the topic, or that the filters excluded."""


def plan_redrive(selected: Sequence[DeadLetter], done: Set[tuple[int, int]], requested: Collection[int] = ()) -> RedrivePlan:
    """Split the selection into what to send and what was redriven before (`done`: partition, offset)."""
    send = [letter for letter in selected if (letter.partition, letter.offset) not in done]
    already = [letter for letter in selected if (letter.partition, letter.offset) in done]
    found = {letter.offset for letter in selected}
    return RedrivePlan(send=send, already_redriven=already, not_found=sorted(set(requested) - found))


# -- Kafka and MongoDB -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    service: str
    kafka: KafkaSettings
    mongo: MongoSettings
    topic: str


def _context(service: str) -> _Context:
    kafka, mongo = KafkaSettings(), MongoSettings()
    use_topic_prefix(kafka.topic_prefix)
    return _Context(service=service, kafka=kafka, mongo=mongo, topic=dead_letter_topic(service))


async def _partitions(kafka: KafkaSettings, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka), client_id="formation-events-deadletters")
    try:
        await admin.start()
        # Asked only once it exists: a metadata request for a missing topic may create it.
        if topic not in set(await admin.list_topics()):
            return []
        (described,) = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()


async def read_dead_letters(kafka: KafkaSettings, topic: str, *, at: tuple[int, int] | None = None) -> list[DeadLetter]:
    """Every record of the dead-letter topic, or only the one at (partition, offset)."""
    partitions = await _partitions(kafka, topic)
    if at is not None:
        partitions = [p for p in partitions if p == at[0]]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        **admin_client_kwargs(kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="formation-events-deadletters",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        remaining: dict[TopicPartition, int] = {}
        for tp in tps:
            start, end = starts[tp], ends[tp]
            if at is not None:
                if not start <= at[1] < end:
                    continue
                start, end = at[1], at[1] + 1
            if start < end:
                consumer.seek(tp, start)
                remaining[tp] = end
            else:
                consumer.pause(tp)
        letters: list[DeadLetter] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                letters.extend(
                    DeadLetter(
                        partition=record.partition,
                        offset=record.offset,
                        timestamp_ms=record.timestamp,
                        key=record.key,
                        value=record.value or b"",
                        headers=tuple(record.headers or ()),
                    )
                    for record in records
                    if record.offset < remaining.get(tp, -1)
                )
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
                    consumer.pause(tp)
        return sorted(letters, key=lambda letter: (letter.partition, letter.offset))
    finally:
        await consumer.stop()


def _redrive_id(topic: str, letter: DeadLetter) -> str:
    return f"{topic}/{letter.partition}/{letter.offset}"


async def _redriven(mongo: AsyncMongoClient[dict[str, Any]], ctx: _Context) -> set[tuple[int, int]]:
    cursor = mongo[ctx.mongo.database][REDRIVES_COLLECTION].find(
        {"dlq_topic": ctx.topic, "status": "done"}, {"partition": 1, "offset": 1}
    )
    return {(doc["partition"], doc["offset"]) async for doc in cursor}


async def _redrive_one(
    mongo: AsyncMongoClient[dict[str, Any]], producer: AIOKafkaProducer, ctx: _Context, letter: DeadLetter
) -> bool:
    """Claim, publish, mark done; False if another run had already done it."""
    redrives = mongo[ctx.mongo.database][REDRIVES_COLLECTION]
    doc_id = _redrive_id(ctx.topic, letter)
    claim = {
        "service": ctx.service,
        "dlq_topic": ctx.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "original_topic": letter.original_topic,
        "error_type": letter.error_type,
        "status": "pending",
        "claimed_at": datetime.now(UTC),
    }
    try:
        before = await redrives.find_one_and_update(
            {"_id": doc_id}, {"$setOnInsert": claim}, upsert=True, return_document=ReturnDocument.BEFORE
        )
    except DuplicateKeyError:  # two runs raced on the upsert; the other one inserted it
        before = await redrives.find_one({"_id": doc_id})
    if before is not None and before.get("status") == "done":
        return False
    await producer.send_and_wait(letter.original_topic, letter.value, key=letter.key, headers=letter.redrive_headers())
    await redrives.update_one(
        {"_id": doc_id}, {"$set": {"status": "done", "redriven_at": datetime.now(UTC), "redriven_by": getpass.getuser()}}
    )
    return True


def _mongo(settings: MongoSettings) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        settings.uri.get_secret_value(),
        tz_aware=True,
        serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
        appname="formation-events-deadletters",
    )


# -- output ----------------------------------------------------------------------------


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _local(moment: datetime) -> str:
    return moment.astimezone(BRUSSELS).isoformat(sep=" ", timespec="seconds")


def _key(letter: DeadLetter) -> str:
    return "" if letter.key is None else scrub(letter.key.decode("utf-8", "replace"))


def _is_ours(header: str) -> bool:
    """Headers our code writes, free of personal data (exception messages are scrubbed when
    written); scrubbing them again would garble their times into pseudonyms."""
    return header.startswith(("dlq_", "retry_", "ce_")) or header in {"content-type", "correlation_id", REDRIVEN_FROM}


def decoded_view(letter: DeadLetter) -> str:
    """The event as pretty JSON with personal fields masked, or why it cannot be decoded."""
    try:
        event = codec.decode(letter.value, list(letter.headers))
        payload: dict[str, Any] = event.model_dump(mode="json")
    except ContractError as error:
        try:
            raw = json.loads(letter.value)
        except ValueError:
            raw_text = scrub(letter.value[:500].decode("utf-8", "replace"))
            return f"// not decodable: {scrub(str(error))}\n// raw (scrubbed): {raw_text}"
        if not isinstance(raw, dict):
            return f"// not decodable: {scrub(str(error))}"
        payload = {"//": f"not decodable: {scrub(str(error))}", **raw}
    return json.dumps(mask_fields(payload), indent=2, ensure_ascii=False, default=str)


# -- commands --------------------------------------------------------------------------

Service = Annotated[str, typer.Option("--service", "-s", help="The service whose dead letters these are, e.g. routing.")]
ErrorType = Annotated[str | None, typer.Option("--error-type", "-e", help="Only this exception type, e.g. InvalidEvent.")]
Since = Annotated[str | None, typer.Option("--since", help="Only those given up on since: 2h, 3d, or an ISO 8601 time.")]
Partition = Annotated[int, typer.Option("--partition", "-p", help="Partition of --offset (dead-letter topics have one).")]


@app.command("list")
def list_(service: Service, since: Since = None, error_type: ErrorType = None) -> None:
    """A table of the dead letters: offset, original topic, key, exception, attempts, time."""
    ctx = _context(service)

    async def run() -> tuple[list[DeadLetter], set[tuple[int, int]]]:
        letters = await read_dead_letters(ctx.kafka, ctx.topic)
        mongo = _mongo(ctx.mongo)
        try:
            return letters, await _redriven(mongo, ctx)
        finally:
            await mongo.close()

    letters, done = asyncio.run(run())
    cutoff = parse_since(since, datetime.now(UTC)) if since else None
    shown = [letter for letter in letters if matches(letter, error_type=error_type, since=cutoff)]
    table = Table(title=f"{ctx.topic}: {len(shown)} of {len(letters)} dead letters")
    several_partitions = any(letter.partition for letter in letters)
    if several_partitions:
        table.add_column("partition", justify="right")
    for column in ("offset", "original topic", "key", "exception", "message", "attempts", "given up at", "redriven"):
        table.add_column(column, justify="right" if column in {"offset", "attempts"} else "left", overflow="fold")
    for letter in shown:
        row = [
            str(letter.offset),
            letter.original_topic,
            _key(letter),
            letter.error_type,
            letter.error_message,
            str(letter.attempts),
            _local(letter.failed_at),
            "yes" if (letter.partition, letter.offset) in done else "",
        ]
        table.add_row(*([str(letter.partition), *row] if several_partitions else row))
    _console().print(table)


@app.command()
def show(
    service: Service,
    offset: Annotated[int, typer.Option("--offset", "-o", help="Offset of the dead letter.")],
    partition: Partition = 0,
) -> None:
    """One dead letter: its headers, and the event with personal fields masked."""
    ctx = _context(service)
    found = asyncio.run(read_dead_letters(ctx.kafka, ctx.topic, at=(partition, offset)))
    if not found:
        _console().print(f"no dead letter at {ctx.topic} partition {partition} offset {offset}")
        raise typer.Exit(1)
    (letter,) = found
    console = _console()
    headers = Table(title=f"{ctx.topic} partition {letter.partition} offset {letter.offset}", show_header=False)
    headers.add_column("header", style="bold")
    headers.add_column("value", overflow="fold")
    headers.add_row("key", _key(letter))
    for name, value in letter.headers:
        text = value.decode("utf-8", "replace")
        headers.add_row(name, text if _is_ours(name) else scrub(text))
    console.print(headers)
    console.print(Syntax(decoded_view(letter), "json", word_wrap=True))


@app.command()
def redrive(
    service: Service,
    offset: Annotated[
        list[int] | None, typer.Option("--offset", "-o", help="Offset of a dead letter to redrive; repeatable.")
    ] = None,
    take_all: Annotated[bool, typer.Option("--all", help="Every dead letter matching the filters.")] = False,
    error_type: ErrorType = None,
    since: Since = None,
    partition: Partition = 0,
) -> None:
    """Republish dead letters to their original topic, once each."""
    offsets = offset or []
    if bool(offsets) == take_all:
        raise typer.BadParameter("give either --offset (one or more) or --all")
    ctx = _context(service)
    cutoff = parse_since(since, datetime.now(UTC)) if since else None

    async def run() -> tuple[RedrivePlan, list[DeadLetter]]:
        letters = await read_dead_letters(ctx.kafka, ctx.topic)
        selected = select(letters, offsets=offsets, partition=partition, take_all=take_all, error_type=error_type, since=cutoff)
        mongo = _mongo(ctx.mongo)
        producer = AIOKafkaProducer(
            **admin_client_kwargs(ctx.kafka), enable_idempotence=True, acks="all", client_id="formation-events-deadletters"
        )
        try:
            await mongo[ctx.mongo.database][REDRIVES_COLLECTION].create_index([("dlq_topic", 1), ("status", 1)])
            plan = plan_redrive(selected, await _redriven(mongo, ctx), offsets)
            sent: list[DeadLetter] = []
            await producer.start()
            for letter in plan.send:
                if await _redrive_one(mongo, producer, ctx, letter):
                    sent.append(letter)
                else:  # done by a concurrent run since the plan was made
                    plan.already_redriven.append(letter)
            return plan, sent
        finally:
            await producer.stop()
            await mongo.close()

    plan, sent = asyncio.run(run())
    console = _console()
    for letter in sent:
        console.print(f"redriven offset {letter.offset} ({letter.error_type}) to {letter.original_topic}")
    for letter in plan.already_redriven:
        console.print(f"skipped offset {letter.offset}: already redriven")
    for missing in plan.not_found:
        console.print(f"skipped offset {missing}: no such dead letter (or excluded by the filters)")
    console.print(f"{len(sent)} redriven, {len(plan.already_redriven)} already redriven, {len(plan.not_found)} not found")


if __name__ == "__main__":
    app()
