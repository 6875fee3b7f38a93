"""`make docs`: write the AsyncAPI document of each service, and the JSON Schemas of the event
contracts, under the folder given (default docs/asyncapi).

FastStream generates the channels and operations from the brokers' subscribers and publishers,
but describes each payload as the flat pydantic model. `describe_wire` rewrites its messages to
what is on Kafka: CloudEvents in structured mode (`schemas.codec`), with the headers
`services.kafka.publish` sets and the key `schemas.topics` declares.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from faststream.specification import AsyncAPI

from schemas import CONTENT_TYPE, EVENT_CLASSES, Event, json_schema, json_schemas
from schemas.codec import HEADER_ATTRIBUTES
from schemas.topics import ALL_TOPICS, TopicSpec
from scripts.launch import SERVICES

# Intake runs as two processes (the public surface and the DPOs' privacy surface); its document
# describes both, whatever INTAKE_SURFACES says in the shell that writes it. Routing consumes
# requests in batches, but each record on the wire is one TrainingRequestReceived: its document is
# written from the one-record subscriber, whose signature names that payload.
_DOCUMENTED_ENV = {
    "intake": {"INTAKE_SURFACES": "public,privacy"},
    "routing": {"ROUTING_BATCH_MAX_RECORDS": "1"},
}


# Every document describes the cluster as the services reach it (SASL with SCRAM-SHA-512, as `make up`
# and production run it), whatever the shell that writes it has: the committed documents do not
# depend on who wrote them. The credentials only make the settings valid; no document shows them.
_DOCUMENTED_KAFKA = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "documented",
    "KAFKA_SASL_PASSWORD": "documented",
    "KAFKA_TOPIC_PREFIX": "",
}


def main(out: str = "docs/asyncapi") -> int:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SERVICES:
        documented = {**_DOCUMENTED_KAFKA, **_DOCUMENTED_ENV.get(name, {})}
        saved = {key: os.environ.get(key) for key in documented}
        os.environ.update(documented)
        try:
            app = importlib.import_module(f"{name}.app").create_app()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        runtime = app.state.runtime
        spec = AsyncAPI(
            runtime.broker,
            title=f"formation-events {name}",
            version="1.0.0",
            description=app.description,
            schema_version="3.0.0",
        )
        document = describe_wire(json.loads(spec.to_specification().to_json()))
        (folder / f"{name}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {folder / f'{name}.json'}")
    (folder / "event-schemas.json").write_text(json.dumps(json_schemas(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {folder / 'event-schemas.json'}")
    return 0


_SCHEMAS: Final = "#/components/schemas/"
_BASE_EVENT: Final = Event.__name__
# Kafka bindings 0.4.0 describe a message's key; FastStream writes its channel bindings at 0.4.0 too.
_KAFKA_BINDING_VERSION: Final = "0.4.0"
# CloudEvents' Kafka protocol binding names a header `ce_<attribute>`.
_CE_HEADER_PREFIX: Final = "ce_"
_FASTSTREAM_CORRELATION_HEADER: Final = "correlation_id"


def describe_wire(document: dict[str, Any], topics: Iterable[TopicSpec] = ALL_TOPICS) -> dict[str, Any]:
    """`document` (FastStream's AsyncAPI 3 as JSON) with each message as it is on Kafka.

    Each channel documents the events its topic declares: the ones the handler or publisher
    names, or all of them when it names the catch-all `Event` base. Pure: returns a new document.
    """
    by_address = {topic.name: topic for topic in topics}
    flat_schemas: dict[str, Any] = document["components"]["schemas"]
    messages: dict[str, Any] = {}
    used: set[type[Event]] = set()
    for channel in document["channels"].values():
        topic = by_address.get(channel["address"])
        if topic is None:
            raise ValueError(f"channel {channel['address']!r} is not a topic declared in schemas.topics")
        for reference in channel["messages"].values():
            name = reference["$ref"].removeprefix("#/components/messages/")
            original = document["components"]["messages"][name]
            events = _events_on(topic, _named_schemas(original["payload"], flat_schemas))
            used.update(events)
            messages[name] = wire_message(original["title"], topic, events)
    return {
        **document,
        "defaultContentType": CONTENT_TYPE,
        "components": {**document["components"], "messages": messages, "schemas": wire_schemas(used)},
    }


def wire_message(title: str, topic: TopicSpec, events: Iterable[type[Event]]) -> dict[str, Any]:
    """The AsyncAPI message of `events` on `topic`: structured CloudEvents value, headers and key."""
    events = _ordered(events)
    references = [{"$ref": _SCHEMAS + cls.__name__} for cls in events]
    return {
        "title": title,
        "contentType": CONTENT_TYPE,
        "headers": headers_schema(events),
        "payload": references[0] if len(references) == 1 else {"oneOf": references},
        "correlationId": {"location": "$message.payload#/correlationid"},
        "bindings": {"kafka": {"key": key_schema(topic, events), "bindingVersion": _KAFKA_BINDING_VERSION}},
    }


def headers_schema(events: Iterable[type[Event]]) -> dict[str, Any]:
    """The Kafka headers `services.kafka.publish` sets on `events`: `schemas.codec.headers`, and
    the random per-publish `correlation_id` FastStream adds (not the events' `correlationid`)."""
    envelope = Event.model_json_schema()["properties"]
    attributes = {_CE_HEADER_PREFIX + name: envelope[name] for name in HEADER_ATTRIBUTES}
    # The envelope's examples name another event; the header holds one of these.
    attributes[_CE_HEADER_PREFIX + "type"] = {
        "type": "string",
        "description": envelope["type"]["description"],
        "enum": [cls.event_type() for cls in events],
    }
    properties = {
        **attributes,
        "content-type": {"const": CONTENT_TYPE, "description": "The value is a CloudEvent in structured mode."},
        _FASTSTREAM_CORRELATION_HEADER: {
            "type": "string",
            "description": "FastStream's id of this publish, random each time; the event's own correlation "
            "is the `correlationid` attribute in the value.",
        },
    }
    return {"type": "object", "properties": properties, "required": [*attributes, "content-type"]}


def key_schema(topic: TopicSpec, events: Iterable[type[Event]]) -> dict[str, Any]:
    """The Kafka key of `events` on `topic`: the field `schemas.topics` declares, in UTF-8."""
    fields = sorted({topic.key_field(cls) for cls in events})
    return {
        "type": "string",
        "description": f"The event's {' or '.join(f'`{name}`' for name in fields)}, in UTF-8: "
        "a partition keeps these events in order.",
    }


def wire_schemas(events: Iterable[type[Event]]) -> dict[str, Any]:
    """`components/schemas`: the structured CloudEvents schema of each event, by class name, and
    the models they share, with `$ref`s pointing into `components/schemas`."""
    schemas: dict[str, Any] = {}
    for cls in _ordered(events):
        schema = _point_into_components(json_schema(cls))
        schema.pop("$schema")
        for name, shared in schema.pop("$defs", {}).items():
            if schemas.setdefault(name, shared) != shared:
                raise ValueError(f"two different models named {name!r}: AsyncAPI would show one of them")
        schemas[cls.__name__] = schema
    return dict(sorted(schemas.items()))


def _named_schemas(payload: Mapping[str, Any], flat_schemas: Mapping[str, Any]) -> set[str]:
    """Names of the schemas FastStream's `payload` refers to, through its generated unions."""
    names: set[str] = set()
    pending = [payload]
    while pending:
        schema = pending.pop()
        if "$ref" in schema:
            name = schema["$ref"].removeprefix(_SCHEMAS)
            if name in names:
                continue
            names.add(name)
            schema = flat_schemas[name]
        for key in ("oneOf", "anyOf"):
            pending.extend(schema.get(key, ()))
    return names


def _events_on(topic: TopicSpec, names: set[str]) -> tuple[type[Event], ...]:
    # A handler of the base `Event` reads every record on the topic; a union spanning topics
    # (one handler subscribed to several) documents only the events each topic carries.
    if _BASE_EVENT in names:
        return topic.events
    named = tuple(cls for cls in topic.events if cls.__name__ in names)
    if not named:
        raise ValueError(f"{topic.name}: FastStream documents none of its events ({sorted(names)})")
    return named


def _ordered(events: Iterable[type[Event]]) -> list[type[Event]]:
    # Declaration order, so the documents do not change between runs.
    chosen = set(events)
    return [cls for cls in EVENT_CLASSES if cls in chosen]


def _point_into_components(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: value.replace("#/$defs/", _SCHEMAS) if key == "$ref" else _point_into_components(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_point_into_components(item) for item in schema]
    return schema


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
