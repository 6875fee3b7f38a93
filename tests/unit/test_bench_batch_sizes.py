"""The batch-size figure: its sizes, its chart and its section of the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.batch_sizes import CHART, batch_markdown, parse_sizes, plot

pytestmark = pytest.mark.unit


def sweep(honoured: bool = True) -> dict[str, Any]:
    points = [(1, 60.0), (10, 180.0), (50, 420.0), (200, 610.0)]
    return {
        "setting": "ROUTING_BATCH_MAX_RECORDS",
        "honoured": honoured,
        "points": [{"batch_max_records": n, "per_s": r, "routed": 600, "complete": True, "window_s": 600 / r} for n, r in points],
    }


def test_sizes_are_positive_distinct_and_in_order() -> None:
    assert parse_sizes("200, 1,10,50,10") == (1, 10, 50, 200)
    for text in ("", "0,10", "a"):
        with pytest.raises(ValueError):
            parse_sizes(text)


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    path = plot(sweep(), tmp_path / CHART, limit_per_s=1500.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot(sweep(honoured=False), tmp_path / "ignored.png").stat().st_size > 0


def test_the_section_lists_each_size_and_links_the_chart() -> None:
    section = batch_markdown(sweep(), Path("reports") / CHART)
    assert "| 50 | 420.0 | 600 |" in section and f"]({CHART})" in section
    assert "was ignored" in batch_markdown(sweep(honoured=False), None)
    assert batch_markdown({"pending": "failed: boom"}, None).strip().endswith("failed: boom")
