"""The e-mail a credential's holder is identified by: a small projection, person id -> e-mail.

A credential names its holder by a salted hash of their e-mail (OB 3.0 `IdentityObject`,
`identityType: emailAddress`, `hashed: true`), so that a verifier told the address can check it.
Staff may type the address into the result form; otherwise certification takes the one the person
gave intake: it reads `TrainingRequestReceived` (the contact sealed with the person's key, opened
here as notification opens it) and keeps the latest address per person, nothing else. A
`PersonDataErased` blanks it and leaves a tombstone: a request received before the erasure never
brings the address back (its key is gone anyway), and later credentials fall back to the person id.

`fold_request` and `fold_erasure` decide (pure); `HolderContacts` loads, decides and saves with a
compare-and-set on `version` (two requests of one person may be read at once: the topic is keyed by
request), through the `ContactBook` port: `MongoContactBook` here, a dictionary in the unit tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from pymongo.errors import DuplicateKeyError

from schemas import PersonDataErased, TrainingRequestReceived
from services.mongo import MongoDatabase
from services.privacy import PersonalData

__all__ = [
    "CONTACTS_COLLECTION",
    "ContactBook",
    "HolderContact",
    "HolderContacts",
    "MongoContactBook",
    "fold_erasure",
    "fold_request",
]

log = structlog.get_logger(__name__)

CONTACTS_COLLECTION = "certification_contacts"

_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class HolderContact:
    person_id: str
    email: str | None = None
    as_of: datetime | None = None
    """When the request the address comes from was received (the latest wins)."""
    erased_at: datetime | None = None
    """The latest erasure: a request received until then is ignored."""
    version: int = 0
    """0 for a person not stored yet; each save adds one."""


def fold_request(
    known: HolderContact | None, *, person_id: str, email: str | None, received_at: datetime
) -> HolderContact | None:
    """The contact after a request, or None if it changes nothing.

    A newer request's address replaces the known one (one without an address keeps it); an older
    one (topics are not read in order) only fills a missing address; one received before the
    latest erasure is ignored."""
    contact = known or HolderContact(person_id)
    if contact.erased_at is not None and received_at <= contact.erased_at:
        return None
    address = (email or "").strip() or None
    if contact.as_of is None or received_at >= contact.as_of:
        changed = replace(contact, email=address or contact.email, as_of=received_at)
    elif contact.email is None and address is not None:
        changed = replace(contact, email=address)
    else:
        return None
    return None if changed == known else changed


def fold_erasure(known: HolderContact | None, *, person_id: str, erased_at: datetime) -> HolderContact:
    """The tombstone an erasure leaves: no address, and the erasure's time (the latest of two)."""
    contact = known or HolderContact(person_id)
    latest = erased_at if contact.erased_at is None else max(contact.erased_at, erased_at)
    return replace(contact, email=None, as_of=None, erased_at=latest)


class ContactBook(Protocol):
    async def get(self, person_id: str) -> HolderContact | None: ...

    async def save(self, contact: HolderContact) -> bool:
        """Store `contact` if the stored one is still at `contact.version` (absent for 0); False if not."""
        ...


class MongoContactBook:
    """`certification_contacts`: `{_id: person_id, email, as_of, erased_at, version}`."""

    def __init__(self, db: MongoDatabase) -> None:
        self._contacts = db[CONTACTS_COLLECTION]

    async def get(self, person_id: str) -> HolderContact | None:
        doc = await self._contacts.find_one({"_id": person_id})
        if doc is None:
            return None
        return HolderContact(
            person_id=doc["_id"],
            email=doc.get("email"),
            as_of=_utc(doc.get("as_of")),
            erased_at=_utc(doc.get("erased_at")),
            version=doc.get("version", 0),
        )

    async def save(self, contact: HolderContact) -> bool:
        fields: dict[str, Any] = {
            "email": contact.email,
            "as_of": contact.as_of,
            "erased_at": contact.erased_at,
            "version": contact.version + 1,
        }
        if contact.version == 0:
            try:
                await self._contacts.insert_one({"_id": contact.person_id, **fields})
            except DuplicateKeyError:
                return False
            return True
        result = await self._contacts.update_one({"_id": contact.person_id, "version": contact.version}, {"$set": fields})
        return result.matched_count == 1


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class LostRace(RuntimeError):
    """The contact changed under every attempt (raised to the handler: the event is retried)."""


class HolderContacts:
    """The projection's use case: fold requests and erasures in, answer a person's address."""

    def __init__(self, book: ContactBook, personal: PersonalData | None = None) -> None:
        self.book = book
        self.personal = personal

    async def on_request(self, event: TrainingRequestReceived) -> bool:
        """Keep the request's address; False if it changed nothing (or its key was erased: unreadable)."""
        request = await self.personal.unseal(event) if self.personal is not None else event
        if request.sealed is not None:
            log.info("certification.contact_recorded", person_id=event.person_id, request_id=event.request_id, readable=False)
            return False  # the person's key was erased: nothing to read, nothing to keep
        email = request.contact.email
        person_id, received_at = event.person_id, event.received_at
        changed = await self._apply(
            person_id, lambda known: fold_request(known, person_id=person_id, email=email, received_at=received_at)
        )
        log.info("certification.contact_recorded", person_id=event.person_id, request_id=event.request_id, applied=changed)
        return changed

    async def on_erased(self, event: PersonDataErased) -> bool:
        if self.personal is not None:
            self.personal.keys.forget(event.person_id)
        changed = await self._apply(
            event.person_id, lambda known: fold_erasure(known, person_id=event.person_id, erased_at=event.erased_at)
        )
        log.info("certification.person_erased", person_id=event.person_id, applied=changed)
        return changed

    async def email_of(self, person_id: str) -> str | None:
        """The address the person last gave, or None (unknown, or erased)."""
        contact = await self.book.get(person_id)
        return contact.email if contact is not None else None

    async def _apply(self, person_id: str, decide: Callable[[HolderContact | None], HolderContact | None]) -> bool:
        for _ in range(_ATTEMPTS):
            known = await self.book.get(person_id)
            changed = decide(known)
            if changed is None:
                return False
            if await self.book.save(changed):
                return True
        raise LostRace(f"the contact of {person_id} kept changing")
