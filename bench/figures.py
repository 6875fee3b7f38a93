"""The measurements. Each runs in a space (database + topic prefix) of its own, starts the processes
it measures, and returns plain numbers; the table is made in `bench.__main__`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from bench import loadgen, workload
from bench.harness import NO_RATE_LIMIT, Bench, OutputWatcher, Space, infra_pids, peak_rss_mib
from bench.http import HttpClient
from bench.stats import rate, summarise_latencies
from bench.year import YEAR_TOPICS, a_year, create_year_topics, publish_fast
from schemas import TRAINING_REQUESTS, TRAINING_ROUTING, TrainingRequestReceived
from scripts.launch import ServiceProcess
from services.calendar import BRUSSELS
from services.kafka import admin_client_kwargs

REQUESTS_TOPIC = TRAINING_REQUESTS.name
ROUTING_TOPIC = TRAINING_ROUTING.name
RAW_READY = "raw_routing.ready"
INTAKE_ENV = {**NO_RATE_LIMIT, "INTAKE_SMTP_ENABLED": "false"}
YEAR = 2025
"""The year the `year` figure's events are dated in: a past one, whole."""


def start_router(
    bench: Bench,
    space: Space,
    variant: str,
    *,
    roster: Path,
    profile_to: Path | None = None,
    settings: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """`python -m routing` ("services"), or the hand-written loop ("baseline"); `settings` are more
    ROUTING_* variables (a batch size, say)."""
    env = {"ROUTING_WORKERS_PATH": str(roster), **(settings or {})}
    instance = f"routing-{space.database.removeprefix(bench.root)}"
    if variant == "baseline":
        return bench.start_module("bench.raw_routing", space, instance=f"raw-{instance}", service="routing", env=env)
    if profile_to is not None:
        argv = ["-m", "pyinstrument", "-i", "0.002", "-r", "pyisession", "-o", str(profile_to)]
        # pyinstrument runs the module itself: `python -m pyinstrument ... -m routing`
        return bench.start_module("routing", space, instance=f"profiled-{instance}", service="routing", env=env, argv=argv)
    return bench.start_service("routing", space, instance=instance, env=env)


def rebalance_lines(process: ServiceProcess) -> int:
    """Lines of a process's log about its consumer group rebalancing: the group id (`routing`) is the
    same in every environment on the broker, so another run's routing processes joining or leaving
    pause this one's consumption; a count > 0 says the figure was disturbed."""
    try:
        text = process.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if "rebalanc" in line.lower())


async def wait_router(bench: Bench, process: ServiceProcess, variant: str) -> None:
    await bench.wait_ready(process, log_line=RAW_READY if variant == "baseline" else None)


# --- 1. pipeline throughput ---------------------------------------------------------------------


async def pipeline(
    bench: Bench,
    variant: str,
    events: list[TrainingRequestReceived],
    *,
    roster: Path,
    budget: float,
    run: int = 1,
    profile_to: Path | None = None,
    settings: Mapping[str, str] | None = None,
    alongside: Callable[[ServiceProcess], contextlib.AbstractAsyncContextManager[object]] | None = None,
) -> dict[str, Any]:
    """N requests pre-loaded on the input topic; one routing process (or the baseline loop) started
    on them; requests/s from the first message processed to the last `TrainingRequestRouted`.

    If they are not all routed within `budget` seconds of the first output, the process is stopped
    and the rate is that of the requests routed so far (`complete` is then False): on a busy
    machine the run stays bounded, and both variants get the same budget.

    The window opens at the `processed_at` of the earliest processed-events record (written inside
    the first message's transaction) and closes at the CreateTime of the last routed record (set by
    the routing process's producer): both the same machine's wall clock, start-up excluded.

    `settings`: more ROUTING_* variables for the router; `alongside(process)`: a context entered once
    the router is ready and left when the work is done or the budget is spent (a profiler attached
    to it, say)."""
    phase = f"pipe{run}_{variant}" + ("_profiled" if profile_to else "")  # a space per run: nothing carries over
    space = bench.space(phase)
    await bench.create_topics(space)
    loaded = await bench.produce(space.topic(REQUESTS_TOPIC), events)
    watcher = await bench.watch(space.topic(ROUTING_TOPIC)).start()
    launched = time.time()
    process = start_router(bench, space, variant, roster=roster, profile_to=profile_to, settings=settings)
    try:
        await wait_router(bench, process, variant)
        async with alongside(process) if alongside else contextlib.nullcontext():
            if not await watcher.wait_for(1, timeout=120.0):
                raise RuntimeError(f"{variant}: nothing routed within 120 s of start; log: {process.log_path}\n{process.tail()}")
            complete = await watcher.wait_for(loaded, timeout=budget)
        rss = peak_rss_mib(process.process.pid)
        db = bench.mongo[space.database]
        first = await db["processed_events"].find_one({"consumer": "routing"}, sort=[("processed_at", 1)])
        decisions = await db["routing_decisions"].count_documents({})
        reserved = await db["routing_requests"].count_documents({"status": "reserved"})
    finally:
        # uvicorn re-raises the signal it shut down on: SIGINT becomes a KeyboardInterrupt, on which
        # pyinstrument still writes its session (SIGTERM would kill it first).
        await bench.stop(process, signal.SIGINT if profile_to else signal.SIGTERM)
        await asyncio.sleep(0.5)  # what was published before the stop reaches the watcher
        await watcher.stop()
    routed = len(watcher.created_at)
    rebalances = rebalance_lines(process)
    if first is None:
        raise RuntimeError(f"{variant}: no processed-events record; log: {process.log_path}\n{process.tail()}")
    opened = first["processed_at"].timestamp()
    closed = max(watcher.created_at.values())
    return {
        "variant": variant,
        "requests": loaded,
        "routed": routed,
        "complete": complete,
        "budget_s": budget,
        "output_records": watcher.records,
        "decisions_stored": decisions,
        "offered_to_a_worker": reserved,
        "startup_s": opened - launched,
        "window_s": closed - opened,
        "per_s": rate(routed, closed - opened),
        "peak_rss_mib": rss,
        "rebalance_log_lines": rebalances,
        "log": str(process.log_path),
        "database": space.database,
    }


