"""What of an event analysts may see: a pseudonymous projection, one MongoDB document per event.

The projection is an allow-list per event class (`KEPT_FIELDS`): ids, channel, language, times,
targets, rules, priorities, outcomes, campaigns, course and certification codes. Everything else
is dropped, including fields a later schema version adds, so a new field reaches analysts only
when someone decides it may. Never kept: `contact` (name, phone, e-mail), `need`, `notes`,
`triage_reason`, `channel_details` (agent notes, call ids), `explanation`, login instructions,
provider messages, credential ids and URLs (they identify a person at the issuing body), and
`sealed` (the personal fields, encrypted: ciphertext is still personal data until the key goes).

Documents are flat: the envelope (`_id` is the event id, `event` the class name, `time`, `source`
and the correlation and causation ids) and the kept payload fields. Instants are BSON dates; plain
dates (`unemployed_since`, `starts_on`) stay ISO strings. Nothing redundant is written (the
`subject` is the request or person id, already there; where each event sat on Kafka is in the
replay's record, as offset ranges): a replay's speed is MongoDB's speed at inserting them.

Two ways in, one projection. `document_from_record` reads a structured-mode CloudEvent (what our
codec writes) straight from its JSON, without building the pydantic model, and a replay does it
once per event. msgspec parses it into a struct per event class (`_WIRE`) that declares only the
kept fields: the parser skips the rest (contact, need, `sealed`…) without making Python objects
of them, and parses instants in C; that costs half of the dictionaries orjson builds and the
projection walks (2.5 against 5.7 µs an event, measured here), and a twentieth of
`schemas.codec.decode` + `to_document`. A message the structs do not take as it is (an instant
msgspec does not read, a field of an unexpected shape) is read again with orjson and projected by
hand, as tolerantly as before. Anything else, a binary-mode or flat message, or an older schema
version that needs upcasting, goes through `schemas.codec.decode` and `to_document`; all paths
give the same document (a test checks it for every event class).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Final, Union

import msgspec
import orjson

from schemas import EVENT_TYPES, Event, codec
from schemas.codec import Headers
from schemas.errors import MalformedEvent, UnknownEventType
from schemas.events import (
    CallbackDue,
    CallbackSlaBreached,
    CallbackSlotChosen,
    CertificateIssued,
    ConfigurationChanged,
    ContactAttempted,
    ContactDetailsConfirmed,
    DigitalDivideAdmitted,
    DigitalDivideMemberReleased,
    DigitalDivideProgrammeResumed,
    DigitalDivideProgrammeSuspended,
    DigitalDivideQuotaChanged,
    DigitalDivideSpaceAssigned,
    DigitalSpaceChanged,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    ExamScheduled,
    ExamSchedulingRequested,
    ExamSeatOfferAccepted,
    ExamSeatOfferDeclined,
    ExamSeatOffered,
    ExamSeatOfferExpired,
    NotificationFailed,
    NotificationSent,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    PartnerInformationRequested,
    PersonDataErased,
    RequestDetailsCorrected,
    RequestFactsRecorded,
    SelfTrainingSlotBooked,
    SelfTrainingSlotCancelled,
    SelfTrainingSlotOpened,
    TrainingAbandoned,
    TrainingCompleted,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
)

__all__ = [
    "CAMPAIGN_FIELDS",
    "ENVELOPE_FIELDS",
    "EVENTS_COLLECTION",
    "KEPT_FIELDS",
    "document_from_record",
    "to_document",
]

EVENTS_COLLECTION: Final = "events"
"""The read model's collection of projected events."""

ENVELOPE_FIELDS: Final = ("source", "correlation_id", "causation_id")
"""Envelope attributes kept besides `id` (as `_id`), `type` (as `event`) and `time`."""

CAMPAIGN_FIELDS: Final = ("utm_source", "utm_medium", "utm_campaign")
"""What of a `CampaignAttribution` is kept: `utm_term`, `utm_content` and the referrer may carry
search words or a URL with someone's data in it."""

