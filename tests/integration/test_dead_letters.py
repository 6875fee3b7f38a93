"""The dead-letter tool against the genuine broker and mongod: it lists, shows and redrives a
service's dead letters, a second redrive republishes nothing, and a redriven event has its
effect once, whether or not it had been applied before it was dead-lettered."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner, Result

from schemas import TrainingRequestReceived, codec
from services import subscriber_options
from services.app import Runtime
from services.consumers import dead_letter_topic
from services.deadletters import REDRIVES_COLLECTION, app
from services.kafka import topic_name
from services.retries import PermanentError
from services.settings import MongoSettings
from tests.conftest import KAFKA_BOOTSTRAP, KAFKA_CLIENT, MONGODB_URI
from tests.factories import make_request
from tests.integration.test_retries import (
    MAIN,
    counting_effect,
    effects,
    headers_of,
    prefix,
    produce,
    produce_event,
    read_records,
    runtime,
    start,
    wait_until,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
__all__ = ["prefix", "runtime"]  # fixtures shared with test_retries


def cli_env(prefix: str, mongo_settings: MongoSettings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP,
        "KAFKA_TOPIC_PREFIX": prefix,
        "MONGODB_URI": MONGODB_URI,
        "MONGODB_DATABASE": mongo_settings.database,
        "COLUMNS": "400",
    }


async def deadletters(env: dict[str, str], *args: str) -> Result:
    """Run the CLI as an operator would, in a thread: it runs its own event loop."""

    def invoke() -> Result:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    return await asyncio.to_thread(invoke)


async def end_offset(topic: str) -> int:
    consumer = AIOKafkaConsumer(**KAFKA_CLIENT)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        offsets: dict[TopicPartition, int] = await consumer.end_offsets([tp])
        return offsets[tp]
    finally:
        await consumer.stop()


async def test_list_show_and_redrive_once(runtime: Runtime, prefix: str, mongo_settings: MongoSettings, mongo_db: Any) -> None:
    service = runtime.settings.service_name
    topic, dlq = topic_name(MAIN), dead_letter_topic(service)
    env = cli_env(prefix, mongo_settings)
    applied_then_failed, failed_before_effect = make_request(), make_request()
    fail_after_effect, fail_before_effect = {applied_then_failed.request_id}, {failed_before_effect.request_id}
    deliveries: Counter[str] = Counter()

    @runtime.broker.subscriber(topic, **subscriber_options(service))
    async def on_request(event: TrainingRequestReceived) -> None:
        deliveries[event.request_id] += 1
        if event.request_id in fail_before_effect:
            raise PermanentError("the course catalogue refused the request of amina@example.org")
        await runtime.processed.run_once(event, counting_effect(runtime, event))
        if event.request_id in fail_after_effect:
            raise PermanentError("stored, but the confirmation could not be sent")

    await start(runtime)
    invalid = json.loads(codec.encode(make_request()))
    invalid["data"]["request_id"] = ""  # a known type whose data breaks the contract
    poison = json.dumps(invalid).encode()
    await produce_event(topic, applied_then_failed, key=b"person-1")
    await produce_event(topic, failed_before_effect, key=b"person-2")
    await produce(topic, poison, key=b"person-3")
    await read_records(dlq, 3)

    listed = await deadletters(env, "list", "--service", service)
    assert listed.exit_code == 0, listed.output
    assert f"{dlq}: 3 of 3 dead letters" in listed.output
    assert listed.output.count("PermanentError") == 2 and listed.output.count("InvalidEvent") == 1
    assert topic in listed.output and "person-2" in listed.output
    assert "amina@example.org" not in listed.output

    only_invalid = await deadletters(env, "list", "--service", service, "--error-type", "InvalidEvent", "--since", "1h")
    assert "3 of 3" not in only_invalid.output and f"{dlq}: 1 of 3 dead letters" in only_invalid.output

    shown = await deadletters(env, "show", "--service", service, "--offset", "0")
    assert shown.exit_code == 0, shown.output
    for expected in (
        "dlq_original_topic",
        "dlq_exception_type",
        "PermanentError",
        "dlq_attempts",
        applied_then_failed.request_id,
        '"contact"',
    ):
        assert expected in shown.output
    for personal in ("Amina Test", "amina@example.org", "+32470123456"):
        assert personal not in shown.output
    missing = await deadletters(env, "show", "--service", service, "--offset", "99")
    assert missing.exit_code == 1

    # The bugs are fixed; the operator redrives the first two.
    fail_after_effect.clear()
    fail_before_effect.clear()
    redriven = await deadletters(env, "redrive", "--service", service, "--offset", "0", "--offset", "1")
    assert redriven.exit_code == 0, redriven.output
    assert "2 redriven, 0 already redriven, 0 not found" in redriven.output
    await wait_until(lambda: deliveries[applied_then_failed.request_id] == 2 and deliveries[failed_before_effect.request_id] == 2)
    assert await effects(runtime, applied_then_failed) == 1  # applied before it was dead-lettered: not again
    assert await effects(runtime, failed_before_effect) == 1  # applied by the redrive, once

    main_records = await read_records(topic, 5)
    assert [(r.key, headers_of(r).get("redriven_from_dlq_offset")) for r in main_records[3:]] == [
        (b"person-1", "0"),
        (b"person-2", "1"),
    ]
    assert main_records[3].value == codec.encode(applied_then_failed)
    assert not [k for k in headers_of(main_records[3]) if k.startswith("dlq_")]

    again = await deadletters(env, "redrive", "--service", service, "--offset", "0", "--offset", "1", "--offset", "42")
    assert again.exit_code == 0, again.output
    assert "0 redriven, 2 already redriven, 1 not found" in again.output
    assert await end_offset(topic) == 5

    # Poison redriven before its producer was fixed: it comes back.
    by_type = await deadletters(env, "redrive", "--service", service, "--all", "--error-type", "InvalidEvent")
    assert "1 redriven, 0 already redriven, 0 not found" in by_type.output
    back = (await read_records(dlq, 4))[3]
    assert back.value == poison
    assert headers_of(back)["redriven_from_dlq_offset"] == "2"
    assert headers_of(back)["dlq_exception_type"] == "InvalidEvent"

    await asyncio.sleep(1.0)
    assert deliveries == {applied_then_failed.request_id: 2, failed_before_effect.request_id: 2}
    assert await end_offset(topic) == 6
    records = await mongo_db[REDRIVES_COLLECTION].find({}, {"_id": 0, "offset": 1, "status": 1}).sort("offset").to_list(None)
    assert records == [{"offset": 0, "status": "done"}, {"offset": 1, "status": "done"}, {"offset": 2, "status": "done"}]

    # The entry point operators use.
    process = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.deadletters", "list", "--service", service],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=120,
        cwd=REPO,
    )
    assert process.returncode == 0, process.stderr.decode()[-2000:]
    assert f"{dlq}: 4 of 4 dead letters" in process.stdout.decode()


async def test_redrive_needs_offsets_or_all(prefix: str, mongo_settings: MongoSettings) -> None:
    env = cli_env(prefix, mongo_settings)
    neither = await asyncio.to_thread(CliRunner().invoke, app, ["redrive", "--service", "x"], env=env)
    both = await asyncio.to_thread(CliRunner().invoke, app, ["redrive", "--service", "x", "--all", "--offset", "1"], env=env)
    assert neither.exit_code == both.exit_code == 2
    empty = await deadletters(env, "list", "--service", "nobody")
    assert empty.exit_code == 0 and "0 of 0 dead letters" in empty.output
