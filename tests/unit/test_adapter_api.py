"""The channel adapters' API on intake: who may post, what an adapter's request becomes for the
pipeline (a RecordingPipeline here), and its idempotency, limits and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from intake.adapters import ADAPTER_PATH, EXAMPLE_EMAIL, EXAMPLE_PHONE, adapter_router, adapter_source
from intake.web import InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel
from schemas import Channel, Language
from services.auth.roles import CHANNEL_ADAPTER
from services.catalogue import load_catalogue
from services.ratelimits import InMemoryRateLimits
from tests.fakes import RecordingPipeline
from tests.identity_provider import SignIn

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 10, 9, 14, tzinfo=UTC)
CLIENT = "callcentre-adapter"


@pytest.fixture
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


@pytest.fixture
def sign_in() -> SignIn:
    return SignIn()


def adapter(sign_in: SignIn, client_id: str = CLIENT) -> dict[str, str]:
    """The bearer header of a client-credentials token: a service account holding `channel-adapter`."""
    token = sign_in.provider.token(
        datetime.now(UTC),
        roles=(CHANNEL_ADAPTER,),
        sub=f"svc-{client_id}",
        preferred_username=f"service-account-{client_id}",
        azp=client_id,
        email=None,
    )
    return {"Authorization": f"Bearer {token}"}


def make_app(pipeline: RecordingPipeline, sign_in: SignIn, **settings: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(adapter_router)
    channel = WebChannel(
        pipeline,
        WebSettings(**settings),
        load_catalogue(),
        clock=lambda: NOW,
        rate_limits=InMemoryRateLimits(),
        idempotency_keys=InMemoryIdempotencyKeys(),
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    return sign_in.install(app)


@pytest.fixture
async def client(pipeline: RecordingPipeline, sign_in: SignIn) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(pipeline, sign_in))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
        yield http


async def post(
    http: httpx.AsyncClient, body: Any, headers: dict[str, str], key: str | None = "k-1", **extra: str
) -> httpx.Response:
    sent = {**headers, **extra, **({"Idempotency-Key": key} if key is not None else {})}
    return await http.post(ADAPTER_PATH, json=body, headers=sent)


async def test_an_adapters_request_goes_to_the_pipeline_on_its_channel_with_the_adapter_as_source(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, sign_in: SignIn
) -> None:
    response = await post(client, EXAMPLE_PHONE, adapter(sign_in))

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted" and set(response.json()) == {"request_id", "status"}
    [draft] = pipeline.drafts
    assert draft.channel is Channel.PHONE
    assert draft.source == adapter_source(CLIENT) == "/intake/adapters/callcentre-adapter"
    assert (draft.name, draft.phone, draft.language) == ("Jan Peeters", "+32 2 555 12 12", Language.NL)
    assert draft.channel_details["adapter"] == CLIENT
    assert draft.channel_details["adapter_reference"] == "call-2025-03-10-0042"
    assert draft.dedup_key is not None and draft.received_at == NOW


async def test_an_email_adapters_request_is_on_the_email_channel(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, sign_in: SignIn
) -> None:
    assert (await post(client, EXAMPLE_EMAIL, adapter(sign_in))).status_code == 202
    assert pipeline.drafts[0].channel is Channel.EMAIL


async def test_without_a_token_401_and_without_the_role_403_and_nothing_is_stored(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, sign_in: SignIn
) -> None:
    anonymous = await post(client, EXAMPLE_PHONE, {})
    advisor = await post(client, EXAMPLE_PHONE, sign_in.as_user("adv-1"))

    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert advisor.status_code == 403
    assert pipeline.drafts == []


async def test_a_retry_with_the_same_key_and_body_is_one_request(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, sign_in: SignIn
) -> None:
    first = await post(client, EXAMPLE_PHONE, adapter(sign_in))
    again = await post(client, EXAMPLE_PHONE, adapter(sign_in))

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"request_id": first.json()["request_id"], "status": "duplicate"}
    assert len(pipeline.drafts) == 1


async def test_the_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, sign_in: SignIn
) -> None:
    await post(client, EXAMPLE_PHONE, adapter(sign_in))
    other = await post(client, {**EXAMPLE_PHONE, "need": "Autre chose."}, adapter(sign_in))

    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    assert len(pipeline.drafts) == 1


async def test_two_adapters_keys_never_meet(client: httpx.AsyncClient, pipeline: RecordingPipeline, sign_in: SignIn) -> None:
    one = await post(client, EXAMPLE_PHONE, adapter(sign_in, "adapter-one"))
    two = await post(client, EXAMPLE_PHONE, adapter(sign_in, "adapter-two"))

    assert (one.status_code, two.status_code) == (202, 202)
    assert one.json()["request_id"] != two.json()["request_id"]
    assert [d.source for d in pipeline.drafts] == ["/intake/adapters/adapter-one", "/intake/adapters/adapter-two"]


async def test_the_idempotency_key_is_required(client: httpx.AsyncClient, pipeline: RecordingPipeline, sign_in: SignIn) -> None:
    response = await post(client, EXAMPLE_PHONE, adapter(sign_in), key=None)

    assert response.status_code == 400
    assert response.json()["error"] == "idempotency_key_required"
    assert pipeline.drafts == []


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"channel": "fax"}, "channel", "choice_invalid"),
        ({"channel": ...}, "channel", "required"),
        ({"reference": "+32 470 12 34 56"}, "reference", "invalid"),
        ({"consent_to_contact": False}, "consent_to_contact", "consent_required"),
        ({"requested_course": "NOPE"}, "requested_course", "course_unknown"),
        ({"surprise": 1}, "surprise", "unknown_field"),
    ],
)
async def test_fields_to_correct_are_named(
    client: httpx.AsyncClient, sign_in: SignIn, change: dict[str, Any], field: str, code: str
) -> None:
    body = {k: v for k, v in {**EXAMPLE_PHONE, **change}.items() if v is not ...}

    response = await post(client, body, adapter(sign_in))

    assert response.status_code == 422, response.text
    assert {p["field"]: p["code"] for p in response.json()["detail"]}[field] == code


async def test_malformed_json_is_400(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    headers = {**adapter(sign_in), "Idempotency-Key": "k", "Content-Type": "application/json"}
    response = await client.post(ADAPTER_PATH, content=b"{not json", headers=headers)
    assert response.status_code == 400 and response.json()["error"] == "malformed_json"


async def test_an_adapter_past_its_rate_is_told_when_to_retry(pipeline: RecordingPipeline, sign_in: SignIn) -> None:
    transport = httpx.ASGITransport(app=make_app(pipeline, sign_in, burst=2))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
        answers = [await post(http, {**EXAMPLE_PHONE, "reference": f"c-{i}"}, adapter(sign_in), key=f"k-{i}") for i in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert int(answers[2].headers["Retry-After"]) > 0
    assert len(pipeline.drafts) == 2


async def test_a_pipeline_failure_is_503_and_the_retry_is_stored(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, sign_in: SignIn
) -> None:
    pipeline.fail_with = RuntimeError("mongod unreachable")
    failed = await post(client, EXAMPLE_PHONE, adapter(sign_in))
    pipeline.fail_with = None
    retried = await post(client, EXAMPLE_PHONE, adapter(sign_in))

    assert failed.status_code == 503 and failed.headers["Retry-After"]
    assert retried.status_code == 202
    assert len(pipeline.drafts) == 1