KEPT_FIELDS: Mapping[type[Event], tuple[str, ...]] = MappingProxyType(
    {
        TrainingRequestReceived: (
            "request_id",
            "person_id",
            "channel",
            "received_at",
            "language",
            "requested_course",
            "qualification_level",
            "has_computer",
            "has_internet",
            "unemployed_since",
            "campaign",
            "consent_to_contact",
            "linked_request_ids",
            "needs_triage",
            "kind",
        ),
        TrainingRequestRouted: (
            "request_id",
            "person_id",
            "target",
            "rule_id",
            "rule_set_version",
            "priority",
            "priority_parts",
            "callback_deadline",
            "assignee_id",
            "programme",
            "kind",
        ),
        CallbackDue: ("request_id", "person_id", "assignee_id", "deadline"),
        CallbackSlaBreached: ("request_id", "person_id", "assignee_id", "deadline", "escalated_to"),
        ContactAttempted: ("request_id", "person_id", "worker_id", "outcome", "attempt", "next_attempt_at"),
        RequestFactsRecorded: (
            "request_id",
            "person_id",
            "recorded_by",
            "qualification_level",
            "has_computer",
            "has_internet",
            "unemployed_since",
            "fact_sources",
            "priority",
            "priority_parts",
        ),
        # Not the question nor the answer: free text that may name the person.
        PartnerInformationRequested: (
            "request_id",
            "person_id",
            "partner",
            "worker_id",
            "asked_at",
            "remind_at",
            "callback_deadline",
        ),
        PartnerInformationOverdue: ("request_id", "person_id", "partner", "assignee_id", "asked_at"),
        PartnerInformationReceived: (
            "request_id",
            "person_id",
            "partner",
            "recorded_by",
            "asked_at",
            "answered_at",
            "callback_deadline",
        ),
        TrainingRequestClosed: ("request_id", "person_id", "disposition", "attempts", "worker_id"),
        CallbackSlotChosen: ("request_id", "person_id", "slot_start", "slot_end", "chosen_through"),
        TrainingRequestWithdrawn: ("request_id", "person_id", "withdrawn_through"),
        # Not the contact details: personal data.
        ContactDetailsConfirmed: ("request_id", "person_id", "confirmed_by"),
        # Not the new words nor the new contact details: personal data.
        RequestDetailsCorrected: ("request_id", "person_id", "corrected_through", "requested_course"),
        EnrolmentConfirmed: ("request_id", "person_id", "course_code", "starts_on", "language", "session_id"),
        EnrolmentWaitlisted: ("request_id", "person_id", "course_code", "language", "session_id"),
        TrainingCompleted: ("request_id", "person_id", "course_code", "session_id", "at"),
        TrainingAbandoned: ("request_id", "person_id", "course_code", "session_id", "at", "reason"),
        ExamSchedulingRequested: ("request_id", "person_id", "certification_code", "reason"),
        # The offer's links are bearer capabilities (and sealed): never kept.
        ExamSeatOffered: ("person_id", "offer_id", "certification_code", "session_id", "centre_id", "exam_at", "respond_by"),
        ExamSeatOfferAccepted: ("person_id", "offer_id", "certification_code", "session_id", "closed_at"),
        ExamSeatOfferDeclined: ("person_id", "offer_id", "certification_code", "session_id", "closed_at"),
        ExamSeatOfferExpired: ("person_id", "offer_id", "certification_code", "session_id", "closed_at"),
        ExamScheduled: ("person_id", "certification_code", "session_id", "centre_id", "exam_at"),
        CertificateIssued: ("person_id", "certification_code", "issued_at"),
        NotificationSent: ("person_id", "about_event_id", "channel", "template", "attempts"),
        NotificationFailed: ("person_id", "about_event_id", "channel", "template", "attempts", "final"),
        PersonDataErased: ("person_id", "erased_at", "requested_by"),
        # Closures, quotas, rule sets for reports; a roster's value (staff profiles) is dropped below.
        ConfigurationChanged: ("setting", "value", "version", "changed_at"),
        DigitalDivideAdmitted: ("request_id", "person_id", "year", "priority", "waiting_since"),
        DigitalDivideMemberReleased: ("request_id", "person_id", "year", "reason", "released_by"),
        DigitalDivideProgrammeSuspended: ("programme", "changed_by"),
        DigitalDivideProgrammeResumed: ("programme", "changed_by"),
        DigitalDivideQuotaChanged: ("programme", "year", "previous_quota", "quota", "changed_by"),
        SelfTrainingSlotBooked: ("person_id", "slot_id", "space_id", "starts_at", "ends_at", "booked_by"),
        SelfTrainingSlotCancelled: ("person_id", "slot_id", "space_id", "starts_at", "cancelled_by"),
        DigitalSpaceChanged: ("programme", "space_id", "change", "kind", "capacity", "opening_hours", "changed_by"),
        SelfTrainingSlotOpened: ("programme", "slot_id", "space_id", "starts_at", "ends_at", "capacity", "opened_by"),
        DigitalDivideSpaceAssigned: ("request_id", "person_id", "year", "space_id", "previous_space_id", "assigned_by"),
    }
)
"""Payload fields kept per event class; a class missing here keeps its envelope only."""

