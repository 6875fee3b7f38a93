"""Personal data in events: sealed with a key per person, erased by deleting the key.

Intake seals the personal fields of each event before it leaves the service (AES-256-GCM with
the person's own key, kept in MongoDB): the event keeps its facts in clear - channel, times,
course, priority inputs - and carries the name, phone number, e-mail address and free text only
as ciphertext. Services allowed to read them (routing for the desk, notification to send
messages) unseal with the key. An erasure deletes the key: every copy of the person's events, on
Kafka, in replays, in backups of the topics, stays readable as facts and unreadable as personal
data, and `PersonDataErased` tells each service to blank its own projections.

Keys live in a database of their own, wrapped by a key-encryption key (`services.keyring`), so that
its backups can follow a short retention and a copy of it alone opens nothing; a key is never logged
and never leaves this module.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import TypeAdapter
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from schemas import (
    Contact,
    ContactAttempted,
    ContactDetailsConfirmed,
    Event,
    ExamSeatOffered,
    PartnerInformationReceived,
    PartnerInformationRequested,
    RequestDetailsCorrected,
    SealedPersonalData,
    TrainingRequestReceived,
)
from services.keyring import KeyEncryptionKeys, PrivacySettings, UnknownKeyEncryptionKey, load_key_encryption_keys
from services.mongo import MongoDatabase

E = TypeVar("E", bound=Event)

# Channel details that are personal (the rest - call status, out of hours, platform - are facts).
# `adapter_reference` is a channel adapter's own id of a request (docs/adapters): free text of a third
# party, which may hold a number someone can be found by, so it travels sealed like the others.
PERSONAL_CHANNEL_DETAILS = frozenset(
    {
        "raw_text",
        "phone_as_given",
        "email_as_given",
        "subject",
        "attachment_names",
        "voicemail_url",
        "agent_notes",
        "user_agent",
        "adapter_reference",
    }
)


class PersonKeys:
    """The per-person data keys; `None` for a person whose data was erased.

    Each key is stored only wrapped by a key-encryption key (`services.keyring`), as
    `{_id: person_id, kid, wrapped_dek, created_at}`, in a database of its own (`PRIVACY_KEYS_DATABASE`,
    default `<main database>_keys`) that a MongoDB role of its own can guard. Raw keys stored by
    earlier versions in the main database are wrapped and moved on first use or by
    `python -m services.rekey`."""

    collection_name = "privacy_person_keys"

    def __init__(
        self,
        db: MongoDatabase,
        *,
        keys_db: MongoDatabase | None = None,
        keks: KeyEncryptionKeys | None = None,
        settings: PrivacySettings | None = None,
        cache_ttl_s: float = 30.0,
    ) -> None:
        if keys_db is None or keks is None:
            settings = settings or PrivacySettings()
        if keys_db is None:
            assert settings is not None
            keys_db = db.client[settings.keys_database_for(db.name)]
        self.keks = keks or load_key_encryption_keys(settings)
        self._collection = keys_db[self.collection_name]
        # Where earlier versions kept raw keys; the same collection when the keys database is the main one.
        self._legacy = db[self.collection_name] if keys_db.name != db.name else None
        # A session of the main client can span the keys database only when it is on the same client.
        self._shares_sessions = keys_db.client is db.client
        self._erased = db["privacy_erasures"]
        self._cache: dict[str, tuple[float, bytes | None]] = {}
        self.cache_ttl_s = cache_ttl_s

    def _keys_session(self, session: AsyncClientSession | None) -> AsyncClientSession | None:
        return session if self._shares_sessions else None

    async def key_for_new_data(self, person_id: str, *, session: AsyncClientSession | None = None) -> bytes:
        """The person's key, created on first use. Refuses an erased person: new data for them
        must come with a new person id."""
        if await self._erased.find_one({"_id": person_id}, session=session):
            raise PersonErased(person_id)
        keys_session = self._keys_session(session)
        doc = await self._collection.find_one({"_id": person_id}, session=keys_session)
        if doc is not None:
            return await self._open(doc, session=keys_session)
        migrated = await self._migrate_legacy(person_id, session=session)
        if migrated is not None:
            return migrated
        try:
            return await self.key_for_new_person(person_id, session=session)
        except DuplicateKeyError:
            doc = await self._collection.find_one({"_id": person_id}, session=keys_session)
            assert doc is not None
            return await self._open(doc, session=keys_session)

    async def key_for_new_person(self, person_id: str, *, session: AsyncClientSession | None = None) -> bytes:
        """A key for a person id minted in the caller's transaction: one insert, because such an id
        cannot have been erased, nor have a key of the old format (`key_for_new_data` checks both
        for ids that came from elsewhere). `DuplicateKeyError` if the id has a key after all."""
        key = AESGCM.generate_key(bit_length=256)
        await self._collection.insert_one(await self._key_document(person_id, key), session=self._keys_session(session))
        return key

    async def keys_for_new_people(self, person_ids: Sequence[str], *, session: AsyncClientSession | None = None) -> list[bytes]:
        """`key_for_new_person` for several ids at once: one insert for all."""
        keys = [AESGCM.generate_key(bit_length=256) for _ in person_ids]
        docs = [await self._key_document(person_id, key) for person_id, key in zip(person_ids, keys, strict=True)]
        if docs:
            await self._collection.insert_many(docs, ordered=True, session=self._keys_session(session))
        return keys

    async def _key_document(self, person_id: str, key: bytes) -> dict[str, Any]:
        """A person's stored key: the DEK wrapped under the current KEK."""
        kid, wrapped = await self.keks.wrap(person_id, key)
        return {"_id": person_id, "kid": kid, "wrapped_dek": wrapped, "created_at": datetime.now(UTC)}

    async def key(self, person_id: str) -> bytes | None:
        cached = self._cache.get(person_id)
        if cached and time.monotonic() - cached[0] < self.cache_ttl_s:
            return cached[1]
        doc = await self._collection.find_one({"_id": person_id})
        key = await self._open(doc) if doc else await self._migrate_legacy(person_id)
        self._cache[person_id] = (time.monotonic(), key)
        return key

    async def keys(self, person_ids: Iterable[str]) -> dict[str, bytes | None]:
        """The keys of many people at once (`key` of each), those not cached read in one query."""
        now = time.monotonic()
        found: dict[str, bytes | None] = {}
        missing: set[str] = set()
        for person_id in person_ids:
            cached = self._cache.get(person_id)
            if cached and now - cached[0] < self.cache_ttl_s:
                found[person_id] = cached[1]
            else:
                missing.add(person_id)
        if missing:
            docs = await self._collection.find({"_id": {"$in": sorted(missing)}}).to_list(None)
            for doc in docs:
                found[doc["_id"]] = await self._open(doc)
                self._cache[doc["_id"]] = (time.monotonic(), found[doc["_id"]])
            for person_id in missing - {doc["_id"] for doc in docs}:
                found[person_id] = await self.key(person_id)  # a legacy key to move, or none (erased)
        return found

    async def _open(self, doc: Mapping[str, Any], *, session: AsyncClientSession | None = None) -> bytes:
        """The DEK of a stored document; a raw key of the old format is wrapped in place on the way."""
        if "wrapped_dek" in doc:
            return await self.keks.unwrap(doc["_id"], doc["kid"], bytes(doc["wrapped_dek"]))
        key = bytes(doc["key"])
        kid, wrapped = await self.keks.wrap(doc["_id"], key)
        await self._collection.update_one(
            {"_id": doc["_id"], "key": {"$exists": True}},
            {"$set": {"kid": kid, "wrapped_dek": wrapped}, "$unset": {"key": ""}},
            session=session,
        )
        return key

    async def _migrate_legacy(self, person_id: str, *, session: AsyncClientSession | None = None) -> bytes | None:
        """Move a raw key of the old format from the main database into the keys database, wrapped."""
        if self._legacy is None:
            return None
        doc = await self._legacy.find_one({"_id": person_id}, session=session)
        if doc is None:
            return None
        key = bytes(doc["key"])
        kid, wrapped = await self.keks.wrap(person_id, key)
        created_at = doc.get("created_at") or datetime.now(UTC)
        keys_session = self._keys_session(session)
        with contextlib.suppress(DuplicateKeyError):  # moved meanwhile by another process: the same key
            await self._collection.insert_one(
                {"_id": person_id, "kid": kid, "wrapped_dek": wrapped, "created_at": created_at}, session=keys_session
            )
        await self._legacy.delete_one({"_id": person_id}, session=session)
        # An erasure that ran between the read and the insert must not leave the key behind.
        if await self._erased.find_one({"_id": person_id}, session=session):
            await self._collection.delete_one({"_id": person_id}, session=keys_session)
            return None
        return key

    async def rewrap(self, *, batch_size: int = 500) -> RewrapCounts:
        """Wrap every key under the current KEK: idempotent and resumable (it only selects keys not yet
        under it), in batches; the keys themselves do not change, so no event or ciphertext does."""
        counts = RewrapCounts()
        if self._legacy is not None:
            while batch := await self._legacy.find({}, {"_id": 1}).limit(batch_size).to_list():
                for doc in batch:
                    await self._migrate_legacy(doc["_id"])
                    counts.migrated += 1
        current = self.keks.current_kid
        after: Any = None
        while True:
            query: dict[str, Any] = {"kid": {"$ne": current}}
            if after is not None:
                query["_id"] = {"$gt": after}
            batch = await self._collection.find(query).sort("_id", 1).limit(batch_size).to_list()
            if not batch:
                break
            for doc in batch:
                after = doc["_id"]
                await self._rewrap_one(doc, counts)
        counts.current = await self._collection.count_documents({"kid": current})
        return counts

    async def _rewrap_one(self, doc: Mapping[str, Any], counts: RewrapCounts) -> None:
        if "wrapped_dek" not in doc:
            await self._open(doc)  # old format in the keys database: wrapped in place under the current KEK
            counts.rewrapped += 1
            return
        try:
            key = await self.keks.unwrap(doc["_id"], doc["kid"], bytes(doc["wrapped_dek"]))
        except UnknownKeyEncryptionKey:
            counts.unknown_kek += 1
            return
        kid, wrapped = await self.keks.wrap(doc["_id"], key)
        # Compare-and-set: a key erased or re-wrapped meanwhile is left as it is (never recreated).
        result = await self._collection.update_one(
            {"_id": doc["_id"], "kid": doc["kid"], "wrapped_dek": doc["wrapped_dek"]},
            {"$set": {"kid": kid, "wrapped_dek": wrapped, "rewrapped_at": datetime.now(UTC)}},
        )
        if result.modified_count:
            counts.rewrapped += 1
        else:
            counts.changed_meanwhile += 1

    async def erase(self, person_id: str, *, requested_by: str, session: AsyncClientSession | None = None) -> bool:
        """Delete the key (and remember the erasure); True if there was a key to delete."""
        self.forget(person_id)
        await self._erased.update_one(
            {"_id": person_id},
            {"$setOnInsert": {"erased_at": datetime.now(UTC), "requested_by": requested_by}},
            upsert=True,
            session=session,
        )
        result = await self._collection.delete_one({"_id": person_id}, session=self._keys_session(session))
        deleted = result.deleted_count == 1
        if self._legacy is not None:
            legacy = await self._legacy.delete_one({"_id": person_id}, session=session)
            deleted = deleted or legacy.deleted_count == 1
        return deleted

    def forget(self, person_id: str) -> None:
        """Drop a cached key: called when this process learns of an erasure."""
        self._cache.pop(person_id, None)


