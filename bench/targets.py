"""Issue 15's targets, checked against one run's figures: a table of what was aimed at, what was
measured, the limit it is compared with (measured in the same run) and whether the target was met.
A report, never an assertion: a missed target is a finding, not a failure of the bench."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.report import cell, format_number
from bench.stats import ratio

MET, MISSED, UNKNOWN = "✅", "❌", "—"
MEMORY_LIMIT_MIB = 150.0
YEAR_REPLAY_KEY, YEAR_WHATIF_KEY = "replay_s", "whatif_s"
"""The keys of `results["year"]` that hold the two timings of a year's figure."""


@dataclass(frozen=True)
class Check:
    figure: str
    target: str
    measured: str
    limit: str
    met: bool | None
    """None when the figure was not measured in this run."""

    def as_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "target": self.target, "measured": self.measured, "limit": self.limit, "met": self.met}


def get(results: dict[str, Any], *path: str) -> Any:
    """A nested value of the results, or None when a figure or a key is missing."""
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _all(*conditions: bool | None) -> bool | None:
    """True when every condition holds, False when one fails, None when one could not be evaluated."""
    if any(c is False for c in conditions):
        return False
    if any(c is None for c in conditions):
        return None
    return True


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _below(value: float | None, bound: float) -> bool | None:
    return None if value is None else value < bound


def _number(value: float | None, unit: str) -> str:
    return "not measured" if value is None else f"{format_number(value)} {unit}"


def _ratio_text(value: float | None) -> str:
    return "" if value is None else f", ratio {value:.2f}"


def routing(results: dict[str, Any]) -> Check:
    per_s = get(results, "pipeline", "services", "per_s")
    limit = get(results, "limit", "per_s")
    share = ratio(per_s, limit)
    return Check(
        "routing, one process",
        "≥ 500 req/s and ≥ 0.5 of the limit loop",
        _number(per_s, "req/s") + _ratio_text(share),
        f"limit loop {_number(limit, 'req/s')}",
        _all(_at_least(per_s, 500.0), _at_least(share, 0.5)),
    )


def latency(results: dict[str, Any]) -> Check:
    p99 = get(results, "latency", "services", "latency_seen", "p99_ms")
    at = get(results, "latency", "services", "target_per_s")
    return Check(
        "latency at half max",
        "p99 < 100 ms, 202 → routed",
        _number(p99, "ms") + ("" if at is None else f" at {at:.0f} req/s"),
        "—",
        _below(p99, 100.0),
    )


def intake(results: dict[str, Any]) -> Check:
    accepted = get(results, "intake", "services", "accepted_per_s")
    on_kafka = get(results, "intake", "services", "on_kafka_per_s")
    minimal = get(results, "intake", "baseline", "accepted_per_s")
    share = ratio(accepted, minimal)
    slowest = min((v for v in (accepted, on_kafka) if v is not None), default=None)
    onto_kafka = "" if on_kafka is None else f", {format_number(on_kafka)} onto Kafka"
    measured = _number(accepted, "req/s into the outbox") + onto_kafka
    return Check(
        "intake JSON API, one process",
        "≥ 1000 req/s into the outbox and onto Kafka, ≥ 0.7 of the minimal endpoint",
        measured + _ratio_text(share),
        f"minimal endpoint {_number(minimal, 'req/s')}",
        _all(_at_least(slowest, 1000.0), _at_least(share, 0.7)),
    )


def replay(results: dict[str, Any]) -> Check:
    per_s = get(results, "replay", "replay_per_s")
    raw = get(results, "replay", "raw_read_per_s")
    share = ratio(per_s, raw)
    return Check(
        "replay",
        "≥ 0.5 of the raw read",
        _number(per_s, "events/s") + _ratio_text(share),
        f"raw aiokafka read {_number(raw, 'events/s')}",
        _at_least(share, 0.5),
    )


def year(results: dict[str, Any]) -> Check:
    replay_s = get(results, "year", YEAR_REPLAY_KEY)
    whatif_s = get(results, "year", YEAR_WHATIF_KEY)
    return Check(
        "a year (100k requests)",
        "replay < 60 s, what-if < 30 s",
        f"replay {_number(replay_s, 's')}, what-if {_number(whatif_s, 's')}",
        "—",
        _all(_below(replay_s, 60.0), _below(whatif_s, 30.0)),
    )


def memory(results: dict[str, Any]) -> list[Check]:
    """One check per service the run started (its highest peak over all its processes)."""
    peaks: dict[str, dict[str, Any]] = get(results, "memory") or {}
    if not peaks:
        return [Check("memory", f"< {MEMORY_LIMIT_MIB:.0f} MiB RSS per service under load", "not measured", "—", None)]
    return [
        Check(
            f"memory: {service}",
            f"< {MEMORY_LIMIT_MIB:.0f} MiB RSS under load",
            f"{_number(peak['peak_mib'], 'MiB')} peak ({peak['processes']} processes)",
            "—",
            _below(peak["peak_mib"], MEMORY_LIMIT_MIB),
        )
        for service, peak in peaks.items()
    ]


CHECKS: Sequence[Callable[[dict[str, Any]], Check]] = (routing, latency, intake, replay, year)


def evaluate(results: dict[str, Any]) -> list[Check]:
    """Every target of issue 15, in the issue's order, against one run's results."""
    return [check(results) for check in CHECKS] + memory(results)


def mark(met: bool | None) -> str:
    return UNKNOWN if met is None else MET if met else MISSED


def targets_markdown(checks: Sequence[Check]) -> str:
    """The targets table of the report."""
    header = ("Figure", "Target (issue 15)", "Measured", "Limit (same run)", "Met?")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for check in checks:
        cells = (check.figure, check.target, check.measured, check.limit, mark(check.met))
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
