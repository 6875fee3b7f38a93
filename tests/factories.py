"""Realistic events for tests; each test overrides what it is about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas import Channel, Contact, Language, TrainingRequestReceived


def make_request(**overrides: Any) -> TrainingRequestReceived:
    """A realistic request; tests override what they are about."""
    request_id = overrides.pop("request_id", str(uuid.uuid4()))
    fields: dict[str, Any] = {
        "source": "/tests",
        "subject": request_id,
        "request_id": request_id,
        "person_id": f"p-{request_id[:8]}",
        "channel": Channel.WEB,
        "received_at": datetime(2026, 11, 27, 10, 30, tzinfo=UTC),
        "contact": Contact(name="Amina Test", phone="+32470123456", email="amina@example.org"),
        "language": Language.FR,
        "need": "Je voudrais apprendre Excel en ligne.",
        "requested_course": None,
        "consent_to_contact": True,
    }
    fields.update(overrides)
    return TrainingRequestReceived(**fields)
