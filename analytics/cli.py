"""`python -m analytics`: replay, what-if and report, for analysts at a terminal.

Each command parses its options, calls the package's function (`replay`, `what_if`,
`run_report`…) and prints the result with rich; the work itself is in those functions.
Instants are ISO 8601 (`2026-03-01T00:00:00+01:00`); without an offset, or as a plain date,
they are Brussels time.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from analytics.replay import ReplayStats, replay
from analytics.report import ReportConfig, build_report, load_documents, write_charts, write_csv
from analytics.settings import AnalyticsSettings
from analytics.whatif import parse_team_sizes, what_if
from schemas import Channel
from schemas.topics import ALL_TOPICS
from services.calendar import BRUSSELS

app = typer.Typer(
    name="analytics",
    help="Replay events into a pseudonymous read model, simulate other routing, and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

Prefix = Annotated[
    str | None, typer.Option("--prefix", help="KAFKA_TOPIC_PREFIX of the environment to read (default: the variable's).")
]
Start = Annotated[str | None, typer.Option("--from", help="Start, inclusive (ISO 8601; Brussels time without an offset).")]
End = Annotated[str | None, typer.Option("--to", help="End, exclusive (ISO 8601; Brussels time without an offset).")]


def parse_instant(text: str | None) -> datetime | None:
    """An ISO 8601 instant or date; Brussels time when it has no offset."""
    if text is None or not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 date or instant") from None
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=BRUSSELS)


def previous_month(today: date) -> tuple[datetime, datetime]:
    """First instants (Brussels) of last month and of this month."""
    this_month = datetime(today.year, today.month, 1, tzinfo=BRUSSELS)
    last = this_month.date() - timedelta(days=1)
    return datetime(last.year, last.month, 1, tzinfo=BRUSSELS), this_month


def _settings(prefix: str | None) -> AnalyticsSettings:
    settings = AnalyticsSettings()
    if prefix is not None:
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix})})
    return settings


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/] {error}")
    return typer.Exit(code=2)


@app.command("replay")
def replay_command(
    topics: Annotated[str, typer.Option(help="Comma-separated declared topic names.")] = ",".join(t.name for t in ALL_TOPICS),
    start: Start = None,
    end: End = None,
    into: Annotated[str | None, typer.Option(help="Read-model database (default: analytics_<timestamp>).")] = None,
    prefix: Prefix = None,
) -> None:
    """Read topics without a consumer group and write a fresh pseudonymous read model."""
    settings = _settings(prefix)
    progress = Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("replay", total=None)
    try:
        with progress:
            stats = asyncio.run(
                replay(
                    settings,
                    topics.split(","),
                    parse_instant(start),
                    parse_instant(end),
                    into,
                    on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
            )
    except ValueError as error:
        raise _fail(error) from None
    console.print(_stats_table(stats))


def _from(at: datetime | None, otherwise: str) -> str:
    return at.isoformat() if at else otherwise


def _stats_table(stats: ReplayStats) -> Table:
    table = Table(title=f"Replayed into {stats.database}", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    for label, value in (
        ("topics", ", ".join(stats.topics) + (f" (prefix {stats.prefix})" if stats.prefix else "")),
        ("window", f"{_from(stats.start, 'beginning')} to {_from(stats.end, 'end offsets')}"),
        ("records read", stats.records),
        ("documents written", stats.written),
        ("already there", stats.duplicates),
        ("unreadable (skipped)", stats.unreadable),
        ("outside the time window", stats.outside_window),
        ("missing topics", ", ".join(stats.missing_topics) or "-"),
        ("seconds", f"{stats.seconds:.2f}"),
        ("events/s", f"{stats.events_per_second:,.0f}"),
        *((f"  {event}", count) for event, count in stats.by_event.items()),
    ):
        table.add_row(label, str(value))
    return table


@app.command("what-if")
def what_if_command(
    rules: Annotated[Path | None, typer.Option(help="Alternative rule set (YAML); the current one when omitted.")] = None,
    team_size: Annotated[list[str] | None, typer.Option("--team-size", help="TEAM=N, repeatable (espaces_numeriques=8).")] = None,
    start: Start = None,
    end: End = None,
    prefix: Prefix = None,
    handling_minutes: Annotated[float | None, typer.Option(help="Working minutes one contact takes (default 20).")] = None,
    sla_channels: Annotated[str, typer.Option(help="Channels the 48-hour promise is measured for.")] = ",".join(
        c.value for c in Channel
    ),
    current_rules: Annotated[Path | None, typer.Option(help="Current rule set (default: the shipped one).")] = None,
    roster: Annotated[Path | None, typer.Option(help="Roster giving the current team sizes (default: the shipped one).")] = None,
    digital_divide: Annotated[
        str | None,
        typer.Option(
            help="`open` or `closed`: the programme in the alternative scenario (seen by rules that test "
            "`digital_divide_open`; the shipped ones send such requests to its waitlist either way)."
        ),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")] = None,
) -> None:
    """Decide last month's requests again under other rules or team sizes, and simulate the callbacks."""
    settings = _settings(prefix)
    default_start, default_end = previous_month(datetime.now(BRUSSELS).date())
    try:
        sizes = parse_team_sizes(team_size or [])
        channels = frozenset(Channel(c.strip()) for c in sla_channels.split(",") if c.strip())
        if digital_divide not in (None, "open", "closed"):
            raise ValueError("--digital-divide takes open or closed")
        report = asyncio.run(
            what_if(
                settings,
                start=parse_instant(start) or default_start,
                end=parse_instant(end) or default_end,
                alternative_rules=rules,
                team_sizes=sizes,
                digital_divide_open=None if digital_divide is None else digital_divide == "open",
                current_rules=current_rules,
                roster=roster,
                sla_channels=channels,
                handling_time=timedelta(minutes=handling_minutes) if handling_minutes else None,
            )
        )
    except ValueError as error:
        raise _fail(error) from None
    console.print(report)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")


@app.command("report")
def report_command(
    db: Annotated[str, typer.Option("--db", help="Read-model database written by `replay`.")],
    csv_dir: Annotated[Path | None, typer.Option("--csv", help="Write one CSV file per table here.")] = None,
    charts_dir: Annotated[Path | None, typer.Option("--charts", help="Write the PNG charts here.")] = None,
) -> None:
    """Tables of callback promises kept, first contacts, volumes, campaigns, enrolments, programme and exams."""
    settings = AnalyticsSettings()
    documents = asyncio.run(load_documents(settings, db))
    report = build_report(
        documents,
        ReportConfig(digital_divide_quota=settings.digital_divide_quota),
        database=db,
    )
    console.print(report)
    if csv_dir is not None:
        for path in write_csv(report, csv_dir):
            console.print(f"wrote {path}")
    if charts_dir is not None:
        for path in write_charts(report, charts_dir):
            console.print(f"wrote {path}")


def main() -> None:
    app(prog_name="python -m analytics")
