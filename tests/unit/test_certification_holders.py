"""Issue 14, item 4: the credential's holder is named by a salted hash of their e-mail, the one they
gave intake when staff type none. Certification keeps a small projection, person id -> e-mail, from
the (sealed) `TrainingRequestReceived`, and blanks it on `PersonDataErased`. Here the pure folds,
the use case over an in-memory contact book, and the credential it leads to."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from datetime import timedelta

import pytest

from certification.certifications import load_certifications
from certification.credentials import CredentialLinks, IssuerProfile, build_credential, new_salt
from certification.holders import HolderContact, HolderContacts, fold_erasure, fold_request
from schemas import Contact, PersonDataErased, TrainingRequestReceived
from services.privacy import PersonalData, seal
from tests.factories import FIXED_RECEIVED_AT, make_request

pytestmark = pytest.mark.unit

T0 = FIXED_RECEIVED_AT


class InMemoryContactBook:
    """`ContactBook` over a dictionary, with the adapter's compare-and-set on `version`."""

    def __init__(self) -> None:
        self.contacts: dict[str, HolderContact] = {}
        self.lose_next = 0
        """Saves to refuse as if another replica had saved first (the race the use case retries)."""

    async def get(self, person_id: str) -> HolderContact | None:
        return self.contacts.get(person_id)

    async def save(self, contact: HolderContact) -> bool:
        if self.lose_next:
            self.lose_next -= 1
            return False
        stored = self.contacts.get(contact.person_id)
        if (stored.version if stored else 0) != contact.version:
            return False
        self.contacts[contact.person_id] = replace(contact, version=contact.version + 1)
        return True


