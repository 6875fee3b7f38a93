"""The pipeline baseline: routing's own use case driven by a hand-written aiokafka loop.

    ROUTING_*/KAFKA_*/MONGODB_* as for `python -m routing`;  python -m bench.raw_routing

The domain is exactly routing's: `routing.app.create_app` builds the same `RoutingService`
(rules, SLA, roster, stores, `ProcessedEvents`) from the same settings, and its start-up hooks
run (indexes, roster, and the dispatcher and timer loops every routing process runs), but the
FastAPI app is never served and its FastStream broker is never started. Instead:

- a raw `AIOKafkaConsumer` (group `routing`, no auto-commit) takes one record at a time with
  `getone()`, decodes it with the same `schemas.codec.decode`, calls
  `RoutingService.route(event)` (same MongoDB transaction through `ProcessedEvents.run_once`,
  same outbox entry, same offer) and commits after each message;
- routing's own outbox relay publishes `TrainingRequestRouted` through a raw `AIOKafkaProducer`
  (idempotent, acks=all, linger 5 ms: the settings of `services.kafka.create_broker`) instead of
  FastStream's broker.

What is left out is what FastStream adds: its subscriber machinery, middlewares (Prometheus,
the error policy), the decoder/parser layers, the publisher wrapper, and the HTTP server.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from routing.app import create_app
from routing.settings import RoutingSettings
from schemas import ContractError, decode
from schemas.topics import TRAINING_REQUESTS
from services.kafka import admin_client_kwargs, topic_name, wait_and_ensure_topics

log = structlog.get_logger("bench.raw_routing")


class RawPublisher:
    """What the outbox relay needs of a broker: `publish(value, topic=, key=, headers=, no_confirm=)`."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(
        self,
        value: bytes,
        *,
        topic: str,
        key: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        no_confirm: bool = False,
    ) -> Any:
        if isinstance(key, str):
            key = key.encode()
        delivery = await self._producer.send(topic, value, key=key, headers=[(k, v.encode()) for k, v in (headers or {}).items()])
        return delivery if no_confirm else await delivery


async def run() -> None:
    settings = RoutingSettings()
    app = create_app(settings)  # wiring only: nothing connects, nothing is served
    runtime = app.state.runtime
    service = runtime.app_state["service"]
    kafka = admin_client_kwargs(settings.kafka)
    await runtime.processed.ensure_indexes()
    await wait_and_ensure_topics(settings.kafka)
    producer = AIOKafkaProducer(
        **kafka, client_id=f"raw-routing-{settings.instance_id}", enable_idempotence=True, acks="all", linger_ms=5
    )
    consumer = AIOKafkaConsumer(
        topic_name(TRAINING_REQUESTS), **kafka, group_id="routing", enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await producer.start()
    await consumer.start()
    for hook in runtime.startup_hooks:  # indexes and roster, then the dispatcher and timer loops
        await hook(runtime)
    publisher = RawPublisher(producer)
    stopping = asyncio.Event()
    waiting = False
    consumed = 0

    async def consume() -> None:
        nonlocal waiting, consumed
        failures = 0
        while not stopping.is_set():
            waiting = True
            record = await consumer.getone()
            waiting = False
            try:
                event = decode(record.value, list(record.headers or ()))
                await service.route(event)
            except ContractError as error:
                log.warning("event.unreadable", offset=record.offset, error=str(error)[:200])
            except Exception as error:  # noqa: BLE001 - transient: retry the record after a pause, commit nothing
                failures += 1
                log.warning("event.retry_after_failure", offset=record.offset, error=str(error)[:200])
                await asyncio.sleep(min(10.0, 0.2 * 2 ** (failures - 1)))
                consumer.seek(TopicPartition(record.topic, record.partition), record.offset)
                continue
            failures = 0
            try:
                await consumer.commit()
            except (CommitFailedError, RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError) as error:
                # The group rebalanced (another member joined): the record may come again, and
                # `run_once` makes that a no-op. FastStream logs and goes on the same way.
                log.warning("offsets.commit_failed", error=type(error).__name__)
            consumed += 1

    task = asyncio.create_task(consume())
    # The runtime's own relay waits for FastStream's broker, which never starts here.
    relay = asyncio.create_task(service.outbox.run_relay(publisher, holder=f"raw-{settings.instance_id}"))
    runtime.background.append(relay)

    def stop() -> None:
        stopping.set()
        if waiting:
            task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    log.info("raw_routing.ready")
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        for background in runtime.background:
            background.cancel()
        await asyncio.gather(*runtime.background, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
        await runtime.mongo.close()
        log.info("raw_routing.stopped", consumed=consumed)


def main() -> Any:
    asyncio.run(run())


if __name__ == "__main__":
    main()
