"""A copy of the keys database alone (a backup, a dump) opens no sealed event: every data key in it
is wrapped by a key-encryption key that is not in the database."""

from __future__ import annotations

from typing import Any

import bson
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.keyring import LocalKeyEncryptionKeys, UnknownKeyEncryptionKey
from services.privacy import PersonalData, PersonKeys, unseal
from tests.factories import make_request
from tests.security.conftest import Attacks

pytestmark = pytest.mark.security


async def test_a_copy_of_the_keys_collection_without_the_kek_reveals_no_personal_data(mongo_db: Any, attacks: Attacks) -> None:
    kek = AESGCM.generate_key(bit_length=256)
    personal = PersonalData(PersonKeys(mongo_db, keks=LocalKeyEncryptionKeys({"prod-1": kek}, "prod-1")))
    sealed = [await personal.seal(make_request(person_id=f"per_{n}", need=f"secret need {n}")) for n in range(5)]

    # The attacker's copy: every document of the keys database, into a database of their own.
    stolen = await mongo_db.client[f"{mongo_db.name}_keys"]["privacy_person_keys"].find().to_list()
    attacker_db = mongo_db.client[f"{mongo_db.name}_attacker"]
    try:
        await attacker_db["privacy_person_keys"].insert_many(stolen)
        dump = b"".join(bson.encode(doc) for doc in stolen)
        assert b"Amina" not in dump and b"secret need" not in dump and b"+3247" not in dump

        opened = 0
        for event, doc in zip(sealed, stolen, strict=True):
            # 1. The wrapped key taken as the data key.
            for candidate in (bytes(doc["wrapped_dek"]), bytes(doc["wrapped_dek"])[12:44]):
                try:
                    unseal(event, candidate)
                    opened += 1
                except (InvalidTag, ValueError):
                    pass
            # 2. The copy read with a keyring of the attacker's own, under the stolen key id.
            guessed = PersonKeys(
                attacker_db,
                keys_db=attacker_db,
                keks=LocalKeyEncryptionKeys({"prod-1": AESGCM.generate_key(bit_length=256)}, "prod-1"),
            )
            with pytest.raises(InvalidTag):
                await PersonalData(guessed).unseal(event)
            # 3. The copy read by the code itself without that KEK.
            without = PersonKeys(attacker_db, keys_db=attacker_db, keks=LocalKeyEncryptionKeys({"other": kek[::-1]}, "other"))
            with pytest.raises(UnknownKeyEncryptionKey):
                await PersonalData(without).unseal(event)
        assert opened == 0
        # The keys are intact: with the KEK (which never was in the database) every event opens.
        assert [(await personal.unseal(e)).need for e in sealed] == [f"secret need {n}" for n in range(5)]
    finally:
        await mongo_db.client.drop_database(attacker_db.name)
    attacks.record(
        "a copy of the keys database opens sealed events",
        tried="wrapped keys as keys, a forged KEK under the stolen kid, the code without the KEK",
        refused=opened == 0,
        nothing_lost=True,
    )
