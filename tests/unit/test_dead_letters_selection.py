"""The dead-letter tool's pure parts: what `--since` means, which dead letters a redrive takes,
what it republishes, and what `show` lets through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer

from schemas import codec
from services.calendar import BRUSSELS
from services.deadletters import DeadLetter, decoded_view, matches, parse_since, plan_redrive, select
from tests.factories import make_request

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def letter(offset: int, error_type: str = "UnknownEventType", *, minutes_ago: int = 10, partition: int = 0) -> DeadLetter:
    failed = NOW - timedelta(minutes=minutes_ago)
    return DeadLetter(
        partition=partition,
        offset=offset,
        timestamp_ms=int(failed.timestamp() * 1000),
        key=b"req-1",
        value=b"{}",
        headers=(
            ("ce_id", b"e-1"),
            ("retry_attempt", b"3"),
            ("dlq_original_topic", b"training.requests.v1"),
            ("dlq_exception_type", error_type.encode()),
            ("dlq_attempts", b"4"),
            ("dlq_last_failure_at", failed.isoformat().encode()),
        ),
    )


LETTERS = [
    letter(0, minutes_ago=300),
    letter(1, "TimeoutError", minutes_ago=90),
    letter(2, minutes_ago=5),
    letter(3, "InvalidEvent", minutes_ago=1),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("1.5d", NOW - timedelta(days=1.5)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2026-03-01T08:00:00+00:00", datetime(2026, 3, 1, 8, tzinfo=UTC)),
        ("2026-03-01 09:00", datetime(2026, 3, 1, 9, tzinfo=BRUSSELS)),
    ],
)
def test_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_since_rejects_nonsense() -> None:
    with pytest.raises(typer.BadParameter):
        parse_since("yesterday", NOW)


def test_filters() -> None:
    assert [x.offset for x in LETTERS if matches(x, error_type="UnknownEventType")] == [0, 2]
    assert [x.offset for x in LETTERS if matches(x, since=NOW - timedelta(hours=2))] == [1, 2, 3]
    assert [x.offset for x in LETTERS if matches(x, error_type="UnknownEventType", since=NOW - timedelta(hours=2))] == [2]


def test_select_by_offsets_and_all() -> None:
    assert [x.offset for x in select(LETTERS, offsets=[3, 1, 9])] == [1, 3]
    assert [x.offset for x in select(LETTERS, take_all=True)] == [0, 1, 2, 3]
    assert [x.offset for x in select(LETTERS, take_all=True, error_type="UnknownEventType")] == [0, 2]
    assert [x.offset for x in select(LETTERS, offsets=[0, 1], error_type="UnknownEventType")] == [0]
    assert [x.offset for x in select(LETTERS, take_all=True, since=NOW - timedelta(minutes=30))] == [2, 3]


def test_select_offsets_on_their_partition() -> None:
    spread = [letter(5, partition=0), letter(5, partition=1)]
    assert [(x.partition, x.offset) for x in select(spread, offsets=[5])] == [(0, 5)]
    assert [(x.partition, x.offset) for x in select(spread, offsets=[5], partition=1)] == [(1, 5)]


@pytest.mark.parametrize("kwargs", [{}, {"offsets": [1], "take_all": True}])
def test_select_wants_offsets_or_all(kwargs: dict[str, Any]) -> None:
    with pytest.raises(typer.BadParameter):
        select(LETTERS, **kwargs)


def test_a_redrive_skips_what_was_redriven_before_and_says_what_it_did_not_find() -> None:
    selected = select(LETTERS, offsets=[0, 2, 7])
    plan = plan_redrive(selected, done={(0, 0), (1, 2)}, requested=[0, 2, 7])
    assert [x.offset for x in plan.send] == [2]  # (1, 2) is another partition's offset 2
    assert [x.offset for x in plan.already_redriven] == [0]
    assert plan.not_found == [7]

    again = plan_redrive(selected, done={(0, 0), (0, 2)}, requested=[0, 2, 7])
    assert again.send == []


def test_a_redrive_republishes_the_original_headers_without_ours() -> None:
    assert letter(12).redrive_headers() == [("ce_id", b"e-1"), ("redriven_from_dlq_offset", b"12")]
    redriven_twice = DeadLetter(
        0, 40, 0, None, b"", (("ce_id", b"e-1"), ("redriven_from_dlq_offset", b"12"), ("dlq_attempts", b"1"))
    )
    assert redriven_twice.redrive_headers() == [("ce_id", b"e-1"), ("redriven_from_dlq_offset", b"40")]


def test_a_dead_letter_reads_its_headers() -> None:
    x = letter(2, minutes_ago=5)
    assert (x.original_topic, x.error_type, x.attempts) == ("training.requests.v1", "UnknownEventType", 4)
    assert x.failed_at == NOW - timedelta(minutes=5)
    bare = DeadLetter(0, 0, int(NOW.timestamp() * 1000), None, b"")
    assert (bare.original_topic, bare.attempts, bare.failed_at) == ("", 1, NOW)


def test_show_masks_personal_fields_of_a_decodable_event() -> None:
    request = make_request()
    view = decoded_view(DeadLetter(0, 0, 0, b"k", codec.encode(request), tuple(codec.headers(request).items())))
    assert request.request_id in view and "training.request.received" in view
    for personal in ("Amina Test", "+32470123456", "amina@example.org", "Excel"):
        assert personal not in view
    assert "<pii:" in view


def test_show_masks_what_it_can_of_an_undecodable_message() -> None:
    view = decoded_view(DeadLetter(0, 0, 0, None, b'{"type": "nope", "email": "amina@example.org", "note": "call +32470123456"}'))
    assert "not decodable" in view and "nope" in view
    assert "amina@example.org" not in view and "+32470123456" not in view

    raw = decoded_view(DeadLetter(0, 0, 0, None, b"{not json, mail amina@example.org"))
    assert "not decodable" in raw and "amina@example.org" not in raw
