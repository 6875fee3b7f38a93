"""Routing throughput against its batch size: the pipeline figure once per ROUTING_BATCH_MAX_RECORDS,
and a PNG chart of the rates next to the limit loop's and the issue's target (reports/bench-batch-size.png).

A routing build without that setting ignores the variable: every point is then the same
one-at-a-time routing, and the chart says so in its title.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import figures
from bench.harness import Bench
from schemas import TrainingRequestReceived

BATCH_SETTING = "ROUTING_BATCH_MAX_RECORDS"
DEFAULT_SIZES = (1, 10, 50, 200)
ROUTING_TARGET_PER_S = 500.0
CHART = "bench-batch-size.png"


def batching_known() -> bool:
    """Whether this build's routing settings have `batch_max_records` (the variable is read)."""
    from routing.settings import RoutingSettings

    return "batch_max_records" in RoutingSettings.model_fields


def parse_sizes(text: str) -> tuple[int, ...]:
    """`1,10,50,200` -> (1, 10, 50, 200): positive, distinct, in increasing order."""
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch sizes must be positive integers: {text!r}")
    return tuple(sizes)


async def sweep(
    bench: Bench, events: list[TrainingRequestReceived], *, roster: Path, budget: float, sizes: Sequence[int]
) -> dict[str, Any]:
    """One services pipeline run per batch size, each in a space of its own."""
    points = []
    for number, size in enumerate(sizes):
        result = await figures.pipeline(
            bench, "services", events, roster=roster, budget=budget, run=100 + number, settings={BATCH_SETTING: str(size)}
        )
        points.append({"batch_max_records": size, **{k: result[k] for k in ("per_s", "routed", "complete", "window_s")}})
    return {"setting": BATCH_SETTING, "honoured": batching_known(), "points": points}


def plot(result: dict[str, Any], path: Path, *, limit_per_s: float | None = None) -> Path:
    """The chart: routing requests/s per batch size (log scale), the limit loop's rate and the target."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = result["points"]
    sizes = [p["batch_max_records"] for p in points]
    rates = [p["per_s"] for p in points]
    figure = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(figure)  # Agg, no display: the figure draws into a PNG only
    axes = figure.add_subplot()
    axes.plot(sizes, rates, marker="o", label="python -m routing (one process)")
    for size, per_s in zip(sizes, rates, strict=True):
        axes.annotate(f"{per_s:.0f}", (size, per_s), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    if limit_per_s:
        axes.axhline(limit_per_s, linestyle="--", color="grey", label=f"limit loop, same run ({limit_per_s:.0f}/s)")
    axes.axhline(ROUTING_TARGET_PER_S, linestyle=":", color="green", label=f"target ({ROUTING_TARGET_PER_S:.0f}/s)")
    axes.set_xscale("log")
    axes.set_xticks(sizes, [str(s) for s in sizes])
    axes.set_xlabel(f"{BATCH_SETTING}")
    axes.set_ylabel("requests routed per second")
    axes.set_ylim(bottom=0)
    honoured = "" if result["honoured"] else " (setting unknown to this routing build: ignored)"
    axes.set_title(f"Routing throughput against batch size{honoured}", fontsize=10)
    axes.legend(fontsize=8, loc="best")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def batch_markdown(result: dict[str, Any], chart: Path | None) -> str:
    """The report's section: a line per batch size and the chart's link."""
    lines = ["## Routing throughput against batch size", ""]
    if "points" not in result:
        return "\n".join([*lines, str(result.get("pending", "not run")), ""])
    if not result["honoured"]:
        lines += [f"This routing build has no `batch_max_records` setting: `{BATCH_SETTING}` was ignored.", ""]
    lines += ["| batch_max_records | req/s | routed |", "|---|---|---|"]
    lines += [f"| {p['batch_max_records']} | {p['per_s']:.1f} | {p['routed']} |" for p in result["points"]]
    if chart is not None:
        lines += ["", f"![routing throughput against batch size]({chart.name})"]
    return "\n".join(lines) + "\n"
