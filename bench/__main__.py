"""`python -m bench` (`make bench`): the figures of issue 7 on the genuine broker and mongod, each with
a baseline measured in the same run, as a markdown table on stdout and in reports/bench.md, and the
raw numbers in reports/bench.json.

    uv run python -m bench [--quick] [--requests 3000] [--budget-seconds 40] [--latency-seconds 20]
                           [--intake-requests 2000] [--replay-events 20000] [--figures pipeline,latency,intake,replay]
    uv run --with pyinstrument python -m bench --figures "" --profile   # routing under pyinstrument only
    uv run python -m bench --figures pipeline,limit,hotpath,batch --batch-sizes 1,10,50,200

Exit status 1 when a figure failed (its row says why); no figure is ever compared with a threshold.
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
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import batch_sizes, figures, limit_loop, profiling, workload
from bench.harness import Bench, infra_pids
from bench.memory import peaks_by_service
from bench.report import Row, format_number, render_markdown, write_reports
from bench.stats import pooled_rate
from bench.targets import evaluate, targets_markdown
from bench.targets import get as _get
from scripts.launch import LOCAL_PRINCIPAL, REPO, kafka_env, mongodb_uri
from scripts.principals import TESTS
from services.settings import KafkaSettings

QUICK = {
    "requests": 600,
    "latency_seconds": 8.0,
    "intake_requests": 400,
    "replay_events": 4000,
    "budget_seconds": 15.0,
    "year_requests": 5000,
}
FIGURES = ("pipeline", "limit", "intake", "latency", "replay", "year", "hotpath", "batch")
NEEDS_PIPELINE = ("limit",)
"""Figures that take something from the pipeline's runs (the limit loop copies their documents)."""
PIPELINE_TARGET = 0.8
INTAKE_TARGET = 0.7
REPLAY_TARGET = 0.5
YEAR_REPLAY_BUDGET_S = 60.0
YEAR_WHAT_IF_BUDGET_S = 30.0
_started = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests pre-loaded for the pipeline figure (default 3000)")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="how long the steady latency load lasts (default 20)")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=None,
        help="requests/s of the latency load (default: half the lower of the pipeline's and intake's)",
    )
    parser.add_argument(
        "--intake-requests", type=int, default=2000, help="JSON API submissions for the intake figure (default 2000)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="vegeta workers for the intake figure (default 32)")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=40.0,
        help="at most this long for each pipeline run and each intake burst; the rate is then over what was done (default 40)",
    )
    parser.add_argument("--replay-events", type=int, default=20_000, help="records on the replayed topics (default 20000)")
    parser.add_argument(
        "--year-requests", type=int, default=100_000, help="requests of the year figure, with their events (default 100000)"
    )
    parser.add_argument(
        "--figures",
        default=",".join(FIGURES),
        help=f"comma-separated subset of {','.join(FIGURES)} (default: all; latency needs pipeline or --latency-rate)",
    )
    parser.add_argument(
        "--batch-sizes",
        type=batch_sizes.parse_sizes,
        default=batch_sizes.DEFAULT_SIZES,
        help="ROUTING_BATCH_MAX_RECORDS of each run of the batch figure (default 1,10,50,200)",
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
    if (
        min(args.requests, args.intake_requests, args.concurrency, args.replay_events, args.year_requests) < 1
        or min(args.latency_seconds, args.budget_seconds) <= 0
    ):
        parser.error("sizes must be positive")
    args.figures = tuple(f.strip() for f in args.figures.split(",") if f.strip())
    if unknown := set(args.figures) - set(FIGURES):
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    if needing := [f for f in NEEDS_PIPELINE if f in args.figures and "pipeline" not in args.figures]:
        parser.error(f"{', '.join(needing)} take the pipeline runs' documents: add pipeline")
    if "latency" in args.figures and "pipeline" not in args.figures and args.latency_rate is None:
        parser.error("the latency figure runs at half the pipeline's rate: add pipeline, or give --latency-rate")
    return args


NOT_RUN = "not run (--figures)"


def _partial(results: dict[str, Any], figure: str, done: str, what: str) -> str:
    """A note when a variant stopped at its time budget before the end of its work."""
    parts = [
        f"{variant} {_get(results, figure, variant, done)}"
        for variant in ("services", "baseline")
        if _get(results, figure, variant, "complete") is False
    ]
    return f" (time budget reached; {what}: {', '.join(parts)})" if parts else ""


def _run_rates(results: dict[str, Any]) -> str:
    """The pipeline's runs one by one, so that the spread between runs of one variant can be seen."""
    parts = []
    for variant in ("services", "baseline"):
        runs = _get(results, "pipeline", variant, "runs") or []
        if runs:
            parts.append(f"{variant} {' + '.join(format_number(run['per_s']) for run in runs)}")
    return f" [runs, req/s: {'; '.join(parts)}]" if parts else ""


def _on_kafka(results: dict[str, Any]) -> str:
    """Intake's rate onto Kafka and how many of its accepted requests were counted on the requests topic."""
    on_kafka = _get(results, "intake", "services", "on_kafka")
    if on_kafka is None:
        return ""
    accepted = _get(results, "intake", "services", "accepted") + _get(results, "intake", "services", "warm_ups")
    per_s = _get(results, "intake", "services", "on_kafka_per_s")
    return (
        f" [on Kafka: {format_number(per_s) if per_s else '?'} req/s; "
        f"{on_kafka} TrainingRequestReceived counted of {accepted} answered 202, warm-ups included]"
    )


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
            figure=(
                f"1. Pipeline throughput: one process on {n or 'N'} pre-loaded requests → decision stored + "
                f"TrainingRequestRouted, {PIPELINE_ORDER.count('services')} runs each"
            )
            + _partial(results, "pipeline", "routed", "routed in all runs")
            + _run_rates(results),
            unit="req/s",
            measured=_get(results, "pipeline", "services", "per_s"),
            baseline=_get(results, "pipeline", "baseline", "per_s"),
            baseline_is=(
                "same RoutingService.route from a raw AIOKafkaConsumer loop (commit per message)"
                " + raw idempotent AIOKafkaProducer"
            ),
            target=PIPELINE_TARGET,
            pending=skipped("pipeline"),
        ),
    ]
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        rows.append(
            Row(
                figure=f"2. Latency {label}, intake 202 → TrainingRequestRouted seen, at {at or 0:.0f} req/s "
                "(half the lower of routing's and intake's maximum)",
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
            figure=f"3. Intake: JSON API requests answered 202 (in the outbox), {clients or 'N'} vegeta workers"
            + _partial(results, "intake", "accepted", f"answered of {_get(results, 'intake', 'services', 'requests')}")
            + _on_kafka(results),
            unit="req/s",
            measured=_get(results, "intake", "services", "accepted_per_s"),
            baseline=_get(results, "intake", "baseline", "accepted_per_s"),
            baseline_is="minimal FastAPI endpoint writing the same outbox document (Outbox.add), nothing else",
            target=INTAKE_TARGET,
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


def within(seconds: float | None, budget: float) -> str:
    """The issue's budget for a year's figure, and whether the measured time kept it."""
    verdict = "" if seconds is None else (" ✅" if seconds < budget else " ❌")
    return f"target < {budget:g} s{verdict}"


def year_rows(results: dict[str, Any]) -> list[Row]:
    """Figure 7: a year replayed, and the what-if simulation over it; each against the issue's budget in seconds."""
    requests = _get(results, "year", "requests")
    events = _get(results, "year", "events")
    replay_s = _get(results, "year", "replay_s")
    whatif_s = _get(results, "year", "whatif_s")
    pending = NOT_RUN if "year" not in results else _get(results, "year", "pending")
    size = f"{requests or 'N'} requests, {events or 'N'} events"
    return [
        Row(
            figure=f"7. A year of Brussels volume ({size}) replayed into the read model, "
            + within(replay_s, YEAR_REPLAY_BUDGET_S),
            unit="s",
            measured=replay_s,
            baseline=_get(results, "year", "raw_read_s"),
            baseline_is="raw aiokafka read of the year's topics (getmany from the beginning, no decoding, no writing)",
            higher_is_better=False,
            pending=pending,
        ),
        Row(
            figure=(
                f"7. What-if over that year ({_get(results, 'year', 'what_if_requests') or 'N'} requests read from Kafka, "
                f"decided and simulated under two scenarios), {within(whatif_s, YEAR_WHAT_IF_BUDGET_S)}"
            ),
            unit="s",
            measured=whatif_s,
            baseline=_get(results, "year", "raw_read_s"),
            baseline_is="raw aiokafka read of the year's topics (all four, not only the requests what-if reads)",
            higher_is_better=False,
            pending=pending,
        ),
    ]


NOTES = [
    (
        "All figures: the genuine Kafka broker and mongod of `make up`, on this machine, each measurement in a database "
        "and topic prefix of its own (`bench_<run>_<phase>`), all deleted at the end. Services are started as ops run "
        "them (`python -m routing`, `python -m intake`, JSON logs at INFO to a file) and share the two cores with Kafka, "
        "mongod, this load generator and whatever else runs on the machine (see the load average and disturbances above)."
    ),
    (
        "Roster: three workers per team on duty 24/7 with room for 100 000 requests each, so every request is offered "
        "to a worker at once (the offer transaction is part of the work measured) and the dispatcher finds nothing queued."
    ),
    (
        "Requests (figure 1): a third by phone (callback deadline: two timers), half asking for a catalogue course, one "
        "in ten with little schooling (digital-divide programme); every request from a new person."
    ),
    (
        "1: requests pre-loaded on `training.requests.v1` of a fresh space, then the process is started; the window runs "
        "from the earliest processed-events record (written in the first message's transaction) to the CreateTime of the "
        "last `TrainingRequestRouted` (stamped by the routing process's producer), so start-up and group join are "
        "excluded; a run stops at the time budget and counts what was routed by then. Four runs in the order baseline, "
        "services, services, baseline, each variant's rate being all it routed over all its windows. The baseline "
        "(`bench/raw_routing.py`) builds its `RoutingService` with `routing.app.create_app` (the app is never served, "
        "its FastStream broker never started) and runs the same start-up hooks (indexes, roster, dispatcher and timer "
        "loops), so the domain work, the MongoDB writes and the logging are identical; only the Kafka plumbing differs."
    ),
    (
        "2: one intake and one router process on a fresh space; five warm-up requests first; then JSON API submissions "
        "at a steady rate (half the services' rate of figure 1) for the given time, open loop (each sent on schedule, "
        "whatever the previous answers). Latency = time this process saw the request's `TrainingRequestRouted` minus "
        "time it received the 202 (same clock); bench.json also has it against the record's CreateTime."
    ),
    (
        "3: the JSON API (rate limits off) driven by vegeta (Go, `bench/loadgen.py`, installed pinned into .local/bin) "
        "with N workers as fast as answers come, one body per request (each a new person; `hey` sends one body to "
        "all, which would make them one person), after eight warm-up requests; the same targets for the minimal "
        "endpoint. Every `TrainingRequestReceived` on the requests topic is counted; the on-Kafka rate runs to the "
        "CreateTime of the last one. The load generator shares the two cores with the endpoint."
    ),
    (
        "4: half requests, half their routing decisions, published to two topics of a space of their own; a raw aiokafka "
        "read of both (no group, all partitions from the beginning, `getmany` with replay's batch size, no decoding) "
        "then `analytics.replay.replay` of the same topics into a fresh read model (its own `ReplayStats.seconds`)."
    ),
    "5: `VmHWM` of /proc/<pid>/status read just before the process is stopped.",
    (
        "7: `bench.year.a_year`: requests over 2025 (working days and office hours mostly; web, e-mail and phone; "
        "campaigns), each routed by the shipped rules, most called back (some at the second attempt), enrolments, "
        "breaches where the callback came late, an exam request in forty; published with the events' times as "
        "timestamps to four topics of a space of their own. Then a raw read of them, `analytics.replay.replay` into a "
        "fresh read model (its `ReplayStats.seconds`), and `analytics.whatif.what_if` over 2025 (wall clock: reading "
        "the requests from Kafka, deciding them under the shipped rules, simulating the shipped roster's teams and "
        "one with two more advisors). The targets are the issue's budgets in seconds; the ratio is to the raw read. "
        "bench.json has, for figures 4 and 7, the CPU seconds the bench process, mongod and the broker used during "
        "the replay and the what-if (`replay_cpu_s`, `whatif_cpu_s`): which of them the step kept busy."
    ),
    "Ratios are services / baseline; a target is met (✅) or not (❌); no ratio is asserted anywhere.",
]


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (uncommitted changes)' if dirty else ''}"


PIPELINE_ORDER = ("baseline", "services", "services", "baseline")
"""ABBA: a drift of the machine's load during the figure weighs on both variants alike."""


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's pipeline runs as one figure: all requests routed over all windows."""
    return {
        "requests": runs[0]["requests"],
        "routed": sum(r["routed"] for r in runs),
        "complete": all(r["complete"] for r in runs),
        "window_s": sum(r["window_s"] for r in runs),
        "per_s": pooled_rate(runs, count="routed", seconds="window_s"),
        "peak_rss_mib": max((r["peak_rss_mib"] for r in runs if r["peak_rss_mib"] is not None), default=None),
        "rebalance_log_lines": sum(r.get("rebalance_log_lines", 0) for r in runs),
        "runs": runs,
    }


def disturbances(results: dict[str, Any]) -> list[str]:
    """What the run saw happen around it that makes its figures less trustworthy."""
    seen = []
    for figure, pids in results.get("infrastructure", {}).items():
        for name, (before, after) in pids.items():
            if before != after:
                seen.append(f"{name} restarted during {figure} (pid {before} → {after})")
    for variant in ("services", "baseline"):
        if lines := _get(results, "pipeline", variant, "rebalance_log_lines"):
            seen.append(f"pipeline {variant}: {lines} log lines about the `routing` group rebalancing")
        if failed := _get(results, "latency", variant, "failures"):
            seen.append(f"latency {variant}: {failed} submissions failed ({_get(results, 'latency', variant, 'first_failure')})")
        if missing := _get(results, "latency", variant, "latency_seen", "missing"):
            seen.append(f"latency {variant}: {missing} accepted requests not seen routed")
        if failed := _get(results, "intake", variant, "failures"):
            seen.append(f"intake {variant}: {failed} submissions failed ({_get(results, 'intake', variant, 'status_codes')})")
    if _get(results, "intake", "services", "all_on_kafka") is False:
        seen.append(f"intake: not every accepted request was seen on Kafka ({_on_kafka(results)})")
    return seen


def half_the_maximum(results: dict[str, Any]) -> float | None:
    """Half the rate the whole path takes: a request goes through intake, then routing, so the path's
    maximum is the lower of the two measured in this run (routing alone can outrun intake)."""
    maxima = [
        rate
        for rate in (_get(results, "pipeline", "services", "per_s"), _get(results, "intake", "services", "accepted_per_s"))
        if rate
    ]
    return min(maxima) / 2 if maxima else None


async def measure(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    """Run the chosen figures in order; one that fails is recorded as such and the others still run."""
    results: dict[str, Any] = {"infrastructure": {}}
    roster = workload.roster(bench.work_dir / "roster.yaml", capacity=100_000)
    events = workload.requests(args.requests)

    async def pipeline() -> dict[str, Any]:
        runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "services": []}
        for number, variant in enumerate(PIPELINE_ORDER, 1):
            say(f"1. pipeline throughput, run {number}/{len(PIPELINE_ORDER)}, {variant}: {args.requests} requests pre-loaded")
            result = await figures.pipeline(bench, variant, events, roster=roster, budget=args.budget_seconds, run=number)
            runs[variant].append(result)
            say(
                f"   {result['per_s']:.1f} req/s: {result['routed']} routed in {result['window_s']:.1f} s "
                f"(started in {result['startup_s']:.1f} s), peak RSS {result['peak_rss_mib']:.0f} MiB, "
                f"{result['rebalance_log_lines']} rebalance log lines"
            )
        return {variant: pooled(variant_runs) for variant, variant_runs in runs.items()}

    async def latency() -> dict[str, Any]:
        per_s = args.latency_rate or half_the_maximum(results)
        if not per_s:
            return {"pending": "not run: no pipeline rate to take half of (give --latency-rate)"}
        measured: dict[str, Any] = {}
        baseline_max = _get(results, "pipeline", "baseline", "per_s")
        if baseline_max is not None and baseline_max < per_s:
            # Past its maximum, the baseline's queue only grows: its latency would measure the run's length.
            say(f"2. latency, baseline: not run, it routes {baseline_max:.1f} req/s, below {per_s:.1f}")
            measured["baseline"] = {"pending": f"not run: the baseline routes {baseline_max:.0f} req/s, below this rate"}
        for variant in ("services",) if "baseline" in measured else ("baseline", "services"):
            say(f"2. latency, {variant}: {per_s:.1f} req/s for {args.latency_seconds:g} s")
            result = await figures.latency(bench, variant, per_s=per_s, seconds=args.latency_seconds, roster=roster)
            measured[variant] = result
            seen = result["latency_seen"]
            say(
                f"   p50 {seen['p50_ms'] or 0:.0f} ms, p99 {seen['p99_ms'] or 0:.0f} ms, {seen['missing']} not routed, "
                f"{result['failures']} failed submissions"
            )
        return measured

    async def intake() -> dict[str, Any]:
        measured: dict[str, Any] = {}
        for variant in ("baseline", "services"):
            say(f"3. intake, {variant}: {args.intake_requests} submissions, {args.concurrency} clients")
            result = await figures.intake_burst(
                bench, variant, requests=args.intake_requests, concurrency=args.concurrency, budget=args.budget_seconds
            )
            measured[variant] = result
            say(
                f"   {result['accepted_per_s']:.0f} req/s: {result['accepted']} accepted, {result['failures']} failures"
                + (f", {result['on_kafka']} on Kafka" if result["on_kafka"] is not None else "")
            )
        return measured

    async def replay() -> dict[str, Any]:
        if (missing := figures.replay_unavailable()) is not None:
            say(f"4. replay: analytics.replay not available ({missing})")
            return {"pending": f"pending: analytics.replay not available ({missing})"}
        say(f"4. replay: {args.replay_events} events, raw read then analytics.replay")
        result = await figures.replay(bench, events=args.replay_events)
        say(f"   replay {result['replay_per_s']:.0f} events/s, raw read {result['raw_read_per_s']:.0f} events/s")
        return result

    async def year() -> dict[str, Any]:
        say(f"7. year: {args.year_requests} requests with their events, published; raw read, replay, what-if")
        result = await figures.year(bench, requests=args.year_requests)
        say(
            f"   {result['events']} events published in {result['generate_and_publish_s']:.1f} s; raw read "
            f"{result['raw_read_s']:.1f} s, replay {result['replay_s']:.1f} s, what-if {result['whatif_s']:.1f} s; "
            f"CPU s during the replay: {result['replay_cpu_s']}"
        )
        return result

    steps = {"pipeline": pipeline, "latency": latency, "intake": intake, "replay": replay, "year": year}
    steps.update(issue15_steps(args, bench, events, roster, results))
    for name in FIGURES:
        if name not in args.figures:
            continue
        before = infra_pids()
        try:
            results[name] = await steps[name]()
        except (Exception, asyncio.CancelledError) as error:  # the other figures still run; the table says what failed
            current = asyncio.current_task()
            if isinstance(error, asyncio.CancelledError) and current is not None and current.cancelling():
                raise  # interrupted (Ctrl-C): clean up and stop
            say(f"{name} failed: {type(error).__name__}: {error}")
            results[name] = {
                "pending": f"failed: {type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}",
                "failed": True,
            }
            for process in list(bench.processes):
                await bench.stop(process)
        after = infra_pids()
        results["infrastructure"][name] = {key: (before[key], after[key]) for key in after}
    if args.profile:
        results["profile"] = await profile(args, bench, events, roster)
    results["memory"] = peaks_by_service(bench.rss_peaks)
    results["rss_readings"] = [reading.as_dict() for reading in bench.rss_peaks]
    return results


def issue15_steps(
    args: argparse.Namespace, bench: Bench, events: list[Any], roster: Path, results: dict[str, Any]
) -> dict[str, Callable[[], Coroutine[Any, Any, dict[str, Any]]]]:
    """The figures of issue 15's honest figures: the limit loop, the profile, the batch sizes."""

    async def limit() -> dict[str, Any]:
        runs = _get(results, "pipeline", "services", "runs") or []
        source = max(runs, key=lambda run: run["decisions_stored"], default=None)
        if source is None or not source["decisions_stored"]:
            return {"pending": "not run: no pipeline run routed anything to copy documents from"}
        say(f"limit loop: {args.requests} requests pre-loaded, documents copied from {source['database']}")
        result = await limit_loop.limit_figure(bench, events, templates_from=source["database"], budget=args.budget_seconds)
        say(
            f"   {result['per_s']:.0f} req/s: {result['moved']} moved in {result['window_s']:.1f} s, "
            f"{result['bson_bytes_per_request']:.0f} BSON bytes per request in {len(result['documents_per_request'])} collections"
        )
        return result

    async def hotpath() -> dict[str, Any]:
        say("hot path: the pipeline once more, py-spy attached to routing")
        result = await profiling.hotpath(
            bench, events, roster=roster, budget=args.budget_seconds, output=args.output / "bench-profile.collapsed.txt"
        )
        say(f"   {result.get('samples', 0)} samples" if "pending" not in result else f"   {result['pending']}")
        return result

    async def batch() -> dict[str, Any]:
        say(f"batch sizes: the pipeline with {batch_sizes.BATCH_SETTING} = {', '.join(map(str, args.batch_sizes))}")
        result = await batch_sizes.sweep(bench, events, roster=roster, budget=args.budget_seconds, sizes=args.batch_sizes)
        say("   " + ", ".join(f"{p['batch_max_records']}: {p['per_s']:.0f} req/s" for p in result["points"]))
        return result

    return {"limit": limit, "hotpath": hotpath, "batch": batch}


LIMIT_TARGET = 0.5


def issue15_rows(results: dict[str, Any]) -> list[Row]:
    """Rows of issue 15's figures for the main table: routing against its physical limit."""
    return [
        Row(
            figure="6. Routing against its physical limit: figure 1's services rate over the limit loop's, same requests",
            unit="req/s",
            measured=_get(results, "pipeline", "services", "per_s"),
            baseline=_get(results, "limit", "per_s"),
            baseline_is=(
                f"bench/limit_loop.py: raw getmany of up to {_get(results, 'limit', 'batch_size') or 'N'} records, one "
                "majority transaction inserting routing's own documents per batch (insert_many per collection), one "
                "routed-sized record produced per request, no logic"
            ),
            target=LIMIT_TARGET,
            pending=None if "limit" in results else NOT_RUN,
        )
    ]


ISSUE15_NOTES = [
    (
        "6: the limit loop (`bench/limit_loop.py`) reads the same pre-loaded requests with a raw consumer; per batch it "
        "inserts, in one majority transaction, copies of the documents the services' pipeline run with the most "
        "decisions left in its database (every collection with at least 0.1 document per decision, in the same "
        "proportions: decision, case, queue entry, processed-event record, outbox entry, timers...), then produces one "
        "record per request with the value and headers of that run's `TrainingRequestRouted` outbox entry and commits "
        "its offsets. Window: its first batch to the CreateTime of its last record. No indexes but `_id`."
    ),
    (
        "Memory: `VmHWM` (the peak resident set over the process's life) of every process the run starts, read just "
        "before it is stopped at the end of its figure; per service, the highest of its processes started as "
        "`python -m <service>` (baselines and processes under pyinstrument are in bench.json only)."
    ),
    (
        "Hot path: the pipeline once more with py-spy attached to `python -m routing` (sampled from outside, not paused, "
        "idle threads left out); the collapsed stacks are in reports/bench-profile.collapsed.txt."
    ),
    (
        "Batch sizes: the pipeline once per `ROUTING_BATCH_MAX_RECORDS`, each in a space of its own, on the same "
        "pre-loaded requests; the chart is reports/bench-batch-size.png."
    ),
    "The load average is read before the first figure and after the last: a busy machine lowers every figure.",
]


def issue15_sections(results: dict[str, Any], output: Path) -> list[str]:
    """The report's sections after the table: the targets, the batch-size chart, the profile."""
    sections = ["## Targets of issue 15\n\n" + targets_markdown(evaluate(results))]
    if "batch" in results:
        chart = None
        if "points" in results["batch"]:
            chart = batch_sizes.plot(results["batch"], output / batch_sizes.CHART, limit_per_s=_get(results, "limit", "per_s"))
        sections.append(batch_sizes.batch_markdown(results["batch"], chart))
    if "hotpath" in results:
        sections.append(profiling.hotpath_markdown(results["hotpath"]))
    return sections


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
    render = [
        sys.executable,
        "-m",
        "pyinstrument",
        "--load",
        str(session),
        "-r",
        "text",
        "--no-color",
        "--show-regex",
        PROFILE_SHOW,
    ]
    await asyncio.to_thread(subprocess.run, [*render, "-o", str(text)], check=True)
    session.unlink()  # ~100 MB of samples; the text is what is read
    return {"file": str(text), "per_s_under_profiler": result["per_s"], "routed": result["routed"]}


async def run(args: argparse.Namespace) -> int:
    # Leader elections right after a topic is created make aiokafka log retried sends: noise here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    bench = Bench(KafkaSettings())
    say(f"run {bench.run_id}: databases and topic prefixes {bench.root}*, logs in {bench.log_dir}")
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    say(f"load average (1, 5, 15 min) at start: {' '.join(f'{x:.1f}' for x in load_before)} on {os.cpu_count()} cores")
    try:
        results = await measure(args, bench)
    finally:
        removed = await bench.close(keep=args.keep)
        say(f"removed {len(removed['topics'])} topics and {len(removed['databases'])} databases")
        for error in removed["errors"]:
            say(f"clean-up: {error}")
    elapsed = time.monotonic() - _started
    rows = build_rows(results) + issue15_rows(results) + year_rows(results)
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
    context["disturbances seen"] = "; ".join(disturbances(results)) or "none"
    if removed["errors"]:
        context["clean-up"] = "; ".join(removed["errors"])
    if "profile" in results:
        profiled = results["profile"]
        context["profile"] = f"routing under pyinstrument: {profiled.get('file') or profiled.get('skipped')}"
    say(f"load average (1, 5, 15 min) at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    markdown = render_markdown(
        rows,
        title="formation-events benchmark",
        context=context,
        notes=[*NOTES, *ISSUE15_NOTES],
        sections=issue15_sections(results, args.output),
    )
    raw = {"context": context, "rows": [row.as_dict() for row in rows], "results": results, "cleanup": removed}
    md_path, json_path = write_reports(args.output, markdown=markdown, raw=raw)
    print(markdown)
    say(f"written {md_path} and {json_path}")
    failed = [name for name in FIGURES if _get(results, name, "failed")]
    if failed:
        say(f"failed: {', '.join(failed)} (see the table and the logs in {bench.log_dir})")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    # Like the test suite, on scripts/infra.sh's servers the bench (per-run topic prefixes, beyond any
    # service's ACLs) and the services it starts authenticate as `tests` (scripts/principals.py).
    os.environ.setdefault(LOCAL_PRINCIPAL, TESTS)
    os.environ.update(kafka_env())
    # The processes started with `Bench.start_module` (baselines, the limit loop) and the replay read
    # MONGODB_URI from the environment; without it they would reach mongod unauthenticated.
    os.environ.setdefault("MONGODB_URI", mongodb_uri(TESTS))
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