_INSTANTS: Final = frozenset(
    {
        "time",
        "received_at",
        "callback_deadline",
        "deadline",
        "next_attempt_at",
        "exam_at",
        "issued_at",
        "erased_at",
        "changed_at",
        "asked_at",
        "remind_at",
        "answered_at",
        "respond_by",
        "closed_at",
        "waiting_since",
        "starts_at",
        "ends_at",
        "slot_start",
        "slot_end",
    }
)
_FIELD_TO_WIRE: Final = {"correlation_id": "correlationid", "causation_id": "causationid", "schema_version": "schemaversion"}
_STRUCTURED: Final = codec.CONTENT_TYPE.encode()


def to_document(event: Event) -> dict[str, Any]:
    """The read-model document of `event`: its pseudonymous projection (see the module docstring)."""
    fields = event.model_dump(mode="json")
    return _project(type(event), fields, _ENVELOPE_BY_FIELD, fields)


def document_from_record(value: bytes | None, headers: Headers | None = None) -> dict[str, Any]:
    """The read-model document of a Kafka record, read as tolerantly as `schemas.codec.decode`.

    Raises the codec's `ContractError`s for records that are not events of the contract.
    """
    if value and _is_structured(headers):
        try:
            return _document_from_wire(_WIRE_DECODER.decode(value))
        except (msgspec.DecodeError, _NotAsIs):
            pass  # read again below, where every departure from what our codec writes is judged
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise MalformedEvent("message value is not JSON in UTF-8") from None
        if isinstance(body, dict):
            event_type = body.get("type")
            cls = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
            if cls is None:
                raise UnknownEventType(str(body.get("type")))
            data = body.get("data")
            if (
                isinstance(data, dict)
                and body.get("schemaversion", 1) == cls.SCHEMA_VERSION  # upcasting is the codec's business
                and "id" in body
                and "time" in body
            ):
                try:
                    return _project(cls, body, _ENVELOPE_BY_WIRE, data)
                except (TypeError, ValueError):
                    pass  # not what our codec writes after all: let the codec say what is wrong
    return to_document(codec.decode(value, headers))


def _is_structured(headers: Headers | None) -> bool:
    if not headers:
        return False
    # aiokafka hands over a tuple of pairs; `isinstance(…, Mapping)` costs more than the loop.
    # Reversed: our codec writes `content-type` last.
    pairs = reversed(headers) if type(headers) is tuple or type(headers) is list else _pairs(headers)
    for name, raw in pairs:
        if name == "content-type" or (name[:1] in "cC" and name.lower() == "content-type"):
            content_type = raw if type(raw) is bytes else str(raw).encode() if isinstance(raw, str) else bytes(raw)
            return content_type.lower().startswith(_STRUCTURED)
    return False


