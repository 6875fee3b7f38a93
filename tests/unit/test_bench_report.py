"""The benchmark's table: ratios, targets, number formats and markdown (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.report import (
    HEADER,
    Row,
    cell,
    format_number,
    markdown_table,
    render_markdown,
    write_reports,
)

pytestmark = pytest.mark.unit


def throughput(measured: float | None, baseline: float | None, **kwargs: Any) -> Row:
    return Row(
        figure="Pipeline", unit="req/s", measured=measured, baseline=baseline, baseline_is="raw loop", target=0.8, **kwargs
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234.5, "1234"),
        (123.4, "123"),
        (12.34, "12.3"),
        (1.234, "1.23"),
        (0.1234, "0.123"),
        (0.0, "0.000"),
        (None, "—"),
        (float("nan"), "—"),
    ],
)
def test_numbers_keep_three_significant_figures_at_most(value: float | None, text: str) -> None:
    assert format_number(value) == text


def test_a_row_computes_its_ratio_and_whether_it_meets_the_target() -> None:
    assert throughput(90.0, 100.0).ratio == pytest.approx(0.9)
    assert throughput(90.0, 100.0).met is True
    assert throughput(70.0, 100.0).met is False
    assert throughput(70.0, None).ratio is None and throughput(70.0, None).met is None


def test_lower_is_better_rows_compare_the_other_way() -> None:
    row = Row(figure="p99", unit="ms", measured=120.0, baseline=100.0, baseline_is="raw", higher_is_better=False, target=1.5)
    assert row.ratio == pytest.approx(1.2)
    assert row.met is True


def test_a_pending_row_has_no_ratio_even_with_numbers() -> None:
    row = throughput(1.0, 2.0, pending="pending: analytics.replay not available")
    assert row.ratio is None and row.met is None


def test_the_table_has_a_header_a_separator_and_one_line_per_row() -> None:
    table = markdown_table([throughput(85.0, 100.0), throughput(50.0, 100.0)])
    lines = table.strip().splitlines()
    assert lines[0] == "| " + " | ".join(HEADER) + " |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| Pipeline (req/s, higher is better) | 85.0 req/s | 100 req/s | 0.85 ✅ | ≥ 0.8 | raw loop |"
    assert lines[3] == "| Pipeline (req/s, higher is better) | 50.0 req/s | 100 req/s | 0.50 ❌ | ≥ 0.8 | raw loop |"
    assert all(line.count("|") - line.count("\\|") == len(HEADER) + 1 for line in lines)


def test_missing_numbers_and_pending_rows_render_as_dashes() -> None:
    lines = markdown_table(
        [
            Row(figure="Memory", unit="MiB", measured=None, baseline=80.0, baseline_is="raw", higher_is_better=False),
            throughput(None, None, pending="pending: analytics.replay not available"),
        ]
    ).splitlines()
    assert lines[2] == "| Memory (MiB, lower is better) | — | 80.0 MiB | — | — | raw |"
    assert (
        lines[3] == "| Pipeline (req/s, higher is better) | pending: analytics.replay not available | — | — | ≥ 0.8 | raw loop |"
    )


def test_cells_escape_pipes_and_flatten_line_breaks() -> None:
    assert cell("a | b\nc") == "a \\| b c"
    table = markdown_table([Row(figure="x|y", unit="ms", measured=1.0, baseline=2.0, baseline_is="a\nb")])
    assert "x\\|y" in table and "a b" in table


def test_the_report_has_the_table_the_run_and_the_notes(tmp_path: Path) -> None:
    rows = [throughput(85.0, 100.0)]
    markdown = render_markdown(rows, title="Bench", context={"run": "abc"}, notes=["how it is measured"])
    assert markdown.startswith("# Bench\n\n| Figure |")
    assert "- run: abc" in markdown and "- how it is measured" in markdown
    md_path, json_path = write_reports(tmp_path / "reports", markdown=markdown, raw={"rows": [r.as_dict() for r in rows]})
    assert md_path.read_text(encoding="utf-8") == markdown
    stored = json.loads(json_path.read_text(encoding="utf-8"))
    assert stored["rows"][0]["ratio"] == pytest.approx(0.85) and stored["rows"][0]["met"] is True


def sample_results() -> dict[str, Any]:
    def latency(p50: float, p99: float) -> dict[str, float]:
        return {"p50_ms": p50, "p99_ms": p99}

    return {
        "pipeline": {
            "baseline": {"requests": 3000, "per_s": 100.0, "peak_rss_mib": 80.0},
            "services": {"requests": 3000, "per_s": 90.0, "peak_rss_mib": 100.0},
        },
        "latency": {
            "baseline": {
                "target_per_s": 45.0,
                "latency_seen": latency(20.0, 50.0),
                "peak_rss_mib": {"routing": 81.0, "intake": 90.0},
            },
            "services": {
                "target_per_s": 45.0,
                "latency_seen": latency(25.0, 100.0),
                "peak_rss_mib": {"routing": 101.0, "intake": 91.0},
            },
        },
        "intake": {
            "baseline": {"concurrency": 32, "accepted_per_s": 400.0, "peak_rss_mib": 70.0},
            "services": {"concurrency": 32, "accepted_per_s": 200.0, "peak_rss_mib": 95.0},
        },
        "replay": {"pending": "pending: analytics.replay not available"},
    }


def test_the_rows_pair_each_figure_with_its_baseline() -> None:
    from bench.__main__ import build_rows

    rows = {row.figure.split(",")[0]: row for row in build_rows(sample_results())}
    assert rows[
        "1. Pipeline throughput: one process on 3000 pre-loaded requests → decision stored + TrainingRequestRouted"
    ].ratio == pytest.approx(0.9)
    assert rows["2. Latency p99"].ratio == pytest.approx(2.0) and not rows["2. Latency p99"].higher_is_better
    assert rows["3. Intake: JSON API requests answered 202 (in the outbox)"].ratio == pytest.approx(0.5)
    assert rows["4. Replay into the report's read model (analytics.replay)"].pending == "pending: analytics.replay not available"
    assert rows["5. Peak RSS (VmHWM) of routing"].ratio == pytest.approx(1.25)
    table = markdown_table(build_rows(sample_results()))
    assert len(table.strip().splitlines()) == 2 + 9


def test_the_year_rows_judge_each_time_against_its_budget() -> None:
    from bench.__main__ import NOT_RUN, year_rows

    results = {
        **sample_results(),
        "year": {"requests": 100_000, "events": 372_000, "raw_read_s": 5.0, "replay_s": 9.5, "whatif_s": 31.0},
    }
    replayed, simulated = year_rows(results)
    assert "100000 requests, 372000 events" in replayed.figure and replayed.figure.endswith("target < 60 s ✅")
    assert replayed.ratio == pytest.approx(1.9) and not replayed.higher_is_better
    assert simulated.measured == 31.0 and simulated.figure.endswith("target < 30 s ❌")
    assert [row.pending for row in year_rows(sample_results())] == [NOT_RUN, NOT_RUN]


def test_figures_not_run_keep_their_rows() -> None:
    from bench.__main__ import NOT_RUN, build_rows

    results = sample_results()
    del results["latency"]
    rows = build_rows(results)
    assert [row.pending for row in rows if row.figure.startswith("2.")] == [NOT_RUN, NOT_RUN]
    assert all(row.ratio is None for row in rows if row.pending)


def test_quick_shrinks_only_the_sizes_not_given() -> None:
    from bench.__main__ import QUICK, parse_args

    args = parse_args(["--quick", "--requests", "1000"])
    assert args.requests == 1000 and args.intake_requests == QUICK["intake_requests"]
    assert parse_args([]).requests == 3000
    assert parse_args(["--figures", "intake,replay"]).figures == ("intake", "replay")
    assert parse_args(["--figures", "replay,year"]).year_requests == 100_000
    assert parse_args(["--quick"]).year_requests == QUICK["year_requests"]
    with pytest.raises(SystemExit):
        parse_args(["--figures", "latency"])  # runs at half the pipeline's rate


def test_pipeline_runs_of_one_variant_pool_into_one_figure() -> None:
    from bench.__main__ import pooled

    runs = [
        {"requests": 3000, "routed": 400, "complete": False, "window_s": 40.0, "peak_rss_mib": 90.0},
        {"requests": 3000, "routed": 200, "complete": False, "window_s": 40.0, "peak_rss_mib": 95.0},
    ]
    figure = pooled(runs)
    assert figure["per_s"] == pytest.approx(7.5) and figure["routed"] == 600 and figure["peak_rss_mib"] == 95.0
    assert figure["complete"] is False and figure["runs"] == runs


def test_disturbances_name_restarts_rebalances_and_failures() -> None:
    from bench.__main__ import disturbances

    results = sample_results()
    assert disturbances(results) == []
    results["infrastructure"] = {
        "pipeline": {"kafka": (100, 100), "mongod": (7, 7)},
        "latency": {"kafka": (100, 205), "mongod": (7, 7)},
    }
    results["pipeline"]["services"]["rebalance_log_lines"] = 3
    results["latency"]["baseline"].update(failures=2, first_failure="ConnectionResetError()")
    assert disturbances(results) == [
        "kafka restarted during latency (pid 100 → 205)",
        "pipeline services: 3 log lines about the `routing` group rebalancing",
        "latency baseline: 2 submissions failed (ConnectionResetError())",
    ]


def test_the_pipeline_row_lists_each_run() -> None:
    from bench.__main__ import build_rows

    results = sample_results()
    results["pipeline"]["services"]["runs"] = [{"per_s": 13.2}, {"per_s": 18.46}]
    results["pipeline"]["baseline"]["runs"] = [{"per_s": 10.3}, {"per_s": 24.8}]
    assert build_rows(results)[0].figure.endswith("[runs, req/s: services 13.2 + 18.5; baseline 10.3 + 24.8]")


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ({"pipeline": {"services": {"per_s": 1200.0}}, "intake": {"services": {"accepted_per_s": 600.0}}}, 300.0),
        ({"pipeline": {"services": {"per_s": 400.0}}, "intake": {"services": {"accepted_per_s": 900.0}}}, 200.0),
        ({"pipeline": {"services": {"per_s": 400.0}}}, 200.0),
        ({"intake": {"pending": "failed"}}, None),
    ],
)
def test_the_latency_load_is_half_the_slower_of_routing_and_intake(results: dict[str, Any], expected: float | None) -> None:
    from bench.__main__ import half_the_maximum

    assert half_the_maximum(results) == expected
