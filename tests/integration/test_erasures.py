"""Erasures on the real MongoDB: asked by one DPO, carried out only on a second one's approval, once,
and the details that named the person are not kept after it."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from intake.erasure import ErasureRefused, ErasureRequest, Erasures
from services.outbox import Outbox
from services.privacy import PersonKeys

pytestmark = pytest.mark.integration


async def test_an_erasure_is_carried_out_on_a_second_dpos_approval_once(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    erasures = Erasures(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"), PersonKeys(mongo_db))
    erasure_id = await erasures.ask(ErasureRequest(person_id="per_erased"), requested_by="dpo-1")
    assert await mongo_db["intake_outbox"].count_documents({}) == 0, "nothing happens on one DPO's word"

    with pytest.raises(ErasureRefused) as alone:
        await erasures.approve(erasure_id, approved_by="dpo-1")
    assert alone.value.status == 403
    assert await erasures.approve(erasure_id, approved_by="dpo-2") == "per_erased"
    with pytest.raises(ErasureRefused) as again:
        await erasures.approve(erasure_id, approved_by="dpo-2")
    assert again.value.status == 409

    done = await mongo_db["intake_erasures"].find_one({"_id": erasure_id})
    assert done["status"] == "done" and done["approved_by"] == "dpo-2" and "request" not in done
    [entry] = await mongo_db["intake_outbox"].find().to_list()
    assert entry["event_type"] == "be.bruxellesformation.privacy.person_data.erased"


async def test_an_approval_of_nobody_known_erases_nothing_and_says_so_to_nobody(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    erasures = Erasures(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"), PersonKeys(mongo_db))
    erasure_id = await erasures.ask(ErasureRequest(phone="0470 99 99 99"), requested_by="dpo-1")
    assert await erasures.approve(erasure_id, approved_by="dpo-2") is None
    assert await mongo_db["intake_outbox"].count_documents({}) == 0
    with pytest.raises(ErasureRefused) as unknown:
        await erasures.approve("nope", approved_by="dpo-2")
    assert unknown.value.status == 404
