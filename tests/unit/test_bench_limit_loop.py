"""The limit loop's documents: routing's own, in routing's proportions, with fresh ids."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from bson import ObjectId

from bench.limit_loop import DocumentMix, Templates, first_batch_at

pytestmark = pytest.mark.unit


def templates() -> Templates:
    return Templates(
        per_request={"routing_decisions": 1.0, "timers": 2 / 3},
        samples={
            "routing_decisions": [{"_id": "r1", "target": "advisors", "decided_at": datetime(2026, 1, 5, tzinfo=UTC)}],
            "timers": [{"_id": "t1", "kind": "callback"}, {"_id": "t2", "kind": "escalation"}],
        },
        routed_value=b'{"type": "routed"}',
        routed_headers={"ce_type": "routed"},
    )


def test_a_batch_holds_each_collections_documents_in_routings_proportions() -> None:
    mix = DocumentMix(templates())
    first = mix.for_requests(3)
    assert len(first["routing_decisions"]) == 3 and len(first["timers"]) == 2
    assert [doc["kind"] for doc in first["timers"]] == ["callback", "escalation"]
    assert first["routing_decisions"][0]["target"] == "advisors"


def test_fractions_of_a_document_carry_over_to_the_next_batches() -> None:
    mix = DocumentMix(templates())
    batches = [mix.for_requests(1) for _ in range(6)]
    assert sum(len(batch.get("timers", [])) for batch in batches) == 4
    assert sum(len(batch["routing_decisions"]) for batch in batches) == 6


def test_every_copy_gets_an_id_of_its_own_and_the_samples_are_left_alone() -> None:
    source = templates()
    docs = DocumentMix(source).for_requests(4)["routing_decisions"]
    assert len({doc["_id"] for doc in docs}) == 4 and all(isinstance(doc["_id"], ObjectId) for doc in docs)
    assert source.samples["routing_decisions"][0]["_id"] == "r1"


def test_templates_survive_the_file_that_carries_them_to_the_loop(tmp_path: Path) -> None:
    original = templates()
    loaded = Templates.load(original.dump(tmp_path / "templates.json"))
    assert loaded == original
    assert loaded.samples["routing_decisions"][0]["decided_at"] == datetime(2026, 1, 5, tzinfo=UTC)
    assert loaded.bytes_per_request > 0


def test_the_window_opens_at_the_first_batch_the_loop_logged(tmp_path: Path) -> None:
    log = tmp_path / "limit.log"
    assert first_batch_at(log) is None
    log.write_text('{"event": "limit_loop.ready"}\nnot json\n{"event": "limit_loop.first_batch", "at": 12.5, "records": 3}\n')
    assert first_batch_at(log) == 12.5
