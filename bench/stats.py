"""The arithmetic of the benchmark: percentiles, rates and ratios. Pure functions, unit-tested."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between the closest ranks.

    The same definition as numpy's default and `statistics.quantiles(..., method="inclusive")`:
    p0 is the minimum, p100 the maximum, p50 of an even count the mean of the middle two.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must be within 0..100, not {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rate(count: float, seconds: float) -> float:
    """Events per second; a window that is not positive is a measurement error, not infinity."""
    if seconds <= 0:
        raise ValueError(f"cannot compute a rate over {seconds} s")
    return count / seconds


def ratio(measured: float | None, baseline: float | None) -> float | None:
    """measured / baseline, or None when either is missing or the baseline is not positive."""
    if measured is None or baseline is None or baseline <= 0 or math.isnan(baseline) or math.isnan(measured):
        return None
    return measured / baseline


def meets(value: float | None, target: float | None, *, higher_is_better: bool = True) -> bool | None:
    """Whether a ratio meets its target (None when there is no ratio or no target)."""
    if value is None or target is None:
        return None
    return value >= target if higher_is_better else value <= target


@dataclass(frozen=True)
class LatencySummary:
    """Latencies in milliseconds of the requests whose output was seen; `missing` were not."""

    count: int
    missing: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise_latencies(started: Mapping[str, float], finished: Mapping[str, float]) -> LatencySummary:
    """Latency of each key from its start time to its finish time (both in seconds, one clock)."""
    latencies = [(finished[key] - at) * 1000.0 for key, at in started.items() if key in finished]
    missing = sum(1 for key in started if key not in finished)
    if not latencies:
        return LatencySummary(0, missing, None, None, None, None, None)
    return LatencySummary(
        count=len(latencies),
        missing=missing,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies),
        mean_ms=sum(latencies) / len(latencies),
    )


def pooled_rate(runs: Sequence[Mapping[str, float]], *, count: str, seconds: str) -> float:
    """The rate of several runs taken together: all their events over all their windows (a long run
    weighs more than a short one, unlike the mean of the runs' rates)."""
    total = sum(run[seconds] for run in runs)
    return rate(sum(run[count] for run in runs), total)