@dataclass
class RewrapCounts:
    """What a re-wrap did: keys moved from the old raw format, re-wrapped, erased or changed while it
    ran, wrapped by a KEK this keyring lacks (to fix before retiring it), and now under the current KEK."""

    migrated: int = 0
    rewrapped: int = 0
    changed_meanwhile: int = 0
    unknown_kek: int = 0
    current: int = 0


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
        if event.status_url is not None:
            # A bearer capability: whoever reads the link sees and changes the person's request.
            fields["status_url"] = event.status_url
        return event.model_copy(
            update={
                "contact": Contact(),
                "need": "",
                "channel_details": details,
                "status_url": None,
                "sealed": _encrypt(key, event.person_id, fields),
            }
        )
    names = _SEALED_ALONE.get(type(event), ())
    given = {name for name in names if getattr(event, name) is not None}
    if given and getattr(event, "sealed", None) is None:
        person_id: str = getattr(event, "person_id")  # noqa: B009 - every such event has one
        personal = event.model_dump(mode="json", include=given)  # a contact as JSON, like the request's
        return event.model_copy(update={**dict.fromkeys(personal), "sealed": _encrypt(key, person_id, personal)})
    return event


def sealed_fields(sealed: SealedPersonalData, key: bytes | None) -> dict[str, Any]:
    """The clear fields of a sealed block kept apart from its event (a projection's), or {} once the key is erased."""
    return _decrypt(key, sealed) if key is not None else {}


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
                "status_url": fields.get("status_url", event.status_url),
                "sealed": None,
            }
        )
    if (names := _SEALED_ALONE.get(type(event))) is not None:
        # Each value read back as its field's type (a contact's JSON becomes a `Contact` again).
        opened = {name: _field_adapter(type(event), name).validate_python(fields.get(name)) for name in names}
        return event.model_copy(update={**opened, "sealed": None})
    return event


