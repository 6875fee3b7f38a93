"""The routing profile's top entries, from py-spy's collapsed stacks."""

from __future__ import annotations

import pytest

from bench.profiling import Entry, entries_markdown, hotpath_markdown, in_packages, parse_collapsed, top_entries

pytestmark = pytest.mark.unit

COLLAPSED = """\
run (asyncio/base_events.py);consume (faststream/subscriber.py);route (routing/service.py);insert_one (pymongo/collection.py) 50
run (asyncio/base_events.py);consume (faststream/subscriber.py);route (routing/service.py);decide_route (routing/decision.py) 30
run (asyncio/base_events.py);_read (aiokafka/conn.py) 20
garbage line
"""


def test_own_and_total_samples_per_frame() -> None:
    own, total, samples = parse_collapsed(COLLAPSED)
    assert samples == 100
    assert own["insert_one (pymongo/collection.py)"] == 50 and own["route (routing/service.py)"] == 0
    assert total["route (routing/service.py)"] == 80 and total["run (asyncio/base_events.py)"] == 100


def test_a_recursive_function_counts_once_per_sample() -> None:
    _, total, _ = parse_collapsed("a (m/x.py);b (m/y.py);a (m/x.py) 4\n")
    assert total["a (m/x.py)"] == 4


def test_top_entries_rank_by_own_or_by_total_within_our_packages() -> None:
    assert top_entries(COLLAPSED, limit=2) == [
        Entry("insert_one (pymongo/collection.py)", 0.5, 0.5),
        Entry("decide_route (routing/decision.py)", 0.3, 0.3),
    ]
    ours = top_entries(COLLAPSED, by="total", within=("routing",))
    assert [e.function for e in ours] == ["route (routing/service.py)", "decide_route (routing/decision.py)"]
    assert ours[0].total == pytest.approx(0.8) and top_entries("") == []


def test_a_frame_belongs_to_a_package_by_its_path() -> None:
    assert in_packages("route (routing/service.py)", ("routing",))
    assert not in_packages("route (routing.py)", ("routing",))
    assert not in_packages("<module> (services)", ("services",))


def test_the_report_section_shows_the_shares() -> None:
    table = entries_markdown([Entry("route (routing/service.py)", 0.125, 0.8)], title="top")
    assert table.splitlines()[2] == "| `route (routing/service.py)` | 12.5% | 80.0% |"
    result = {
        "file": "reports/bench-profile.collapsed.txt",
        "samples": 100,
        "per_s_while_sampled": 55.0,
        "top_own": [Entry("insert_one (pymongo/collection.py)", 0.5, 0.5).as_dict()],
        "top_total_own_code": [Entry("route (routing/service.py)", 0.0, 0.8).as_dict()],
    }
    section = hotpath_markdown(result)
    assert "100 samples" in section and "`insert_one (pymongo/collection.py)` | 50.0% | 50.0%" in section
    assert hotpath_markdown({"pending": "not run: neither py-spy nor uv found"}).endswith("neither py-spy nor uv found\n")