def _pairs(headers: Headers) -> Iterable[tuple[str, bytes | str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


@dataclass(frozen=True, slots=True)
class _Plan:
    """How an event class is projected: the fields kept, those that are instants, a campaign or not."""

    kept: tuple[str, ...]
    instants: tuple[str, ...]
    campaign: bool


_PLANS: Mapping[type[Event], _Plan] = MappingProxyType(
    {
        cls: _Plan(names, ("time", *(n for n in names if n in _INSTANTS)), "campaign" in names)
        for cls, names in KEPT_FIELDS.items()
    }
)
_ENVELOPE_ONLY = _Plan((), ("time",), False)
# Envelope attributes kept: (document field, attribute name on the wire / in a model dump).
_ENVELOPE_BY_WIRE: Final = tuple((name, _FIELD_TO_WIRE.get(name, name)) for name in ENVELOPE_FIELDS)
_ENVELOPE_BY_FIELD: Final = tuple((name, name) for name in ENVELOPE_FIELDS)


def _project(
    cls: type[Event],
    envelope: Mapping[str, Any],
    envelope_names: tuple[tuple[str, str], ...],
    data: Mapping[str, Any],
) -> dict[str, Any]:
    # Comprehensions rather than a loop with branches: a replay runs this once per event, and it
    # is most of what a replay adds to reading Kafka.
    plan = _PLANS.get(cls, _ENVELOPE_ONLY)
    document: dict[str, Any] = {"_id": str(envelope["id"]), "event": cls.__name__, "time": envelope["time"]}
    document.update({name: v for name, attribute in envelope_names if (v := envelope.get(attribute)) is not None})
    document.update({name: v for name in plan.kept if (v := data.get(name)) is not None})
    for name in plan.instants:
        if name in document:
            document[name] = _instant(document[name])
    if plan.campaign and "campaign" in document:
        campaign = document["campaign"]
        if not isinstance(campaign, dict):
            raise TypeError("campaign is not an object")
        kept = {key: v for key in CAMPAIGN_FIELDS if (v := campaign.get(key)) is not None}
        if kept:
            document["campaign"] = kept
        else:
            del document["campaign"]
    if cls is ConfigurationChanged and document.get("setting") == "roster":
        # Staff names and hours: not what analysts need, and the roster's history is routing's.
        document.pop("value", None)
    return document


def _instant(value: Any) -> datetime:
    instant = datetime.fromisoformat(value) if type(value) is str else value
    if not isinstance(instant, datetime):
        raise TypeError(f"not an instant: {type(value).__name__}")
    if instant.tzinfo is None:
        raise ValueError("an instant without a timezone")
    return instant


# --- the msgspec structs -------------------------------------------------------------------------

_Instant = Annotated[datetime, msgspec.Meta(tz=True)]
"""An instant with its offset, as `_instant` requires of the JSON path."""


class _Campaign(msgspec.Struct, omit_defaults=True):
    """What of a `CampaignAttribution` is kept (`CAMPAIGN_FIELDS`)."""

    utm_source: Any = None
    utm_medium: Any = None
    utm_campaign: Any = None


def _wire_struct(cls: type[Event], wire_type: str) -> type[msgspec.Struct]:
    """The struct a structured-mode message of `cls` is read into: the envelope attributes and a
    `data` of the kept fields only, each absent or null one left out by `to_builtins`."""
    kept = _PLANS.get(cls, _ENVELOPE_ONLY)

    def field_type(name: str) -> Any:
        if name in kept.instants:
            return _Instant | None
        return _Campaign | None if name == "campaign" else Any

    data = msgspec.defstruct(f"{cls.__name__}Kept", [(name, field_type(name), None) for name in kept.kept], omit_defaults=True)
    return msgspec.defstruct(
        f"{cls.__name__}Message",
        [
            ("id", Any),
            ("time", _Instant),
            ("data", data),
            *((attribute, Any, None) for _, attribute in _ENVELOPE_BY_WIRE),
            ("schemaversion", Any, 1),
        ],
        tag_field="type",
        tag=wire_type,
    )


_WIRE: Mapping[type[msgspec.Struct], type[Event]] = MappingProxyType(
    {_wire_struct(cls, wire_type): cls for wire_type, cls in EVENT_TYPES.items()}
)
"""The struct of each event class's messages, and that class."""
# One decoder for every class, tagged by the CloudEvents `type`: msgspec picks the struct itself.
_WIRE_DECODER: Final = msgspec.json.Decoder(Union[tuple(_WIRE)])  # noqa: UP007 - a tuple of types, not written out
_TO_BUILTINS: Final = (datetime,)


class _NotAsIs(Exception):
    """A message the structs read that the orjson path must judge (an older schema version)."""


def _document_from_wire(message: Any) -> dict[str, Any]:
    cls = _WIRE[type(message)]
    if message.schemaversion != cls.SCHEMA_VERSION:
        raise _NotAsIs  # upcasting is the codec's business
    document: dict[str, Any] = {"_id": str(message.id), "event": cls.__name__, "time": message.time}
    # `ENVELOPE_FIELDS` written out: a third faster than a loop over them, once per event.
    if (source := message.source) is not None:
        document["source"] = source
    if (correlation_id := message.correlationid) is not None:
        document["correlation_id"] = correlation_id
    if (causation_id := message.causationid) is not None:
        document["causation_id"] = causation_id
    document.update(msgspec.to_builtins(message.data, builtin_types=_TO_BUILTINS))
    if document.get("campaign") == {}:
        del document["campaign"]
    if cls is ConfigurationChanged and document.get("setting") == "roster":
        document.pop("value", None)  # as `_project` does
    return document
