"""What of an event analysts may see: a pseudonymous projection, one MongoDB document per event.

The projection is an allow-list per event class (`KEPT_FIELDS`): ids, channel, language, times,
targets, rules, priorities, outcomes, campaigns, course and certification codes. Everything else
is dropped, including fields a later schema version adds, so a new field reaches analysts only
when someone decides it may. Never kept: `contact` (name, phone, e-mail), `need`, `notes`,
`triage_reason`, `channel_details` (agent notes, call ids), `explanation`, login instructions,
provider messages, credential ids and URLs (they identify a person at the issuing body).

Documents are flat: the envelope (`_id` is the event id, `event` the class name, `time`), the
kept payload fields, and where the event was read (`topic` without prefix, `partition`,
`offset`). Instants are BSON dates; plain dates (`unemployed_since`, `starts_on`) stay ISO strings.

Two ways in, one projection. `document_from_record` reads a structured-mode CloudEvent (what our
codec writes) straight from its JSON, without building the pydantic model: a replay is bound by
this, and the model costs four times the JSON parse (measured on a 865-byte request). Anything
else, a binary-mode or flat message, or an older schema version that needs upcasting, goes
through `schemas.codec.decode` and `to_document`, and both paths give the same document.
"""

from __future__ import annotations

import orjson
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from schemas import EVENT_TYPES, Event, codec
from schemas.codec import Headers
from schemas.errors import MalformedEvent, UnknownEventType
from schemas.events import (
    CallbackDue,
    CallbackSlaBreached,
    CertificateIssued,
    ContactAttempted,
    EnrolmentConfirmed,
    ExamScheduled,
    ExamSchedulingRequested,
    NotificationFailed,
    NotificationSent,
    PersonDataErased,
    TrainingRequestReceived,
    TrainingRequestRouted,
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

ENVELOPE_FIELDS: Final = ("source", "subject", "correlation_id", "causation_id", "schema_version")
"""Envelope attributes kept besides `id` (as `_id`), `type` (as `event`) and `time`."""

CAMPAIGN_FIELDS: Final = ("utm_source", "utm_medium", "utm_campaign")
"""What of a `CampaignAttribution` is kept: `utm_term`, `utm_content` and the referrer may carry
search words or a URL with someone's data in it."""

KEPT_FIELDS: Mapping[type[Event], tuple[str, ...]] = MappingProxyType(
    {
        TrainingRequestReceived: (
            "request_id", "person_id", "channel", "received_at", "language", "requested_course",
            "qualification_level", "has_computer", "has_internet", "unemployed_since", "campaign",
            "consent_to_contact", "linked_request_ids", "needs_triage",
        ),
        TrainingRequestRouted: (
            "request_id", "person_id", "target", "rule_id", "rule_set_version", "priority",
            "priority_parts", "callback_deadline", "assignee_id",
        ),
        CallbackDue: ("request_id", "person_id", "assignee_id", "deadline"),
        CallbackSlaBreached: ("request_id", "person_id", "assignee_id", "deadline", "escalated_to"),
        ContactAttempted: ("request_id", "person_id", "worker_id", "outcome", "attempt", "next_attempt_at"),
        EnrolmentConfirmed: ("request_id", "person_id", "course_code", "starts_on", "language"),
        ExamSchedulingRequested: ("request_id", "person_id", "certification_code", "reason"),
        ExamScheduled: ("person_id", "certification_code", "session_id", "centre_id", "exam_at"),
        CertificateIssued: ("person_id", "certification_code", "issued_at"),
        NotificationSent: ("person_id", "about_event_id", "channel", "template", "attempts"),
        NotificationFailed: ("person_id", "about_event_id", "channel", "template", "attempts", "final"),
        PersonDataErased: ("person_id", "erased_at", "requested_by"),
    }
)
"""Payload fields kept per event class; a class missing here keeps its envelope only."""

_INSTANTS: Final = frozenset(
    {"time", "received_at", "callback_deadline", "deadline", "next_attempt_at", "exam_at", "issued_at", "erased_at"}
)
_FIELD_TO_WIRE: Final = {"correlation_id": "correlationid", "causation_id": "causationid", "schema_version": "schemaversion"}
_STRUCTURED: Final = codec.CONTENT_TYPE.encode()


def to_document(
    event: Event, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
) -> dict[str, Any]:
    """The read-model document of `event`: its pseudonymous projection (see the module docstring)."""
    fields = event.model_dump(mode="json")
    return _project(type(event), fields, _ENVELOPE_BY_FIELD, fields, topic, partition, offset)


def document_from_record(
    value: bytes | None,
    headers: Headers | None = None,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """The read-model document of a Kafka record, read as tolerantly as `schemas.codec.decode`.

    Raises the codec's `ContractError`s for records that are not events of the contract.
    """
    if value and _is_structured(headers):
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise MalformedEvent("message value is not JSON in UTF-8") from None
        if isinstance(body, dict):
            cls = EVENT_TYPES.get(body.get("type"))  # type: ignore[arg-type]
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
                    return _project(cls, body, _ENVELOPE_BY_WIRE, data, topic, partition, offset)
                except (TypeError, ValueError):
                    pass  # not what our codec writes after all: let the codec say what is wrong
    return to_document(codec.decode(value, headers), topic=topic, partition=partition, offset=offset)


def _is_structured(headers: Headers | None) -> bool:
    if not headers:
        return False
    # aiokafka hands over a tuple of pairs; `isinstance(…, Mapping)` costs more than the loop.
    pairs = headers if type(headers) is tuple or type(headers) is list else _pairs(headers)
    for name, raw in pairs:
        if name == "content-type" or name.lower() == "content-type":
            content_type = raw if isinstance(raw, bytes | bytearray) else str(raw).encode()
            return bytes(content_type).lower().startswith(_STRUCTURED)
    return False


def _pairs(headers: Headers) -> Iterable[tuple[str, bytes | str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


# How each kept field is copied: as is, as an instant, or as a campaign.
_PLAIN, _INSTANT, _CAMPAIGN = 0, 1, 2
_COPY: Mapping[type[Event], tuple[tuple[str, int], ...]] = MappingProxyType(
    {
        cls: tuple((name, _INSTANT if name in _INSTANTS else _CAMPAIGN if name == "campaign" else _PLAIN) for name in names)
        for cls, names in KEPT_FIELDS.items()
    }
)
# Envelope attributes kept: (document field, attribute name on the wire / in a model dump).
_ENVELOPE_BY_WIRE: Final = tuple((name, _FIELD_TO_WIRE.get(name, name)) for name in ENVELOPE_FIELDS)
_ENVELOPE_BY_FIELD: Final = tuple((name, name) for name in ENVELOPE_FIELDS)


def _project(
    cls: type[Event],
    envelope: Mapping[str, Any],
    envelope_names: tuple[tuple[str, str], ...],
    data: Mapping[str, Any],
    topic: str | None,
    partition: int | None,
    offset: int | None,
) -> dict[str, Any]:
    # Written for speed as much as clarity: a replay runs this once per event.
    document: dict[str, Any] = {"_id": str(envelope["id"]), "event": cls.__name__, "time": _instant(envelope["time"])}
    for name, attribute in envelope_names:
        value = envelope.get(attribute)
        if value is not None:
            document[name] = value
    for name, kind in _COPY.get(cls, ()):
        value = data.get(name)
        if value is None:
            continue
        if kind == _INSTANT:
            value = _instant(value)
        elif kind == _CAMPAIGN:
            if not isinstance(value, dict):
                raise TypeError("campaign is not an object")
            value = {key: value[key] for key in CAMPAIGN_FIELDS if value.get(key) is not None}
            if not value:
                continue
        document[name] = value
    if topic is not None:
        document["topic"] = topic
    if partition is not None:
        document["partition"] = partition
    if offset is not None:
        document["offset"] = offset
    return document


def _instant(value: Any) -> datetime:
    instant = datetime.fromisoformat(value) if type(value) is str else value
    if not isinstance(instant, datetime):
        raise TypeError(f"not an instant: {type(value).__name__}")
    if instant.tzinfo is None:
        raise ValueError("an instant without a timezone")
    return instant
