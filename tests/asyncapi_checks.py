"""Checks of the AsyncAPI documents under docs/asyncapi, shared by the unit tests and the tests on the
broker: a Kafka record against the message a document says is on its topic, with jsonschema; and the
documents against the official AsyncAPI parser (tests/asyncapi_parser, run with node)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "asyncapi"
PARSER = REPO / "tests" / "asyncapi_parser"
SERVICE_DOCUMENTS = ("intake", "routing", "notification", "certification")
"""The AsyncAPI documents; docs/asyncapi/event-schemas.json holds the bare JSON Schemas."""

_MESSAGES = "#/components/messages/"
_TOPIC_HEADERS = ("retry_original_topic", "dlq_original_topic")
"""Headers naming a topic as the cluster has it, with the run's KAFKA_TOPIC_PREFIX."""


def document(service: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((DOCS / f"{service}.json").read_text())
    return parsed


def messages_on(doc: Mapping[str, Any], address: str, *, action: str | None = None) -> list[dict[str, Any]]:
    """The component messages of `doc`'s channels at `address`; with `action` (send, receive), only
    those of the channels an operation of that action is on."""
    channels = {name for name, channel in doc["channels"].items() if channel["address"] == address}
    if action is not None:
        channels &= {
            operation["channel"]["$ref"].rsplit("/", 1)[-1]
            for operation in doc.get("operations", {}).values()
            if operation["action"] == action
        }
    messages = doc["components"]["messages"]
    return [
        messages[reference["$ref"].removeprefix(_MESSAGES)]
        for name in sorted(channels)
        for reference in doc["channels"][name]["messages"].values()
    ]


def schema_errors(instance: object, schema: Mapping[str, Any], doc: Mapping[str, Any]) -> list[str]:
    """What `schema` (part of `doc`, its `$ref`s pointing into `components/schemas`) finds wrong with `instance`."""
    rooted = {**schema, "components": {"schemas": doc["components"]["schemas"]}}
    validator = jsonschema.Draft202012Validator(rooted, format_checker=jsonschema.FormatChecker())
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(instance)]


@dataclass(frozen=True, slots=True)
class Record:
    """A Kafka record as it was read: topic (unprefixed), key, value and headers as text."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Mapping[str, str]

    @classmethod
    def read(
        cls, topic: str, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]], *, prefix: str = ""
    ) -> Record:
        """A record read from a cluster whose topics carry `prefix` (KAFKA_TOPIC_PREFIX): the topic and
        the headers naming topics without it, as the documents name them."""
        text = {name: raw.decode() for name, raw in headers}
        for name in _TOPIC_HEADERS:
            if name in text:
                text[name] = text[name].removeprefix(prefix)
        return cls(topic.removeprefix(prefix), key, value or b"", text)


def message_errors(record: Record, message: Mapping[str, Any], doc: Mapping[str, Any]) -> list[str]:
    """What `message` of `doc` finds wrong with `record`: its value (JSON), headers, key and content type."""
    errors: list[str] = []
    try:
        value = json.loads(record.value)
    except ValueError as error:
        errors.append(f"value is not JSON: {error}")
    else:
        errors += [f"payload {e}" for e in schema_errors(value, message["payload"], doc)]
    errors += [f"headers {e}" for e in schema_errors(dict(record.headers), message["headers"], doc)]
    key = message["bindings"]["kafka"]["key"]
    if record.key is None:
        errors.append("the record has no key")
    else:
        errors += [f"key {e}" for e in schema_errors(record.key.decode(), key, doc)]
    if record.headers.get("content-type") != message["contentType"]:
        errors.append(f"content-type {record.headers.get('content-type')!r} is not {message['contentType']!r}")
    return errors


def publisher_errors(record: Record, services: Iterable[str] = SERVICE_DOCUMENTS) -> list[str]:
    """What the documents of the services sending to `record.topic` find wrong with it: empty when
    it matches at least one message they send there; every mismatch otherwise (or that none sends there)."""
    found: list[str] = []
    for service in services:
        doc = document(service)
        for message in messages_on(doc, record.topic, action="send"):
            errors = message_errors(record, message, doc)
            if not errors:
                return []
            found += [f"{service} {message['title']}: {error}" for error in errors]
    return found or [f"no document describes sending to {record.topic}"]


def parser_diagnostics(paths: Iterable[Path]) -> dict[str, list[dict[str, str]]]:
    """Every diagnostic the official AsyncAPI parser gives each document, by path.

    Skips when node or the parser's npm packages are missing, except in CI, where it fails."""
    node = shutil.which("node")
    if node is None or not (PARSER / "node_modules" / "@asyncapi" / "parser").is_dir():
        message = "node or tests/asyncapi_parser/node_modules is missing (scripts/setup.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [node, str(PARSER / "validate.mjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for path, parsed in result["parsed"].items():
        if not parsed and not any(d["severity"] == "error" for d in result["diagnostics"][path]):
            result["diagnostics"][path].append({"severity": "error", "code": "unparsed", "message": "no document", "path": ""})
    diagnostics: dict[str, list[dict[str, str]]] = result["diagnostics"]
    return diagnostics