# --- 2. latency ---------------------------------------------------------------------------------


async def _post(http: HttpClient, body: dict[str, Any]) -> str:
    status, answer = await http.post_json("/api/v1/requests", body)
    if status != 202:
        raise RuntimeError(f"intake answered {status}: {str(answer)[:300]}")
    return str(answer["request_id"])


async def latency(
    bench: Bench, variant: str, *, per_s: float, seconds: float, roster: Path, drain_timeout: float = 60.0
) -> dict[str, Any]:
    """One intake process and one router (routing, or the baseline loop) on one space; requests
    posted to the JSON API at a steady `per_s` for `seconds`; for each, the time from receiving its
    HTTP 202 to seeing its `TrainingRequestRouted` on the routing topic (this process's clock for
    both). Five warm-up requests go first (partitions assigned, connections open) and don't count."""
    space = bench.space(f"lat_{variant}")
    await bench.create_topics(space)
    watcher = await bench.watch(space.topic(ROUTING_TOPIC)).start()
    intake = bench.start_service("intake", space, instance=f"intake-lat-{variant}", env=INTAKE_ENV)
    router = start_router(bench, space, variant, roster=roster)
    accepted: dict[str, float] = {}
    try:
        await asyncio.gather(bench.wait_ready(intake), wait_router(bench, router, variant))
        async with HttpClient(intake.url, connections=64) as http:
            warm = [await _post(http, workload.api_body(9_000_000 + i, f"{bench.run_id}w")) for i in range(5)]
            if not await watcher.wait_for(warm, timeout=60):
                raise RuntimeError(f"warm-up requests not routed; router log: {router.log_path}\n{router.tail()}")
            total = max(1, round(per_s * seconds))
            failures: list[BaseException] = []

            async def one(i: int) -> None:
                try:
                    request_id = await _post(http, workload.api_body(i, bench.run_id))
                    accepted[request_id] = time.time()
                except Exception as error:  # noqa: BLE001 - counted and reported
                    failures.append(error)

            tasks = []
            start = time.perf_counter()
            for i in range(total):
                delay = start + i / per_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            sent_s = time.perf_counter() - start
            await asyncio.gather(*tasks)
            posted_s = time.perf_counter() - start
        complete = await watcher.wait_for(accepted.keys(), timeout=drain_timeout)
        rss = {"intake": peak_rss_mib(intake.process.pid), "routing": peak_rss_mib(router.process.pid)}
    finally:
        await bench.stop(router)
        await bench.stop(intake)
        await watcher.stop()
    by_seen = summarise_latencies(accepted, watcher.seen_at)
    by_create_time = summarise_latencies(accepted, watcher.created_at)
    return {
        "variant": variant,
        "target_per_s": per_s,
        "requests": total,
        "accepted": len(accepted),
        "failures": len(failures),
        "first_failure": repr(failures[0]) if failures else None,
        "sent_per_s": rate(total, sent_s) if sent_s > 0 else None,
        "accepted_per_s": rate(len(accepted), posted_s),
        "all_routed": complete,
        "latency_seen": by_seen.as_dict(),
        "latency_create_time": by_create_time.as_dict(),
        "peak_rss_mib": rss,
    }


# --- 3. intake ----------------------------------------------------------------------------------


