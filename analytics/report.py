"""Reports on a read model: callback promises kept, time to first contact, volumes, campaigns,
enrolments, the digital-divide programme and the exam waitlist.

`build_report` is pure: it takes read-model documents (`analytics.readmodel`) and returns tables.
`run_report` loads a read model from MongoDB, builds the report and writes it as CSV files and
PNG charts. A table whose data is absent (no exam events yet…) says so in its `note` and has no
rows; nothing fails for want of data.

Definitions, so that anyone can recompute a figure:

- **First contact** is the first `ContactAttempted` whose outcome is not `no_answer` (nor `wrong_number`): the promise
  is to reach the person, and routing closes a callback case the same way. A request without one
  is not contacted, however many attempts went unanswered.
- **Promises** (`analytics.promises`): each request is judged against its own promise, the
  `callback_deadline` routing put on its first `TrainingRequestRouted` that has one (phone
  requests, as shipped). `met`: reached by the deadline; `late`: routing recorded a
  `CallbackSlaBreached`, or the report reads it late (reached after the deadline, or not reached
  and the deadline before `as_of`: a stream cut before routing's timer fired); `pending`: not
  reached, deadline not before `as_of`. `breached_recorded` counts routing's breaches: on a
  complete stream it equals `late`. Requests without a promise (`no_promise`) are not counted
  as met or late; their time to first contact is in its own table. `met_pct` = met / (met + late).
- **As of** is the stream's own time, not the wall clock, so a report on the same data is the
  same report: its latest event, or just past the latest deadline routing recorded as missed,
  whichever is later (see `stream_time`).
- **Priority band**: `routing.priority.band` of the routed priority (unrouted requests: `unrouted`).
- **ISO week** and **day** are those of `received_at` in Brussels.
- **Median** and **p90** are `analytics.stats.median` and the nearest-rank `percentile`.
- **Digital-divide uptake**: admissions are kept by routing in MongoDB, not published, so the
  report counts the people whose requests were routed to `digital_divide` in each calendar year:
  an upper bound of admissions, against the yearly quota.
- **Exam waitlist**: an `ExamSchedulingRequested` adds a person to the waitlist of a
  certification, an `ExamScheduled` for that person and certification takes them off; the length
  is counted at the end of each day with a change.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table

from analytics.charts import write_charts
from analytics.promises import NO_ANSWER, PromiseOutcome, judge, read_promises
from analytics.readmodel import EVENTS_COLLECTION
from analytics.replay import mongo_client
from analytics.settings import AnalyticsSettings
from analytics.stats import median, percentile
from routing.priority import band
from routing.rules import load_rules
from routing.weights import PriorityWeights
from schemas import Channel, RequestKind
from services.calendar import BRUSSELS, BrusselsCalendar
from services.configuration import Closures

__all__ = [
    "Report",
    "ReportConfig",
    "ReportTable",
    "build_report",
    "load_documents",
    "run_report",
    "write_charts",
    "write_csv",
]

_NOT_REACHING = frozenset({NO_ANSWER, "wrong_number"})
_CHANNELS = tuple(c.value for c in Channel)
_KINDS = tuple(k.value for k in RequestKind)
_BANDS = ("high", "medium", "low", "unrouted")


@dataclass(frozen=True)
class ReportTable:
    """One table of the report: what the terminal shows, what a CSV file holds."""

    name: str
    """File name without extension (`sla_by_channel`)."""
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...] = ()
    note: str | None = None
    """What the reader must know; why the table is empty when it is."""

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def row(self, key: Any) -> dict[str, Any]:
        """The row whose first cell is `key`, as a mapping of column to value."""
        for row in self.rows:
            if row[0] == key:
                return dict(zip(self.columns, row, strict=True))
        raise KeyError(key)

    def to_rich(self) -> Table:
        table = Table(title=self.title, caption=self.note, caption_justify="left")
        for column in self.columns:
            table.add_column(column, justify="left" if column == self.columns[0] else "right")
        for row in self.rows:
            table.add_row(*(_cell(value) for value in row))
        if not self.rows:
            table.add_row(*(["(no data)"] + [""] * (len(self.columns) - 1)))
        return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


@dataclass(frozen=True)
class Report:
    """The tables of a report, the instant it describes the data at, and the files written."""

    tables: tuple[ReportTable, ...]
    as_of: datetime | None
    database: str | None = None
    files: tuple[Path, ...] = ()

    def table(self, name: str) -> ReportTable:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        where = f" of {self.database}" if self.database else ""
        when = f" as of {self.as_of.astimezone(BRUSSELS):%Y-%m-%d %H:%M} (Brussels)" if self.as_of else ""
        yield f"[bold]Report{where}{when}[/]"
        for table in self.tables:
            yield table.to_rich()
        if self.files:
            yield "written: " + ", ".join(str(path) for path in self.files)


@dataclass(frozen=True)
class ReportConfig:
    """What the figures are measured against."""

    calendar: BrusselsCalendar = field(default_factory=BrusselsCalendar)
    """Opening hours, for times to first contact in business hours; promises are routing's own deadlines."""
    weights: PriorityWeights = field(default_factory=lambda: load_rules().priority)
    digital_divide_quota: int = 350
    as_of: datetime | None = None
    """The instant the report describes; the latest event time when None."""


