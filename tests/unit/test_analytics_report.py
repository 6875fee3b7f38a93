"""Report computations on a small in-memory list of read-model documents: callback promises kept,
medians and p90s, ISO weeks, priority bands, campaigns, enrolments, the
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
    CallbackSlotChosen,
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
    RequestKind,
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


def routed(
    request: TrainingRequestReceived,
    priority: int = 50,
    target: Target = Target.ADVISORS,
    deadline: datetime | None = None,
) -> TrainingRequestRouted:
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
        callback_deadline=deadline,
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


def promised(request: TrainingRequestReceived, hours: int = 48) -> TrainingRequestRouted:
    """Routed with a callback promise `hours` after receipt (routing computes it; any instant will do here)."""
    return routed(request, deadline=request.received_at + timedelta(hours=hours))


def test_each_request_is_judged_against_its_own_promise() -> None:
    on_time, late, never, fresh = (received(rid, MONDAY) for rid in ("on-time", "late", "never", "fresh"))
    web = received("web", MONDAY, Channel.WEB)
    events: list[Event] = [
        on_time,
        promised(on_time),
        attempt(on_time, timedelta(hours=2)),
        late,
        promised(late),
        attempt(late, timedelta(hours=50)),
        never,
        promised(never),
        fresh,
        promised(fresh, hours=200),
        web,
        routed(web),  # no promise: reached three days later is not late
        attempt(web, timedelta(days=3)),
    ]
    report = build_report(documents(events), ReportConfig(as_of=MONDAY + timedelta(days=4)))
    phone, web_row = report.table("sla_by_channel").row("phone"), report.table("sla_by_channel").row("web")
    assert (phone["requests"], phone["with_promise"], phone["met"], phone["late"], phone["pending"]) == (4, 4, 1, 2, 1)
    assert (phone["breached_recorded"], phone["met_pct"], phone["no_promise"]) == (0, pytest.approx(33.3), 0)
    assert (web_row["with_promise"], web_row["met"], web_row["late"], web_row["pending"]) == (0, 0, 0, 0)
    assert (web_row["no_promise"], web_row["met_pct"]) == (1, None)
    # Its wait is still reported, with everyone's.
    assert report.table("time_to_first_contact").row("web")["median_h"] == 72.0


def test_a_call_later_at_the_persons_request_is_counted_apart_from_breaches() -> None:
    later, missed = received("later", MONDAY), received("missed", MONDAY)

    def chose(request: TrainingRequestReceived, end_after: timedelta) -> CallbackSlotChosen:
        end = request.received_at + end_after
        return CallbackSlotChosen(
            source="/intake/status",
            time=request.received_at + timedelta(hours=1),
            request_id=request.request_id,
            person_id=request.person_id,
            slot_start=end - timedelta(hours=3),
            slot_end=end,
            chosen_through="status_page",
        )

    events: list[Event] = [
        later,
        promised(later),
        chose(later, timedelta(hours=72)),
        attempt(later, timedelta(hours=70)),  # after the promise, within the window
        missed,
        promised(missed),
        chose(missed, timedelta(hours=72)),
    ]
    report = build_report(documents(events), ReportConfig(as_of=MONDAY + timedelta(days=4)))
    phone = report.table("sla_by_channel").row("phone")
    assert (phone["met"], phone["late"], phone["called_later_by_choice"], phone["choice_missed"]) == (0, 0, 1, 1)
    overview = dict(report.table("overview").rows)
    assert overview["called later at the person's request"] == 1 and overview["window chosen by the person missed"] == 1


def test_learner_questions_are_shown_apart_with_their_own_promise() -> None:
    question = received("question", MONDAY, Channel.EMAIL).model_copy(update={"kind": RequestKind.LEARNER_QUESTION})
    late_question = received("late-question", MONDAY, Channel.WEB).model_copy(update={"kind": RequestKind.LEARNER_QUESTION})
    call = received("call", MONDAY)
    events: list[Event] = [
        question,
        promised(question, hours=24),
        attempt(question, timedelta(hours=3)),
        late_question,
        promised(late_question, hours=24),
        attempt(late_question, timedelta(hours=30)),
        call,
        promised(call),
        attempt(call, timedelta(hours=30)),
    ]
    # Through the read model, which must keep the kind.
    table = build_report(documents(events), ReportConfig(as_of=MONDAY + timedelta(days=4))).table("sla_by_kind")
    assert [row[0] for row in table.rows] == ["training_request", "learner_question", "all"]
    learner, training = table.row("learner_question"), table.row("training_request")
    assert (learner["requests"], learner["with_promise"], learner["met"], learner["late"]) == (2, 2, 1, 1)
    assert (training["requests"], training["met"], training["late"]) == (1, 1, 0)


def test_as_of_defaults_to_the_latest_event_not_the_wall_clock() -> None:
    request = received("r", MONDAY)
    report = build_report(documents([request, promised(request)]))
    assert report.as_of == (MONDAY + timedelta(seconds=1)).astimezone(UTC)
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
    assert header.startswith("week,requests,with_promise,met,late,breached_recorded") and rows[-1].startswith("all,20,")
    assert len(csv_files) == len(report.tables)


def breach(request: TrainingRequestReceived, deadline: datetime, stamped: datetime) -> CallbackSlaBreached:
    return CallbackSlaBreached(
        source="/routing", time=stamped, request_id=request.request_id, person_id=request.person_id, deadline=deadline
    )


def test_the_report_counts_the_breaches_routing_recorded_even_when_its_clock_ran_ahead_of_the_stamps() -> None:
    # The demo's case: routing's simulated clock moved 49 hours while the events were stamped minutes apart.
    missed, reached, fresh = received("missed", MONDAY), received("reached", MONDAY), received("fresh", MONDAY)
    web = received("web", MONDAY, Channel.WEB)
    deadline = MONDAY + timedelta(hours=48)
    events: list[Event] = [
        missed,
        promised(missed),
        reached,
        promised(reached),
        attempt(reached, timedelta(hours=1)),
        fresh,
        promised(fresh),
        web,
        routed(web),
        breach(missed, deadline, stamped=MONDAY + timedelta(minutes=5)),
        # The desk reaches `missed` after routing recorded its breach, stamped minutes after the request.
        attempt(missed, timedelta(minutes=6)),
    ]
    report = build_report(documents(events))
    row = report.table("sla_by_channel").row("all")
    assert report.as_of is not None and report.as_of > deadline.astimezone(UTC), "as of the stream's own time"
    # Routing recorded one breach, and the report counts it late though the stamps say "reached in time";
    # `fresh` (received with it, never reached) is late by the report's reading, its breach not recorded (yet).
    assert (row["met"], row["late"], row["breached_recorded"], row["pending"]) == (1, 2, 1, 0)
    assert (row["with_promise"], row["no_promise"]) == (3, 1)
    assert row["met_pct"] == pytest.approx(33.3)
    overview = dict(report.table("overview").rows)
    assert overview["CallbackSlaBreached (recorded by routing)"] == 1
    assert overview["late without a recorded breach"] == 1
