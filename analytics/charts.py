"""PNG charts of a report: the trend of callback promises kept by week and the request volume by day.

Drawn with matplotlib's object API on an Agg canvas (`Figure` + `FigureCanvasAgg`), never
`pyplot`: pyplot keeps global state and picks a GUI backend, which a demo process or a test
run must not get as a side effect. matplotlib is imported when a chart is drawn, not with the
package: it takes seconds to import, and replays and what-ifs never draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analytics.report import Report, ReportTable

__all__ = ["write_charts"]

_CHANNEL_COLOURS = {"phone": "#1f77b4", "email": "#ff7f0e", "web": "#2ca02c"}


def write_charts(report: Report, directory: Path) -> list[Path]:
    """`sla_trend.png` and `volume_trend.png` in `directory`; a chart without data says so."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        _save(_sla_trend(report.table("sla_by_week")), directory / "sla_trend.png"),
        _save(_volume_trend(report.table("volume_by_day")), directory / "volume_trend.png"),
    ]


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path


def _no_data(figure: Figure, title: str, note: str | None) -> Figure:
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_axis_off()
    axes.text(0.5, 0.5, note or "no data", ha="center", va="center", wrap=True)
    return figure


def _sla_trend(table: ReportTable) -> Figure:
    figure = _figure()
    title = "Callback promises kept, by ISO week"
    rows = [row for row in table.rows if row[0] != "all"]
    if not rows:
        return _no_data(figure, title, table.note)
    weeks = [row[0] for row in rows]
    axes = figure.add_subplot()
    index = table.columns.index("met_pct")
    values = [row[index] if row[index] is not None else float("nan") for row in rows]
    axes.plot(weeks, values, "o-", label="met / (met + late), requests with a promise")
    axes.set_ylim(0, 105)
    axes.set_ylabel("% reached by their callback deadline")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower left")
    return figure


def _volume_trend(table: ReportTable) -> Figure:
    figure = _figure()
    title = "Requests per day, by channel"
    if not table.rows:
        return _no_data(figure, title, table.note)
    days = [row[0] for row in table.rows]
    axes = figure.add_subplot()
    bottom = [0] * len(days)
    for channel, colour in _CHANNEL_COLOURS.items():
        index = table.columns.index(channel)
        counts = [row[index] for row in table.rows]
        axes.bar(days, counts, bottom=bottom, label=channel, color=colour)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_ylabel("requests")
    axes.set_title(title)
    axes.legend(loc="upper left")
    axes.tick_params(axis="x", labelrotation=90, labelsize=7)
    return figure
