"""Events to and from Kafka messages: CloudEvents structured-mode JSON out, any sensible form in.

`encode` and `headers` write the value and headers of one Kafka message. `decode` is a
tolerant reader: it accepts our structured mode, CloudEvents binary mode (attributes in
`ce_*` headers) and a flat JSON object, ignores what it does not know, and raises only
`schemas.errors.ContractError`s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from pydantic import ValidationError

from schemas.envelope import Event
from schemas.errors import EventTooLarge, InvalidEvent, MalformedEvent, UnknownEventType, UnsupportedSchemaVersion
from schemas.events import EVENT_TYPES

__all__ = [
    "CONTENT_TYPE",
    "DATA_CONTENT_TYPE",
    "HEADER_ATTRIBUTES",
    "UPCASTERS",
    "Headers",
    "Upcaster",
    "decode",
    "encode",
    "headers",
    "json_schema",
    "json_schemas",
]

CONTENT_TYPE: Final = "application/cloudevents+json"
DATA_CONTENT_TYPE: Final = "application/json"

HEADER_ATTRIBUTES: Final = ("specversion", "id", "type", "source", "time")
"""Envelope attributes that `headers` copies into `ce_*` Kafka headers."""

Headers = Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]]
"""Kafka headers as clients hand them over: a mapping (FastStream) or pairs (aiokafka)."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the flat fields (envelope + payload, Python names) of version n into version n+1."""

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""Upcaster by (event type, version it upgrades from). Empty: every event is still at v1.

