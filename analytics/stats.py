"""The two summary statistics the reports use, defined once so that a reader can check them by hand."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["median", "percentile"]


def median(values: Sequence[float]) -> float | None:
    """The middle value (the mean of the two middle ones for an even count); None when empty."""
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `share` of the values at or below it.

    Always one of the values (no interpolation), so p90 of ten waits is the ninth shortest.
    """
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]