INTAKE_HEADERS = {"Content-Type": "application/json", "User-Agent": "formation-events-bench"}
RECEIVED_TYPE: str = TrainingRequestReceived.model_fields["type"].default


async def intake_burst(
    bench: Bench, variant: str, *, requests: int, concurrency: int, budget: float, drain_timeout: float = 60.0
) -> dict[str, Any]:
    """`requests` JSON API submissions, each from a new person, sent by vegeta (`bench.loadgen`, a Go
    program) with `concurrency` workers as fast as they are answered, to one intake process
    ("services") or the minimal endpoint ("baseline"); requests/s answered 202 (stored in the outbox).
    vegeta stops sending after `budget` seconds.

    For intake, also: every `TrainingRequestReceived` on the requests topic is counted (distinct
    request ids), to check that each request answered 202 reached Kafka, and the rate until the
    last of them was written there (its CreateTime)."""
    space = bench.space(f"intake_{variant}")
    watcher: OutputWatcher | None = None
    if variant == "baseline":
        # Started as a module, not as a service, so it is given the credentials the services get from scripts.launch.
        env = {"MONGODB_URI": bench.mongo_uri}
        process = bench.start_module("bench.minimal_intake", space, instance="minimal-intake", service="intake", env=env)
    else:
        await bench.create_topics(space)
        watcher = await bench.watch(space.topic(REQUESTS_TOPIC), event_type=RECEIVED_TYPE).start()
        process = bench.start_service("intake", space, instance="intake-burst", env=INTAKE_ENV)
    outbox = bench.mongo[space.database]["intake_outbox"]
    targets = bench.work_dir / f"intake-{variant}.jsonl"
    url = f"{process.url}/api/v1/requests"
    written = loadgen.write_targets(targets, url, (workload.api_body(i, bench.run_id) for i in range(requests)), INTAKE_HEADERS)
    try:
        await bench.wait_ready(process)
        async with HttpClient(process.url, connections=4) as http:  # warm-up: the first requests served
            warm_ups = [await _post(http, workload.api_body(requests + i, f"{bench.run_id}w")) for i in range(8)]
        started = time.time()
        report = await loadgen.attack(targets, workers=concurrency, budget_s=budget)
        accepted = report.count(202)
        on_kafka = last_on_kafka = None
        if watcher is not None:
            await watcher.wait_for(accepted + len(warm_ups), timeout=drain_timeout)
            on_kafka = len(watcher.seen_at)
            last_on_kafka = max(watcher.created_at.values(), default=None)
        stored = await outbox.count_documents({})
        rss = peak_rss_mib(process.process.pid)
    finally:
        await bench.stop(process)
        if watcher is not None:
            await watcher.stop()
    failures = report.requests - accepted
    return {
        "variant": variant,
        "load_generator": f"vegeta {loadgen.VEGETA_VERSION}",
        "requests": written,
        "accepted": accepted,
        "complete": report.requests == written,
        "budget_s": budget,
        "concurrency": concurrency,
        "failures": failures,
        "status_codes": report.status_codes,
        "first_errors": report.errors[:3],
        "seconds": report.seconds,
        "warm_ups": len(warm_ups),
        "outbox_documents": stored,
        "accepted_per_s": report.per_s(202),
        "on_kafka": on_kafka,
        "all_on_kafka": None if on_kafka is None else on_kafka == accepted + len(warm_ups),
        "kafka_records": watcher.records if watcher is not None else None,
        "on_kafka_per_s": rate(accepted, last_on_kafka - started) if last_on_kafka else None,
        "peak_rss_mib": rss,
    }


# --- 4. replay ---------------------------------------------------------------------------------


def replay_unavailable() -> str | None:
    """None when `analytics.replay.replay` can be used, else why not (another engineer writes it)."""
    try:
        from analytics.replay import replay as analytics_replay
    except ImportError as error:
        return f"{type(error).__name__}: {error}"
    return None if callable(analytics_replay) else "analytics.replay.replay is not callable"


