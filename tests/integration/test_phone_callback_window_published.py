"""The window a caller chose in the phone menu leaves intake right after their request: in the same
outbox transaction, with the same key, caused by it (`intake.domain.callback_slot_chosen`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from intake.domain import RequestDraft
from intake.pipeline import IntakePipeline
from schemas import CallbackSlotChosen, Channel, Language, TrainingRequestReceived, decode
from services.calendar import BRUSSELS
from services.outbox import Outbox

pytestmark = pytest.mark.integration

WINDOW = (datetime(2026, 3, 11, 9, 0, tzinfo=BRUSSELS), datetime(2026, 3, 11, 12, 30, tzinfo=BRUSSELS))


def call(**overrides: Any) -> RequestDraft:
    fields: dict[str, Any] = {
        "channel": Channel.PHONE,
        "source": "/intake/phone/generic",
        "received_at": datetime.now(UTC),
        "language": Language.FR,
        "consent_to_contact": True,
        "phone": "0470 12 34 56",
        "dedup_key": "phone:generic:c-window",
        "callback_slot": WINDOW,
    }
    return RequestDraft(**(fields | overrides))


async def test_the_chosen_window_follows_its_request_in_the_same_transaction_once(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    pipeline = IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"))
    await pipeline.ensure_indexes()

    accepted = await asyncio.gather(*(pipeline.accept(call()) for _ in range(3)))  # the webhook retried

    request_id = accepted[0].request_id
    assert {a.request_id for a in accepted} == {request_id}
    entries = await mongo_db["intake_outbox"].find().sort("seq", 1).to_list(None)
    events = [decode(e["value"], list(e["headers"].items())) for e in entries]
    assert [type(e) for e in events] == [TrainingRequestReceived, CallbackSlotChosen]
    assert {e["key"] for e in entries} == {request_id.encode()}
    received, chosen = events
    assert isinstance(received, TrainingRequestReceived) and isinstance(chosen, CallbackSlotChosen)
    assert (chosen.request_id, chosen.person_id, chosen.chosen_through) == (request_id, received.person_id, "phone_ivr")
    assert (chosen.slot_start, chosen.slot_end) == WINDOW
    assert (chosen.causation_id, chosen.correlation_id) == (received.id, received.correlation_id)


async def test_a_call_without_a_window_publishes_the_request_alone(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    pipeline = IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"))
    await pipeline.ensure_indexes()
    await pipeline.accept(call(callback_slot=None, dedup_key="phone:generic:c-none"))
    assert await mongo_db["intake_outbox"].count_documents({}) == 1
