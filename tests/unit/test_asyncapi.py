"""The AsyncAPI documents under docs/asyncapi: fresh, and describing the records as they are on Kafka."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas import CONTENT_TYPE, Event, TrainingRequestReceived, TrainingRequestRouted
from schemas.topics import ALL_TOPICS, TRAINING_REQUESTS, TRAINING_ROUTING
from scripts.asyncapi import describe_wire, main
from services.kafka import wire
from services.privacy import seal
from tests.factories import make_request

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"
SERVICE_DOCUMENTS = ("intake", "routing", "notification", "certification")


def _document(service: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((DOCS / f"{service}.json").read_text())
    return parsed


def _messages_on(document: dict[str, Any], address: str) -> list[dict[str, Any]]:
    """The component messages the document's channels at `address` refer to."""
    messages = document["components"]["messages"]
    return [
        messages[reference["$ref"].removeprefix("#/components/messages/")]
        for channel in document["channels"].values()
        if channel["address"] == address
        for reference in channel["messages"].values()
    ]


def _errors(instance: object, schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    # The schema's `$ref`s point into the document's `components/schemas`: carry them along.
    rooted = {**schema, "components": {"schemas": document["components"]["schemas"]}}
    validator = jsonschema.Draft202012Validator(rooted, format_checker=jsonschema.FormatChecker())
    return [error.message for error in validator.iter_errors(instance)]


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
    document = _document(service)
    topic, key, value, headers = wire(_sealed_request())
    messages = _messages_on(document, topic)
    assert messages, f"{service} documents no channel on {topic}"

    for message in messages:
        assert _errors(json.loads(value), message["payload"], document) == []
        assert _errors(headers, message["headers"], document) == []
        assert _errors(key.decode(), message["bindings"]["kafka"]["key"], document) == []
        assert message["contentType"] == CONTENT_TYPE == headers["content-type"]
        assert message["correlationId"] == {"location": "$message.payload#/correlationid"}
        assert json.loads(value)["correlationid"] == CORRELATION_ID


def test_the_flat_model_no_longer_matches_the_documented_payload() -> None:
    # The documents used to describe `model_dump()`; a consumer written from them would misread the wire.
    document = _document("intake")
    (message,) = _messages_on(document, TRAINING_REQUESTS.name)
    flat = _sealed_request().model_dump(mode="json")

    assert "'data' is a required property" in _errors(flat, message["payload"], document)


def test_each_channel_documents_only_its_topics_events() -> None:
    for service in SERVICE_DOCUMENTS:
        document = _document(service)
        for channel in document["channels"].values():
            for message in _messages_on(document, channel["address"]):
                payload = message["payload"]
                documented = {ref["$ref"].rsplit("/", 1)[-1] for ref in payload.get("oneOf", [payload])}
                declared = {cls.__name__ for cls in _events_on(channel["address"])}
                assert documented and documented <= declared, f"{service}: {channel['address']}"


def _events_on(address: str) -> tuple[type[Event], ...]:
    (topic,) = [topic for topic in ALL_TOPICS if topic.name == address]
    return topic.events


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
    document = _document(service)
    invalid = [
        (example, errors)
        for schema in _with_examples(document["components"])
        for example in schema["examples"]
        if (errors := _errors(example, {k: v for k, v in schema.items() if k != "examples"}, document))
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
