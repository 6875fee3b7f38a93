"""`make docs`: write the AsyncAPI document of each service, and the JSON Schemas of the event
contracts, under the folder given (default docs/asyncapi).

FastStream generates the channels and operations from the brokers' subscribers and publishers,
but describes each payload as the flat pydantic model. `describe_wire` rewrites its messages to
what is on Kafka: CloudEvents in structured mode (`schemas.codec`), with the headers
`services.kafka.publish` sets and the key `schemas.topics` declares; and adds the topics FastStream
does not see, a consuming service's retry levels and dead letters (`services.consumers.ErrorPolicy`),
whose records are the original bytes and key with the headers `services.retries` writes.

Every headers schema is closed (`additionalProperties: false`): a header the code starts to send
without the documents saying so fails the checks (tests/asyncapi_checks.py).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from faststream.specification import AsyncAPI

from schemas import CONTENT_TYPE, EVENT_CLASSES, Event, json_schema, json_schemas
from schemas.codec import HEADER_ATTRIBUTES
from schemas.topics import ALL_TOPICS, TopicSpec
from scripts.launch import SERVICES
from services import ErrorPolicy, retries

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
        app = documented_app(name)
        runtime = app.state.runtime
        spec = AsyncAPI(
            runtime.broker,
            title=f"formation-events {name}",
            version="1.0.0",
            description=app.description,
            schema_version="3.0.0",
        )
        failures = FailureTopics.of(runtime.error_policy)
        document = describe_wire(json.loads(spec.to_specification().to_json()), failures=failures)
        (folder / f"{name}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {folder / f'{name}.json'}")
    (folder / "event-schemas.json").write_text(json.dumps(json_schemas(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {folder / 'event-schemas.json'}")
    return 0


def documented_app(name: str) -> Any:
    """The service's app (not started) as its document describes it, whatever the shell's settings."""
    documented = {**_DOCUMENTED_KAFKA, **_DOCUMENTED_ENV.get(name, {})}
    saved = {key: os.environ.get(key) for key in documented}
    os.environ.update(documented)
    try:
        return importlib.import_module(f"{name}.app").create_app()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_SCHEMAS: Final = "#/components/schemas/"
_MESSAGES: Final = "#/components/messages/"
_BASE_EVENT: Final = Event.__name__
# Kafka bindings 0.4.0 describe a message's key; FastStream writes its channel bindings at 0.4.0 too.
_KAFKA_BINDING_VERSION: Final = "0.4.0"
# CloudEvents' Kafka protocol binding names a header `ce_<attribute>`.
_CE_HEADER_PREFIX: Final = "ce_"
_FASTSTREAM_CORRELATION_HEADER: Final = "correlation_id"
_CONTENT_TYPE_HEADER: Final = "content-type"
_REDRIVEN_FROM: Final = "redriven_from_dlq_offset"  # services.deadletters.REDRIVEN_FROM
# The causes `ErrorPolicy.dead_letter` is given: at once, or after the last retry level.
_DEAD_LETTER_REASONS: Final = ("permanent", "retries_exhausted")

_DIGITS: Final = {"type": "string", "pattern": "^-?[0-9]+$"}
_TIME: Final = {"type": "string", "format": "date-time"}

TRACE_CONTEXT_HEADERS: Final = {
    "traceparent": {
        "type": "string",
        "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        "description": "W3C Trace Context: the trace and span that published this record (version-traceid-parentid-flags), "
        "when the producer traces.",
        "examples": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    },
    "tracestate": {
        "type": "string",
        "description": "W3C Trace Context: vendor-specific trace data travelling with `traceparent`.",
    },
    "baggage": {
        "type": "string",
        "description": "W3C Baggage: the trace's key-value pairs, which FastStream's telemetry middleware "
        "propagates when there are any.",
    },
}
"""Headers OpenTelemetry's W3C propagators add to a published record; none is required."""


@dataclass(frozen=True, slots=True)
class FailureTopics:
    """A consuming service's own topics, as `services.consumers.ErrorPolicy` writes them."""

    service: str
    retry_levels: tuple[TopicSpec, ...]
    """Level 1 first; a failure goes one level up, then to `dead_letters`."""
    delays: tuple[timedelta, ...]
    dead_letters: TopicSpec
    retried: frozenset[str]
    """Consumed topics whose failures go through the retry levels (the others' go straight to the dead letters)."""

    @classmethod
    def of(cls, policy: ErrorPolicy) -> FailureTopics:
        *levels, dead_letters = policy.topics()
        return cls(
            service=policy.service,
            retry_levels=tuple(levels),
            delays=policy.retry_delays,
            dead_letters=dead_letters,
            retried=frozenset(topic.name for topic in ALL_TOPICS if policy.has_retries(topic.name)),
        )