@functools.cache
def _field_adapter(cls: type[Event], name: str) -> TypeAdapter[Any]:
    annotation = cls.model_fields[name].annotation
    assert annotation is not None  # every sealed field is annotated
    return TypeAdapter(annotation)


_SEALED_ALONE: Mapping[type[Event], tuple[str, ...]] = {
    ContactAttempted: ("notes",),
    PartnerInformationRequested: ("question",),
    PartnerInformationReceived: ("answer",),
    # Not personal data but bearer capabilities: whoever reads a link answers the offer for the candidate.
    ExamSeatOffered: ("accept_url", "decline_url"),
    # What the person changed from their status page, and the contact staff confirmed: personal data.
    RequestDetailsCorrected: ("need", "contact"),
    ContactDetailsConfirmed: ("contact",),
}
"""Events whose few personal fields (free text, a contact, a candidate's answer links) are sealed alone: their names."""


class PersonalData:
    """What a service with access uses: seal on the way out, unseal on the way in."""

    def __init__(self, keys: PersonKeys) -> None:
        self.keys = keys

    async def seal(self, event: E, *, session: AsyncClientSession | None = None, new_person: bool = False) -> E:
        """`new_person`: the event's person id was minted in `session`'s transaction (`PersonKeys.key_for_new_person`)."""
        person_id = getattr(event, "person_id", None)
        if person_id is None:
            return event
        if new_person:
            return seal(event, await self.keys.key_for_new_person(person_id, session=session))
        return seal(event, await self.keys.key_for_new_data(person_id, session=session))

    async def seal_for_new_people(self, events: Sequence[E], *, session: AsyncClientSession | None = None) -> list[E]:
        """`seal(event, new_person=True)` for events of distinct people, all minted in `session`'s transaction."""
        person_ids = [getattr(event, "person_id") for event in events]  # noqa: B009 - events of people have one
        keys = await self.keys.keys_for_new_people(person_ids, session=session)
        return [seal(event, key) for event, key in zip(events, keys, strict=True)]

    async def unseal(self, event: E) -> E:
        sealed = getattr(event, "sealed", None)
        if sealed is None:
            return event
        return unseal(event, await self.keys.key(sealed.key_id))

    async def unseal_many(self, events: Sequence[E]) -> list[E]:
        """`unseal` of each event, the keys read in one query."""
        key_ids = {sealed.key_id for event in events if (sealed := getattr(event, "sealed", None)) is not None}
        keys = await self.keys.keys(key_ids) if key_ids else {}
        return [unseal(event, keys[sealed.key_id]) if (sealed := getattr(event, "sealed", None)) else event for event in events]