def configured_calendar(documents: Iterable[Mapping[str, Any]], calendar: BrusselsCalendar) -> BrusselsCalendar:
    """`calendar` with the closure days staff configured last (the replayed `ConfigurationChanged` of
    `closures` with the highest version), or `calendar` itself when the replay holds none.

    The latest list stands for the whole period: staff keep past closure days in it (the history of
    changes is routing's `configuration_changes`), and a compacted topic keeps only the latest anyway."""
    latest = max(
        (d for d in documents if d.get("event") == "ConfigurationChanged" and d.get("setting") == "closures"),
        key=lambda d: int(d.get("version") or 0),
        default=None,
    )
    if latest is None or not isinstance(latest.get("value"), Mapping):
        return calendar
    closures = Closures.model_validate(latest["value"]).as_mapping()
    return BrusselsCalendar(closures, opening=calendar.opening, closing=calendar.closing)


@dataclass
class _Request:
    request_id: str
    received_at: datetime
    channel: str
    campaign: str | None
    person_id: str | None
    kind: str = "training_request"
    """`learner_question` for a learner already enrolled (an event without a kind is a training request)."""
    target: str | None = None
    priority: int | None = None
    first_attempt_at: datetime | None = None
    first_contact_at: datetime | None = None


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        # Documents read without tz_aware are in UTC (BSON dates are).
        return at.replace(tzinfo=UTC)
    return at.astimezone(UTC)


def _iso_week(at: datetime) -> str:
    year, week, _ = at.astimezone(BRUSSELS).isocalendar()
    return f"{year}-W{week:02d}"