def describe_wire(
    document: dict[str, Any], topics: Iterable[TopicSpec] = ALL_TOPICS, *, failures: FailureTopics | None = None
) -> dict[str, Any]:
    """`document` (FastStream's AsyncAPI 3 as JSON) with each message as it is on Kafka.

    Each channel documents the events its topic declares: the ones the handler or publisher
    names, or all of them when it names the catch-all `Event` base. With `failures`, a service
    that receives anything also documents its retry levels (it sends to and receives from them)
    and its dead letters (it sends to them), carrying the events it receives. Pure: returns a new
    document.
    """
    by_address = {topic.name: topic for topic in topics}
    flat_schemas: dict[str, Any] = document["components"]["schemas"]
    messages: dict[str, Any] = {}
    used: set[type[Event]] = set()
    received: dict[str, set[type[Event]]] = {}
    receiving = {
        operation["channel"]["$ref"].rsplit("/", 1)[-1]
        for operation in document.get("operations", {}).values()
        if operation["action"] == "receive"
    }
    for channel_name, channel in document["channels"].items():
        topic = by_address.get(channel["address"])
        if topic is None:
            raise ValueError(f"channel {channel['address']!r} is not a topic declared in schemas.topics")
        for reference in channel["messages"].values():
            name = reference["$ref"].removeprefix(_MESSAGES)
            original = document["components"]["messages"][name]
            events = _events_on(topic, _named_schemas(original["payload"], flat_schemas))
            used.update(events)
            messages[name] = wire_message(original["title"], topic, events)
            if channel_name in receiving:
                received.setdefault(topic.name, set()).update(events)
    described = {
        **document,
        "defaultContentType": CONTENT_TYPE,
        "components": {**document["components"], "messages": messages, "schemas": wire_schemas(used)},
    }
    if failures is None or not received:
        return described
    return _with_failure_topics(described, failures, [(by_address[name], events) for name, events in sorted(received.items())])


def wire_message(title: str, topic: TopicSpec, events: Iterable[type[Event]]) -> dict[str, Any]:
    """The AsyncAPI message of `events` on `topic`: structured CloudEvents value, headers and key."""
    events = _ordered(events)
    return {
        "title": title,
        "contentType": CONTENT_TYPE,
        "headers": headers_schema(events),
        "payload": _payload(events),
        "correlationId": {"location": "$message.payload#/correlationid"},
        "bindings": {"kafka": {"key": key_schema(topic, events), "bindingVersion": _KAFKA_BINDING_VERSION}},
    }


def headers_schema(events: Iterable[type[Event]]) -> dict[str, Any]:
    """The Kafka headers a record of `events` carries: `schemas.codec.headers` (which
    `services.kafka.publish` sets), the random per-publish `correlation_id` FastStream adds (not
    the events' `correlationid`), the W3C trace context when the producer traces, and the offset
    of the dead letter it was redriven from (`services.deadletters`). Closed: nothing else."""
    properties = _envelope_headers(events)
    return {
        "type": "object",
        "properties": properties,
        "required": [*(name for name in properties if name.startswith(_CE_HEADER_PREFIX)), _CONTENT_TYPE_HEADER],
        "additionalProperties": False,
    }


def _envelope_headers(events: Iterable[type[Event]]) -> dict[str, Any]:
    envelope = Event.model_json_schema()["properties"]
    attributes = {_CE_HEADER_PREFIX + name: envelope[name] for name in HEADER_ATTRIBUTES}
    # The envelope's examples name another event; the header holds one of these.
    attributes[_CE_HEADER_PREFIX + "type"] = {
        "type": "string",
        "description": envelope["type"]["description"],
        "enum": [cls.event_type() for cls in events],
    }
    return {
        **attributes,
        _CONTENT_TYPE_HEADER: {"const": CONTENT_TYPE, "description": "The value is a CloudEvent in structured mode."},
        _FASTSTREAM_CORRELATION_HEADER: {
            "type": "string",
            "description": "FastStream's id of this publish, random each time; the event's own correlation "
            "is the `correlationid` attribute in the value.",
        },
        **TRACE_CONTEXT_HEADERS,
        _REDRIVEN_FROM: {
            **_DIGITS,
            "description": "Only on a record an operator redrove from a dead-letter topic "
            "(`python -m services.deadletters redrive`): the dead letter's offset there.",
        },
    }


