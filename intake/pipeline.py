"""The intake pipeline: every channel's drafts become `TrainingRequestReceived` events, stored
durably before the channel acknowledges.

One MongoDB transaction per request: deduplicate by the channel's key, find the person by
normalised phone number or e-mail address, record the request, and put the event in the
outbox. Requests of new people (every contact detail unknown) that arrive together share one
transaction of bulk writes, each stored exactly as its own transaction would have stored it. The
relay (services.outbox) publishes it to Kafka, so accepting never depends on Kafka being up.

Nobody proves who they are by typing a phone number: a request is the known person's only when every
contact detail it gives is already theirs (`resolve_person`). A request that brings a new detail along
with a known one gets a person of its own, and the known person is kept as a *possible* match for staff
to confirm (`IdentityLinks.confirm`); an identity key, once claimed, is never re-pointed except by that
confirmation. So a stranger's form carrying someone else's number cannot attach their own e-mail
address to that person, nor receive what is sent to them later.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateMany, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from intake.domain import AcceptedRequest, RequestDraft, callback_slot_chosen
from intake.identity import identity_keys, normalise_email, normalise_phone
from intake.status.links import StatusLinks
from schemas import Contact, TrainingRequestReceived
from services.free_text import clean_name
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys

log = structlog.get_logger(__name__)


COMBINATION = "set:"
"""Prefix of the identity key of a set of contact details seen together (see `resolve_person`)."""


def combination_key(keys: list[str]) -> str | None:
    """One key for contact details given together (so the same pair finds the same person again)."""
    if len(keys) < 2:
        return None
    return COMBINATION + hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Resolution:
    """Who a request belongs to: `person_id` (new or known) and the known people it may also be."""

    person_id: str | None
    """None: a new person."""
    possible_matches: tuple[str, ...] = ()


def resolve_person(keys: list[str], owners: dict[str, str], combination_owner: str | None) -> Resolution:
    """The person a request's identity `keys` lead to, given who already owns which key.

    - the same set of details seen together before: that person;
    - no detail known: a new person, who claims them all;
    - every detail known, all of one person: that person;
    - otherwise (a new detail with a known one, or details of different people): a new person, with
      the owners as possible matches. Linking them needs proof (a one-time code, or staff confirming).
    """
    if combination_owner is not None:
        return Resolution(combination_owner)
    known = {owners[key] for key in keys if key in owners}
    if not known:
        return Resolution(None)
    if len(known) == 1 and all(key in owners for key in keys):
        return Resolution(known.pop())
    return Resolution(None, tuple(sorted(known)))


@dataclass(frozen=True, slots=True)
class FoundPerson:
    """Whose a request is, as its transaction stored it: `new` when the id was minted in it."""

    person_id: str
    possible_matches: tuple[str, ...]
    new: bool


def new_person_id() -> str:
    """Random, so that the id reveals nothing about the person (unlike a hash of a phone number)."""
    return f"per_{uuid.uuid4().hex}"


def build_event(
    draft: RequestDraft,
    *,
    request_id: str,
    person_id: str,
    phone: str | None,
    email: str | None,
    linked_request_ids: tuple[str, ...],
    status_url: str | None = None,
) -> TrainingRequestReceived:
    details = dict(draft.channel_details)
    needs_triage, triage_reason = draft.needs_triage, draft.triage_reason
    if draft.phone and not phone:
        details["phone_as_given"] = draft.phone[:40]
    if draft.email and not email:
        details["email_as_given"] = draft.email[:254]
    if not phone and not email and not needs_triage:
        needs_triage, triage_reason = True, "no usable phone number or e-mail address"
    return TrainingRequestReceived(
        source=draft.source,
        subject=request_id,
        request_id=request_id,
        person_id=person_id,
        channel=draft.channel,
        received_at=draft.received_at,
        contact=Contact(name=clean_name(draft.name), phone=phone, email=email),
        language=draft.language,
        need=draft.need,
        requested_course=draft.requested_course,
        qualification_level=draft.qualification_level,
        has_computer=draft.has_computer,
        has_internet=draft.has_internet,
        unemployed_since=draft.unemployed_since,
        fact_sources=draft.known_fact_sources(),
        campaign=draft.campaign,
        consent_to_contact=draft.consent_to_contact,
        linked_request_ids=list(linked_request_ids),
        needs_triage=needs_triage,
        triage_reason=triage_reason,
        channel_details=details,
        kind=draft.kind,
        status_url=status_url,
    )


class IntakePipeline:
    """The MongoDB-backed `intake.domain.AcceptRequests`."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: MongoDatabase,
        outbox: Outbox,
        *,
        link_window: timedelta = timedelta(days=14),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        personal: PersonalData | None = None,
        max_batch: int = 64,
        status_links: StatusLinks | None = None,
    ) -> None:
        self._client = client
        self._requests = db["intake_requests"]
        self._identities = db["intake_identities"]
        self._outbox = outbox
        self._personal = personal or PersonalData(PersonKeys(db))
        self.link_window = link_window
        self._clock = clock
        self.max_batch = max_batch
        self._status_links = status_links
        self._waiting: list[tuple[RequestDraft, asyncio.Future[AcceptedRequest | None]]] = []
        self._batcher: asyncio.Task[None] | None = None

    async def ensure_indexes(self) -> None:
        await self._requests.create_index(
            "dedup_key", unique=True, partialFilterExpression={"dedup_key": {"$type": "string"}}, name="dedup_key_unique"
        )
        await self._requests.create_index([("person_id", ASCENDING), ("received_at", DESCENDING)], name="by_person")
        await self._outbox.ensure_indexes()

    async def accept(self, draft: RequestDraft) -> AcceptedRequest:
        batchable = draft.dedup_key is None and draft.callback_slot is None
        if batchable and (accepted := await self._accept_in_batch(draft)) is not None:
            self._log_accepted(draft, accepted)
            return accepted
        # A dedup key (whose race with a twin is settled by the unique index), a known contact detail,
        # or a batch that failed: a transaction of its own.
        return await self._accept_alone(draft)

    async def _accept_in_batch(self, draft: RequestDraft) -> AcceptedRequest | None:
        """Accepted with the other drafts waiting (see `_accept_batch`), or None when it must go alone."""
        decided: asyncio.Future[AcceptedRequest | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((draft, decided))
        if self._batcher is None:
            self._batcher = asyncio.create_task(self._accept_waiting())
        return await decided

    async def _accept_waiting(self) -> None:
        """Accept the waiting drafts, a batch per transaction, until none is left: drafts that arrive
        while one batch is written wait for the next, so a lone request is never held back."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                try:
                    results = await self._accept_batch([draft for draft, _ in batch])
                except Exception as error:  # noqa: BLE001 - each draft then goes alone, and fails alone if it must
                    log.warning("intake.batch_failed", count=len(batch), error_type=type(error).__name__)
                    results = [None] * len(batch)
                for (_, decided), result in zip(batch, results, strict=True):
                    if not decided.done():
                        decided.set_result(result)
        finally:
            self._batcher = None
            for _, decided in self._waiting:  # only when cancelled (shutdown)
                decided.cancel()
            self._waiting = []

    async def _accept_batch(self, drafts: list[RequestDraft]) -> list[AcceptedRequest | None]:
        """The drafts that bring only contact details nobody has (nor another draft of the batch)
        accepted in one transaction, each as a new person: exactly what a transaction of its own would
        do for it, in a few round trips for all. The others are None: they go alone (`_accept_alone`)."""
        contacts = [(normalise_phone(d.phone), normalise_email(d.email)) for d in drafts]
        keys = [identity_keys(phone, email) for phone, email in contacts]
        combinations = [combination_key(k) for k in keys]

        async def transaction(session: AsyncClientSession) -> list[AcceptedRequest | None]:
            wanted = {key for draft_keys in keys for key in draft_keys} | {c for c in combinations if c}
            known = {
                doc["_id"]
                for doc in await self._identities.find({"_id": {"$in": list(wanted)}}, {"_id": 1}, session=session).to_list(None)
            }
            results: list[AcceptedRequest | None] = []
            claims: list[UpdateOne] = []
            records: list[dict[str, Any]] = []
            events: list[TrainingRequestReceived] = []
            now = self._clock()
            for draft, (phone, email), draft_keys, combination in zip(drafts, contacts, keys, combinations, strict=True):
                mine = [*draft_keys, combination] if combination else draft_keys
                if any(key in known for key in mine):
                    results.append(None)
                    continue
                known.update(mine)  # a second draft with one of these details waits for this one's commit
                person_id, request_id = new_person_id(), str(uuid.uuid4())
                claims += [_claim(key, person_id, now, seen=True) for key in draft_keys]
                event = build_event(
                    draft,
                    request_id=request_id,
                    person_id=person_id,
                    phone=phone,
                    email=email,
                    linked_request_ids=(),
                    status_url=self._status_url(request_id, draft),
                )
                records.append(self._request_record(draft, event, possible=(), keys=draft_keys))
                events.append(event)
                results.append(AcceptedRequest(request_id, person_id))
            if events:
                if claims:
                    await self._identities.bulk_write(claims, ordered=True, session=session)
                await self._requests.insert_many(records, ordered=True, session=session)
                await self._outbox.add(await self._personal.seal_for_new_people(events, session=session), session=session)
            return results

        async with self._client.start_session() as session:
            batch: list[AcceptedRequest | None] = await session.with_transaction(transaction)
            return batch

    async def _accept_alone(self, draft: RequestDraft) -> AcceptedRequest:
        phone = normalise_phone(draft.phone)
        email = normalise_email(draft.email)
        keys = identity_keys(phone, email)

        async def transaction(session: AsyncClientSession) -> AcceptedRequest:
            if draft.dedup_key and (earlier := await self._requests.find_one({"dedup_key": draft.dedup_key}, session=session)):
                return AcceptedRequest(earlier["_id"], earlier["person_id"], duplicate=True)
            person = await self._person_for(keys, session)
            person_id, possible = person.person_id, person.possible_matches
            linked = () if person.new else await self._recent_requests(person_id, session)
            request_id = str(uuid.uuid4())
            event = build_event(
                draft,
                request_id=request_id,
                person_id=person_id,
                phone=phone,
                email=email,
                linked_request_ids=linked,
                status_url=self._status_url(request_id, draft),
            )
            await self._requests.insert_one(self._request_record(draft, event, possible=possible, keys=keys), session=session)
            # Personal fields leave this service only as ciphertext under the person's key.
            sealed = await self._personal.seal(event, session=session, new_person=person.new)
            await self._outbox.add([sealed, *callback_slot_chosen(draft, event)], session=session)
            return AcceptedRequest(request_id, person_id, linked_request_ids=linked)

        try:
            async with self._client.start_session() as session:
                accepted = await session.with_transaction(transaction)
        except DuplicateKeyError:
            # Two deliveries of one dedup key raced; the other one's transaction won.
            earlier = await self._requests.find_one({"dedup_key": draft.dedup_key})
            if earlier is None:
                raise
            accepted = AcceptedRequest(earlier["_id"], earlier["person_id"], duplicate=True)
        self._log_accepted(draft, accepted)
        return accepted

    def _status_url(self, request_id: str, draft: RequestDraft) -> str | None:
        """The person's status link, in their language: every channel's request gets one."""
        if self._status_links is None:
            return None
        return self._status_links.mint(request_id, draft.language, now=self._clock())

    def _request_record(
        self, draft: RequestDraft, event: TrainingRequestReceived, *, possible: tuple[str, ...], keys: list[str]
    ) -> dict[str, Any]:
        return {
            "_id": event.request_id,
            "person_id": event.person_id,
            "channel": draft.channel.value,
            "received_at": draft.received_at,
            "accepted_at": self._clock(),
            "dedup_key": draft.dedup_key,
            "event_id": str(event.id),
            "linked_request_ids": list(event.linked_request_ids),
            "needs_triage": event.needs_triage,
            # Not on the event: a guess for staff to confirm, never a link.
            "possible_person_ids": list(possible),
            "identity_keys": keys,
        }

    @staticmethod
    def _log_accepted(draft: RequestDraft, accepted: AcceptedRequest) -> None:
        log.info(
            "request.accepted",
            request_id=accepted.request_id,
            person_id=accepted.person_id,
            channel=draft.channel.value,
            duplicate=accepted.duplicate,
            linked=len(accepted.linked_request_ids),
        )

    async def _recent_requests(self, person_id: str, session: AsyncClientSession) -> tuple[str, ...]:
        """The person's requests within the link window, newest first (at most 20)."""
        since = self._clock() - self.link_window
        recent = (
            await self._requests.find({"person_id": person_id, "received_at": {"$gte": since}}, {"_id": 1}, session=session)
            .sort("received_at", DESCENDING)
            .to_list(20)
        )
        return tuple(doc["_id"] for doc in recent)

    async def _person_for(self, keys: list[str], session: AsyncClientSession) -> FoundPerson:
        combination = combination_key(keys)
        wanted = [*keys, combination] if combination else keys
        docs = await self._identities.find({"_id": {"$in": wanted}}, session=session).to_list(None)
        owners = {doc["_id"]: doc["person_id"] for doc in docs if doc["_id"] != combination}
        combination_owner = next((doc["person_id"] for doc in docs if doc["_id"] == combination), None)
        resolution = resolve_person(keys, owners, combination_owner)
        person_id = resolution.person_id or new_person_id()
        now = self._clock()
        # Only unclaimed keys, and only on insert: a key is never re-pointed by a request. A
        # concurrent request of the same new person conflicts here, is retried by with_transaction,
        # and then finds this person. A key claimed now is seen now; a combination claimed beside
        # possible matches is not this person's to be seen by.
        writes: list[UpdateOne | UpdateMany] = [_claim(key, person_id, now, seen=True) for key in keys if key not in owners]
        if resolution.possible_matches and combination:
            writes.append(_claim(combination, person_id, now, seen=False))
        seen_again = [key for key in keys if owners.get(key) == person_id]
        if combination and combination_owner == person_id:
            seen_again.append(combination)
        if seen_again:
            writes.append(UpdateMany({"_id": {"$in": seen_again}, "person_id": person_id}, {"$max": {"last_seen_at": now}}))
        if writes:  # one round trip
            await self._identities.bulk_write(writes, ordered=True, session=session)
        if resolution.possible_matches:
            log.info("identity.unconfirmed_match", person_id=person_id, possible=len(resolution.possible_matches))
        return FoundPerson(person_id, resolution.possible_matches, new=resolution.person_id is None)


def _claim(key: str, person_id: str, now: datetime, *, seen: bool) -> UpdateOne:
    """An identity key claimed for a person if nobody has it yet (a key is never re-pointed); `seen`:
    the key counts as seen now (a combination claimed beside possible matches does not)."""
    claim: dict[str, Any] = {"person_id": person_id, "first_seen_at": now, "verified": False}
    if seen:
        claim["last_seen_at"] = now
    return UpdateOne({"_id": key}, {"$setOnInsert": claim}, upsert=True)
