"""The benchmark's table: one row per figure with its same-run baseline and their ratio."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import meets, ratio

HEADER = ("Figure", "Services", "Baseline (same run)", "Ratio", "Target", "Baseline is")


@dataclass(frozen=True)
class Row:
    figure: str
    unit: str
    measured: float | None
    baseline: float | None
    baseline_is: str
    higher_is_better: bool = True
    target: float | None = None
    """The ratio's target (measured / baseline), if the issue sets one."""
    pending: str | None = None
    """Why there is no figure yet (the row is kept so that the gap is visible)."""

    @property
    def ratio(self) -> float | None:
        return None if self.pending else ratio(self.measured, self.baseline)

    @property
    def met(self) -> bool | None:
        return meets(self.ratio, self.target, higher_is_better=self.higher_is_better)

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "unit": self.unit,
            "measured": self.measured,
            "baseline": self.baseline,
            "baseline_is": self.baseline_is,
            "ratio": self.ratio,
            "higher_is_better": self.higher_is_better,
            "target": self.target,
            "met": self.met,
            "pending": self.pending,
        }


def format_number(value: float | None) -> str:
    """Three significant figures at most, no exponent: 1234 -> '1234', 12.34 -> '12.3', 0.1234 -> '0.123'."""
    if value is None or math.isnan(value):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_ratio(row: Row) -> str:
    value = row.ratio
    if value is None:
        return "—"
    text = f"{value:.2f}"
    if row.met is True:
        return f"{text} ✅"
    if row.met is False:
        return f"{text} ❌"
    return text


def format_target(row: Row) -> str:
    if row.target is None:
        return "—"
    return f"{'≥' if row.higher_is_better else '≤'} {row.target:g}"


def cell(text: str) -> str:
    """A markdown table cell: pipes escaped, line breaks flattened."""
    return " ".join(text.split()).replace("|", "\\|")


def row_cells(row: Row) -> tuple[str, ...]:
    direction = "higher is better" if row.higher_is_better else "lower is better"
    figure = f"{row.figure} ({row.unit}, {direction})"
    if row.pending:
        return (figure, row.pending, "—", "—", format_target(row), row.baseline_is)

    def with_unit(v: float | None) -> str:
        return format_number(v) if v is None else f"{format_number(v)} {row.unit}"

    return (figure, with_unit(row.measured), with_unit(row.baseline), format_ratio(row), format_target(row), row.baseline_is)


def markdown_table(rows: Iterable[Row], header: Sequence[str] = HEADER) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = row_cells(row)
        if len(cells) != len(header):
            raise ValueError(f"{len(cells)} cells for {len(header)} columns")
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(
    rows: Sequence[Row], *, title: str, context: Mapping[str, Any], notes: Sequence[str] = (), sections: Sequence[str] = ()
) -> str:
    """The whole report: title, table, more sections (markdown, each with its own heading), how it
    was run, notes."""
    parts = [f"# {title}", "", markdown_table(rows), *sections]
    if context:
        parts += ["## Run", ""] + [f"- {key}: {value}" for key, value in context.items()] + [""]
    if notes:
        parts += ["## How each figure is measured", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(parts)


def write_reports(directory: Path, *, markdown: str, raw: Mapping[str, Any]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md_path, json_path = directory / "bench.md", directory / "bench.json"
    md_path.write_text(markdown, encoding="utf-8")
    json_path.write_text(json.dumps(raw, indent=2, default=str) + "\n", encoding="utf-8")
    return md_path, json_path