def key_schema(topic: TopicSpec, events: Iterable[type[Event]]) -> dict[str, Any]:
    """The Kafka key of `events` on `topic`: the field `schemas.topics` declares, in UTF-8."""
    return _key({topic.key_field(cls) for cls in events})


def _key(fields: Iterable[str]) -> dict[str, Any]:
    return {
        "type": "string",
        "description": f"The event's {' or '.join(f'`{name}`' for name in sorted(fields))}, in UTF-8: "
        "a partition keeps these events in order.",
    }


def _payload(events: Iterable[type[Event]]) -> dict[str, Any]:
    references = [{"$ref": _SCHEMAS + cls.__name__} for cls in _ordered(events)]
    return references[0] if len(references) == 1 else {"oneOf": references}


# --- retry levels and dead letters ------------------------------------------------------

Received = Sequence[tuple[TopicSpec, Iterable[type[Event]]]]
"""Each topic a service receives from, with the events it documents receiving there."""


def _with_failure_topics(document: dict[str, Any], failures: FailureTopics, received: Received) -> dict[str, Any]:
    """`document` with the channels, operations and messages of the service's retry levels and dead letters."""
    channels = dict(document["channels"])
    operations = dict(document.get("operations", {}))
    messages = dict(document["components"]["messages"])
    servers = next(iter(document["channels"].values())).get("servers")

    def add(topic: TopicSpec, message: dict[str, Any], actions: tuple[str, ...]) -> None:
        address = topic.name
        messages[f"{address}:Message"] = message
        channels[address] = {
            "address": address,
            "description": topic.description,
            **({"servers": servers} if servers else {}),
            "messages": {"Message": {"$ref": f"{_MESSAGES}{address}:Message"}},
            "bindings": {
                "kafka": {
                    "topic": address,
                    "partitions": topic.partitions,
                    "topicConfiguration": _topic_configuration(topic),
                    "bindingVersion": _KAFKA_BINDING_VERSION,
                }
            },
        }
        for action in actions:
            operations[f"{address}:{'publish' if action == 'send' else 'subscribe'}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{address}"},
                "messages": [{"$ref": f"#/channels/{address}/messages/Message"}],
            }

    retried = [(topic, events) for topic, events in received if topic.name in failures.retried]
    if retried:
        for level, (topic, delay) in enumerate(zip(failures.retry_levels, failures.delays, strict=True), start=1):
            add(topic, retry_message(failures.service, level, delay, retried), ("send", "receive"))
    add(failures.dead_letters, dead_letter_message(failures.service, received), ("send",))
    return {
        **document,
        "channels": channels,
        "operations": operations,
        "components": {**document["components"], "messages": messages},
    }


def _topic_configuration(topic: TopicSpec) -> dict[str, Any]:
    configs = topic.configs
    return {
        "cleanup.policy": configs["cleanup.policy"].split(","),
        "retention.ms": int(configs["retention.ms"]),
        "retention.bytes": int(configs["retention.bytes"]),
    }


def _carried(received: Received) -> tuple[list[type[Event]], list[str], dict[str, Any]]:
    events = _ordered(cls for _, classes in received for cls in classes)
    topics = sorted(topic.name for topic, _ in received)
    key = _key({topic.key_field(cls) for topic, classes in received for cls in classes})
    return events, topics, key


