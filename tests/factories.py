"""Realistic events for tests; each test overrides what it is about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas import Channel, Contact, Language, TrainingRequestReceived

FIXED_RECEIVED_AT = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
"""A Friday morning: pure tests compute deadlines and priorities from it, on any date."""


def make_request(**overrides: Any) -> TrainingRequestReceived:
    """A realistic request; tests override what they are about.

    Received at `FIXED_RECEIVED_AT` unless told otherwise, so pure code gives the same answer on
    any date. A request fed to services that run on the real clock must be stamped by that clock
    (`live_request`): from a fixed past instant it would arrive past its callback deadline on
    some days and not on others.
    """
    request_id = overrides.pop("request_id", str(uuid.uuid4()))
    fields: dict[str, Any] = {
        "source": "/tests",
        "subject": request_id,
        "request_id": request_id,
        "person_id": f"p-{request_id[:8]}",
        "channel": Channel.WEB,
        "received_at": FIXED_RECEIVED_AT,
        "contact": Contact(name="Amina Test", phone="+32470123456", email="amina@example.org"),
        "language": Language.FR,
        "need": "Je voudrais apprendre Excel en ligne.",
        "requested_course": None,
        "consent_to_contact": True,
    }
    fields.update(overrides)
    return TrainingRequestReceived(**fields)


def live_request(**overrides: Any) -> TrainingRequestReceived:
    """A request received now, for services running on the real clock."""
    return make_request(**{"received_at": datetime.now(UTC), **overrides})
