"""Issue 15's targets against one run's figures: met, missed, or not measured."""

from __future__ import annotations

from typing import Any

import pytest

from bench.targets import MEMORY_LIMIT_MIB, evaluate, mark, targets_markdown

pytestmark = pytest.mark.unit


def results() -> dict[str, Any]:
    return {
        "pipeline": {"services": {"per_s": 600.0}},
        "limit": {"per_s": 1000.0},
        "latency": {"services": {"target_per_s": 300.0, "latency_seen": {"p99_ms": 120.0}}},
        "intake": {
            "services": {"accepted_per_s": 1100.0, "on_kafka_per_s": 900.0},
            "baseline": {"accepted_per_s": 1200.0},
        },
        "replay": {"pending": "not run (--figures)"},
        "memory": {
            "intake": {"peak_mib": 90.0, "instance": "intake-burst", "processes": 2},
            "routing": {"peak_mib": 160.0, "instance": "routing-pipe2", "processes": 5},
        },
    }


def by_figure() -> dict[str, Any]:
    return {check.figure: check for check in evaluate(results())}


def test_routing_needs_both_the_rate_and_the_share_of_the_limit() -> None:
    assert by_figure()["routing, one process"].met is True
    slow = results()
    slow["limit"]["per_s"] = 1500.0  # 600 is 0.4 of it
    routing = evaluate(slow)[0]
    assert routing.met is False and "ratio 0.40" in routing.measured and "1500 req/s" in routing.limit


def test_latency_is_missed_above_100_ms() -> None:
    assert by_figure()["latency at half max"].met is False


def test_intake_must_also_reach_kafka_at_1000_per_second() -> None:
    intake = by_figure()["intake JSON API, one process"]
    assert intake.met is False and "900 onto Kafka" in intake.measured


def test_figures_not_run_are_neither_met_nor_missed() -> None:
    checks = by_figure()
    assert checks["replay"].met is None and checks["replay"].measured == "not measured"
    assert checks["a year (100k requests)"].met is None
    routing_only = evaluate({"pipeline": {"services": {"per_s": 600.0}}})
    assert routing_only[0].met is None  # no limit loop: the share is unknown


def test_a_known_miss_wins_over_an_unknown() -> None:
    assert evaluate({"pipeline": {"services": {"per_s": 50.0}}})[0].met is False


def test_memory_is_checked_per_service() -> None:
    checks = by_figure()
    assert checks["memory: intake"].met is True
    assert checks["memory: routing"].met is False and "160 MiB" in checks["memory: routing"].measured
    assert [c.met for c in evaluate({}) if c.figure == "memory"] == [None]
    assert f"{MEMORY_LIMIT_MIB:.0f} MiB" in checks["memory: routing"].target


def test_the_table_has_one_line_per_target_with_its_mark() -> None:
    lines = targets_markdown(evaluate(results())).strip().splitlines()
    assert lines[0] == "| Figure | Target (issue 15) | Measured | Limit (same run) | Met? |"
    assert len(lines) == 2 + 5 + 2
    assert lines[2].startswith("| routing, one process | ≥ 500 req/s and ≥ 0.5 of the limit loop | 600 req/s, ratio 0.60 |")
    assert lines[2].endswith("| ✅ |") and lines[3].endswith("| ❌ |") and lines[5].endswith("| — |")
    assert [mark(True), mark(False), mark(None)] == ["✅", "❌", "—"]


def test_the_main_table_puts_routing_against_its_limit() -> None:
    from bench.__main__ import NOT_RUN, issue15_rows

    (row,) = issue15_rows(results())
    assert row.ratio == pytest.approx(0.6) and row.met is True and row.target == 0.5
    assert issue15_rows({"pipeline": {"services": {"per_s": 60.0}}})[0].pending == NOT_RUN


def test_the_limit_loop_needs_the_pipeline_and_batch_sizes_are_parsed() -> None:
    from bench.__main__ import parse_args

    assert parse_args(["--batch-sizes", "5,1"]).batch_sizes == (1, 5)
    assert parse_args([]).batch_sizes == (1, 10, 50, 200)
    with pytest.raises(SystemExit):
        parse_args(["--figures", "limit"])
