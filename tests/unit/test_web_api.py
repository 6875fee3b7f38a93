"""The JSON API of the web channel: what partners may post, what they get back, and what reaches
the intake pipeline (a RecordingPipeline here)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from intake.web import API_SOURCE, InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from intake.web.idempotency import scoped_key
from schemas import CampaignAttribution, Channel, Language, QualificationLevel, RequestKind
from services.catalogue import load_catalogue
from services.ratelimits import InMemoryRateLimits
from tests.fakes import RecordingPipeline

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 10, 9, 14, tzinfo=UTC)
URL = "/api/v1/requests"


class Wall:
    """A wall clock the test moves by hand: it dates requests and places them in rate windows."""

    def __init__(self) -> None:
        self.now = NOW  # on a 10-second boundary: a burst window starts

    def __call__(self) -> datetime:
        return self.now


def valid(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Amina El Idrissi",
        "phone": "0470 12 34 56",
        "email": "amina@example.be",
        "language": "fr",
        "need": "Je voudrais apprendre Excel.",
        "requested_course": "EXCEL",
        "qualification_level": "upper_secondary",
        "has_computer": True,
        "has_internet": False,
        "unemployed_since": "2024-11-01",
        "consent_to_contact": True,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def make_app(pipeline: RecordingPipeline, wall: Wall) -> Callable[..., FastAPI]:
    def make(**settings: Any) -> FastAPI:
        app = FastAPI()
        app.include_router(web_router)
        channel = WebChannel(
            pipeline,
            WebSettings(**settings),
            load_catalogue(),
            clock=wall,
            rate_limits=InMemoryRateLimits(),
            idempotency_keys=InMemoryIdempotencyKeys(),
        )
        app.dependency_overrides[get_web_channel] = lambda: channel
        return app

    return make


@pytest.fixture
def make_client(make_app: Callable[..., FastAPI]) -> Callable[..., httpx.AsyncClient]:
    def make(*, client: tuple[str, int] = ("127.0.0.1", 123), **settings: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=make_app(**settings), client=client)
        return httpx.AsyncClient(transport=transport, base_url="http://intake.test")

    return make


@pytest.fixture
async def client(make_client: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as http:
        yield http


def fields(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {problem["field"]: problem["code"] for problem in response.json()["detail"]}


async def test_an_accepted_request_is_drafted_for_the_pipeline_and_answered_202(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    response = await client.post(URL, json=valid(), headers={"User-Agent": "partner-site/1.0"})

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted" and body["request_id"]
    assert set(body) == {"request_id", "status"}, "nothing about the person goes back to an anonymous client"
    [draft] = pipeline.drafts
    assert draft.channel is Channel.WEB and draft.source == API_SOURCE == "/intake/web/api"
    assert draft.received_at == NOW
    assert (draft.name, draft.phone, draft.email) == ("Amina El Idrissi", "0470 12 34 56", "amina@example.be")
    assert draft.language is Language.FR and draft.consent_to_contact is True
    assert draft.requested_course == "EXCEL" and draft.qualification_level is QualificationLevel.UPPER_SECONDARY
    assert (draft.has_computer, draft.has_internet, draft.unemployed_since) == (True, False, date(2024, 11, 1))
    assert draft.known_fact_sources() == dict.fromkeys(
        ("qualification_level", "has_computer", "has_internet", "unemployed_since"), "web_form"
    )
    assert draft.dedup_key is None and draft.campaign is None
    details = draft.channel_details
    assert details["user_agent"] == "partner-site/1.0" and details["idempotency_key"] is False
    assert details["partner"] is None and details["handover"] is False
    assert isinstance(details["body_sha256"], str) and len(details["body_sha256"]) == 64


async def test_a_learner_question_is_drafted_as_one(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    assert (await client.post(URL, json=valid(kind="learner_question"))).status_code == 202
    assert (await client.post(URL, json=valid())).status_code == 202
    assert [d.kind for d in pipeline.drafts] == [RequestKind.LEARNER_QUESTION, RequestKind.TRAINING_REQUEST]
    assert fields(await client.post(URL, json=valid(kind="question"))) == {"kind": "choice_invalid"}


async def test_phone_or_email_alone_is_enough_and_blank_strings_count_as_absent(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    assert (await client.post(URL, json=valid(email=..., name="  "))).status_code == 202
    assert (await client.post(URL, json=valid(phone="", email="x@example.org"))).status_code == 202
    assert [(d.name, d.phone, d.email) for d in pipeline.drafts] == [
        (None, "0470 12 34 56", None),
        ("Amina El Idrissi", None, "x@example.org"),
    ]


async def test_a_course_code_is_matched_whatever_its_case(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    assert (await client.post(URL, json=valid(requested_course=" excel "))).status_code == 202
    assert pipeline.drafts[0].requested_course == "EXCEL"


async def test_malformed_json_is_a_400_not_a_500(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    for broken in (b'{"phone": "0470', b"", b"\xff\xfe", b'{"need": "\\ud800"}'):
        response = await client.post(URL, content=broken, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, broken
        assert response.json()["error"] == "malformed_json"
        assert response.json()["detail"] == "The request body is not valid JSON."
    assert pipeline.drafts == []


async def test_without_phone_nor_email_both_fields_are_named(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json=valid(phone=..., email=None))

    assert fields(response) == {"phone": "contact_required", "email": "contact_required"}
    assert response.json()["detail"][0]["message"] == "Give a phone number or an e-mail address so that we can contact you."


async def test_missing_contact_is_reported_with_the_other_problems(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json=valid(phone=..., email=..., consent_to_contact=False))

    assert fields(response) == {
        "phone": "contact_required",
        "email": "contact_required",
        "consent_to_contact": "consent_required",
    }


@pytest.mark.parametrize("phone", ["123", "abc", "0470 12", "+32 470 12 34 56 78 90 12"])
async def test_an_impossible_phone_number_is_refused(client: httpx.AsyncClient, phone: str) -> None:
    response = await client.post(URL, json=valid(phone=phone))
    assert fields(response) == {"phone": "phone_invalid"}


@pytest.mark.parametrize("phone", ["0470/12.34.56", "+32 (0)470 12 34 56", "0032 2 555 12 12", "+33 6 12 34 56 78"])
async def test_belgian_and_international_notations_are_accepted_as_given(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, phone: str
) -> None:
    assert (await client.post(URL, json=valid(phone=phone))).status_code == 202
    assert pipeline.drafts[0].phone == phone


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@example.be", "space in@example.be", "x" * 250 + "@ex.be"])
async def test_an_invalid_email_is_refused(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post(URL, json=valid(email=email))
    assert fields(response)["email"] in {"email_invalid", "too_long"}


async def test_an_unknown_course_is_refused_with_the_valid_codes(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json=valid(requested_course="COBOL"))

    assert fields(response) == {"requested_course": "course_unknown"}
    message = response.json()["detail"][0]["message"]
    assert "COBOL" in message and "EXCEL" in message and "FR-BASE" in message


async def test_without_consent_nothing_is_stored(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    refused = await client.post(URL, json=valid(consent_to_contact=False))
    missing = await client.post(URL, json=valid(consent_to_contact=...))

    assert fields(refused) == {"consent_to_contact": "consent_required"}
    assert "consent" in refused.json()["detail"][0]["message"]
    assert fields(missing) == {"consent_to_contact": "required"}
    assert pipeline.drafts == []


async def test_types_are_strict_and_unknown_fields_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, json=valid(has_computer="yes", language="de", unemployed_since="last year", surname="X", campaign="fb")
    )
    assert fields(response) == {
        "has_computer": "bool_invalid",
        "language": "choice_invalid",
        "unemployed_since": "date_invalid",
        "surname": "unknown_field",
        "campaign": "object_expected",
    }


async def test_limits_and_dates(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json=valid(name="n" * 201, need="x" * 5001, unemployed_since="2025-03-11"))
    assert fields(response) == {"name": "too_long", "need": "too_long", "unemployed_since": "date_future"}
    assert "200" in response.json()["detail"][0]["message"]
    # Today (in Brussels) is not the future.
    assert (await client.post(URL, json=valid(unemployed_since="2025-03-10"))).status_code == 202


async def test_a_body_that_is_not_an_object_is_a_field_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json=[valid()])
    assert fields(response) == {"body": "object_expected"}


async def test_messages_follow_accept_language_or_the_lang_parameter(client: httpx.AsyncClient) -> None:
    dutch = await client.post(URL, json=valid(phone="123"), headers={"Accept-Language": "nl-BE,nl;q=0.9,en;q=0.5"})
    french = await client.post(URL + "?lang=fr", json=valid(phone="123"), headers={"Accept-Language": "nl"})
    default = await client.post(URL, json=valid(phone="123"), headers={"Accept-Language": "de-DE"})

    assert dutch.json()["detail"][0]["message"].startswith("Dit telefoonnummer is ongeldig")
    assert french.json()["detail"][0]["message"].startswith("Ce numéro de téléphone n'est pas valide")
    assert default.json()["detail"][0]["message"].startswith("This phone number is not valid")
    malformed = await client.post(URL, content=b"{", headers={"Content-Type": "application/json", "Accept-Language": "nl"})
    assert malformed.json()["detail"] == "De inhoud van het verzoek is geen geldige JSON."


class CountingBody:
    """A request body streamed in chunks, counting how many the server pulled."""

    def __init__(self, chunks: int, size: int = 1024) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"need": "'
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * self.size
        yield b'"}'


async def test_a_declared_oversized_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    body = CountingBody(chunks=100)
    response = await client.post(
        URL, content=body, headers={"Content-Type": "application/json", "Content-Length": str(100 * 1024 + 12)}
    )

    assert response.status_code == 413
    assert response.json()["error"] == "too_large" and "65536" in response.json()["detail"]
    assert body.pulled == 0
    assert pipeline.drafts == []


async def test_an_oversized_chunked_body_is_refused_while_streaming(client: httpx.AsyncClient) -> None:
    body = CountingBody(chunks=1000)
    request = client.build_request("POST", URL, content=body, headers={"Content-Type": "application/json"})
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"

    response = await client.send(request)

    assert response.status_code == 413
    assert body.pulled <= 65  # stopped at the limit, not after the 1000 KiB


async def test_a_small_chunked_body_is_accepted(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    payload = json.dumps(valid()).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 16):
            yield payload[start : start + 16]

    response = await client.post(URL, content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 202
    assert len(pipeline.drafts) == 1


async def test_the_body_limit_is_configurable(make_client: Callable[..., httpx.AsyncClient]) -> None:
    async with make_client(max_body_bytes=100) as http:
        assert (await http.post(URL, json=valid())).status_code == 413
        assert (await http.post(URL, json={"phone": "0470123456", "consent_to_contact": True})).status_code == 202


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_a_body_that_is_not_json_is_a_415(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(URL, content=json.dumps(valid()).encode(), headers=headers)

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


async def test_json_with_a_charset_parameter_is_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, content=json.dumps(valid()).encode(), headers={"Content-Type": "Application/JSON; charset=utf-8"}
    )
    assert response.status_code == 202


async def test_a_retried_post_with_the_same_idempotency_key_is_stored_once(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    headers = {"Idempotency-Key": "order-7f3a"}
    first = await client.post(URL, json=valid(), headers=headers)
    # Same request, spelled differently (key order, defaults left out): still the same request.
    reordered = dict(reversed(list(valid(language=...).items())))
    retry = await client.post(URL, json=reordered, headers=headers)

    assert first.status_code == 202 and retry.status_code == 200
    assert retry.json()["status"] == "duplicate"
    assert retry.json()["request_id"] == first.json()["request_id"]
    [draft] = pipeline.drafts
    assert draft.dedup_key == f"web:{scoped_key('127.0.0.1', 'order-7f3a')}:{draft.channel_details['body_sha256']}"
    assert draft.channel_details["idempotency_key"] is True


async def test_an_idempotency_key_reused_for_another_request_is_refused(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    assert (await client.post(URL, json=valid(), headers=headers)).status_code == 202
    response = await client.post(URL, json=valid(need="Something else"), headers=headers)

    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert response.json()["detail"][0]["message"] == "Idempotency-Key reused with a different request."
    assert len(pipeline.drafts) == 1


async def test_a_refused_request_does_not_claim_its_idempotency_key(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k-2"}
    assert (await client.post(URL, json=valid(phone="1"), headers=headers)).status_code == 422
    assert (await client.post(URL, json=valid(), headers=headers)).status_code == 202


@pytest.mark.parametrize("key", ["x" * 256, " ", "tab\tkey"])
async def test_an_invalid_idempotency_key_is_a_400(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(URL, json=valid(), headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_idempotency_key"


async def test_another_client_with_the_same_key_neither_collides_nor_sees_the_first_result(
    make_app: Callable[..., FastAPI], pipeline: RecordingPipeline
) -> None:
    app = make_app()
    headers = {"Idempotency-Key": "order-1"}
    mine = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.7", 1)), base_url="http://t")
    theirs = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 1)), base_url="http://t")
    async with mine, theirs:
        first = await mine.post(URL, json=valid(), headers=headers)
        probe = await theirs.post(URL, json=valid(), headers=headers)  # same key, same body: not a retry of mine
        other = await theirs.post(URL, json=valid(need="Autre chose"), headers={"Idempotency-Key": "order-2"})
        reused_elsewhere = await mine.post(URL, json=valid(need="Autre chose"), headers={"Idempotency-Key": "order-2"})

    assert first.status_code == 202 and probe.status_code == 202
    assert probe.json()["request_id"] != first.json()["request_id"]
    assert other.status_code == 202 and reused_elsewhere.status_code == 202
    assert len(pipeline.drafts) == 4


async def test_too_many_requests_from_one_client_are_slowed_down(
    make_client: Callable[..., httpx.AsyncClient], wall: Wall
) -> None:
    async with make_client(rate_per_minute=30, burst=3) as http:
        statuses = [(await http.post(URL, json=valid(phone=f"0470 12 34 5{n}"))).status_code for n in range(4)]
        wall.now += timedelta(seconds=4)
        limited = await http.post(URL, json=valid(phone="0470 12 34 99"))

        assert statuses == [202, 202, 202, 429]
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "6"  # the 10-second window's end
        assert limited.json()["error"] == "rate_limited"
        wall.now += timedelta(seconds=6)
        assert (await http.post(URL, json=valid(phone="0470 12 34 98"))).status_code == 202


async def test_rotating_addresses_in_one_ipv6_64_share_one_allowance(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(burst=3)
    statuses = []
    for n in range(5):
        transport = httpx.ASGITransport(app=app, client=(f"2001:db8:1:2::{n + 1:x}", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            statuses.append((await http.post(URL, json=valid(phone=f"0470 12 34 5{n}"))).status_code)
    neighbour = httpx.ASGITransport(app=app, client=("2001:db8:1:3::1", 1))
    async with httpx.AsyncClient(transport=neighbour, base_url="http://t") as http:
        statuses.append((await http.post(URL, json=valid(phone="0470 12 34 60"))).status_code)

    assert statuses == [202, 202, 202, 429, 429, 202]  # the next /64 is another client


async def test_one_destination_gets_only_so_many_requests_a_day_whoever_sends_them(
    make_app: Callable[..., FastAPI], pipeline: RecordingPipeline, wall: Wall
) -> None:
    app = make_app(destination_per_day=2)
    statuses = []
    for n, phone in enumerate(["0470 12 34 56", "+32 470 12 34 56", "0032470123456"]):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            statuses.append((await http.post(URL, json=valid(phone=phone, email=None))).status_code)

    assert statuses == [202, 202, 429]  # three spellings of one number
    assert len(pipeline.drafts) == 2


async def test_forwarded_for_identifies_clients_only_from_a_trusted_proxy(make_app: Callable[..., FastAPI]) -> None:
    # uvicorn's own proxy-headers handling, as `services.serve` installs it.
    async def statuses(trusted_hosts: str) -> list[int]:
        app = make_app(burst=1)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_hosts)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return [
                (
                    await http.post(
                        URL, json=valid(phone=f"0470 12 34 5{n}"), headers={"X-Forwarded-For": f"{spoofed}, 198.51.100.{client}"}
                    )
                ).status_code
                for n, (spoofed, client) in enumerate((("1.1.1.1", 7), ("2.2.2.2", 7), ("3.3.3.3", 8)))
            ]

    assert await statuses("") == [202, 429, 429]  # trusting no one: one client, the peer
    # Trusting our proxy: the address it appended counts, not what the client wrote before it.
    assert await statuses("127.0.0.1") == [202, 429, 202]


async def test_campaign_attribution_and_partner_reach_the_draft(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    campaign = {
        "utm_source": "facebook",
        "utm_medium": "cpc",
        "utm_campaign": "confine-mais-connecte",
        "referrer": "https://example.org/",
    }
    response = await client.post(URL, json=valid(campaign=campaign, partner="cite-des-metiers"))

    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.campaign == CampaignAttribution(**campaign)
    assert draft.channel_details["partner"] == "cite-des-metiers"
    assert draft.channel_details["handover"] is True


async def test_an_empty_campaign_is_no_campaign(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    assert (await client.post(URL, json=valid(campaign={}))).status_code == 202
    assert pipeline.drafts[0].campaign is None


async def test_a_pipeline_failure_is_a_503_to_retry(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    pipeline.fail_with = ConnectionError("mongod is down")
    with capture_logs():
        response = await client.post(URL, json=valid())

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "unavailable"


async def test_logs_say_what_happened_without_personal_data(client: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        await client.post(URL, json=valid(campaign={"utm_campaign": "cmc"}))
        await client.post(URL, json=valid(phone="123"))

    accepted = next(entry for entry in logs if entry["event"] == "web.request_accepted")
    assert accepted["campaign"] == "cmc" and accepted["language"] == "fr" and accepted["request_id"]
    refused = next(entry for entry in logs if entry["event"] == "web.request_refused")
    assert refused["fields"] == ["phone"]
    dumped = repr(logs)
    for personal in ("Amina", "0470 12 34 56", "amina@example.be", "Excel"):
        assert personal not in dumped


async def test_the_openapi_document_describes_the_endpoint_with_examples(pipeline: RecordingPipeline) -> None:
    app = FastAPI()
    app.include_router(web_router)
    channel = WebChannel(
        pipeline,
        WebSettings(),
        load_catalogue(),
        rate_limits=InMemoryRateLimits(),
        idempotency_keys=InMemoryIdempotencyKeys(),
    )
    app.dependency_overrides[get_web_channel] = lambda: channel

    document = app.openapi()
    operation = document["paths"]["/api/v1/requests"]["post"]
    assert set(operation["responses"]) == {"200", "202", "400", "413", "415", "422", "429", "503"}
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    content = operation["requestBody"]["content"]["application/json"]
    assert set(content["examples"]) == {"web_partner", "cite_des_metiers"}
    schema = content["schema"]
    assert schema["additionalProperties"] is False and schema["required"] == ["consent_to_contact"]
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
        if name != "campaign":
            assert prop.get("examples"), name
    assert "EXCEL" in schema["properties"]["requested_course"]["anyOf"][0]["enum"]
    assert schema["properties"]["consent_to_contact"]["const"] is True
    assert "$ref" not in json.dumps(schema)  # self-contained
    assert {p["name"] for p in operation["parameters"]} == {"Idempotency-Key", "Accept-Language", "lang"}
    assert {"SubmissionAccepted", "Problem", "ValidationProblem"} <= set(document["components"]["schemas"])
    # The documented examples are themselves accepted.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        for example in content["examples"].values():
            assert (await http.post(URL, json=example["value"])).status_code == 202