def _day(at: datetime) -> date:
    return at.astimezone(BRUSSELS).date()


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def build_report(
    documents: Iterable[Mapping[str, Any]], config: ReportConfig | None = None, *, database: str | None = None
) -> Report:
    """The report of the read-model `documents`; pure in its arguments (see the module docstring)."""
    config = config or ReportConfig()
    docs = sorted(documents, key=lambda d: (_utc(d["time"]), str(d["_id"])))
    config = replace(config, calendar=configured_calendar(docs, config.calendar))

    requests: dict[str, _Request] = {}
    by_event: Counter[str] = Counter()
    breaches: set[str] = set()
    enrolments: list[Mapping[str, Any]] = []
    exams: list[Mapping[str, Any]] = []
    routed_docs: list[Mapping[str, Any]] = []
    attempts: list[Mapping[str, Any]] = []
    missed: list[datetime] = []
    for doc in docs:
        kind = doc["event"]
        by_event[kind] += 1
        if kind == "TrainingRequestReceived" and doc["request_id"] not in requests:
            requests[doc["request_id"]] = _Request(
                request_id=doc["request_id"],
                received_at=_utc(doc["received_at"]),
                channel=doc["channel"],
                campaign=(doc.get("campaign") or {}).get("utm_campaign"),
                person_id=doc.get("person_id"),
                kind=doc.get("kind") or "training_request",
            )
        elif kind == "TrainingRequestRouted":
            routed_docs.append(doc)
        elif kind == "ContactAttempted":
            attempts.append(doc)
        elif kind == "CallbackSlaBreached":
            breaches.add(doc["request_id"])
            missed.append(_utc(doc["deadline"]))
        elif kind == "EnrolmentConfirmed":
            enrolments.append(doc)
        elif kind in ("ExamSchedulingRequested", "ExamScheduled"):
            exams.append(doc)
    for doc in routed_docs:  # the first decision of a request counts
        request = requests.get(doc["request_id"])
        if request is not None and request.target is None:
            request.target, request.priority = doc["target"], doc.get("priority")
    for doc in attempts:
        request = requests.get(doc["request_id"])
        if request is None:
            continue
        at = max(_utc(doc["time"]), request.received_at)  # a clock behind intake's is not time travel
        if request.first_attempt_at is None:
            request.first_attempt_at = at
        if doc.get("outcome") not in _NOT_REACHING and request.first_contact_at is None:
            request.first_contact_at = at

    as_of = _utc(config.as_of) if config.as_of else stream_time(docs, missed)
    ordered = sorted(requests.values(), key=lambda r: (r.received_at, r.request_id))
    promises = read_promises(docs)
    outcomes = {r.request_id: _Judged(judge(promises[r.request_id], as_of), r.request_id in breaches) for r in ordered}
    bands = {r.request_id: band(r.priority, weights=config.weights) if r.priority is not None else "unrouted" for r in ordered}
    weeks = sorted({_iso_week(r.received_at) for r in ordered})

    no_requests = "no TrainingRequestReceived in the read model" if not ordered else None
    tables = [
        _overview(docs, ordered, by_event, breaches, outcomes, as_of),
        _sla_table(
            "sla_by_channel",
            "Callback promises kept, by channel",
            "channel",
            ordered,
            outcomes,
            lambda r: r.channel,
            [c for c in _CHANNELS if any(r.channel == c for r in ordered)],
            no_requests,
        ),
        _sla_table(
            "sla_by_kind",
            "Callback promises kept, by kind of request (learner questions have their own, shorter promise)",
            "kind",
            ordered,
            outcomes,
            lambda r: r.kind,
            [k for k in _KINDS if any(r.kind == k for r in ordered)] + sorted({r.kind for r in ordered} - set(_KINDS)),
            no_requests,
        ),
        _sla_table(
            "sla_by_band",
            "Callback promises kept, by priority band",
            "band",
            ordered,
            outcomes,
            lambda r: bands[r.request_id],
            [b for b in _BANDS if b in bands.values()],
            no_requests,
        ),
        _sla_table(
            "sla_by_week",
            "Callback promises kept, by ISO week of the request",
            "week",
            ordered,
            outcomes,
            lambda r: _iso_week(r.received_at),
            weeks,
            no_requests,
        ),
        _first_contact_table(ordered, config, no_requests),
        _count_table("requests_by_channel", "Requests per channel", "channel", Counter(r.channel for r in ordered), no_requests),
        _count_table(
            "requests_by_campaign",
            "Requests per campaign (utm_campaign)",
            "campaign",
            Counter(r.campaign or "(none)" for r in ordered),
            no_requests,
        ),
        _volume_by_day(ordered, no_requests),
        _enrolments_table(enrolments),
        _digital_divide_table(ordered, config.digital_divide_quota),
        _exam_waitlist_table(exams),
    ]
    return Report(tables=tuple(tables), as_of=as_of, database=database)


