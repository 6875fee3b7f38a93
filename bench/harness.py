"""One benchmark run's resources: its topic prefixes and databases (all removed at the end), the
processes it starts, and the Kafka clients that feed and watch them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from bench.memory import SERVICE, PeakRss, read_status_mib
from schemas import ALL_TOPICS, Event, TrainingRequestRouted
from scripts.launch import REPO, ServiceProcess, mongodb_uri, start_service
from scripts.principals import TESTS
from services.kafka import admin_client_kwargs, delete_topics_with_prefix, wire
from services.settings import KafkaSettings

ROUTED_TYPE: str = TrainingRequestRouted.model_fields["type"].default
MONGODB_URI = mongodb_uri(TESTS)
NO_RATE_LIMIT = {
    "INTAKE_WEB_RATE_PER_MINUTE": "100000000",
    "INTAKE_WEB_BURST": "10000000",
    "INTAKE_WEB_DESTINATION_PER_DAY": "100000000",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (the peak resident set) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def infra_pids() -> dict[str, int | None]:
    """The pids of the local broker and mongod (`make up`'s pid files; None when not run locally):
    if one changes during a figure, something restarted it meanwhile (a fault test, say)."""
    pids: dict[str, int | None] = {}
    for name, path in (("kafka", REPO / ".local" / "kafka" / "kafka.pid"), ("mongod", REPO / ".local" / "mongo" / "mongod.pid")):
        try:
            pids[name] = int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            pids[name] = None
    return pids


@dataclass(frozen=True)
class Space:
    """A database and the topics `<database>.<topic>` of one measurement."""

    database: str

    @property
    def prefix(self) -> str:
        return f"{self.database}."

    def topic(self, name: str) -> str:
        return self.prefix + name

    @property
    def env(self) -> dict[str, str]:
        return {"MONGODB_DATABASE": self.database, "KAFKA_TOPIC_PREFIX": self.prefix}


@dataclass
class Bench:
    kafka: KafkaSettings
    mongo_uri: str = MONGODB_URI
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processes: list[ServiceProcess] = field(default_factory=list)
    rss_peaks: list[PeakRss] = field(default_factory=list)
    """The `VmHWM` of every process this run started, read as it was stopped (bench.memory)."""
    _roles: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongo_uri, tz_aware=True)
        self.work_dir = REPO / ".local" / "bench" / self.run_id
        self.log_dir = self.work_dir / "logs"

    @property
    def root(self) -> str:
        """Every database and topic prefix of this run starts with this."""
        return f"bench_{self.run_id}_"

    def space(self, phase: str) -> Space:
        return Space(f"{self.root}{phase}")

    # --- processes ---------------------------------------------------------------------------

    def start_service(self, name: str, space: Space, *, instance: str, env: Mapping[str, str] | None = None) -> ServiceProcess:
        """`python -m <service>`, as ops run it (scripts.launch)."""
        process = start_service(name, port=free_port(), env={**space.env, **(env or {})}, log_dir=self.log_dir, instance=instance)
        self.processes.append(process)
        self._roles[process.process.pid] = SERVICE
        return process

    def start_module(
        self,
        module: str,
        space: Space,
        *,
        instance: str,
        service: str,
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] = (),
    ) -> ServiceProcess:
        """`python [argv] -m <module>` with a service's environment (a baseline, or a service under a profiler)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = self.log_dir / f"{instance}.log"
        full_env = {
            **os.environ,
            **space.env,
            **(env or {}),
            f"{service.upper()}_HTTP_PORT": str(port),
            f"{service.upper()}_INSTANCE_ID": instance,
            f"{service.upper()}_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                [sys.executable, *argv, "-m", module], cwd=REPO, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
            )
        process = ServiceProcess(name=service, port=port, log_path=log_path, process=popen, env=dict(env or {}))
        self.processes.append(process)
        self._roles[popen.pid] = "profiled" if argv else SERVICE if module == service else "baseline"
        return process

    async def wait_ready(self, process: ServiceProcess, *, log_line: str | None = None, timeout: float = 90.0) -> None:
        """Ready when /health/ready answers 200, or (for a process without HTTP) when it logs `log_line`."""
        if log_line is None:
            await asyncio.to_thread(process.wait_ready, timeout)
            return
        deadline = time.monotonic() + timeout
        while log_line not in process.log_path.read_text(errors="replace"):
            if not process.alive():
                raise RuntimeError(f"{process.name} exited with {process.process.returncode}:\n{process.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.name} did not log {log_line!r} within {timeout:.0f}s:\n{process.tail()}")
            await asyncio.sleep(0.1)

    async def stop(self, process: ServiceProcess, sig: int = signal.SIGTERM) -> int:
        if process in self.processes:  # still running: its peak, before it goes
            pid = process.process.pid
            role = self._roles.get(pid, SERVICE)
            self.rss_peaks.append(PeakRss(process.name, process.log_path.stem, role, read_status_mib(pid, "VmHWM")))
        code = await asyncio.to_thread(process.stop, sig)
        if process in self.processes:
            self.processes.remove(process)
        return code

    # --- Kafka -------------------------------------------------------------------------------

    async def create_topics(self, space: Space) -> None:
        """The declared topics under the space's prefix (services would create them too; the figures
        need them before anything starts)."""
        admin = AIOKafkaAdminClient(**admin_client_kwargs(self.kafka), client_id="bench-admin")
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name=space.topic(t.name), num_partitions=t.partitions, replication_factor=1) for t in ALL_TOPICS]
            )
        finally:
            await admin.close()

    async def produce(self, topic: str, events: Iterable[Event]) -> int:
        """Put events on a topic as the services do (key, CloudEvents value and headers); returns the count."""
        producer = AIOKafkaProducer(
            **admin_client_kwargs(self.kafka), enable_idempotence=True, acks="all", linger_ms=20, max_batch_size=256 * 1024
        )
        await producer.start()
        count = 0
        try:
            for event in events:
                _, key, value, headers = wire(event)
                await producer.send(topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
                count += 1
            await producer.flush()
        finally:
            await producer.stop()
        return count

    def watch(self, topic: str, event_type: str = ROUTED_TYPE) -> OutputWatcher:
        return OutputWatcher(self.kafka, topic, event_type)

    # --- clean-up ----------------------------------------------------------------------------

    async def close(self, *, keep: bool = False) -> dict[str, Any]:
        """Stop what is still running, delete this run's topics and drop its databases. A broker or
        mongod that is down does not stop the report: what could not be removed is in `errors`."""
        for process in list(self.processes):
            await self.stop(process)
        removed: dict[str, Any] = {"topics": [], "databases": [], "errors": []}
        if not keep:
            try:
                removed["topics"] = await delete_topics_with_prefix(self.kafka, self.root)
            except Exception as error:  # noqa: BLE001 - reported; the topics carry the run's prefix
                removed["errors"].append(f"topics {self.root}* not deleted: {type(error).__name__}: {error}")
            try:
                for name in await self.mongo.list_database_names():
                    if name.startswith(self.root):
                        await self.mongo.drop_database(name)
                        removed["databases"].append(name)
            except Exception as error:  # noqa: BLE001 - reported
                removed["errors"].append(f"databases {self.root}* not dropped: {type(error).__name__}: {error}")
        await self.mongo.close()
        return removed


class OutputWatcher:
    """Reads a topic from the start (no consumer group) and notes, per key, when each record of one
    event type was seen here (`time.time()`) and its record timestamp (the producer's CreateTime)."""

    def __init__(self, kafka: KafkaSettings, topic: str, event_type: str) -> None:
        self._kafka = kafka
        self.topic = topic
        self._event_type = event_type.encode()
        self.seen_at: dict[str, float] = {}
        self.created_at: dict[str, float] = {}
        self.records = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> OutputWatcher:
        self._consumer = AIOKafkaConsumer(
            self.topic, **admin_client_kwargs(self._kafka), group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batches.values():
                for record in records:
                    if dict(record.headers or ()).get("ce_type") != self._event_type:
                        continue
                    key = record.key.decode() if isinstance(record.key, bytes) else str(record.key)
                    self.records += 1
                    self.seen_at.setdefault(key, now)
                    self.created_at.setdefault(key, record.timestamp / 1000.0)
            if batches:
                self._changed.set()

    async def wait_for(self, keys_or_count: Iterable[str] | int, *, timeout: float) -> bool:
        """True once every key (or that many distinct keys) was seen, False after `timeout` seconds."""
        wanted = keys_or_count if isinstance(keys_or_count, int) else set(keys_or_count)
        deadline = time.monotonic() + timeout

        def done() -> bool:
            return len(self.seen_at) >= wanted if isinstance(wanted, int) else wanted <= self.seen_at.keys()

        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 1.0))
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            try:
                await self._consumer.stop()
            except (Exception, asyncio.CancelledError):
                # With the broker gone, aiokafka's fetcher ends in a cancelled retry; unless this task
                # itself is being cancelled, that is no reason to abandon the run.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
