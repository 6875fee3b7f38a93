"""`python -m bench` (`make bench`): the figures of issue 7 on the genuine broker and mongod, each with
a baseline measured in the same run, as a markdown table on stdout and in reports/bench.md, and the
raw numbers in reports/bench.json.

    uv run python -m bench [--requests 3000] [--latency-seconds 20] [--intake-requests 2000] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import figures, workload
from bench.harness import Bench
from bench.report import Row, render_markdown, write_reports
from scripts.launch import REPO
from services.settings import KafkaSettings

QUICK = {"requests": 600, "latency_seconds": 8.0, "intake_requests": 400}
PIPELINE_TARGET = 0.8
REPLAY_TARGET = 0.5
_started = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests pre-loaded for the pipeline figure (default 3000)")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="how long the steady latency load lasts (default 20)")
    parser.add_argument("--latency-rate", type=float, default=None, help="requests/s of the latency load (default: half the pipeline's)")
    parser.add_argument("--intake-requests", type=int, default=2000, help="JSON API submissions for the intake figure (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients for the intake figure (default 32)")
    parser.add_argument("--quick", action="store_true", help=f"small sizes for a smoke run: {QUICK}")
    parser.add_argument("--profile", action="store_true", help="also run the pipeline once with routing under pyinstrument")
    parser.add_argument("--output", type=Path, default=REPO / "reports", help="where bench.md and bench.json go")
    parser.add_argument("--keep", action="store_true", help="keep this run's topics and databases (for inspection)")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    if args.requests < 1 or args.intake_requests < 1 or args.latency_seconds <= 0 or args.concurrency < 1:
        parser.error("sizes must be positive")
    return args


def _lat(result: dict[str, Any], key: str) -> float | None:
    return result["latency_seen"][key] if result else None


def build_rows(results: dict[str, Any]) -> list[Row]:
    pipe, lat, intake = results["pipeline"], results["latency"], results["intake"]
    n = pipe["services"]["requests"]
    at = lat["services"]["target_per_s"]
    rows = [
        Row(
            figure=f"1. Pipeline throughput: {n} pre-loaded requests → decision stored + TrainingRequestRouted, one process",
            unit="req/s",
            measured=pipe["services"]["per_s"],
            baseline=pipe["baseline"]["per_s"],
            baseline_is="same RoutingService.route from a raw AIOKafkaConsumer loop (commit per message) + raw idempotent AIOKafkaProducer",
            target=PIPELINE_TARGET,
        ),
        Row(
            figure=f"2. Latency p50, intake 202 → TrainingRequestRouted seen, at {at:.0f} req/s",
            unit="ms",
            measured=_lat(lat["services"], "p50_ms"),
            baseline=_lat(lat["baseline"], "p50_ms"),
            baseline_is="same intake process, routing replaced by the raw loop of figure 1, same rate",
            higher_is_better=False,
        ),
        Row(
            figure=f"2. Latency p99, intake 202 → TrainingRequestRouted seen, at {at:.0f} req/s",
            unit="ms",
            measured=_lat(lat["services"], "p99_ms"),
            baseline=_lat(lat["baseline"], "p99_ms"),
            baseline_is="same intake process, routing replaced by the raw loop of figure 1, same rate",
            higher_is_better=False,
        ),
        Row(
            figure=f"3. Intake: JSON API requests answered 202 (in the outbox), {intake['services']['concurrency']} clients",
            unit="req/s",
            measured=intake["services"]["accepted_per_s"],
            baseline=intake["baseline"]["accepted_per_s"],
            baseline_is="minimal FastAPI endpoint writing the same outbox document (Outbox.add), nothing else",
        ),
        Row(
            figure="4. Replay into the report's read model",
            unit="events/s",
            measured=None,
            baseline=None,
            baseline_is="raw aiokafka read of the same topic",
            target=REPLAY_TARGET,
            pending=results["replay"]["pending"],
        ),
        Row(
            figure="5. Peak RSS (VmHWM) of routing, figure 1's run",
            unit="MiB",
            measured=pipe["services"]["peak_rss_mib"],
            baseline=pipe["baseline"]["peak_rss_mib"],
            baseline_is="the raw-loop process of figure 1 (same wiring and stores, no FastStream, no HTTP server)",
            higher_is_better=False,
        ),
        Row(
            figure="5. Peak RSS (VmHWM) of intake under the pipeline load (figure 2's run)",
            unit="MiB",
            measured=lat["services"]["peak_rss_mib"]["intake"],
            baseline=intake["baseline"]["peak_rss_mib"],
            baseline_is="the minimal intake endpoint of figure 3 (after its burst)",
            higher_is_better=False,
        ),
        Row(
            figure="5. Peak RSS (VmHWM) of intake after figure 3's burst",
            unit="MiB",
            measured=intake["services"]["peak_rss_mib"],
            baseline=intake["baseline"]["peak_rss_mib"],
            baseline_is="the minimal intake endpoint after the same burst",
            higher_is_better=False,
        ),
    ]
    return rows


NOTES = [
    "All figures: the genuine Kafka broker and mongod of `make up`, on this machine, each measurement in a database "
    "and topic prefix of its own (`bench_<run>_<phase>`), all deleted at the end. Services are started as ops run them "
    "(`python -m routing`, `python -m intake`, JSON logs at INFO to a file); every process has the machine's cores to share "
    "with Kafka, mongod and this load generator.",
    "Roster: three workers per team on duty 24/7 with room for 100 000 requests each, so every request is offered "
    "to a worker at once (the offer transaction is part of the work measured) and the dispatcher finds nothing queued.",
    "Requests (figure 1): a third by phone (callback deadline: two timers), half asking for a catalogue course, one in ten "
    "with little schooling (digital-divide programme); every request from a new person.",
    "1: requests pre-loaded on `training.requests.v1`, then the process is started; the window runs from the earliest "
    "processed-events record (written in the first message's transaction) to the CreateTime of the last "
    "`TrainingRequestRouted` (stamped by the routing process's producer), so start-up and group join are excluded. "
    "The baseline consumes a fresh copy of the same events on its own prefix and database. It builds its `RoutingService` "
    "with `routing.app.create_app` (the app is never served, its FastStream broker never started) and runs the same start-up "
    "hooks (indexes, roster, dispatcher and timer loops), so the domain work, the MongoDB writes and the logging are "
    "identical; only the Kafka plumbing differs (see `bench/raw_routing.py`).",
    "2: one intake and one router process; five warm-up requests first; then JSON API submissions at a steady rate for "
    "the given time (open loop: each sent on schedule, whatever the previous answers). Latency = time this process saw "
    "the request's `TrainingRequestRouted` minus time it received the 202 (same clock); bench.json also has it "
    "against the record's CreateTime.",
    "3: the JSON API (rate limits off) driven by N httpx clients as fast as answers come; the load generator shares the "
    "two cores, so both figures are capped by it alike. bench.json also has intake's rate until the relay emptied the outbox.",
    "5: `VmHWM` of /proc/<pid>/status read just before the process is stopped.",
    "Ratios are services / baseline; a target is met (✅) or not (❌); no ratio is asserted anywhere.",
]


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (uncommitted changes)' if dirty else ''}"


async def measure(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    results: dict[str, Any] = {"pipeline": {}, "latency": {}, "intake": {}}
    roster = workload.roster(bench.work_dir / "roster.yaml", capacity=100_000)
    events = workload.requests(args.requests)
    timeout = max(120.0, args.requests / 10)
    for variant in ("baseline", "services"):
        say(f"1. pipeline throughput, {variant}: {args.requests} requests pre-loaded")
        result = await figures.pipeline(bench, variant, events, roster=roster, timeout=timeout)
        results["pipeline"][variant] = result
        say(f"   {result['per_s']:.1f} req/s over {result['window_s']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB")
    per_s = args.latency_rate or results["pipeline"]["services"]["per_s"] / 2
    for variant in ("baseline", "services"):
        say(f"2. latency, {variant}: {per_s:.0f} req/s for {args.latency_seconds:.0f} s")
        result = await figures.latency(bench, variant, per_s=per_s, seconds=args.latency_seconds, roster=roster)
        results["latency"][variant] = result
        seen = result["latency_seen"]
        say(f"   p50 {seen['p50_ms']} ms, p99 {seen['p99_ms']} ms, {seen['missing']} not routed, {result['failures']} failures")
    for variant in ("baseline", "services"):
        say(f"3. intake, {variant}: {args.intake_requests} submissions, {args.concurrency} clients")
        result = await figures.intake_burst(bench, variant, requests=args.intake_requests, concurrency=args.concurrency)
        results["intake"][variant] = result
        say(f"   {result['accepted_per_s']:.0f} req/s accepted, {result['failures']} failures")
    if figures.replay_available():
        results["replay"] = {"pending": "pending: analytics.replay exists now; the lead wires it into bench/figures.py"}
    else:
        results["replay"] = {"pending": "pending: analytics.replay not available"}
    say(f"4. replay: {results['replay']['pending']}")
    if args.profile:
        profile_to = args.output / "bench-profile.txt"
        args.output.mkdir(parents=True, exist_ok=True)
        say(f"profile: the pipeline once more with routing under pyinstrument -> {profile_to}")
        result = await figures.pipeline(bench, "services", events, roster=roster, timeout=timeout * 3, profile_to=profile_to)
        results["profile"] = {"file": str(profile_to), "per_s_under_profiler": result["per_s"]}
    return results


async def run(args: argparse.Namespace) -> int:
    bench = Bench(KafkaSettings())
    say(f"run {bench.run_id}: databases and topic prefixes {bench.root}*, logs in {bench.log_dir}")
    started = datetime.now(UTC)
    try:
        results = await measure(args, bench)
    finally:
        removed = await bench.close(keep=args.keep)
        say(f"removed {len(removed['topics'])} topics and {len(removed['databases'])} databases")
    elapsed = time.monotonic() - _started
    rows = build_rows(results)
    context = {
        "when": started.isoformat(timespec="seconds"),
        "run": bench.run_id,
        "code": git_revision(),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "versions": ", ".join(f"{p} {version(p)}" for p in ("faststream", "aiokafka", "pymongo", "fastapi", "uvicorn")),
        "sizes": (
            f"{args.requests} pre-loaded requests; latency {args.latency_seconds:g} s at "
            f"{results['latency']['services']['target_per_s']:.1f} req/s; intake {args.intake_requests} submissions by "
            f"{args.concurrency} clients"
        ),
        "duration": f"{elapsed:.0f} s",
    }
    if "profile" in results:
        context["profile"] = f"routing under pyinstrument: {results['profile']['file']}"
    markdown = render_markdown(rows, title="formation-events benchmark", context=context, notes=NOTES)
    raw = {"context": context, "rows": [row.as_dict() for row in rows], "results": results, "cleanup": removed}
    md_path, json_path = write_reports(args.output, markdown=markdown, raw=raw)
    print(markdown)
    say(f"written {md_path} and {json_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
