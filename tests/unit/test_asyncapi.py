"""The AsyncAPI documents under docs/asyncapi: fresh, and describing the records as they are on Kafka."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker

from schemas import CONTENT_TYPE, TrainingRequestReceived, TrainingRequestRouted
from schemas.topics import ALL_TOPICS, TRAINING_REQUESTS, TRAINING_ROUTING
from scripts.asyncapi import TRACE_CONTEXT_HEADERS, describe_wire, documented_app, main
from services import ErrorPolicy, retries
from services.deadletters import REDRIVEN_FROM, DeadLetter
from services.kafka import wire
from services.privacy import seal
from services.retries import PermanentError
from tests import asyncapi_checks as checks
from tests.asyncapi_checks import DOCS, SERVICE_DOCUMENTS
from tests.factories import make_request

CORRELATION_ID = "5f0c8f8e-2b1d-4c3a-9e7f-0a1b2c3d4e5f"


def _sealed_request() -> TrainingRequestReceived:
    # What intake publishes: the personal fields sealed with the person's key.
    return seal(make_request(correlation_id=CORRELATION_ID), os.urandom(32))


def test_committed_documents_are_what_make_docs_writes(tmp_path: Path) -> None:
    main(str(tmp_path))

    written = sorted(path.name for path in tmp_path.glob("*.json"))
    assert written == sorted(path.name for path in DOCS.glob("*.json")), "run `make docs` and commit docs/asyncapi"
    for name in written:
        # Compared parsed: FastStream does not keep its key order from one run to the next.
        fresh = json.loads((tmp_path / name).read_text())
        assert fresh == json.loads((DOCS / name).read_text()), f"docs/asyncapi/{name} is stale: run `make docs`"


@pytest.mark.parametrize("service", SERVICE_DOCUMENTS)
def test_a_published_request_matches_every_message_documenting_its_topic(service: str) -> None:
    document = checks.document(service)
    topic, key, value, headers = wire(_sealed_request())
    messages = checks.messages_on(document, topic)
    assert messages, f"{service} documents no channel on {topic}"

    for message in messages:
        assert checks.schema_errors(json.loads(value), message["payload"], document) == []
        assert checks.schema_errors(headers, message["headers"], document) == []
        assert checks.schema_errors(key.decode(), message["bindings"]["kafka"]["key"], document) == []
        assert message["contentType"] == CONTENT_TYPE == headers["content-type"]
        assert message["correlationId"] == {"location": "$message.payload#/correlationid"}
        assert json.loads(value)["correlationid"] == CORRELATION_ID


def test_the_flat_model_no_longer_matches_the_documented_payload() -> None:
    # The documents used to describe `model_dump()`; a consumer written from them would misread the wire.
    document = checks.document("intake")
    (message,) = checks.messages_on(document, TRAINING_REQUESTS.name, action="send")
    flat = _sealed_request().model_dump(mode="json")

    # The payload is one of the events intake publishes there (a union): the flat dump is none of them.
    errors = checks.schema_errors(flat, message["payload"], document)
    assert errors


def test_each_channel_documents_only_its_topics_events() -> None:
    for service in SERVICE_DOCUMENTS:
        document = checks.document(service)
        received = set().union(*(_documented_events(m) for m in _received(document)))
        for channel in document["channels"].values():
            for message in checks.messages_on(document, channel["address"]):
                documented = _documented_events(message)
                if channel["address"] in DECLARED:
                    declared = {cls.__name__ for cls in DECLARED[channel["address"]].events}
                    assert documented and documented <= declared, f"{service}: {channel['address']}"
                else:  # its own retry levels and dead letters carry what it receives
                    assert documented == received, f"{service}: {channel['address']}"


DECLARED = {topic.name: topic for topic in ALL_TOPICS}


def _documented_events(message: dict[str, Any]) -> set[str]:
    payload = message["payload"]
    return {ref["$ref"].rsplit("/", 1)[-1] for ref in payload.get("oneOf", [payload])}


def _received(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for topic in DECLARED for m in checks.messages_on(document, topic, action="receive")]


def _with_examples(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list):
            yield node
        for value in node.values():
            yield from _with_examples(value)
    elif isinstance(node, list):
        for item in node:
            yield from _with_examples(item)


@pytest.mark.parametrize("service", SERVICE_DOCUMENTS)
def test_every_example_in_the_documents_is_valid(service: str) -> None:
    document = checks.document(service)
    invalid = [
        (example, errors)
        for schema in _with_examples(document["components"])
        for example in schema["examples"]
        if (errors := checks.schema_errors(example, {k: v for k, v in schema.items() if k != "examples"}, document))
    ]

    assert invalid == []


# --- describe_wire on FastStream's output -------------------------------------------


def _faststream_document(address: str, *payload_names: str) -> dict[str, Any]:
    """The shape FastStream writes for one subscriber: a message whose payload is a union of models."""
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in payload_names]
    return {
        "asyncapi": "3.0.0",
        "defaultContentType": "application/json",
        "channels": {"on": {"address": address, "messages": {"M": {"$ref": "#/components/messages/on:M"}}}},
        "components": {
            "messages": {"on:M": {"title": "on:M", "payload": {"oneOf": [{"$ref": "#/components/schemas/Handled"}]}}},
            "schemas": {"Handled": {"anyOf": refs}, **{name: {"title": name} for name in payload_names}},
        },
    }


def _documented(document: dict[str, Any]) -> list[str]:
    payload = document["components"]["messages"]["on:M"]["payload"]
    return [ref["$ref"].rsplit("/", 1)[-1] for ref in payload.get("oneOf", [payload])]


def test_a_handler_of_the_base_event_documents_every_event_of_its_topic() -> None:
    document = describe_wire(_faststream_document(TRAINING_ROUTING.name, "TrainingRequestRouted", "Event"))

    assert _documented(document) == [cls.__name__ for cls in TRAINING_ROUTING.events]
    assert document["defaultContentType"] == CONTENT_TYPE
    assert set(document["components"]["schemas"]) >= {cls.__name__ for cls in TRAINING_ROUTING.events}
    assert "Event" not in document["components"]["schemas"]


def test_a_union_spanning_topics_documents_on_each_channel_only_that_topics_events() -> None:
    flat = _faststream_document(TRAINING_ROUTING.name, "TrainingRequestReceived", "TrainingRequestRouted")

    document = describe_wire(flat)

    assert _documented(document) == [TrainingRequestRouted.__name__]
    assert "TrainingRequestReceived" not in document["components"]["schemas"]
    assert flat["defaultContentType"] == "application/json"  # the input is left alone


def test_a_channel_on_an_undeclared_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="not a topic declared"):
        describe_wire(_faststream_document("somewhere.else.v1", "TrainingRequestRouted"))


# --- trace context, retry levels and dead letters ------------------------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _published(headers: dict[str, str]) -> dict[str, str]:
    # What FastStream's Kafka producer sends for a bytes body: an empty content type and a random
    # correlation id, both overridden by the headers given (tests/e2e/test_asyncapi_on_the_wire.py
    # reads the real thing off the broker).
    return {"content-type": "", "correlation_id": str(uuid.uuid4()), **headers}


@pytest.mark.parametrize("service", SERVICE_DOCUMENTS)
def test_every_message_takes_the_w3c_trace_context_and_no_undocumented_header(service: str) -> None:
    document = checks.document(service)
    _, _, _, headers = wire(_sealed_request())
    traced = _published({**headers, "traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"})
    messages = document["components"]["messages"]
    assert messages
    for message in messages.values():
        schema = message["headers"]
        assert set(TRACE_CONTEXT_HEADERS) <= set(schema["properties"])
        assert not set(TRACE_CONTEXT_HEADERS) & set(schema["required"])
        assert schema["additionalProperties"] is False
        pattern = schema["properties"]["traceparent"]
        assert checks.schema_errors(TRACEPARENT, pattern, document) == []
        assert checks.schema_errors("00-4BF92F35-00f067aa0ba902b7-01", pattern, document) != []
        if TrainingRequestReceived.event_type() in schema["properties"]["ce_type"]["enum"]:
            carried = {**traced, **_failure_headers(message)}
            assert checks.schema_errors(carried, schema, document) == [], message["title"]
            assert checks.schema_errors({**carried, "x-unknown": "1"}, schema, document) != [], message["title"]


def _failure_headers(message: dict[str, Any]) -> dict[str, str]:
    """Valid values of the retry or dead-letter headers `message` requires, if it is such a message."""
    found: dict[str, str] = {}
    for name in message["headers"]["required"]:
        if name.startswith(("retry_", "dlq_")):
            found[name] = _valid(message["headers"]["properties"][name])
    return found


def _valid(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return str(schema["const"])
    if "enum" in schema:
        return str(schema["enum"][0])
    return datetime.now(UTC).isoformat() if schema.get("format") == "date-time" else "1"


class _RecordingBroker:
    """Stands in for the KafkaBroker `ErrorPolicy` publishes with: keeps each record as FastStream sends it."""

    def __init__(self) -> None:
        self.sent: list[ConsumerRecord[bytes, bytes]] = []

    async def publish(self, value: bytes, *, topic: str, key: bytes | None, headers: dict[str, str]) -> None:
        pairs = [(name, text.encode()) for name, text in _published(headers).items()]
        self.sent.append(ConsumerRecord(topic, 0, len(self.sent), 1_765_000_000_000, 0, key, value, None, 0, 0, pairs))


def _record(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> ConsumerRecord[bytes, bytes]:
    pairs = [(name, text.encode()) for name, text in headers.items()]
    return ConsumerRecord(topic, 2, 41, 1_765_000_000_000, 0, key, value, None, 0, 0, pairs)


def _as_documented(record: ConsumerRecord[bytes, bytes]) -> checks.Record:
    return checks.Record.read(record.topic, record.key, record.value, record.headers)


@pytest.fixture(scope="module")
def routing_policy() -> ErrorPolicy:
    policy: ErrorPolicy = documented_app("routing").state.runtime.error_policy
    return policy


async def test_records_the_error_policy_writes_match_the_documented_retry_levels_and_dead_letters(
    routing_policy: ErrorPolicy,
) -> None:
    broker = _RecordingBroker()
    routing_policy.bind(cast(KafkaBroker, broker))
    topic, key, value, headers = wire(_sealed_request())
    original = _record(topic, key, value, _published({**headers, "traceparent": TRACEPARENT}))

    # A transient failure at each level moves the record one level up, then to the dead letters...
    record = original
    for _ in range(len(routing_policy.retry_delays) + 1):
        await routing_policy.retry_later(record, TimeoutError("MongoDB took too long"))
        record = broker.sent[-1]
    # ...and a permanent one sends it there at once.
    await routing_policy.dead_letter(original, PermanentError("the course no longer exists"))

    assert [r.topic for r in broker.sent] == [
        "routing.retry.1.v1",
        "routing.retry.2.v1",
        "routing.retry.3.v1",
        "routing.dead-letters.v1",
        "routing.dead-letters.v1",
    ]
    document = checks.document("routing")
    for sent in broker.sent:
        assert checks.publisher_errors(_as_documented(sent)) == [], sent.topic
        assert checks.messages_on(document, sent.topic, action="send")
        assert sent.value == value and sent.key == key
    for level in (1, 2, 3):  # routing reads its retry levels back
        assert checks.messages_on(document, f"routing.retry.{level}.v1", action="receive")
    assert dict(broker.sent[3].headers)["dlq_reason"] == b"retries_exhausted"
    assert dict(broker.sent[4].headers)["dlq_reason"] == b"permanent"


def test_a_retry_on_the_wrong_level_or_with_an_unknown_header_breaks_the_documents(routing_policy: ErrorPolicy) -> None:
    topic, key, value, headers = wire(_sealed_request())
    retried = retries.retry_headers(
        _published(headers),
        retries.failure_history(topic, 0, 7, 1_765_000_000_000, headers),
        TimeoutError("slow"),
        consumer="routing",
        failed_at=datetime.now(UTC),
        delay=timedelta(seconds=1),
    )
    on_level_1 = checks.Record("routing.retry.1.v1", key, value, retried)

    assert checks.publisher_errors(on_level_1) == []
    assert checks.publisher_errors(checks.Record("routing.retry.2.v1", key, value, retried)) != []
    assert checks.publisher_errors(checks.Record("routing.retry.1.v1", key, value, {**retried, "retry_extra": "1"})) != []
    assert any("no key" in error for error in checks.publisher_errors(checks.Record("routing.retry.1.v1", None, value, retried)))


def test_only_consuming_services_document_retry_levels_and_dead_letters() -> None:
    own = {
        service: sorted(c["address"] for c in checks.document(service)["channels"].values() if c["address"] not in DECLARED)
        for service in SERVICE_DOCUMENTS
    }

    assert own == {
        # intake consumes too since its status pages' projection (intake.status).
        service: [f"{service}.dead-letters.v1", *(f"{service}.retry.{level}.v1" for level in (1, 2, 3))]
        for service in ("intake", "routing", "notification", "certification")
    }


async def test_a_redriven_dead_letter_matches_the_document_of_its_original_topic(routing_policy: ErrorPolicy) -> None:
    # An operator's redrive (`services.deadletters`) republishes the original bytes and headers, and says from where.
    broker = _RecordingBroker()
    routing_policy.bind(cast(KafkaBroker, broker))
    topic, key, value, headers = wire(_sealed_request())
    await routing_policy.dead_letter(_record(topic, key, value, _published(headers)), PermanentError("gone"))
    (sent,) = broker.sent
    letter = DeadLetter(
        partition=0, offset=12, timestamp_ms=sent.timestamp, key=sent.key, value=sent.value or b"", headers=tuple(sent.headers)
    )

    redriven = checks.Record.read(letter.original_topic, letter.key, letter.value, letter.redrive_headers())

    assert redriven.topic == TRAINING_REQUESTS.name and redriven.headers[REDRIVEN_FROM] == "12"
    assert checks.publisher_errors(redriven) == []
