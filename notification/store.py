"""Notification's state in MongoDB: the contact projection, the deliveries, and notices waiting for a contact.

Collections:
- `notification_people`: person_id -> latest contact, language, consent, opt-outs, erasure, and the
  link to each request's status page (`status_links`, request id -> URL: a bearer capability, blanked
  with the contact on erasure). Built from TrainingRequestReceived; a stub (no contact yet) is
  created by an opt-out or by an event that arrives before the person is known.
- `deliveries`: one document per message, `_id = f"{event_id}:{channel}"` (see `notification.model`).
  Addresses are not copied into it: they are read from the projection when the message is sent,
  so an erasure or a newer address takes effect, and support can read deliveries safely.
- `notification_waiting`: notices about a person not known yet, `_id = event_id`.

Why waiting notices do not get lost: topics are consumed independently, so a routed event can be
handled before the person's TrainingRequestReceived. Its handler then stores the notice here
(instead of dropping it, or failing and blocking its partition), and the TrainingRequestReceived
handler plans the deliveries of every waiting notice of that person. Both handlers write the
person's document inside their transaction (`touch` / `record_contact`), so when they run at the
same moment their transactions conflict and one is retried after the other committed: it cannot
happen that the notice is stored "waiting" just after the contact handler looked for waiting ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from notification.model import Delivery, DeliveryStatus, Person, SkipReason, delivery_id
from notification.notices import Notice
from notification.policy import PlannedDelivery
from notification.quiet_hours import QuietHours
from schemas import NotificationChannel, TrainingRequestReceived
from services.mongo import MongoDatabase
from services.tracing import carrier

__all__ = ["DELIVERIES", "PEOPLE", "WAITING", "ClaimLost", "DeliveryStore", "PeopleStore"]

PEOPLE = "notification_people"
DELIVERIES = "deliveries"
WAITING = "notification_waiting"

_HISTORY_KEPT = 30
_CONTACT_FIELDS = ("name", "phone", "email")


class ClaimLost(Exception):
    """The delivery is no longer claimed by this sender (its claim expired and another took it);
    raised inside the transaction so that the status change and its event are rolled back."""


def _is_web_link(url: str | None) -> bool:
    return url is not None and url.lower().startswith(("https://", "http://"))


def _upserted(doc: dict[str, Any] | None) -> Person:
    # An upsert returning the document after the update always finds one.
    assert doc is not None
    return Person.from_document(doc)


def _history(status: DeliveryStatus, at: datetime, **details: Any) -> dict[str, Any]:
    return {
        "$each": [{"at": at, "status": status.value, **{k: v for k, v in details.items() if v is not None}}],
        "$slice": -_HISTORY_KEPT,
    }


class PeopleStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._people = db[PEOPLE]

    async def get(self, person_id: str, *, session: AsyncClientSession | None = None) -> Person | None:
        doc = await self._people.find_one({"_id": person_id}, session=session)
        return Person.from_document(doc) if doc else None

    async def touch(self, person_id: str, *, now: datetime, session: AsyncClientSession) -> Person:
        """The person, created as an unknown stub if absent; always a write (see the module docstring)."""
        doc = await self._people.find_one_and_update(
            {"_id": person_id},
            {"$setOnInsert": {"opted_out": [], "created_at": now}, "$set": {"touched_at": now}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        return _upserted(doc)

    async def record_contact(self, event: TrainingRequestReceived, *, now: datetime, session: AsyncClientSession) -> Person:
        """Fold a request's contact into the projection; the latest request wins field by field.

        A newer request's name, phone or e-mail replaces the known one, and one it lacks keeps the
        known one (a caller who wrote before keeps their address); an older request (topics are not
        read in order) only fills what is missing. Language and consent come from the latest request.
        A request older than an erasure is ignored.
        """
        doc = await self._people.find_one({"_id": event.person_id}, session=session) or {}
        as_of: datetime | None = doc.get("contact_as_of")
        erased_at: datetime | None = doc.get("erased_at")
        received = event.received_at
        if erased_at is not None and received <= erased_at:
            updates: dict[str, Any] = {}
        else:
            known = (doc.get("contact") or {}) if erased_at is None else {}
            given = event.contact.model_dump()
            newer = as_of is None or erased_at is not None or received >= as_of
            first, second = (given, known) if newer else (known, given)
            updates = {"contact": {f: first.get(f) or second.get(f) for f in _CONTACT_FIELDS}}
            if _is_web_link(event.status_url):
                # Per request: an older request read late still gets its own link in its acknowledgement.
                updates[f"status_links.{event.request_id}"] = event.status_url
            if newer:
                updates |= {
                    "language": event.language.value,
                    "consent": event.consent_to_contact,
                    "contact_as_of": received,
                    "last_request_id": event.request_id,
                    "erased_at": None,
                }
        result = await self._people.find_one_and_update(
            {"_id": event.person_id},
            {"$setOnInsert": {"opted_out": [], "created_at": now}, "$set": {"touched_at": now, **updates}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        return _upserted(result)

    async def set_opted_out(self, person_id: str, channel: NotificationChannel, opted_out: bool, *, now: datetime) -> Person:
        change = {"$addToSet": {"opted_out": channel.value}} if opted_out else {"$pull": {"opted_out": channel.value}}
        doc = await self._people.find_one_and_update(
            {"_id": person_id},
            {**change, "$setOnInsert": {"created_at": now}, "$set": {"touched_at": now}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return _upserted(doc)

    async def confirm_contact(
        self, person_id: str, contact: Mapping[str, Any], *, now: datetime, session: AsyncClientSession
    ) -> None:
        """Details staff confirmed replace the known ones, field by field; a person erased meanwhile stays erased."""
        given = {f"contact.{name}": value for name, value in contact.items() if name in _CONTACT_FIELDS and value}
        if given:
            await self._people.update_one(
                {"_id": person_id, "erased_at": None}, {"$set": {**given, "touched_at": now}}, session=session
            )

    async def erase(self, person_id: str, *, erased_at: datetime, now: datetime, session: AsyncClientSession) -> None:
        """Forget the contact (the document stays as a tombstone, so an older request does not bring it back)."""
        await self._people.update_one(
            {"_id": person_id},
            {
                "$set": {
                    "contact": None,
                    "contact_as_of": None,
                    "language": None,
                    "status_links": {},
                    "erased_at": erased_at,
                    "touched_at": now,
                },
                "$setOnInsert": {"opted_out": [], "created_at": now},
            },
            upsert=True,
            session=session,
        )


def recorded_fields(
    status: DeliveryStatus,
    now: datetime,
    next_attempt_at: datetime | None,
    reason: str | None,
    error: str | None,
    provider_message_id: str | None,
) -> dict[str, Any]:
    """What recording a sending's outcome sets on a claimed document (a delivery or a staff alert):
    its new status, the next attempt if any, the claim released, and what the provider said."""
    fields: dict[str, Any] = {
        "status": status.value,
        "next_attempt_at": next_attempt_at,
        "claimed_by": None,
        "claim_expires_at": None,
        "updated_at": now,
    }
    if reason is not None:
        fields["reason"] = reason
    if error is not None:
        fields["last_error"] = error
    if provider_message_id is not None:
        fields["provider_message_id"] = provider_message_id
    if status is DeliveryStatus.SENT:
        fields["sent_at"] = now
    return fields


async def claim_due_documents(
    collection: AsyncCollection[dict[str, Any]],
    *,
    waiting: Sequence[DeliveryStatus],
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[dict[str, Any]]:
    """Claim up to `limit` due documents of `collection` for `owner`, earliest first, one conditional
    update each: those in a `waiting` status with `next_attempt_at <= now`, and those `sending` whose
    claim expired (the replica that claimed them died between claiming and recording the outcome).
    Deliveries to job seekers and alerts to staff are claimed alike."""
    query = {
        "$or": [
            {"status": {"$in": [status.value for status in waiting]}, "next_attempt_at": {"$lte": now}},
            {"status": DeliveryStatus.SENDING.value, "claim_expires_at": {"$lt": now}},
        ]
    }
    claimed: list[dict[str, Any]] = []
    for _ in range(limit):
        doc = await collection.find_one_and_update(
            query,
            {
                "$set": {
                    "status": DeliveryStatus.SENDING.value,
                    "claimed_by": owner,
                    "claim_expires_at": now + lease,
                    "updated_at": now,
                }
            },
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            break
        claimed.append(doc)
    return claimed


class DeliveryStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._deliveries = db[DELIVERIES]
        self._waiting = db[WAITING]

    async def ensure_indexes(self) -> None:
        await self._deliveries.create_index(
            [("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="status_next_attempt_at"
        )
        await self._deliveries.create_index(
            [("status", ASCENDING), ("claim_expires_at", ASCENDING)], name="status_claim_expires_at"
        )
        await self._deliveries.create_index([("person_id", ASCENDING), ("created_at", DESCENDING)], name="person_created_at")
        await self._deliveries.create_index([("person_id", ASCENDING), ("purpose", ASCENDING)], name="person_purpose")
        await self._waiting.create_index([("person_id", ASCENDING), ("created_at", ASCENDING)], name="person_created_at")

    # --- planning (inside a handler's transaction) ------------------------------------

    async def already_said(self, notice: Notice, *, session: AsyncClientSession) -> bool:
        """Whether the person was sent, or is being sent, this very message about another event."""
        found = await self._deliveries.find_one(
            {
                "person_id": notice.person_id,
                "purpose": notice.purpose,
                "about_event_id": {"$ne": notice.about_event_id},
                "status": {"$nin": [DeliveryStatus.SKIPPED.value, DeliveryStatus.FAILED.value, DeliveryStatus.BOUNCED.value]},
            },
            {"_id": 1},
            session=session,
        )
        return found is not None

    async def plan(
        self,
        notice: Notice,
        planned: Sequence[PlannedDelivery],
        *,
        now: datetime,
        quiet_hours: QuietHours,
        session: AsyncClientSession,
        fallback_of: str | None = None,
    ) -> list[str]:
        """Create the deliveries of `notice` that do not exist yet; returns the ids created.

        Insert-if-absent on the deterministic id: a redelivered or replayed event, or a fallback
        planned twice, finds its delivery there and creates nothing.
        """
        created = []
        for item in planned:
            _id = delivery_id(notice.about_event_id, item.channel)
            status: DeliveryStatus = DeliveryStatus.QUEUED
            next_at: datetime | None = now
            reason: str | None = None
            if item.skip is not None:
                status, next_at, reason = DeliveryStatus.SKIPPED, None, item.skip.value
            elif item.channel is NotificationChannel.SMS and (allowed := quiet_hours.next_allowed(now)) != now:
                status, next_at, reason = DeliveryStatus.DEFERRED, allowed, "quiet_hours"
            doc = {
                "about_event_id": notice.about_event_id,
                "about_event_type": notice.about_event_type,
                "correlation_id": notice.correlation_id,
                "person_id": notice.person_id,
                "request_id": notice.request_id,
                "channel": item.channel.value,
                "template": notice.kind.value,
                "facts": notice.facts,
                "purpose": notice.purpose,
                "status": status.value,
                "reason": reason,
                "attempts": 0,
                "next_attempt_at": next_at,
                "claimed_by": None,
                "claim_expires_at": None,
                "created_at": now,
                "updated_at": now,
                "sent_at": None,
                "last_error": None,
                "fallback_of": fallback_of,
                "trace": carrier(),  # the trace of the event it is about, continued when it is sent
                "history": [{"at": now, "status": status.value, **({"reason": reason} if reason else {})}],
            }
            result = await self._deliveries.update_one({"_id": _id}, {"$setOnInsert": doc}, upsert=True, session=session)
            if result.upserted_id is not None:
                created.append(_id)
        return created

    async def wait_for_contact(self, notice: Notice, *, now: datetime, session: AsyncClientSession) -> None:
        await self._waiting.update_one(
            {"_id": notice.about_event_id},
            {"$setOnInsert": {**notice.to_document(), "created_at": now}},
            upsert=True,
            session=session,
        )

    async def take_waiting(self, person_id: str, *, session: AsyncClientSession) -> list[Notice]:
        """The person's waiting notices, oldest first, removed from the waiting list."""
        docs = await self._waiting.find({"person_id": person_id}, session=session).sort("created_at", ASCENDING).to_list(None)
        if docs:
            await self._waiting.delete_many({"_id": {"$in": [d["_id"] for d in docs]}}, session=session)
        return [Notice.from_document(d) for d in docs]

    async def drop_waiting(self, person_id: str, *, session: AsyncClientSession) -> int:
        return (await self._waiting.delete_many({"person_id": person_id}, session=session)).deleted_count

    async def skip_open(self, person_id: str, reason: SkipReason, *, now: datetime, session: AsyncClientSession) -> int:
        """Skip every delivery of the person that has not been tried for good yet, and forget its facts."""
        result = await self._deliveries.update_many(
            {"person_id": person_id, "status": {"$in": [DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]}},
            {
                "$set": {
                    "status": DeliveryStatus.SKIPPED.value,
                    "reason": reason.value,
                    "next_attempt_at": None,
                    "updated_at": now,
                    "facts": {},
                },
                "$push": {"history": _history(DeliveryStatus.SKIPPED, now, reason=reason.value)},
            },
            session=session,
        )
        return result.modified_count

    # --- sending ----------------------------------------------------------------------

    async def claim_due(self, *, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        """Claim up to `limit` due deliveries, earliest first, one conditional update each.

        Due: queued or deferred with `next_attempt_at <= now`, or sending with an expired claim
        (the replica that claimed it died between claiming and recording the outcome).
        """
        docs = await claim_due_documents(
            self._deliveries,
            waiting=(DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED),
            owner=owner,
            now=now,
            lease=lease,
            limit=limit,
        )
        return [Delivery.from_document(doc) for doc in docs]

    async def record(
        self,
        delivery: Delivery,
        *,
        owner: str,
        status: DeliveryStatus,
        now: datetime,
        session: AsyncClientSession | None = None,
        attempted: bool,
        next_attempt_at: datetime | None = None,
        reason: str | None = None,
        error: str | None = None,
        provider_message_id: str | None = None,
        template: str | None = None,
    ) -> int:
        """Move a delivery claimed by `owner` to `status`; returns its attempts. Raises `ClaimLost`."""
        fields = recorded_fields(status, now, next_attempt_at, reason, error, provider_message_id)
        if template is not None:
            fields["rendered_template"] = template
        update: dict[str, Any] = {
            "$set": fields,
            "$push": {
                "history": _history(status, now, reason=reason, error=error, attempt=delivery.attempts + 1 if attempted else None)
            },
        }
        if attempted:
            update["$inc"] = {"attempts": 1}
        doc = await self._deliveries.find_one_and_update(
            {"_id": delivery.id, "status": DeliveryStatus.SENDING.value, "claimed_by": owner},
            update,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if doc is None:
            raise ClaimLost(delivery.id)
        return int(doc["attempts"])

    async def link_fallback(self, delivery_id_: str, fallback_id: str, *, session: AsyncClientSession) -> None:
        await self._deliveries.update_one({"_id": delivery_id_}, {"$set": {"fallback_to": fallback_id}}, session=session)

    # --- reading (support) ------------------------------------------------------------

    async def of_person(self, person_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        cursor = self._deliveries.find({"person_id": person_id}, {"facts": 0}).sort("created_at", DESCENDING)
        return await cursor.to_list(limit)

    async def waiting_of(self, person_id: str) -> list[dict[str, Any]]:
        return await self._waiting.find({"person_id": person_id}, {"facts": 0}).sort("created_at", ASCENDING).to_list(None)

    async def get(self, delivery_id_: str) -> dict[str, Any] | None:
        return await self._deliveries.find_one({"_id": delivery_id_})