async def replay(bench: Bench, *, events: int) -> dict[str, Any]:
    """`analytics.replay.replay` of two topics (requests and their routing decisions, `events` records
    in all) into a fresh read model, against a raw aiokafka read of the same topics: a consumer
    without group, every partition assigned and read from the beginning with `getmany` (as many
    records per call as replay asks for), no decoding, no writing: the ceiling.

    Both times run from creating the consumer to the last record (ReplayStats.seconds: from before
    its window is opened to the last insert, before the read model's indexes are built)."""
    from analytics.replay import replay as analytics_replay

    space = bench.space("replay")
    await bench.create_topics(space)
    requests = workload.requests(max(1, events // 2))
    written = await bench.produce(space.topic(REQUESTS_TOPIC), requests)
    written += await bench.produce(space.topic(ROUTING_TOPIC), [workload.routed(r) for r in requests])
    settings = analytics_settings(bench, space)
    topics = {space.topic(spec.name): spec.partitions for spec in (TRAINING_REQUESTS, TRAINING_ROUTING)}
    raw_s = await raw_read(bench, topics, expected=written, max_records=settings.fetch_max_records)
    before = cpu_seconds()
    stats = await analytics_replay(settings, [REQUESTS_TOPIC, ROUTING_TOPIC], into=f"{space.database}_readmodel")
    cpu = cpu_used(before, cpu_seconds())
    return {
        "replay_cpu_s": cpu,
        "events": written,
        "raw_read_s": raw_s,
        "raw_read_per_s": rate(written, raw_s),
        "replay_s": stats.seconds,
        "replay_records": stats.records,
        "replay_written": stats.written,
        "replay_per_s": stats.events_per_second,
    }


def cpu_seconds() -> dict[str, float | None]:
    """CPU seconds (user + system) used so far by this process, the local mongod and the broker:
    taken before and after a step, they say which of the three the step kept busy."""
    ticks = os.sysconf("SC_CLK_TCK")

    def of(pid: int | None) -> float | None:
        if pid is None:
            return None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        return (int(fields[11]) + int(fields[12])) / ticks

    return {"bench": time.process_time(), **{name: of(pid) for name, pid in infra_pids().items()}}


def cpu_used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float | None]:
    return {name: None if (b := before.get(name)) is None or a is None else a - b for name, a in after.items()}


def analytics_settings(bench: Bench, space: Space) -> Any:
    """The analysts' settings for a space: its topic prefix, and the bench's MongoDB URI (the one
    `main` puts in MONGODB_URI, unless the environment gave another)."""
    from analytics.settings import AnalyticsSettings

    settings = AnalyticsSettings()
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"topic_prefix": space.prefix}),
            "mongo": settings.mongo.model_copy(update={"uri": SecretStr(os.environ.get("MONGODB_URI") or bench.mongo_uri)}),
        }
    )


async def raw_read(bench: Bench, topics: dict[str, int], *, expected: int, max_records: int, timeout: float = 120.0) -> float:
    """Seconds a bare consumer takes to read `expected` records of `topics` (name: partitions) from the beginning."""
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(**admin_client_kwargs(bench.kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for topic, count in topics.items() for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        read = 0
        deadline = time.monotonic() + timeout
        while read < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw read: {read} of {expected} records in {timeout:.0f}s")
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            read += sum(len(records) for records in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


# --- 6. a year --------------------------------------------------------------------------------


async def year(bench: Bench, *, requests: int) -> dict[str, Any]:
    """A year of Brussels volume (`requests` requests and what followed each, `bench.year.a_year`)
    on topics of a space of its own; then, each timed: a raw aiokafka read of those topics (the
    ceiling), `analytics.replay.replay` of them into a fresh read model, and `analytics.whatif.what_if`
    over the year's requests (from Kafka, decided and simulated under the shipped rules and roster
    and under an alternative with two more advisors)."""
    from analytics.replay import replay as analytics_replay
    from analytics.whatif import roster_team_sizes, what_if

    space = bench.space("year")
    await create_year_topics(bench.kafka, space.prefix)
    started = time.perf_counter()
    published = await publish_fast(bench.kafka, space.prefix, a_year(requests, year=YEAR))
    publish_s = time.perf_counter() - started
    settings = analytics_settings(bench, space)
    topics = {space.topic(spec.name): spec.partitions for spec in YEAR_TOPICS}
    raw_s = await raw_read(bench, topics, expected=published, max_records=settings.fetch_max_records)
    before_replay = cpu_seconds()
    stats = await analytics_replay(settings, [spec.name for spec in YEAR_TOPICS], into=f"{space.database}_readmodel")
    before_what_if = cpu_seconds()
    started = time.perf_counter()
    compared = await what_if(
        settings,
        start=datetime(YEAR, 1, 1, tzinfo=BRUSSELS),
        end=datetime(YEAR + 1, 1, 1, tzinfo=BRUSSELS),
        team_sizes={"advisors": roster_team_sizes()["advisors"] + 2},
    )
    whatif_s = time.perf_counter() - started
    after = cpu_seconds()
    return {
        "requests": requests,
        "events": published,
        "generate_and_publish_s": publish_s,
        "raw_read_s": raw_s,
        "replay_s": stats.seconds,
        "replay_records": stats.records,
        "replay_written": stats.written,
        "replay_per_s": stats.events_per_second,
        "replay_by_event": dict(stats.by_event),
        "replay_cpu_s": cpu_used(before_replay, before_what_if),
        "whatif_s": whatif_s,
        "whatif_cpu_s": cpu_used(before_what_if, after),
        "what_if_requests": compared.requests,
        "what_if": compared.to_dict(),
    }