def retry_message(service: str, level: int, delay: timedelta, received: Received) -> dict[str, Any]:
    """A record of `service`'s retry `level`: a failed record's value and key, its headers and the
    ones `services.retries.retry_headers` adds. Records come due in order after `delay`."""
    events, topics, key = _carried(received)
    own = {
        retries.RETRY_ATTEMPT: {
            "const": str(level),
            "description": "How many times it failed: the level of the retry topic it is on.",
        },
        retries.RETRY_ORIGINAL_TOPIC: {
            "type": "string",
            "enum": topics,
            "description": "The topic it was first read from (with the cluster's KAFKA_TOPIC_PREFIX).",
        },
        retries.RETRY_ORIGINAL_PARTITION: {**_DIGITS, "description": "Its partition there."},
        retries.RETRY_ORIGINAL_OFFSET: {**_DIGITS, "description": "Its offset there."},
        retries.RETRY_ORIGINAL_TIMESTAMP: {**_DIGITS, "description": "Its Kafka timestamp there, in ms since the epoch."},
        retries.RETRY_FIRST_FAILURE_AT: {**_TIME, "description": "When its handling first failed."},
        retries.RETRY_LAST_FAILURE_AT: {**_TIME, "description": "When its handling last failed."},
        retries.RETRY_EXCEPTION_TYPE: {"type": "string", "description": "The last failure's exception class."},
        retries.RETRY_EXCEPTION_MESSAGE: {
            "type": "string",
            "maxLength": 1000,
            "description": "The last failure's message, without personal data.",
        },
        retries.RETRY_NOT_BEFORE: {
            **_TIME,
            "description": f"When it is due again: the last failure plus this level's delay ({_seconds(delay)} by default).",
        },
        retries.RETRY_CONSUMER: {"const": service, "description": "The service that failed on it."},
    }
    envelope = _envelope_headers(events)
    return {
        "title": f"{service}: retry level {level}",
        "summary": f"A record {service} failed on {level} time(s), to be handled again after {_seconds(delay)}.",
        "description": "The original record's value and key, byte for byte, and its headers (without earlier "
        "`retry_*` ones) with where it came from and why it failed. After this level it goes one level up, "
        "or after the last one to the dead letters.",
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {**envelope, **own},
            "required": [
                *(name for name in envelope if name.startswith(_CE_HEADER_PREFIX)),
                _CONTENT_TYPE_HEADER,
                _FASTSTREAM_CORRELATION_HEADER,
                *own,
            ],
            "additionalProperties": False,
        },
        "payload": _payload(events),
        "correlationId": {"location": "$message.payload#/correlationid"},
        "bindings": {"kafka": {"key": key, "bindingVersion": _KAFKA_BINDING_VERSION}},
    }


def dead_letter_message(service: str, received: Received) -> dict[str, Any]:
    """A record of `service`'s dead letters: a record it gave up on, its value and key, its
    headers and the ones `services.retries.dead_letter_headers` adds."""
    events, topics, key = _carried(received)
    own = {
        "dlq_original_topic": {
            "type": "string",
            "enum": topics,
            "description": "The topic it was first read from (with the cluster's KAFKA_TOPIC_PREFIX); "
            "a redrive republishes it there.",
        },
        "dlq_original_partition": {**_DIGITS, "description": "Its partition there."},
        "dlq_original_offset": {**_DIGITS, "description": "Its offset there."},
        "dlq_original_timestamp": {**_DIGITS, "description": "Its Kafka timestamp there, in ms since the epoch."},
        "dlq_consumer": {"const": service, "description": "The service that gave up on it."},
        "dlq_reason": {
            "type": "string",
            "enum": list(_DEAD_LETTER_REASONS),
            "description": "`permanent`: it can never succeed as it is (a broken contract, `PermanentError`); "
            "`retries_exhausted`: it failed on every retry level.",
        },
        "dlq_exception_type": {"type": "string", "description": "The last failure's exception class."},
        "dlq_exception_message": {
            "type": "string",
            "maxLength": 1000,
            "description": "The last failure's message, without personal data.",
        },
        "dlq_attempts": {**_DIGITS, "description": "How many times its handling failed."},
        "dlq_first_failure_at": {**_TIME, "description": "When its handling first failed."},
        "dlq_last_failure_at": {**_TIME, "description": "When it was given up on."},
    }
    envelope = _envelope_headers(events)
    # FastStream writes an empty content type for bytes; the original's replaces it, if it had one.
    envelope[_CONTENT_TYPE_HEADER] = {
        "enum": [CONTENT_TYPE, ""],
        "description": "The original record's content type (a CloudEvent in structured mode), or empty when it had none.",
    }
    return {
        "title": f"{service}: dead letters",
        "summary": f"A record {service} gave up on, kept for an operator to redrive (`services.deadletters`).",
        "description": "The original record's value and key, byte for byte, and its headers (without `retry_*` "
        "ones) with where it came from and why it was given up on. The value is one of these events when its "
        "producer kept the contract; a record given up on for a broken contract (`dlq_exception_type` "
        "MalformedEvent, InvalidEvent, UnsupportedSchemaVersion, EventTooLarge...) holds whatever bytes were "
        "on the topic, and its original `ce_*` headers may be missing.",
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {**envelope, **own},
            "required": [_FASTSTREAM_CORRELATION_HEADER, _CONTENT_TYPE_HEADER, *own],
            "additionalProperties": False,
        },
        "payload": _payload(events),
        "correlationId": {"location": "$message.payload#/correlationid"},
        "bindings": {"kafka": {"key": key, "bindingVersion": _KAFKA_BINDING_VERSION}},
    }


def _seconds(delay: timedelta) -> str:
    return f"{delay.total_seconds():g} s"


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
