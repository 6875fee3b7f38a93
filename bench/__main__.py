"""`python -m bench` (`make bench`): the figures of issue 7 on the genuine broker and mongod, each with
a baseline measured in the same run, as a markdown table on stdout and in reports/bench.md, and the
raw numbers in reports/bench.json.

    uv run python -m bench [--requests 3000] [--latency-seconds 20] [--intake-requests 2000] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
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

QUICK = {"requests": 600, "latency_seconds": 8.0, "intake_requests": 400, "replay_events": 4000, "budget_seconds": 30.0}
FIGURES = ("pipeline", "latency", "intake", "replay")
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
    parser.add_argument(
        "--budget-seconds", type=float, default=75.0,
        help="at most this long for each pipeline run and each intake burst; the rate is then over what was done (default 75)",
    )
    parser.add_argument("--replay-events", type=int, default=20_000, help="records on the replayed topics (default 20000)")
    parser.add_argument(
        "--figures", default=",".join(FIGURES), help=f"comma-separated subset of {','.join(FIGURES)} (default: all; latency needs pipeline or --latency-rate)"
    )
    parser.add_argument("--quick", action="store_true", help=f"small sizes for a smoke run: {QUICK}")
    parser.add_argument("--profile", action="store_true", help="also run the pipeline once with routing under pyinstrument")
    parser.add_argument("--output", type=Path, default=REPO / "reports", help="where bench.md and bench.json go")
    parser.add_argument("--keep", action="store_true", help="keep this run's topics and databases (for inspection)")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    if min(args.requests, args.intake_requests, args.concurrency, args.replay_events) < 1 or min(args.latency_seconds, args.budget_seconds) <= 0:
        parser.error("sizes must be positive")
    args.figures = tuple(f.strip() for f in args.figures.split(",") if f.strip())
    if unknown := set(args.figures) - set(FIGURES):
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    if "latency" in args.figures and "pipeline" not in args.figures and args.latency_rate is None:
        parser.error("the latency figure runs at half the pipeline's rate: add pipeline, or give --latency-rate")
    return args


def _get(results: dict[str, Any], *path: str) -> Any:
    """A nested value of the results, or None when that figure was not run."""
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


NOT_RUN = "not run (--figures)"


def _partial(results: dict[str, Any], figure: str, done: str) -> str:
    """A note when a variant stopped at the time budget before the end of its work."""
    parts = [
        f"{variant} {_get(results, figure, variant, done)}"
        for variant in ("services", "baseline")
        if _get(results, figure, variant, "complete") is False
    ]
    if not parts:
        return ""
    return f" (time budget reached: {', '.join(parts)} of {_get(results, figure, 'services', 'requests')} done)"
LATENCY_BASELINE = "same intake process, routing replaced by the raw loop of figure 1, same rate"


def build_rows(results: dict[str, Any]) -> list[Row]:
    """The table's rows from the raw results; a figure that was not run keeps its row, marked so."""
    n = _get(results, "pipeline", "services", "requests")
    at = _get(results, "latency", "services", "target_per_s")
    clients = _get(results, "intake", "services", "concurrency")
    replay_events = _get(results, "replay", "events")

    def skipped(figure: str) -> str | None:
        return NOT_RUN if figure not in results else _get(results, figure, "pending")

    rows = [
        Row(
            figure=f"1. Pipeline throughput: {n or 'N'} pre-loaded requests → decision stored + TrainingRequestRouted, one process"
            + _partial(results, "pipeline", "routed"),
            unit="req/s",
            measured=_get(results, "pipeline", "services", "per_s"),
            baseline=_get(results, "pipeline", "baseline", "per_s"),
            baseline_is="same RoutingService.route from a raw AIOKafkaConsumer loop (commit per message) + raw idempotent AIOKafkaProducer",
            target=PIPELINE_TARGET,
            pending=skipped("pipeline"),
        ),
    ]
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        rows.append(
            Row(
                figure=f"2. Latency {label}, intake 202 → TrainingRequestRouted seen, at {at or 0:.0f} req/s",
                unit="ms",
                measured=_get(results, "latency", "services", "latency_seen", key),
                baseline=_get(results, "latency", "baseline", "latency_seen", key),
                baseline_is=LATENCY_BASELINE,
                higher_is_better=False,
                pending=skipped("latency"),
            )
        )
    rows += [
        Row(
            figure=f"3. Intake: JSON API requests answered 202 (in the outbox), {clients or 'N'} clients"
            + _partial(results, "intake", "accepted"),
            unit="req/s",
            measured=_get(results, "intake", "services", "accepted_per_s"),
            baseline=_get(results, "intake", "baseline", "accepted_per_s"),
            baseline_is="minimal FastAPI endpoint writing the same outbox document (Outbox.add), nothing else",
            pending=skipped("intake"),
        ),
        Row(
            figure=f"4. Replay into the report's read model (analytics.replay), {replay_events or 'N'} events",
            unit="events/s",
            measured=_get(results, "replay", "replay_per_s"),
            baseline=_get(results, "replay", "raw_read_per_s"),
            baseline_is="raw aiokafka read of the same topics (getmany from the beginning, no decoding, no writing)",
            target=REPLAY_TARGET,
            pending=skipped("replay"),
        ),
        Row(
            figure="5. Peak RSS (VmHWM) of routing, figure 1's run",
            unit="MiB",
            measured=_get(results, "pipeline", "services", "peak_rss_mib"),
            baseline=_get(results, "pipeline", "baseline", "peak_rss_mib"),
            baseline_is="the raw-loop process of figure 1 (same wiring and stores, no FastStream, no HTTP server)",
            higher_is_better=False,
            pending=skipped("pipeline"),
        ),
        Row(
            figure="5. Peak RSS (VmHWM) of routing under the pipeline load of figure 2",
            unit="MiB",
            measured=_get(results, "latency", "services", "peak_rss_mib", "routing"),
            baseline=_get(results, "latency", "baseline", "peak_rss_mib", "routing"),
            baseline_is="the raw-loop process in figure 2's baseline run",
            higher_is_better=False,
            pending=skipped("latency"),
        ),
        Row(
            figure="5. Peak RSS (VmHWM) of intake under the pipeline load of figure 2",
            unit="MiB",
            measured=_get(results, "latency", "services", "peak_rss_mib", "intake"),
            baseline=_get(results, "intake", "baseline", "peak_rss_mib"),
            baseline_is="the minimal intake endpoint of figure 3, after its burst",
            higher_is_better=False,
            pending=skipped("latency") or skipped("intake"),
        ),
        Row(
            figure="5. Peak RSS (VmHWM) of intake after figure 3's burst",
            unit="MiB",
            measured=_get(results, "intake", "services", "peak_rss_mib"),
            baseline=_get(results, "intake", "baseline", "peak_rss_mib"),
            baseline_is="the minimal intake endpoint after the same burst",
            higher_is_better=False,
            pending=skipped("intake"),
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
    "4: half requests, half their routing decisions, published to two topics of a space of their own; a raw aiokafka read "
    "of both (no group, all partitions from the beginning, `getmany` with replay's batch size, no decoding) then "
    "`analytics.replay.replay` of the same topics into a fresh read model (its own `ReplayStats.seconds`).",
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
    results: dict[str, Any] = {}
    roster = workload.roster(bench.work_dir / "roster.yaml", capacity=100_000)
    events = workload.requests(args.requests)
    if "pipeline" in args.figures:
        results["pipeline"] = {}
        for variant in ("baseline", "services"):
            say(f"1. pipeline throughput, {variant}: {args.requests} requests pre-loaded")
            result = await figures.pipeline(bench, variant, events, roster=roster, budget=args.budget_seconds)
            results["pipeline"][variant] = result
            say(
                f"   {result['per_s']:.1f} req/s: {result['routed']} routed in {result['window_s']:.1f} s "
                f"(started in {result['startup_s']:.1f} s), peak RSS {result['peak_rss_mib']:.0f} MiB"
            )
    if "latency" in args.figures:
        per_s = args.latency_rate or results["pipeline"]["services"]["per_s"] / 2
        results["latency"] = {}
        for variant in ("baseline", "services"):
            say(f"2. latency, {variant}: {per_s:.1f} req/s for {args.latency_seconds:g} s")
            result = await figures.latency(bench, variant, per_s=per_s, seconds=args.latency_seconds, roster=roster)
            results["latency"][variant] = result
            seen = result["latency_seen"]
            say(
                f"   p50 {seen['p50_ms'] or 0:.0f} ms, p99 {seen['p99_ms'] or 0:.0f} ms, {seen['missing']} not routed, "
                f"{result['failures']} failed submissions"
            )
    if "intake" in args.figures:
        results["intake"] = {}
        for variant in ("baseline", "services"):
            say(f"3. intake, {variant}: {args.intake_requests} submissions, {args.concurrency} clients")
            result = await figures.intake_burst(
                bench, variant, requests=args.intake_requests, concurrency=args.concurrency, budget=args.budget_seconds
            )
            results["intake"][variant] = result
            say(f"   {result['accepted_per_s']:.0f} req/s: {result['accepted']} accepted, {result['failures']} failures")
    if "replay" in args.figures:
        if (missing := figures.replay_unavailable()) is not None:
            results["replay"] = {"pending": f"pending: analytics.replay not available ({missing})"}
            say(f"4. replay: {results['replay']['pending']}")
        else:
            say(f"4. replay: {args.replay_events} events, raw read then analytics.replay")
            results["replay"] = await figures.replay(bench, events=args.replay_events)
            say(f"   replay {results['replay']['replay_per_s']:.0f} events/s, raw read {results['replay']['raw_read_per_s']:.0f} events/s")
    if args.profile:
        results["profile"] = await profile(args, bench, events, roster)
    return results


PROFILE_SHOW = r".*/(faststream|aiokafka|pymongo)/.*"


async def profile(args: argparse.Namespace, bench: Bench, events: list[Any], roster: Path) -> dict[str, Any]:
    """The pipeline once more, routing under pyinstrument (wall-clock samples of the whole process,
    idle time in the event loop's select included); its session is rendered as text, with the frames
    of FastStream, aiokafka and PyMongo shown. Needs pyinstrument: `uv run --with pyinstrument`."""
    if importlib.util.find_spec("pyinstrument") is None:
        say("profile: pyinstrument is not installed; run `uv run --with pyinstrument python -m bench --profile`")
        return {"skipped": "pyinstrument not installed"}
    args.output.mkdir(parents=True, exist_ok=True)
    session = args.output / "bench-profile.pyisession"
    text = args.output / "bench-profile.txt"
    say(f"profile: the pipeline once more, routing under pyinstrument -> {text}")
    result = await figures.pipeline(bench, "services", events, roster=roster, budget=args.budget_seconds, profile_to=session)
    if not session.exists() or session.stat().st_size == 0:
        say(f"profile: pyinstrument wrote no session; see {bench.log_dir}")
        return {"skipped": "no session written", "per_s_under_profiler": result["per_s"]}
    render = [sys.executable, "-m", "pyinstrument", "--load", str(session), "-r", "text", "--no-color", "--show-regex", PROFILE_SHOW]
    await asyncio.to_thread(subprocess.run, [*render, "-o", str(text)], check=True)
    return {"file": str(text), "session": str(session), "per_s_under_profiler": result["per_s"], "routed": result["routed"]}


async def run(args: argparse.Namespace) -> int:
    # Leader elections right after a topic is created make aiokafka log retried sends: noise here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    bench = Bench(KafkaSettings())
    say(f"run {bench.run_id}: databases and topic prefixes {bench.root}*, logs in {bench.log_dir}")
    started = datetime.now(UTC)
    load_before = os.getloadavg()
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
            f"{_get(results, 'latency', 'services', 'target_per_s') or 0:.1f} req/s; intake {args.intake_requests} "
            f"submissions by {args.concurrency} clients; replay {args.replay_events} events"
        ),
        "duration": f"{elapsed:.0f} s",
        "load average (1, 5, 15 min) before → after": (
            f"{' '.join(f'{x:.1f}' for x in load_before)} → {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
            f"on {os.cpu_count()} cores (other processes share the machine, broker and mongod)"
        ),
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
