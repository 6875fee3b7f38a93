"""Wrapped per-person keys on the real mongod: stored only wrapped, in a database of their own;
raw keys of the old format keep working and are moved; a KEK rotation re-wraps every key and
touches no event; an erasure still shreds."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import AsyncMongoClient, MongoClient
from typer.testing import CliRunner

from schemas import TrainingRequestReceived
from services.keyring import LocalKeyEncryptionKeys, UnknownKeyEncryptionKey, write_kek_file
from services.privacy import PersonalData, PersonKeys, seal
from services.rekey import app as rekey_app
from tests.conftest import MONGODB_URI
from tests.factories import make_request

pytestmark = pytest.mark.integration

KEK_A, KEK_B = AESGCM.generate_key(bit_length=256), AESGCM.generate_key(bit_length=256)
ONLY_A = LocalKeyEncryptionKeys({"a": KEK_A}, "a")
A_THEN_B = LocalKeyEncryptionKeys({"a": KEK_A, "b": KEK_B}, "b")
ONLY_B = LocalKeyEncryptionKeys({"b": KEK_B}, "b")


def keys_db(mongo_db: Any) -> Any:
    return mongo_db.client[f"{mongo_db.name}_keys"]


def person_keys(mongo_db: Any, keks: LocalKeyEncryptionKeys) -> PersonKeys:
    return PersonKeys(mongo_db, keks=keks, cache_ttl_s=0)


async def sealed_requests(personal: PersonalData, count: int) -> list[TrainingRequestReceived]:
    return [await personal.seal(make_request(person_id=f"per_{n:03}", need=f"besoin {n}")) for n in range(count)]


async def test_a_key_is_stored_only_wrapped_in_the_keys_database(mongo_db: Any) -> None:
    personal = PersonalData(person_keys(mongo_db, ONLY_A))
    sealed = await personal.seal(make_request(person_id="per_1"))
    [doc] = await keys_db(mongo_db)["privacy_person_keys"].find().to_list()
    assert set(doc) == {"_id", "kid", "wrapped_dek", "created_at"} and doc["_id"] == "per_1" and doc["kid"] == "a"
    assert "privacy_person_keys" not in await mongo_db.list_collection_names(), "no key in the main database"
    key = await personal.keys.key("per_1")
    assert key is not None and key not in bytes(doc["wrapped_dek"])
    assert (await personal.unseal(sealed)).contact.name == "Amina Test"


async def test_a_raw_key_of_the_old_format_still_opens_its_events_and_is_moved_wrapped(mongo_db: Any) -> None:
    raw = AESGCM.generate_key(bit_length=256)
    await mongo_db["privacy_person_keys"].insert_many([{"_id": "per_old", "key": raw}, {"_id": "per_old2", "key": raw}])
    before = seal(make_request(person_id="per_old"), raw)
    keys = person_keys(mongo_db, ONLY_A)
    assert (await PersonalData(keys).unseal(before)).need == "Je voudrais apprendre Excel en ligne."
    assert await keys.key_for_new_data("per_old2") == raw
    assert await mongo_db["privacy_person_keys"].count_documents({}) == 0, "moved out of the main database"
    moved = await keys_db(mongo_db)["privacy_person_keys"].find().sort("_id").to_list()
    assert [(d["_id"], d["kid"], "key" in d) for d in moved] == [("per_old", "a", False), ("per_old2", "a", False)]


async def test_a_rotation_rewraps_every_key_and_events_sealed_before_still_unseal_without_the_old_kek(
    mongo_db: Any,
) -> None:
    before = await sealed_requests(PersonalData(person_keys(mongo_db, ONLY_A)), 7)
    raw = AESGCM.generate_key(bit_length=256)
    await mongo_db["privacy_person_keys"].insert_one({"_id": "per_legacy", "key": raw})
    legacy_event = seal(make_request(person_id="per_legacy"), raw)
    stored_before = {d["_id"]: d for d in await keys_db(mongo_db)["privacy_person_keys"].find().to_list()}

    counts = await person_keys(mongo_db, A_THEN_B).rewrap(batch_size=3)
    assert (counts.migrated, counts.rewrapped, counts.unknown_kek, counts.current) == (1, 7, 0, 8)
    again = await person_keys(mongo_db, A_THEN_B).rewrap(batch_size=3)
    assert (again.migrated, again.rewrapped, again.current) == (0, 0, 8), "idempotent"

    after = {d["_id"]: d for d in await keys_db(mongo_db)["privacy_person_keys"].find().to_list()}
    assert all(d["kid"] == "b" for d in after.values())
    assert all(after[p]["wrapped_dek"] != stored_before[p]["wrapped_dek"] for p in stored_before)

    retired = PersonalData(person_keys(mongo_db, ONLY_B))  # the old KEK is gone from the keyring
    assert [(await retired.unseal(e)).need for e in before] == [f"besoin {n}" for n in range(7)]
    assert (await retired.unseal(legacy_event)).contact.phone == "+32470123456"


async def test_keys_under_a_kek_the_keyring_lacks_are_counted_not_lost(mongo_db: Any) -> None:
    sealed = await sealed_requests(PersonalData(person_keys(mongo_db, ONLY_A)), 2)
    counts = await person_keys(mongo_db, ONLY_B).rewrap()
    assert (counts.rewrapped, counts.unknown_kek, counts.current) == (0, 2, 0)
    with pytest.raises(UnknownKeyEncryptionKey):
        await PersonalData(person_keys(mongo_db, ONLY_B)).unseal(sealed[0])  # an error, never taken for an erasure
    assert (await PersonalData(person_keys(mongo_db, ONLY_A)).unseal(sealed[0])).need == "besoin 0"


async def test_an_erasure_after_a_rotation_still_shreds(mongo_db: Any) -> None:
    [sealed] = await sealed_requests(PersonalData(person_keys(mongo_db, ONLY_A)), 1)
    await person_keys(mongo_db, A_THEN_B).rewrap()
    keys = person_keys(mongo_db, ONLY_B)
    assert await keys.erase("per_000", requested_by="dpo") is True
    assert await keys_db(mongo_db)["privacy_person_keys"].count_documents({}) == 0
    unreadable = await PersonalData(keys).unseal(sealed)
    assert unreadable.contact.name is None and unreadable.need == "" and unreadable.sealed is not None


async def test_an_erasure_shreds_a_raw_key_of_the_old_format_too(mongo_db: Any) -> None:
    raw = AESGCM.generate_key(bit_length=256)
    await mongo_db["privacy_person_keys"].insert_one({"_id": "per_old", "key": raw})
    keys = person_keys(mongo_db, ONLY_A)
    assert await keys.erase("per_old", requested_by="dpo") is True
    assert await keys.key("per_old") is None


async def test_a_key_created_in_a_transaction_of_the_main_database_is_committed_with_it(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any
) -> None:
    keys = person_keys(mongo_db, ONLY_A)
    await mongo_db.create_collection("facts")
    await keys_db(mongo_db).create_collection("privacy_person_keys")
    async with mongo_client.start_session() as session:
        with pytest.raises(RuntimeError):
            async with await session.start_transaction():
                await keys.key_for_new_data("per_aborted", session=session)
                await mongo_db["facts"].insert_one({"_id": 1}, session=session)
                raise RuntimeError("abort")
    assert await keys.key("per_aborted") is None, "the key went with the aborted transaction"


def test_the_rekey_command_rewraps_and_prints_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    database = f"test_{uuid.uuid4().hex[:12]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)

    async def seal_three() -> None:
        await sealed_requests(PersonalData(PersonKeys(client[database], keks=ONLY_A)), 3)
        await client.close()

    asyncio.run(seal_three())
    kek_file = tmp_path / "keks.json"
    write_kek_file(kek_file, {"a": KEK_A, "b": KEK_B}, "b")
    monkeypatch.setenv("MONGODB_URI", MONGODB_URI)
    monkeypatch.setenv("MONGODB_DATABASE", database)
    monkeypatch.setenv("PRIVACY_KEK_FILE", str(kek_file))
    monkeypatch.delenv("PRIVACY_KEK", raising=False)
    monkeypatch.delenv("PRIVACY_KEYS_DATABASE", raising=False)
    try:
        first = CliRunner().invoke(rekey_app, ["--batch-size", "2"])
        assert first.exit_code == 0, first.output
        assert "3 re-wrapped" in first.output and "3 now under the current KEK" in first.output
        second = CliRunner().invoke(rekey_app, [])
        assert "0 re-wrapped" in second.output
        monkeypatch.setenv("PRIVACY_KEK", base64.b64encode(KEK_A).decode())
        monkeypatch.setenv("PRIVACY_KEK_ID", "c")  # KEK A again under another id: b is not in this keyring
        lacking = CliRunner().invoke(rekey_app, [])
        assert lacking.exit_code == 1 and "3 under an unknown KEK" in lacking.output
    finally:
        sync: MongoClient[dict[str, Any]]
        with MongoClient(MONGODB_URI) as sync:
            sync.drop_database(database)
            sync.drop_database(f"{database}_keys")
