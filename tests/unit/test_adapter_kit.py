"""The adapter kit (docs/adapters) holds: its request schema is the model's, its example requests are
accepted by intake's model, its example event is what the AsyncAPI documents describe on Kafka (and
carries no personal data in clear), and its example adapter retries with one Idempotency-Key."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jsonschema
import pytest

from intake.adapters import ADAPTER_PATH, EXAMPLE_EMAIL, EXAMPLE_PHONE, AdapterSubmission
from schemas import TrainingRequestReceived, decode
from schemas.topics import TRAINING_REQUESTS
from scripts.adapter_kit import SCHEMA_FILE, request_schema
from services.catalogue import load_catalogue

pytestmark = pytest.mark.unit

KIT = Path(__file__).resolve().parents[2] / "docs" / "adapters"
ASYNCAPI = KIT.parent / "asyncapi" / "intake.json"
REQUESTS = sorted((KIT / "examples" / "requests").glob("*.json"))
EVENTS = sorted((KIT / "examples" / "events").glob("*.json"))


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_request_schema_is_the_models(tmp_path: Path) -> None:
    assert _json(KIT / SCHEMA_FILE) == request_schema(), "run `make docs` and commit docs/adapters/request.schema.json"


def test_there_are_examples_of_each_channel() -> None:
    assert {path.stem for path in REQUESTS} == {"phone", "email", "web"}
    assert {_json(path)["channel"] for path in REQUESTS} == {"phone", "email", "web"}
    assert EVENTS


def test_the_phone_and_email_examples_are_the_ones_intake_documents() -> None:
    assert _json(KIT / "examples" / "requests" / "phone.json") == EXAMPLE_PHONE
    assert _json(KIT / "examples" / "requests" / "email.json") == EXAMPLE_EMAIL


@pytest.mark.parametrize("path", REQUESTS, ids=lambda path: path.stem)
def test_each_example_request_is_valid_for_intakes_model_and_the_schema(path: Path) -> None:
    AdapterSubmission.model_validate_json(
        path.read_bytes(), strict=True, context={"catalogue": load_catalogue(), "today": date(2025, 3, 10)}
    )
    validator = jsonschema.Draft202012Validator(_json(KIT / SCHEMA_FILE), format_checker=jsonschema.FormatChecker())
    assert [error.message for error in validator.iter_errors(_json(path))] == []


def test_the_schema_refuses_what_the_model_refuses() -> None:
    validator = jsonschema.Draft202012Validator(_json(KIT / SCHEMA_FILE))
    assert not validator.is_valid({**EXAMPLE_PHONE, "channel": "fax"})
    assert not validator.is_valid({**EXAMPLE_PHONE, "consent_to_contact": False})
    assert not validator.is_valid({**EXAMPLE_PHONE, "requested_course": "NOPE"})


def _message_on_requests_topic() -> tuple[dict[str, Any], dict[str, Any]]:
    document = _json(ASYNCAPI)
    messages = document["components"]["messages"]
    (message,) = [
        messages[reference["$ref"].removeprefix("#/components/messages/")]
        for name, channel in document["channels"].items()
        # What intake publishes there (it also reads the topic, for the status pages).
        if channel["address"] == TRAINING_REQUESTS.name and name.endswith(":publish")
        for reference in channel["messages"].values()
    ]
    return message, document


def _errors(instance: object, schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    # The schema's `$ref`s point into the document's `components/schemas`: carry them along.
    rooted = {**schema, "components": {"schemas": document["components"]["schemas"]}}
    validator = jsonschema.Draft202012Validator(rooted, format_checker=jsonschema.FormatChecker())
    return [error.message for error in validator.iter_errors(instance)]


@pytest.mark.parametrize("path", EVENTS, ids=lambda path: path.stem)
def test_each_example_event_is_a_record_as_the_asyncapi_document_describes_it(path: Path) -> None:
    record = _json(path)
    message, document = _message_on_requests_topic()

    assert record["topic"] == TRAINING_REQUESTS.name
    assert _errors(record["value"], message["payload"], document) == []
    assert _errors(record["headers"], message["headers"], document) == []
    assert _errors(record["key"], message["bindings"]["kafka"]["key"], document) == []
    assert record["headers"]["content-type"] == message["contentType"]


@pytest.mark.parametrize("path", EVENTS, ids=lambda path: path.stem)
def test_each_example_event_is_sealed_and_shows_no_personal_data(path: Path) -> None:
    record = _json(path)
    event = decode(json.dumps(record["value"]).encode())

    assert isinstance(event, TrainingRequestReceived)
    assert event.sealed is not None and set(event.sealed.fields) >= {"contact", "need"}
    assert (event.contact.name, event.contact.phone, event.contact.email, event.need) == (None, None, None, "")
    assert event.source.startswith("/intake/adapters/")
    text = path.read_text(encoding="utf-8")
    for personal in (EXAMPLE_PHONE["name"], "555 12 12", "3225551212", EXAMPLE_PHONE["need"], EXAMPLE_PHONE["reference"]):
        assert str(personal) not in text


# --- the example adapter, on an in-memory identity provider and intake -------------------------


def _example_adapter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_adapter", KIT / "example_adapter.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_adapter_is_a_few_dozen_lines() -> None:
    assert len((KIT / "example_adapter.py").read_text().splitlines()) <= 80


@pytest.fixture
def adapter(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[httpx.Request], httpx.Response]], ModuleType]:
    def with_intake(intake: Callable[[httpx.Request], httpx.Response]) -> ModuleType:
        module = _example_adapter()

        def handle(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/.well-known/openid-configuration"):
                return httpx.Response(200, json={"token_endpoint": "http://idp.test/realms/formation/token"})
            if request.url.path == "/realms/formation/token":
                grant = dict(item.split("=", 1) for item in request.content.decode().split("&"))
                assert grant["grant_type"] == "client_credentials" and grant["client_secret"] == "s3cret"
                return httpx.Response(200, json={"access_token": "a-token", "expires_in": 300})
            return intake(request)

        real_client = httpx.Client
        monkeypatch.setattr(module.httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(handle), **kw))
        monkeypatch.setattr(module.time, "sleep", lambda seconds: None)
        monkeypatch.setenv("OIDC_ISSUER", "http://idp.test/realms/formation")
        monkeypatch.setenv("INTAKE_URL", "http://intake.test")
        monkeypatch.setenv("ADAPTER_CLIENT_SECRET", "s3cret")
        return module

    return with_intake


def test_the_example_adapter_retries_a_503_with_the_same_key_and_prints_the_request_id(
    adapter: Callable[..., ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[httpx.Request] = []

    def intake(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "1"}, json={"error": "unavailable", "detail": "..."})
        if len(seen) == 2:
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "rate_limited", "detail": "..."})
        return httpx.Response(202, json={"request_id": "req-1", "status": "accepted"})

    assert adapter(intake).submit(EXAMPLE_PHONE) == 0

    assert capsys.readouterr().out.strip() == "req-1"
    assert [r.url.path for r in seen] == [ADAPTER_PATH] * 3
    assert {r.headers["Idempotency-Key"] for r in seen} == {EXAMPLE_PHONE["reference"]}
    assert {r.headers["Authorization"] for r in seen} == {"Bearer a-token"}
    assert all(json.loads(r.content) == EXAMPLE_PHONE for r in seen)


def test_the_example_adapter_does_not_retry_a_refusal(adapter: Callable[..., ModuleType]) -> None:
    seen: list[httpx.Request] = []

    def intake(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(422, json={"error": "validation_failed", "detail": []})

    assert adapter(intake).submit(EXAMPLE_PHONE) == 1
    assert len(seen) == 1
