"""The benchmark's arithmetic: percentiles, rates, ratios and latency summaries (no timing asserted)."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.stats import meets, percentile, rate, ratio, summarise_latencies

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(values, 0) == 15.0
    assert percentile(values, 100) == 50.0
    assert percentile(values, 50) == 35.0
    assert percentile(values, 40) == pytest.approx(29.0)  # rank 1.6: 20 + 0.6 * (35 - 20)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_percentile_does_not_depend_on_order_and_takes_one_value() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0


def test_p99_of_a_hundred_values_sits_between_the_two_largest() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 50) == pytest.approx(50.5)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=2, max_size=200))
def test_percentile_agrees_with_the_standard_library(values: list[float]) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")
    for q in (1, 50, 90, 99):
        assert percentile(values, q) == pytest.approx(expected[q - 1], rel=1e-9, abs=1e-6)


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=100))
def test_percentiles_are_monotonic_and_within_the_range(values: list[float]) -> None:
    p50, p90, p99 = (percentile(values, q) for q in (50, 90, 99))
    assert min(values) <= p50 <= p90 <= p99 <= max(values)


@pytest.mark.parametrize("q", [-1, 100.5, float("nan")])
def test_percentile_refuses_a_rank_outside_0_100(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0, 2.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_rate_is_count_over_seconds_and_refuses_an_empty_window() -> None:
    assert rate(3000, 12.5) == 240.0
    with pytest.raises(ValueError):
        rate(10, 0)
    with pytest.raises(ValueError):
        rate(10, -1.0)


def test_ratio_is_measured_over_baseline_or_none() -> None:
    assert ratio(80.0, 100.0) == pytest.approx(0.8)
    assert ratio(150.0, 100.0) == pytest.approx(1.5)
    assert ratio(None, 100.0) is None
    assert ratio(80.0, None) is None
    assert ratio(80.0, 0.0) is None
    assert ratio(float("nan"), 1.0) is None


def test_a_target_is_met_in_the_direction_that_is_better() -> None:
    assert meets(0.8, 0.8) is True
    assert meets(0.79, 0.8) is False
    assert meets(1.2, 1.5, higher_is_better=False) is True
    assert meets(1.6, 1.5, higher_is_better=False) is False
    assert meets(None, 0.8) is None
    assert meets(0.9, None) is None


def test_latencies_are_finish_minus_start_in_ms_and_unseen_keys_are_missing() -> None:
    started = {"a": 100.0, "b": 100.5, "c": 101.0, "lost": 101.2}
    finished = {"a": 100.010, "b": 100.530, "c": 101.020, "other": 99.0}
    summary = summarise_latencies(started, finished)
    assert summary.count == 3
    assert summary.missing == 1
    assert summary.p50_ms == pytest.approx(20.0)
    assert summary.max_ms == pytest.approx(30.0)
    assert summary.mean_ms == pytest.approx(20.0)
    assert summary.p99_ms == pytest.approx(29.8)


def test_latencies_of_nothing_seen_have_no_percentiles() -> None:
    summary = summarise_latencies({"a": 1.0}, {})
    assert (summary.count, summary.missing, summary.p50_ms, summary.p99_ms) == (0, 1, None, None)
    assert summary.as_dict()["missing"] == 1


def test_pooled_rate_weighs_runs_by_their_windows() -> None:
    from bench.stats import pooled_rate

    runs = [{"routed": 100, "window_s": 10.0}, {"routed": 300, "window_s": 10.0}, {"routed": 100, "window_s": 30.0}]
    assert pooled_rate(runs, count="routed", seconds="window_s") == pytest.approx(10.0)  # 500 / 50, not the mean 15.6
    with pytest.raises(ValueError):
        pooled_rate([], count="routed", seconds="window_s")
