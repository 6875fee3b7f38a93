"""What the status page reads: one entry per request, fed by the events, tolerant of their order.

`apply_to_request` and `apply_to_person` are pure reducers (an entry, or None, and an event in; the
new entry out), so that the page's content can be tested without MongoDB and an event arriving
before the request's `TrainingRequestReceived` (another topic, another partition) still lands.
`StatusProjection` keeps the entries in MongoDB: `intake_status` per request, `intake_status_people`
per person (the exam events are keyed by person: the page attaches them to that person's requests).

Nothing internal is kept: no worker id, no priority, no note; the person's own words stay sealed
with their key (`need_sealed`), unsealed only when the page is shown. After `PersonDataErased` a
request's entry is a tombstone (`erased: true`) and the person's entry says only that it was erased,
so a late event of theirs is not stored again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from schemas import (
    CallbackSlotChosen,
    CertificateIssued,
    ContactAttempted,
    ContactDetailsConfirmed,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamScheduled,
    ExamSeatOffered,
    PartnerInformationReceived,
    PartnerInformationRequested,
    PersonDataErased,
    RequestDetailsCorrected,
    TrainingAbandoned,
    TrainingCompleted,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
)
from services.mongo import MongoDatabase

__all__ = [
    "PERSON_EVENTS",
    "REQUEST_EVENTS",
    "StatusProjection",
    "apply_to_person",
    "apply_to_request",
    "is_closed",
]

REQUEST_EVENTS: tuple[type[Event], ...] = (
    TrainingRequestReceived,
    TrainingRequestRouted,
    ContactAttempted,
    PartnerInformationRequested,
    PartnerInformationReceived,
    TrainingRequestClosed,
    CallbackSlotChosen,
    TrainingRequestWithdrawn,
    RequestDetailsCorrected,
    ContactDetailsConfirmed,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    TrainingCompleted,
    TrainingAbandoned,
)
"""Events about one request (keyed by request id)."""

PERSON_EVENTS: tuple[type[Event], ...] = (ExamSeatOffered, ExamScheduled, CertificateIssued)
"""Events about a person (keyed by person id), shown on each of their requests' pages."""

MAX_HISTORY = 200
"""A request's page lists at most this many lines (the newest): beyond, it is not a status but an archive."""


def _line(event: Event, what: str, **params: Any) -> dict[str, Any]:
    return {"id": str(event.id), "at": event.time, "what": what, **params}


