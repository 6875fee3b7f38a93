"""Peak resident memory per service, from /proc/<pid>/status."""

from __future__ import annotations

import os

import pytest

from bench.memory import SERVICE, PeakRss, peaks_by_service, read_status_mib, status_kib

pytestmark = pytest.mark.unit

STATUS = """Name:\tpython
VmPeak:\t  912340 kB
VmHWM:\t  120832 kB
VmRSS:\t   98304 kB
Threads:\t5
"""


def test_a_status_field_is_read_in_kib() -> None:
    assert status_kib(STATUS, "VmHWM") == 120832
    assert status_kib(STATUS, "VmRSS") == 98304
    assert status_kib(STATUS, "VmSwap") is None
    assert status_kib(STATUS, "Threads") is None  # not a size


def test_this_process_has_a_peak_and_a_gone_one_has_none() -> None:
    peak = read_status_mib(os.getpid())
    assert peak is not None and peak > 0
    assert read_status_mib(2**22 + 12345) is None


def test_each_service_keeps_its_highest_peak_and_baselines_are_not_counted() -> None:
    readings = [
        PeakRss("routing", "routing-pipe2", SERVICE, 110.0),
        PeakRss("routing", "routing-pipe3", SERVICE, 130.5),
        PeakRss("routing", "raw-routing-pipe1", "baseline", 400.0),
        PeakRss("intake", "intake-burst", SERVICE, 95.0),
        PeakRss("intake", "intake-gone", SERVICE, None),
    ]
    assert peaks_by_service(readings) == {
        "intake": {"peak_mib": 95.0, "instance": "intake-burst", "processes": 1},
        "routing": {"peak_mib": 130.5, "instance": "routing-pipe3", "processes": 2},
    }
