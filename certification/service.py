"""Certification's use cases wired together: candidates, seats and awards over one MongoDB database.

`CertificationService` is what the app builds once and what its subscribers, background loops and
HTTP routes reach: `candidates` (enrolments, exam requests, priorities, waitlists), `seats` (centres,
sessions, offers and their answers and deadlines), `awards` (results and credentials) and `contacts`
(the address each person gave intake, that names a credential's holder). Each part
owns what it changes; the three share the collections of `certification.store`. Candidates and seats
reach them through the ports of `certification.repositories`, here their MongoDB adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient

from certification.awards import Awards
from certification.candidates import Candidates
from certification.certifications import Certifications
from certification.credentials import CredentialLinks, IssuerProfile
from certification.holders import HolderContacts, MongoContactBook
from certification.mongo_repositories import MongoDueTimers, MongoUnitOfWork
from certification.offer_links import OfferLinks
from certification.seating import OfferTerms
from certification.seats import Seal, Seats
from certification.signing import CredentialSigner
from certification.store import CertificationStore
from services.clock import Clock
from services.idempotency import ProcessedEvents
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonalData
from services.timers import TimerStore

__all__ = ["CertificationService"]


class CertificationService:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: MongoDatabase,
        *,
        certifications: Certifications,
        clock: Clock,
        processed: ProcessedEvents,
        outbox: Outbox,
        timers: TimerStore,
        links: CredentialLinks,
        issuer: IssuerProfile,
        offer_links: OfferLinks,
        seal: Seal,
        offer_terms: OfferTerms | None = None,
        what_to_bring: Sequence[str] = (),
        signer: CredentialSigner | None = None,
        routed_priority_from: int | None = None,
        routed_priority_boost: int = 1,
        personal: PersonalData | None = None,
    ) -> None:
        self.store = CertificationStore(client, db)
        self.contacts = HolderContacts(MongoContactBook(db), personal)
        self.certifications = certifications
        self.outbox = outbox
        self.timers = timers
        store = self.store

        def unit_of_work() -> MongoUnitOfWork:
            return MongoUnitOfWork(store, outbox=outbox, timers=timers, processed=processed)

        self.unit_of_work = unit_of_work
        self.seats = Seats(
            unit_of_work,
            certifications=certifications,
            clock=clock,
            timers=MongoDueTimers(timers),
            links=offer_links,
            seal=seal,
            terms=offer_terms,
            what_to_bring=what_to_bring,
            tracer=outbox.tracer,
        )
        self.candidates = Candidates(
            unit_of_work,
            self.seats,
            certifications=certifications,
            clock=clock,
            routed_priority_from=routed_priority_from,
            routed_priority_boost=routed_priority_boost,
        )
        self.awards = Awards(
            self.store,
            self.seats,
            uow=unit_of_work,
            certifications=certifications,
            clock=clock,
            links=links,
            issuer=issuer,
            signer=signer,
            holder_email=self.contacts.email_of,
            tracer=outbox.tracer,
        )

    async def ensure_indexes(self) -> None:
        await self.store.ensure_indexes()
