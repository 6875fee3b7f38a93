"""Personal data in events: sealed with a key per person, erased by deleting the key.

Intake seals the personal fields of each event before it leaves the service (AES-256-GCM with
the person's own key, kept in MongoDB): the event keeps its facts in clear - channel, times,
course, priority inputs - and carries the name, phone number, e-mail address and free text only
as ciphertext. Services allowed to read them (routing for the desk, notification to send
messages) unseal with the key. An erasure deletes the key: every copy of the person's events, on
Kafka, in replays, in backups of the topics, stays readable as facts and unreadable as personal
data, and `PersonDataErased` tells each service to blank its own projections.

Keys live in their own collection so that backups of it can follow a short retention; a key is
never logged and never leaves this module.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from schemas import Contact, ContactAttempted, Event, SealedPersonalData, TrainingRequestReceived
from services.mongo import MongoDatabase

E = TypeVar("E", bound=Event)

# Channel details that are personal (the rest - call status, out of hours, platform - are facts).
PERSONAL_CHANNEL_DETAILS = frozenset(
    {"raw_text", "phone_as_given", "email_as_given", "subject", "attachment_names", "voicemail_url", "agent_notes", "user_agent"}
)


class PersonKeys:
    """The per-person data keys; `None` for a person whose data was erased."""

    collection_name = "privacy_person_keys"

    def __init__(self, db: MongoDatabase, *, cache_ttl_s: float = 30.0) -> None:
        self._collection = db[self.collection_name]
        self._erased = db["privacy_erasures"]
        self._cache: dict[str, tuple[float, bytes | None]] = {}
        self.cache_ttl_s = cache_ttl_s

    async def key_for_new_data(self, person_id: str, *, session: AsyncClientSession | None = None) -> bytes:
        """The person's key, created on first use. Refuses an erased person: new data for them
        must come with a new person id."""
        if await self._erased.find_one({"_id": person_id}, session=session):
            raise PersonErased(person_id)
        doc = await self._collection.find_one({"_id": person_id}, session=session)
        if doc is not None:
            return bytes(doc["key"])
        key = AESGCM.generate_key(bit_length=256)
        try:
            await self._collection.insert_one({"_id": person_id, "key": key, "created_at": datetime.now(UTC)}, session=session)
        except DuplicateKeyError:
            doc = await self._collection.find_one({"_id": person_id}, session=session)
            assert doc is not None
            return bytes(doc["key"])
        return key

    async def key(self, person_id: str) -> bytes | None:
        cached = self._cache.get(person_id)
        if cached and time.monotonic() - cached[0] < self.cache_ttl_s:
            return cached[1]
        doc = await self._collection.find_one({"_id": person_id})
        key = bytes(doc["key"]) if doc else None
        self._cache[person_id] = (time.monotonic(), key)
        return key

    async def erase(self, person_id: str, *, requested_by: str, session: AsyncClientSession | None = None) -> bool:
        """Delete the key (and remember the erasure); True if there was a key to delete."""
        self.forget(person_id)
        await self._erased.update_one(
            {"_id": person_id},
            {"$setOnInsert": {"erased_at": datetime.now(UTC), "requested_by": requested_by}},
            upsert=True,
            session=session,
        )
        result = await self._collection.delete_one({"_id": person_id}, session=session)
        return result.deleted_count == 1

    def forget(self, person_id: str) -> None:
        """Drop a cached key: called when this process learns of an erasure."""
        self._cache.pop(person_id, None)


class PersonErased(Exception):
    def __init__(self, person_id: str) -> None:
        super().__init__(f"the data of person {person_id} was erased")
        self.person_id = person_id


def _encrypt(key: bytes, person_id: str, fields: Mapping[str, Any]) -> SealedPersonalData:
    nonce = os.urandom(12)
    plaintext = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    # The person id is authenticated data: a sealed block cannot be moved to another person's event.
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, person_id.encode())
    return SealedPersonalData(
        key_id=person_id,
        nonce=base64.b64encode(nonce).decode(),
        ciphertext=base64.b64encode(ciphertext).decode(),
        fields=tuple(fields),
    )


def _decrypt(key: bytes, sealed: SealedPersonalData) -> dict[str, Any]:
    plaintext = AESGCM(key).decrypt(base64.b64decode(sealed.nonce), base64.b64decode(sealed.ciphertext), sealed.key_id.encode())
    fields: dict[str, Any] = json.loads(plaintext)
    return fields


def seal(event: E, key: bytes) -> E:
    """The event with its personal fields encrypted and blanked (events without any are returned as is)."""
    if isinstance(event, TrainingRequestReceived) and event.sealed is None:
        details = dict(event.channel_details)
        personal_details = {k: details.pop(k) for k in list(details) if k in PERSONAL_CHANNEL_DETAILS}
        fields = {"contact": event.contact.model_dump(mode="json"), "need": event.need, "channel_details": personal_details}
        return event.model_copy(
            update={
                "contact": Contact(),
                "need": "",
                "channel_details": details,
                "sealed": _encrypt(key, event.person_id, fields),
            }
        )
    if isinstance(event, ContactAttempted) and event.sealed is None and event.notes:
        return event.model_copy(update={"notes": None, "sealed": _encrypt(key, event.person_id, {"notes": event.notes})})
    return event


def unseal(event: E, key: bytes | None) -> E:
    """The event with its personal fields back, or as it is (blank) when the key was erased."""
    sealed = getattr(event, "sealed", None)
    if sealed is None or key is None:
        return event
    fields = _decrypt(key, sealed)
    if isinstance(event, TrainingRequestReceived):
        return event.model_copy(
            update={
                "contact": Contact.model_validate(fields.get("contact") or {}),
                "need": fields.get("need", ""),
                "channel_details": {**event.channel_details, **fields.get("channel_details", {})},
                "sealed": None,
            }
        )
    if isinstance(event, ContactAttempted):
        return event.model_copy(update={"notes": fields.get("notes"), "sealed": None})
    return event


class PersonalData:
    """What a service with access uses: seal on the way out, unseal on the way in."""

    def __init__(self, keys: PersonKeys) -> None:
        self.keys = keys

    async def seal(self, event: E, *, session: AsyncClientSession | None = None) -> E:
        person_id = getattr(event, "person_id", None)
        if person_id is None:
            return event
        return seal(event, await self.keys.key_for_new_data(person_id, session=session))

    async def unseal(self, event: E) -> E:
        sealed = getattr(event, "sealed", None)
        if sealed is None:
            return event
        return unseal(event, await self.keys.key(sealed.key_id))