When a payload changes shape, bump the class's `SCHEMA_VERSION` and register
`UPCASTERS[(Cls.event_type(), 1)] = fn`; `decode` applies them one version at a time.
"""

# CloudEvents extension attribute names may only hold lowercase letters and digits.
_WIRE_NAMES: Final = {
    "correlation_id": "correlationid",
    "causation_id": "causationid",
    "schema_version": "schemaversion",
    "actor": "actor",
}
_FIELD_NAMES: Final = {wire: field for field, wire in _WIRE_NAMES.items()}
_ENVELOPE_FIELDS: Final = frozenset(Event.model_fields)
_HEADER_PREFIX: Final = "ce_"


def encode(event: Event) -> bytes:
    """The Kafka value of `event`: a CloudEvents structured-mode JSON object in UTF-8."""
    return json.dumps(_structured(event), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def headers(event: Event) -> dict[str, bytes]:
    """Kafka headers for `event`, so that tools can filter on type without parsing the value.

    The `content-type` tells `decode` (and any CloudEvents SDK) that the value is in
    structured mode, whatever `ce_*` headers travel with it.
    """
    wire = event.model_dump(mode="json", include=set(HEADER_ATTRIBUTES))
    attributes = {_HEADER_PREFIX + name: wire[name].encode() for name in HEADER_ATTRIBUTES}
    return {**attributes, "content-type": CONTENT_TYPE.encode()}


MAX_EVENT_BYTES = 256 * 1024
"""The largest event we read: intake caps free text at a few kilobytes, so anything near this is poison."""


def decode(value: bytes | None, headers: Headers | None = None) -> Event:
    """The event in a Kafka message, read as structured, binary or flat JSON.

    Raises `MalformedEvent`, `UnknownEventType`, `UnsupportedSchemaVersion` or
    `InvalidEvent`, all `ContractError`s; never a bare pydantic or JSON error.
    """
    if value is not None and len(value) > MAX_EVENT_BYTES:
        raise EventTooLarge(f"event of {len(value)} bytes, more than the {MAX_EVENT_BYTES} an event may have")
    header_map = _header_map(headers)
    body = _json_object(value)
    content_type = header_map.get("content-type", "").lower()

    if content_type.startswith("application/cloudevents"):
        if not content_type.startswith(CONTENT_TYPE):
            raise MalformedEvent(f"unsupported content type {content_type!r}")
        fields = _from_structured(body)
    elif _HEADER_PREFIX + "type" in header_map or _HEADER_PREFIX + "specversion" in header_map:
        fields = _from_binary(header_map, body)
    elif "specversion" in body and ("data" in body or "data_base64" in body):
        # Structured mode that lost its headers on the way (a replay, a file, a test).
        fields = _from_structured(body)
    else:
        fields = _from_flat(body)

    return _validate(fields)


# --- encoding -----------------------------------------------------------------------


def _structured(event: Event) -> dict[str, Any]:
    dumped = event.model_dump(mode="json")
    envelope: dict[str, Any] = {
        "specversion": dumped["specversion"],
        "id": dumped["id"],
        "source": dumped["source"],
        "type": dumped["type"],
        "time": dumped["time"],
        "subject": dumped["subject"],
        "datacontenttype": DATA_CONTENT_TYPE,
    }
    for field, wire_name in _WIRE_NAMES.items():
        envelope[wire_name] = dumped[field]
    # CloudEvents treats a null attribute as absent; leaving it out keeps messages small.
    envelope = {name: value for name, value in envelope.items() if value is not None}
    envelope["data"] = {name: value for name, value in dumped.items() if name not in _ENVELOPE_FIELDS}
    return envelope


# --- decoding -----------------------------------------------------------------------


def _header_map(headers: Headers | None) -> dict[str, str]:
    if headers is None:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for name, raw in pairs:
        # Kafka header names are case-sensitive, but HTTP-minded producers capitalise them.
        name = name.lower()
        # Other headers (tracing, retries) are none of our business and may be binary.
        if not (name.startswith(_HEADER_PREFIX) or name == "content-type"):
            continue
        try:
            result[name] = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else str(raw)
        except UnicodeDecodeError as error:
            raise MalformedEvent(f"header {name!r} is not valid UTF-8: {error}") from None
    return result


def _json_object(value: bytes | None) -> dict[str, Any]:
    if not value:
        raise MalformedEvent("empty message value (a tombstone?)")
    try:
        parsed = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise MalformedEvent(f"message value is not valid UTF-8: {error}") from None
    except json.JSONDecodeError as error:
        raise MalformedEvent(f"message value is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise MalformedEvent(f"message value is a JSON {type(parsed).__name__}, not an object")
    return parsed


def _from_structured(body: dict[str, Any]) -> dict[str, Any]:
    if "data_base64" in body:
        raise MalformedEvent("binary `data_base64` payloads are not supported; send JSON `data`")
    data = body.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MalformedEvent(f"`data` is a JSON {type(data).__name__}, not an object")
    attributes = {name: value for name, value in body.items() if name != "data"}
    return _merge(attributes, data)


def _from_binary(header_map: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
    attributes = {
        name.removeprefix(_HEADER_PREFIX): value for name, value in header_map.items() if name.startswith(_HEADER_PREFIX)
    }
    return _merge(attributes, body)


def _from_flat(body: dict[str, Any]) -> dict[str, Any]:
    return _merge({}, body)


def _merge(attributes: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    # Attributes win over same-named data keys: the envelope is the one source of truth
    # for id, type and time, whatever a producer put in its payload.
    merged: dict[str, Any] = {}
    for source in (data, attributes):
        for name, value in source.items():
            merged[_FIELD_NAMES.get(name, name)] = value
    return merged


def _validate(fields: dict[str, Any]) -> Event:
    event_type = fields.get("type")
    if event_type is None:
        raise MalformedEvent("no `type` attribute: not a CloudEvent")
    if not isinstance(event_type, str):
        raise MalformedEvent(f"`type` is a JSON {type(event_type).__name__}, not a string")
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise UnknownEventType(event_type)

    # Absent means 1: any producer of a later version writes the version down.
    version = _as_version(fields.setdefault("schema_version", 1))
    # Absent means nobody: a decoded event must not take the actor of the request that happens to read it.
    fields.setdefault("actor", None)
    if version is not None:
        if version > cls.SCHEMA_VERSION:
            raise UnsupportedSchemaVersion(event_type, version, cls.SCHEMA_VERSION)
        fields = _upcast(event_type, version, cls.SCHEMA_VERSION, fields)

    try:
        return cls.model_validate(fields)
    except ValidationError as error:
        # `from None`: pydantic's message echoes the input (phone numbers, e-mail
        # addresses), and tracebacks end up in logs. The errors we keep leave it out.
        raise InvalidEvent(event_type, _field_errors(error)) from None


def _as_version(raw: object) -> int | None:
    # Headers carry "2", JSON carries 2; anything else is left for validation to report.
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    return None


def _upcast(event_type: str, version: int, current: int, fields: dict[str, Any]) -> dict[str, Any]:
    for from_version in range(version, current):
        upcaster = UPCASTERS.get((event_type, from_version))
        # No upcaster means the next version only added optional fields: nothing to do.
        if upcaster is not None:
            fields = upcaster(dict(fields))
        fields["schema_version"] = from_version + 1
    return fields


def _field_errors(error: ValidationError) -> list[dict[str, Any]]:
    details = []
    for detail in error.errors(include_url=False, include_input=False):
        # A consequence of another field's error (a default computed from it), not news.
        if detail["type"] == "default_factory_not_called":
            continue
        if "ctx" in detail:
            # Dead letters are JSON: a context may hold the exception a validator raised.
            detail["ctx"] = {key: _json_safe(value) for key, value in detail["ctx"].items()}
        details.append(dict(detail))
    return details


def _json_safe(value: object) -> object:
    return value if isinstance(value, str | int | float | bool | None) else str(value)


# --- documentation ------------------------------------------------------------------

_JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
# What CloudEvents itself requires; the rest of the envelope has defaults.
_REQUIRED_ATTRIBUTES: Final = ("specversion", "id", "source", "type")


def json_schema(event_cls: type[Event]) -> dict[str, Any]:
    """JSON Schema of the structured-mode wire form of `event_cls`, as `encode` writes it.

    It describes what a producer must send: defaulted fields are optional, and unknown
    properties are allowed because readers ignore them.
    """
    model = event_cls.model_json_schema()
    properties: dict[str, Any] = model["properties"]
    required = set(model.get("required", ()))

    attributes = {_WIRE_NAMES.get(name, name): properties[name] for name in Event.model_fields}
    attributes["datacontenttype"] = {
        "const": DATA_CONTENT_TYPE,
        "description": "Media type of `data`.",
    }
    payload = {name: spec for name, spec in properties.items() if name not in _ENVELOPE_FIELDS}
    payload_required = [name for name in payload if name in required]
    data: dict[str, Any] = {"type": "object", "properties": payload}
    if payload_required:
        data["required"] = payload_required

    schema: dict[str, Any] = {
        "$schema": _JSON_SCHEMA_DIALECT,
        "title": model.get("title", event_cls.__name__),
        "description": model.get("description", ""),
        "type": "object",
        "properties": {**attributes, "data": data},
        "required": [*_REQUIRED_ATTRIBUTES, *(["data"] if payload_required else [])],
    }
    if "$defs" in model:
        schema["$defs"] = model["$defs"]
    return schema


def json_schemas() -> dict[str, dict[str, Any]]:
    """Wire-form JSON Schema of every event, by event type (for `make docs`)."""
    return {event_type: json_schema(cls) for event_type, cls in EVENT_TYPES.items()}