class InMemoryKeys:
    """The part of `PersonKeys` that `PersonalData.unseal` and an erasure use."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.forgotten: list[str] = []

    async def key(self, person_id: str) -> bytes | None:
        return self.keys.get(person_id)

    def forget(self, person_id: str) -> None:
        self.forgotten.append(person_id)


def request(
    person_id: str = "p-1", email: str | None = "amina@example.org", *, at: timedelta = timedelta(0)
) -> TrainingRequestReceived:
    return make_request(person_id=person_id, received_at=T0 + at, contact=Contact(name="Amina Test", email=email))


def erased(person_id: str = "p-1", *, at: timedelta = timedelta(hours=1)) -> PersonDataErased:
    return PersonDataErased(source="/intake", subject=person_id, person_id=person_id, erased_at=T0 + at, requested_by="dpo-1")


# -- the folds (pure) ------------------------------------------------------------------


def test_a_first_request_gives_the_address() -> None:
    contact = fold_request(None, person_id="p-1", email=" amina@example.org ", received_at=T0)
    assert contact == HolderContact("p-1", email="amina@example.org", as_of=T0)


def test_the_latest_request_wins_and_one_without_an_address_keeps_the_known_one() -> None:
    first = fold_request(None, person_id="p-1", email="old@example.org", received_at=T0)
    newer = fold_request(first, person_id="p-1", email="new@example.org", received_at=T0 + timedelta(days=1))
    assert newer is not None and newer.email == "new@example.org"
    phone_only = fold_request(newer, person_id="p-1", email=None, received_at=T0 + timedelta(days=2))
    assert phone_only is not None and phone_only.email == "new@example.org"


def test_an_older_request_read_late_only_fills_a_missing_address() -> None:
    known = HolderContact("p-1", email="new@example.org", as_of=T0 + timedelta(days=1))
    assert fold_request(known, person_id="p-1", email="old@example.org", received_at=T0) is None
    blank = HolderContact("p-1", email=None, as_of=T0 + timedelta(days=1))
    filled = fold_request(blank, person_id="p-1", email="old@example.org", received_at=T0)
    assert filled is not None and filled.email == "old@example.org" and filled.as_of == blank.as_of


def test_the_same_request_again_changes_nothing() -> None:
    once = fold_request(None, person_id="p-1", email="amina@example.org", received_at=T0)
    assert fold_request(once, person_id="p-1", email="amina@example.org", received_at=T0) is None


def test_an_erasure_blanks_the_address_and_requests_from_before_it_stay_out() -> None:
    known = HolderContact("p-1", email="amina@example.org", as_of=T0, version=3)
    tombstone = fold_erasure(known, person_id="p-1", erased_at=T0 + timedelta(hours=1))
    assert (tombstone.email, tombstone.as_of, tombstone.erased_at, tombstone.version) == (None, None, T0 + timedelta(hours=1), 3)
    assert fold_request(tombstone, person_id="p-1", email="amina@example.org", received_at=T0) is None
    # The person writes again after the erasure: a new request, a new address.
    back = fold_request(tombstone, person_id="p-1", email="again@example.org", received_at=T0 + timedelta(days=1))
    assert back is not None and back.email == "again@example.org"
    # An erasure replayed, or an older one read late, never moves the watermark back.
    assert fold_erasure(tombstone, person_id="p-1", erased_at=T0).erased_at == T0 + timedelta(hours=1)


def test_an_erasure_of_someone_unknown_leaves_a_tombstone() -> None:
    tombstone = fold_erasure(None, person_id="p-9", erased_at=T0)
    assert tombstone == HolderContact("p-9", erased_at=T0)
    assert fold_request(tombstone, person_id="p-9", email="x@example.org", received_at=T0 - timedelta(minutes=1)) is None


# -- the use case ----------------------------------------------------------------------


async def test_a_sealed_request_is_opened_and_its_address_kept() -> None:
    keys, book = InMemoryKeys(), InMemoryContactBook()
    keys.keys["p-1"] = os.urandom(32)
    sealed = seal(request(), keys.keys["p-1"])
    assert sealed.sealed is not None and sealed.contact.email is None  # nothing in clear on the topic
    contacts = HolderContacts(book, PersonalData(keys))  # type: ignore[arg-type]
    assert await contacts.on_request(sealed)
    assert await contacts.email_of("p-1") == "amina@example.org"
    assert not await contacts.on_request(sealed)  # redelivered: the same, nothing saved
    assert book.contacts["p-1"].version == 1


async def test_a_request_whose_key_was_erased_cannot_be_read_and_is_not_kept() -> None:
    keys, book = InMemoryKeys(), InMemoryContactBook()
    sealed = seal(request(), os.urandom(32))  # its key is not in the keyring any more
    contacts = HolderContacts(book, PersonalData(keys))  # type: ignore[arg-type]
    assert not await contacts.on_request(sealed)
    assert await contacts.email_of("p-1") is None and book.contacts == {}


async def test_an_erasure_empties_the_projection_and_forgets_the_cached_key() -> None:
    keys, book = InMemoryKeys(), InMemoryContactBook()
    contacts = HolderContacts(book, PersonalData(keys))  # type: ignore[arg-type]
    await contacts.on_request(request())
    assert await contacts.on_erased(erased())
    assert await contacts.email_of("p-1") is None
    assert keys.forgotten == ["p-1"]
    assert not await contacts.on_request(request())  # replayed from before the erasure
    assert await contacts.email_of("p-1") is None


async def test_a_lost_race_is_decided_again_on_what_the_other_saved() -> None:
    book = InMemoryContactBook()
    contacts = HolderContacts(book)
    await contacts.on_request(request(email="old@example.org"))
    book.lose_next = 2
    assert await contacts.on_request(request(email="new@example.org", at=timedelta(days=1)))
    assert await contacts.email_of("p-1") == "new@example.org"


async def test_the_credential_names_the_holder_by_a_salted_hash_of_the_kept_address() -> None:
    contacts = HolderContacts(InMemoryContactBook())
    await contacts.on_request(request(email="Amina@Example.org"))
    salt = new_salt()
    links = CredentialLinks("https://certification.example.be")
    document = build_credential(
        credential_id="c-1",
        certification=load_certifications().get("MOS-EXCEL"),  # type: ignore[arg-type]
        person_id="p-1",
        salt=salt,
        issued_at=T0,
        links=links,
        issuer=IssuerProfile(id=links.issuer, name="Bruxelles Formation", url="https://www.bruxellesformation.brussels"),
        status_index=7,
        email=await contacts.email_of("p-1"),
    )
    (identity,) = document["credentialSubject"]["identifier"]
    expected = "sha256$" + hashlib.sha256(("amina@example.org" + salt).encode()).hexdigest()
    assert (identity["identityType"], identity["hashed"], identity["identityHash"]) == ("emailAddress", True, expected)
