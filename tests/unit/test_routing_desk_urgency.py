"""Where a request stands against its promise, as the supervisor's view shows it: pure, no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from routing.desk import urgency

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("deadline", "due_at", "sla", "expected"),
    [
        (NOW + 30 * HOUR, NOW + 26 * HOUR, "pending", "on_time"),
        (NOW + 3 * HOUR, NOW - HOUR, "pending", "due"),
        (NOW - HOUR, NOW - 5 * HOUR, "pending", "breached"),  # past the deadline, before the timer fired
        (NOW + HOUR, None, "breached", "breached"),  # the timer said so (e.g. a deadline moved since)
        (NOW, None, "pending", "breached"),
        (None, None, None, "no_deadline"),
    ],
)
def test_urgency(deadline: datetime | None, due_at: datetime | None, sla: str | None, expected: str) -> None:
    assert urgency(now=NOW, deadline=deadline, due_at=due_at, sla=sla) == expected