def stream_time(docs: Sequence[Mapping[str, Any]], missed_deadlines: Sequence[datetime]) -> datetime | None:
    """How far the stream's own clock got: its latest event, or past the latest deadline routing recorded
    as missed, whichever is later. A breach is published when routing's clock passes the deadline, and
    that clock may run ahead of the events' stamps (a simulated clock, a backlog replayed): the report
    must not call a request routing found breached "pending", nor 100 % within 48 hours."""
    latest = _utc(docs[-1]["time"]) if docs else None
    if missed_deadlines:
        # Just past it: a deadline is kept up to and including its own instant (`routing.sla.sla_outcome`).
        past = max(missed_deadlines) + timedelta(microseconds=1)
        return past if latest is None or past > latest else latest
    return latest


@dataclass(frozen=True, slots=True)
class _Judged:
    outcome: PromiseOutcome
    breach_recorded: bool


_SLA_COLUMNS = (
    "requests",
    "with_promise",
    "met",
    "late",
    "breached_recorded",
    "pending",
    "met_pct",
    "no_promise",
    "called_later_by_choice",
    "choice_missed",
)


def _sla_row(key: str, subset: Sequence[_Request], outcomes: Mapping[str, _Judged]) -> tuple[Any, ...]:
    counts = Counter(outcomes[r.request_id].outcome for r in subset)
    recorded = sum(1 for r in subset if outcomes[r.request_id].breach_recorded)
    return (
        key,
        len(subset),
        len(subset) - counts["no_promise"],
        counts["met"],
        counts["late"],
        recorded,
        counts["pending"],
        _percent(counts["met"], counts["met"] + counts["late"]),
        counts["no_promise"],
        counts["by_choice"],
        counts["choice_missed"],
    )


def _sla_table(
    name: str,
    title: str,
    key_name: str,
    requests: Sequence[_Request],
    outcomes: Mapping[str, _Judged],
    key: Callable[[_Request], str],
    keys: Sequence[str],
    note: str | None,
) -> ReportTable:
    groups: dict[str, list[_Request]] = defaultdict(list)
    for request in requests:
        groups[key(request)].append(request)
    rows = [_sla_row(k, groups[k], outcomes) for k in keys]
    if requests:
        rows.append(_sla_row("all", requests, outcomes))
    return ReportTable(
        name,
        title,
        (key_name, *_SLA_COLUMNS),
        tuple(rows),
        note
        or "each request against its own callback_deadline (set by routing where its SLA covers the channel); "
        "late = breach recorded by routing, or reached after the deadline, or not reached with the deadline past; "
        "breached_recorded = CallbackSlaBreached events (equal to late once routing's timers have fired); "
        "pending = not reached, deadline still ahead; no_promise = no callback_deadline (see time_to_first_contact); "
        "called_later_by_choice = called after the promise within a later window the person chose (not late); "
        "choice_missed = that window passed too (apart from late)",
    )


