"""Report computations on a small in-memory list of read-model documents: shares within 48 hours
in both modes, medians and p90s, ISO weeks, priority bands, campaigns, enrolments, the
digital-divide quota and the exam waitlist; and absent data said, not failed on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.readmodel import to_document
from analytics.report import ReportConfig, build_report, write_charts, write_csv
from analytics.stats import median, percentile
from schemas import (
    CallbackSlaBreached,
    CampaignAttribution,
    Channel,
    ContactAttempted,
    ContactOutcome,
    EnrolmentConfirmed,
    Event,
    ExamRequestReason,
    ExamScheduled,
    ExamSchedulingRequested,
    Language,
    Target,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from services.calendar import BRUSSELS
from tests.factories import make_request

pytestmark = pytest.mark.unit

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=BRUSSELS)  # ISO week 2026-W10


def received(rid: str, at: datetime, channel: Channel = Channel.PHONE, campaign: str | None = None) -> TrainingRequestReceived:
    return make_request(
        request_id=rid,
        received_at=at,
        time=at,
        channel=channel,
        campaign=CampaignAttribution(utm_campaign=campaign) if campaign else None,
    )


def routed(request: TrainingRequestReceived, priority: int, target: Target = Target.ADVISORS) -> TrainingRequestRouted:
    return TrainingRequestRouted.following(
        request,
        source="/routing",
        time=request.received_at + timedelta(seconds=1),
        request_id=request.request_id,
        person_id=request.person_id,
        target=target,
        rule_id="default",
        rule_set_version="2026.1",
        explanation="-",
        priority=priority,
    )


def attempt(
    request: TrainingRequestReceived, after: timedelta, outcome: ContactOutcome = ContactOutcome.ADVICE_GIVEN
) -> ContactAttempted:
    return ContactAttempted(
        source="/routing",
        time=request.received_at + after,
        request_id=request.request_id,
        person_id=request.person_id,
        worker_id="adv-1",
        outcome=outcome,
        attempt=1,
    )


def documents(events: list[Event]) -> list[dict[str, Any]]:
    return [to_document(e) for e in events]


def test_median_and_nearest_rank_p90() -> None:
    assert median([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == 5.5
    assert percentile([10, 1, 9, 2, 8, 3, 7, 4, 6, 5], 0.9) == 9  # the ninth shortest of ten
    assert percentile([4.0], 0.9) == 4.0
    assert median([]) is None and percentile([], 0.9) is None


def test_time_to_first_contact_counts_the_first_attempt_that_reached_the_person() -> None:
    events: list[Event] = []
    for hours in range(1, 11):  # ten requests on Monday 09:00 + i minutes, reached after 1..10 hours
        request = received(f"r{hours:02d}", MONDAY + timedelta(minutes=hours))
        events += [request, attempt(request, timedelta(hours=hours))]
    late = received("late", MONDAY)
    events += [late, attempt(late, timedelta(hours=1), ContactOutcome.NO_ANSWER), attempt(late, timedelta(hours=30))]
    table = build_report(documents(events)).table("time_to_first_contact")
    row = table.row("all")
    # Waits 1..10 h and 30 h (the unanswered call at 1 h does not count): median 6, p90 the 10th of 11.
    assert (row["requests"], row["contacted"], row["median_h"], row["p90_h"]) == (11, 11, 6.0, 10.0)
    # In opening time the waits past 17:15 shrink: 09:09 -> 18:09 counts 8.1 h, 09:10 -> 19:10 8.08 h,
    # and the 30-hour wait 14.75 h (Monday 09:00-17:15, Tuesday 08:30-15:00): the 10th of 11 is 8.1.
    assert table.row("phone")["p90_business_h"] == pytest.approx(8.1)
    assert table.row("phone")["median_business_h"] == 6.0


def test_share_within_48_hours_in_both_modes() -> None:
    friday = datetime(2026, 3, 6, 10, 0, tzinfo=BRUSSELS)
    on_time = received("on-time", MONDAY)
    weekend = received("weekend", friday)  # reached Monday 09:00: 71 h, but within two working days
    never = received("never", MONDAY)  # never reached; by the end of the data its deadline is gone
    fresh = received("fresh", datetime(2026, 3, 10, 9, 0, tzinfo=BRUSSELS))
    events: list[Event] = [
        on_time,
        attempt(on_time, timedelta(hours=2)),
        weekend,
        attempt(weekend, timedelta(hours=71)),
        never,
        fresh,
    ]
    report = build_report(documents(events), ReportConfig(as_of=datetime(2026, 3, 10, 10, 0, tzinfo=BRUSSELS)))
    row = report.table("sla_by_channel").row("all")
    assert (row["met_calendar"], row["breached_calendar"]) == (1, 2)  # fresh is pending in both
    assert (row["met_business"], row["breached_business"], row["pending"]) == (2, 1, 1)
    assert row["within_48h_calendar_pct"] == pytest.approx(33.3)
    assert row["within_48h_business_pct"] == pytest.approx(66.7)


def test_as_of_defaults_to_the_latest_event_not_the_wall_clock() -> None:
    request = received("r", MONDAY)
    report = build_report(documents([request]))
    assert report.as_of == MONDAY.astimezone(UTC)
    assert report.table("sla_by_channel").row("all")["pending"] == 1


def test_iso_weeks_and_bands() -> None:
    a, b, c, d = (
        received("a", MONDAY),
        received("b", MONDAY + timedelta(days=7)),
        received("c", MONDAY + timedelta(days=7, hours=1)),
        received("d", MONDAY + timedelta(days=8)),
    )
    events: list[Event] = [a, routed(a, 60), b, routed(b, 30), c, routed(c, 0), d]
    report = build_report(documents(events))
    weeks = report.table("sla_by_week")
    assert weeks.column("week") == ["2026-W10", "2026-W11", "all"]
    assert weeks.column("requests") == [1, 3, 4]
    bands = report.table("sla_by_band")
    assert bands.column("band") == ["high", "medium", "low", "unrouted", "all"]
    assert bands.column("requests") == [1, 1, 1, 1, 4]


def test_requests_per_channel_campaign_and_day() -> None:
    events: list[Event] = [
        received("w1", MONDAY, Channel.WEB, campaign="confine-mais-connecte"),
        received("w2", MONDAY, Channel.WEB, campaign="confine-mais-connecte"),
        received("w3", MONDAY + timedelta(days=1), Channel.WEB),
        received("p1", MONDAY, Channel.PHONE),
    ]
    report = build_report(documents(events))
    assert report.table("requests_by_channel").row("web")["requests"] == 3
    campaigns = report.table("requests_by_campaign")
    assert campaigns.row("confine-mais-connecte")["share_pct"] == 50.0
    assert campaigns.row("(none)")["requests"] == 2
    assert report.table("volume_by_day").rows == (("2026-03-02", 1, 0, 2, 3), ("2026-03-03", 0, 0, 1, 1))


def test_enrolments_per_course_and_digital_divide_uptake() -> None:
    first, second, again = received("a", MONDAY), received("b", MONDAY), received("c", MONDAY + timedelta(hours=1))
    again = again.model_copy(update={"person_id": first.person_id})  # the same person asks twice
    events: list[Event] = [
        first,
        routed(first, 50, Target.DIGITAL_DIVIDE),
        second,
        routed(second, 50, Target.DIGITAL_DIVIDE),
        again,
        routed(again, 50, Target.DIGITAL_DIVIDE),
        *(
            EnrolmentConfirmed(
                source="/routing",
                request_id=r.request_id,
                person_id=r.person_id,
                course_code=code,
                course_title=code,
                language=Language.FR,
            )
            for r, code in ((first, "EXCEL"), (second, "EXCEL"), (again, "WORD"))
        ),
    ]
    report = build_report(documents(events), ReportConfig(digital_divide_quota=350))
    assert report.table("digital_divide_uptake").rows == ((2026, 3, 2, 350, 0.6),)
    assert report.table("enrolments_by_course").rows == (("EXCEL", 2, 2), ("WORD", 1, 1))


def test_exam_waitlist_over_time() -> None:
    def asked(person: str, day: int) -> ExamSchedulingRequested:
        return ExamSchedulingRequested(
            source="/routing",
            person_id=person,
            certification_code="MOS-EXCEL",
            reason=ExamRequestReason.PATH_COMPLETED,
            time=MONDAY + timedelta(days=day),
        )

    def seated(person: str, day: int) -> ExamScheduled:
        return ExamScheduled(
            source="/certification",
            person_id=person,
            certification_code="MOS-EXCEL",
            session_id="s",
            centre_id="c",
            centre_name="-",
            time=MONDAY + timedelta(days=day),
            exam_at=MONDAY + timedelta(days=30),
        )

    events: list[Event] = [asked("p1", 0), asked("p2", 0), asked("p3", 1), seated("p1", 2), seated("p9", 2)]
    table = build_report(documents(events)).table("exam_waitlist")
    assert table.rows == (("2026-03-02", 2, 0, 2), ("2026-03-03", 1, 0, 3), ("2026-03-04", 0, 2, 2))


def test_absent_data_is_said_not_failed_on(tmp_path: Path) -> None:
    report = build_report([])
    assert report.as_of is None
    for name in ("exam_waitlist", "enrolments_by_course", "digital_divide_uptake", "sla_by_week", "time_to_first_contact"):
        table = report.table(name)
        assert table.rows == () and table.note, name
    files = write_csv(report, tmp_path / "csv") + write_charts(report, tmp_path / "charts")
    assert all(path.stat().st_size > 0 for path in files)
    assert "no ExamSchedulingRequested" in (tmp_path / "csv" / "exam_waitlist.csv").read_text()


def test_csv_files_and_png_charts(tmp_path: Path) -> None:
    events: list[Event] = []
    for i in range(20):
        request = received(f"r{i}", MONDAY + timedelta(days=i % 12, hours=i % 5), (Channel.PHONE, Channel.WEB)[i % 2])
        events += [request, routed(request, 10 * (i % 7)), attempt(request, timedelta(hours=3 + 7 * i))]
    report = build_report(documents(events))
    csv_files = write_csv(report, tmp_path)
    charts = write_charts(report, tmp_path)
    assert {p.name for p in charts} == {"sla_trend.png", "volume_trend.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in charts)
    header, *rows = (tmp_path / "sla_by_week.csv").read_text().splitlines()
    assert header.startswith("week,requests,met_calendar") and rows[-1].startswith("all,20,")
    assert len(csv_files) == len(report.tables)


def breach(request: TrainingRequestReceived, deadline: datetime, stamped: datetime) -> CallbackSlaBreached:
    return CallbackSlaBreached(
        source="/routing", time=stamped, request_id=request.request_id, person_id=request.person_id, deadline=deadline
    )


def test_the_report_counts_the_breaches_routing_recorded_even_when_its_clock_ran_ahead_of_the_stamps() -> None:
    # The demo's case: routing's simulated clock moved 49 hours while the events were stamped minutes apart.
    missed, reached, fresh = received("missed", MONDAY), received("reached", MONDAY), received("fresh", MONDAY)
    deadline = MONDAY + timedelta(hours=48)
    events: list[Event] = [
        missed,
        reached,
        attempt(reached, timedelta(hours=1)),
        fresh,
        breach(missed, deadline, stamped=MONDAY + timedelta(minutes=5)),
    ]
    report = build_report(documents(events))
    row = report.table("sla_by_channel").row("all")
    assert report.as_of is not None and report.as_of > deadline.astimezone(UTC), "as of the stream's own time"
    # routing recorded one breach: the report agrees, and `fresh` (received with it, never reached) is late too.
    assert row["breached_calendar"] == 2 and row["met_calendar"] == 1 and row["pending"] == 0
    assert row["within_48h_calendar_pct"] == pytest.approx(33.3)
    overview = dict(report.table("overview").rows)
    assert overview["CallbackSlaBreached (recorded by routing)"] == 1