def _with_line(entry: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    history = [old for old in entry.get("history", []) if old["id"] != line["id"]]
    history.append(line)
    history.sort(key=lambda item: item["at"])
    entry["history"] = history[-MAX_HISTORY:]
    return entry


def is_closed(entry: Mapping[str, Any]) -> bool:
    """A request the person can no longer act on: closed by routing, or withdrawn."""
    return bool(entry.get("closed") or entry.get("withdrawn_at"))


def apply_to_request(entry: Mapping[str, Any] | None, event: Event) -> dict[str, Any]:
    """The request's entry once `event` is applied (a new entry when there was none)."""
    request_id: str = getattr(event, "request_id")  # noqa: B009 - every request event has one
    new: dict[str, Any] = dict(entry) if entry else {"_id": request_id, "history": [], "revoked_links": []}
    if new.get("erased"):
        return new
    new["person_id"] = getattr(event, "person_id")  # noqa: B009
    match event:
        case TrainingRequestReceived():
            new.update(
                language=event.language.value,
                channel=event.channel.value,
                received_at=event.received_at,
                kind=event.kind.value,
                need_sealed=event.sealed.model_dump(mode="json") if event.sealed else None,
            )
            new.setdefault("requested_course", event.requested_course)
            # When it reached us (a call's start, an e-mail's arrival), not when intake published it.
            return _with_line(new, _line(event, "received") | {"at": event.received_at})
        case TrainingRequestRouted():
            new.update(target=event.target.value, rule_id=event.rule_id, callback_deadline=event.callback_deadline)
            return _with_line(new, _line(event, "routed", team=event.target.value))
        case ContactAttempted():
            return _with_line(new, _line(event, "attempt", outcome=event.outcome.value))
        case PartnerInformationRequested():
            new["waiting_information"] = True
            return _with_line(new, _line(event, "waiting_information"))
        case PartnerInformationReceived():
            new["waiting_information"] = False
            return _with_line(new, _line(event, "information_received"))
        case TrainingRequestClosed():
            new["closed"] = {"disposition": event.disposition.value, "at": event.time}
            return _with_line(new, _line(event, "closed", disposition=event.disposition.value))
        case CallbackSlotChosen():
            # A later choice replaces an earlier one; a replayed earlier one does not undo it.
            if not new.get("slot") or new["slot"]["chosen_at"] <= event.time:
                new["slot"] = {"start": event.slot_start, "end": event.slot_end, "chosen_at": event.time}
            return _with_line(new, _line(event, "slot", start=event.slot_start, end=event.slot_end))
        case TrainingRequestWithdrawn():
            new["withdrawn_at"] = event.time
            return _with_line(new, _line(event, "withdrawn"))
        case RequestDetailsCorrected():
            if event.requested_course is not None:
                new["requested_course"] = event.requested_course
            sealed_fields = event.sealed.fields if event.sealed else ()
            newest = not new.get("need_corrected_at") or new["need_corrected_at"] <= event.time
            if event.sealed is not None and "need" in sealed_fields and newest:
                new.update(need_corrected=event.sealed.model_dump(mode="json"), need_corrected_at=event.time)
            if "contact" in sealed_fields or event.contact is not None:
                new["contact_unverified"] = True
            return _with_line(new, _line(event, "corrected"))
        case ContactDetailsConfirmed():
            new["contact_unverified"] = False
            return _with_line(new, _line(event, "contact_confirmed"))
        case EnrolmentConfirmed():
            starts = event.starts_on.isoformat() if event.starts_on else None
            return _with_line(new, _line(event, "enrolled", course=event.course_title or event.course_code, starts_on=starts))
        case EnrolmentWaitlisted():
            return _with_line(new, _line(event, "waitlisted", course=event.course_title or event.course_code))
        case TrainingCompleted():
            return _with_line(new, _line(event, "completed"))
        case TrainingAbandoned():
            return _with_line(new, _line(event, "abandoned"))
    return new


def apply_to_person(entry: Mapping[str, Any] | None, event: Event) -> dict[str, Any]:
    """The person's entry (their exam events) once `event` is applied."""
    person_id: str = getattr(event, "person_id")  # noqa: B009 - every person event has one
    new: dict[str, Any] = dict(entry) if entry else {"_id": person_id, "history": []}
    if new.get("erased"):
        return new
    match event:
        case ExamSeatOffered():
            return _with_line(new, _line(event, "exam_offered", exam_at=event.exam_at, respond_by=event.respond_by))
        case ExamScheduled():
            return _with_line(new, _line(event, "exam_scheduled", exam_at=event.exam_at, place=event.centre_name))
        case CertificateIssued():
            return _with_line(new, _line(event, "certificate"))
    return new


class StatusProjection:
    """The entries in MongoDB; every write takes the caller's session (the processed-event record's transaction)."""

    def __init__(self, db: MongoDatabase) -> None:
        self._requests = db["intake_status"]
        self._people = db["intake_status_people"]

    async def ensure_indexes(self) -> None:
        await self._requests.create_index("person_id", name="by_person")

    async def apply(self, event: Event, session: AsyncClientSession | None = None) -> None:
        if isinstance(event, PersonDataErased):
            await self.erase(event.person_id, session=session)
        elif isinstance(event, REQUEST_EVENTS):
            person_id = getattr(event, "person_id")  # noqa: B009
            if await self._erased(person_id, session):
                await self._requests.replace_one(
                    {"_id": getattr(event, "request_id")},  # noqa: B009
                    _tombstone(getattr(event, "request_id")),  # noqa: B009
                    upsert=True,
                    session=session,
                )
                return
            entry = await self._requests.find_one({"_id": getattr(event, "request_id")}, session=session)  # noqa: B009
            updated = apply_to_request(entry, event)
            await self._requests.replace_one({"_id": updated["_id"]}, updated, upsert=True, session=session)
        elif isinstance(event, PERSON_EVENTS):
            entry = await self._people.find_one({"_id": getattr(event, "person_id")}, session=session)  # noqa: B009
            updated = apply_to_person(entry, event)
            await self._people.replace_one({"_id": updated["_id"]}, updated, upsert=True, session=session)

    async def _erased(self, person_id: str, session: AsyncClientSession | None) -> bool:
        return await self._people.count_documents({"_id": person_id, "erased": True}, session=session) > 0

    async def erase(self, person_id: str, *, session: AsyncClientSession | None = None) -> None:
        """Every entry of the person becomes a tombstone: the request ids only, to answer that nothing is kept."""
        ids = [
            doc["_id"] for doc in await self._requests.find({"person_id": person_id}, {"_id": 1}, session=session).to_list(None)
        ]
        for request_id in ids:
            await self._requests.replace_one({"_id": request_id}, _tombstone(request_id), session=session)
        await self._people.replace_one({"_id": person_id}, {"_id": person_id, "erased": True}, upsert=True, session=session)

    async def request(self, request_id: str) -> dict[str, Any] | None:
        return await self._requests.find_one({"_id": request_id})

    async def person(self, person_id: str) -> dict[str, Any] | None:
        return await self._people.find_one({"_id": person_id})

    async def revoke(self, request_id: str, link_id: str, at: datetime) -> None:
        await self._requests.update_one(
            {"_id": request_id}, {"$addToSet": {"revoked_links": link_id}, "$set": {"revoked_at": at}}
        )


def _tombstone(request_id: str) -> dict[str, Any]:
    return {"_id": request_id, "erased": True}