def _first_contact_table(requests: Sequence[_Request], config: ReportConfig, note: str | None) -> ReportTable:
    def row(key: str, subset: Sequence[_Request]) -> tuple[Any, ...]:
        contacted = [(r.received_at, r.first_contact_at) for r in subset if r.first_contact_at is not None]
        hours = [(contact - received).total_seconds() / 3600 for received, contact in contacted]
        business = [
            config.calendar.working_time_between(received, contact).total_seconds() / 3600 for received, contact in contacted
        ]
        return (
            key,
            len(subset),
            len(contacted),
            _round(median(hours)),
            _round(percentile(hours, 0.9)),
            _round(median(business)),
            _round(percentile(business, 0.9)),
        )

    rows = [row(c, [r for r in requests if r.channel == c]) for c in _CHANNELS if any(r.channel == c for r in requests)]
    if requests:
        rows.append(row("all", requests))
    return ReportTable(
        "time_to_first_contact",
        "Time to first contact (hours)",
        ("channel", "requests", "contacted", "median_h", "p90_h", "median_business_h", "p90_business_h"),
        tuple(rows),
        note
        or "every request, with a callback promise or not; "
        "first ContactAttempted with an outcome other than no_answer, minus received_at; "
        "business hours count Brussels opening time only; p90 by nearest rank",
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _count_table(name: str, title: str, key_name: str, counts: Counter[str], note: str | None) -> ReportTable:
    total = sum(counts.values())
    rows = tuple((key, n, _percent(n, total)) for key, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return ReportTable(name, title, (key_name, "requests", "share_pct"), rows, note)


def _volume_by_day(requests: Sequence[_Request], note: str | None) -> ReportTable:
    days: dict[date, Counter[str]] = defaultdict(Counter)
    for request in requests:
        days[_day(request.received_at)][request.channel] += 1
    # Every day from the first to the last, quiet ones included: a trend has no holes.
    first, last = (min(days), max(days)) if days else (date.max, date.min)
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    rows = tuple((day.isoformat(), *(days[day][c] for c in _CHANNELS), sum(days[day].values())) for day in span)
    return ReportTable("volume_by_day", "Requests per day (Brussels)", ("day", *_CHANNELS, "total"), rows, note)


def _enrolments_table(enrolments: Sequence[Mapping[str, Any]]) -> ReportTable:
    counts: Counter[str] = Counter(doc["course_code"] for doc in enrolments)
    people: dict[str, set[str]] = defaultdict(set)
    for doc in enrolments:
        people[doc["course_code"]].add(doc.get("person_id", ""))
    rows = tuple((course, n, len(people[course])) for course, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return ReportTable(
        "enrolments_by_course",
        "Enrolments per course",
        ("course", "enrolments", "people"),
        rows,
        None if rows else "no EnrolmentConfirmed events in the read model",
    )


def _digital_divide_table(requests: Sequence[_Request], quota: int) -> ReportTable:
    routed = [r for r in requests if r.target == "digital_divide"]
    by_year: dict[int, list[_Request]] = defaultdict(list)
    for request in routed:
        by_year[request.received_at.astimezone(BRUSSELS).year].append(request)
    rows = tuple(
        (year, len(subset), len(people := {r.person_id for r in subset}), quota, _percent(len(people), quota))
        for year, subset in sorted(by_year.items())
    )
    return ReportTable(
        "digital_divide_uptake",
        "Digital-divide programme: people routed to it against the yearly quota",
        ("year", "requests", "people", "quota", "uptake_pct"),
        rows,
        "admissions are not published; people routed there are their upper bound"
        if rows
        else "no request routed to digital_divide in the read model",
    )


def _exam_waitlist_table(exams: Sequence[Mapping[str, Any]]) -> ReportTable:
    columns = ("day", "requested", "scheduled", "waiting")
    if not exams:
        return ReportTable(
            "exam_waitlist",
            "Exam waitlist length",
            columns,
            (),
            "no ExamSchedulingRequested or ExamScheduled events in the read model "
            "(training.enrolments.v1, certification.exams.v1)",
        )
    waiting: Counter[tuple[str, str]] = Counter()
    days: dict[date, list[int]] = {}
    for doc in exams:  # already in time order
        key = (doc.get("person_id", ""), doc.get("certification_code", ""))
        day = days.setdefault(_day(doc["time"]), [0, 0, 0])
        if doc["event"] == "ExamSchedulingRequested":
            waiting[key] += 1
            day[0] += 1
        elif waiting[key] > 0:
            waiting[key] -= 1
            day[1] += 1
        else:
            day[1] += 1  # booked without waiting (at the desk): no one leaves the list
        day[2] = sum(waiting.values())
    rows = tuple((d.isoformat(), requested, scheduled, length) for d, (requested, scheduled, length) in sorted(days.items()))
    return ReportTable("exam_waitlist", "Exam waitlist length (end of day)", columns, rows, None)


def _overview(
    docs: Sequence[Mapping[str, Any]],
    requests: Sequence[_Request],
    by_event: Counter[str],
    breaches: set[str],
    outcomes: Mapping[str, _Judged],
    as_of: datetime | None,
) -> ReportTable:
    judged = Counter(outcome.outcome for outcome in outcomes.values())
    rows: list[tuple[Any, Any]] = [
        ("events", len(docs)),
        ("requests", len(requests)),
        ("first request", requests[0].received_at.astimezone(BRUSSELS).isoformat() if requests else None),
        ("last request", requests[-1].received_at.astimezone(BRUSSELS).isoformat() if requests else None),
        ("as of", as_of.astimezone(BRUSSELS).isoformat() if as_of else None),
        ("requests contacted", sum(1 for r in requests if r.first_contact_at is not None)),
        ("requests with an attempt", sum(1 for r in requests if r.first_attempt_at is not None)),
        ("CallbackSlaBreached (recorded by routing)", len(breaches)),
        ("requests with a callback promise", len(outcomes) - judged["no_promise"]),
        ("promises late (report's reading)", judged["late"]),
        ("late without a recorded breach", sum(1 for o in outcomes.values() if o.outcome == "late" and not o.breach_recorded)),
        ("called later at the person's request", judged["by_choice"]),
        ("window chosen by the person missed", judged["choice_missed"]),
    ]
    rows += [(f"events: {kind}", n) for kind, n in sorted(by_event.items())]
    return ReportTable(
        "overview", "Overview", ("metric", "value"), tuple(rows), None if docs else "the read model holds no events"
    )


# --- I/O -----------------------------------------------------------------------------

_PROJECTION = {
    "_id": 1,
    "event": 1,
    "setting": 1,
    "value": 1,
    "version": 1,
    "time": 1,
    "request_id": 1,
    "person_id": 1,
    "channel": 1,
    "received_at": 1,
    "campaign": 1,
    "target": 1,
    "priority": 1,
    "outcome": 1,
    "course_code": 1,
    "certification_code": 1,
    "deadline": 1,  # of a recorded breach: how far the stream's own clock got (`stream_time`)
    "callback_deadline": 1,  # the promise (`analytics.promises`)
    "rule_id": 1,  # a request that joined another waits for that one's call
    "linked_request_ids": 1,
}


async def load_documents(settings: AnalyticsSettings, read_model_db: str) -> list[dict[str, Any]]:
    """The read model's events, with the fields reports use."""
    client = mongo_client(settings)
    try:
        return await client[read_model_db][EVENTS_COLLECTION].find({}, _PROJECTION).to_list(None)
    finally:
        await client.close()


def write_csv(report: Report, directory: Path) -> list[Path]:
    """One `<table>.csv` per table, header first; an empty table holds its note in one row."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in report.tables:
        path = directory / f"{table.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(table.columns)
            writer.writerows(["" if v is None else v for v in row] for row in table.rows)
            if not table.rows and table.note:
                writer.writerow([f"# {table.note}"])
        written.append(path)
    return written


async def run_report(settings: AnalyticsSettings, read_model_db: str, out_dir: Path | str | None) -> Report:
    """Build the report of the read model `read_model_db`; with `out_dir`, write its CSV files and
    PNG charts there. Returns the report (print it with rich: `Console().print(report)`)."""
    documents = await load_documents(settings, read_model_db)
    config = ReportConfig(digital_divide_quota=settings.digital_divide_quota)
    report = build_report(documents, config, database=read_model_db)
    if out_dir is None:
        return report
    directory = Path(out_dir)
    files = write_csv(report, directory) + write_charts(report, directory)
    return replace(report, files=tuple(files))
