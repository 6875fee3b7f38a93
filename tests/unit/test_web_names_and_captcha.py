"""The web channel's guards against messaging abuse: a name with a link or control characters is
refused (API 422, form error in the page's language), and an optional CAPTCHA is checked with the
provider's siteverify endpoint (an in-process fake provider here, no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI

from intake.web import InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from intake.web.captcha import CaptchaSettings, CaptchaVerdict, CaptchaVerifier, token_from_form
from services.catalogue import load_catalogue
from services.ratelimits import InMemoryRateLimits
from tests.fakes import RecordingPipeline

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 10, 9, 14, tzinfo=UTC)
URL = "/api/v1/requests"
VERIFY_URL = "https://captcha.test/siteverify"


def body(**overrides: Any) -> dict[str, Any]:
    return {"name": "Amina El Idrissi", "phone": "0470 12 34 56", "consent_to_contact": True, **overrides}


def form(**overrides: str) -> dict[str, str]:
    return {"name": "Amina El Idrissi", "phone": "0470 12 34 56", "consent_to_contact": "yes", **overrides}


class FakeProvider:
    """A siteverify endpoint: `good-token` passes; `down` makes it answer 503; `slow` times out."""

    def __init__(self) -> None:
        self.calls: list[dict[str, list[str]]] = []
        self.down = False
        self.slow = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == VERIFY_URL and request.method == "POST"
        if self.slow:
            raise httpx.ReadTimeout("slow", request=request)
        sent = parse_qs(request.content.decode())
        self.calls.append(sent)
        if self.down:
            return httpx.Response(503, text="maintenance")
        ok = sent.get("secret") == ["s3cret"] and sent.get("response") == ["good-token"]
        return httpx.Response(200, json={"success": ok, "error-codes": [] if ok else ["invalid-input-response"]})


def make_client(pipeline: RecordingPipeline, provider: FakeProvider | None = None) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(web_router)
    verifier = None
    if provider is not None:
        verifier = CaptchaVerifier(VERIFY_URL, "s3cret", timeout_s=1, transport=httpx.MockTransport(provider))
    channel = WebChannel(
        pipeline,
        WebSettings(),
        load_catalogue(),
        clock=lambda: NOW,
        rate_limits=InMemoryRateLimits(),
        idempotency_keys=InMemoryIdempotencyKeys(),
        captcha=verifier,
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test")


@pytest.fixture
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("URGENT: confirm at https://evil.example", "name_url"),
        ("www.evil.be", "name_url"),
        ("evil.example/login", "name_url"),
        ("Jan\r\nPeeters", "name_control_characters"),
        ("Jan \u202eexe.txt", "name_control_characters"),
    ],
)
async def test_the_api_refuses_a_name_with_a_link_or_control_characters(
    pipeline: RecordingPipeline, name: str, code: str
) -> None:
    async with make_client(pipeline) as client:
        response = await client.post(URL, json=body(name=name), headers={"Accept-Language": "nl"})

    assert response.status_code == 422
    problem = response.json()
    assert problem["error"] == "validation_failed"
    [detail] = problem["detail"]
    assert detail["field"] == "name" and detail["code"] == code
    assert "naam" in detail["message"]  # in the client's language
    assert pipeline.drafts == []


async def test_the_api_refuses_an_absurdly_long_name(pipeline: RecordingPipeline) -> None:
    async with make_client(pipeline) as client:
        response = await client.post(URL, json=body(name="A" * 201))

    assert response.status_code == 422
    assert response.json()["detail"][0] == {"field": "name", "code": "too_long", "message": "Too long: at most 200 characters."}


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("fr", "sans adresse de site web"), ("nl", "zonder website-adres"), ("en", "without a website address")],
)
async def test_the_form_shows_the_name_error_in_the_page_language(pipeline: RecordingPipeline, lang: str, expected: str) -> None:
    async with make_client(pipeline) as client:
        response = await client.post(f"/{lang}/", data=form(name="Confirm at https://evil.example"))

    assert response.status_code == 422
    assert 'id="name-error"' in response.text and expected in response.text
    assert pipeline.drafts == []


async def test_a_real_name_still_goes_through(pipeline: RecordingPipeline) -> None:
    async with make_client(pipeline) as client:
        response = await client.post(URL, json=body(name="J.P. Dupont"))

    assert response.status_code == 202
    assert pipeline.drafts[0].name == "J.P. Dupont"


# --- CAPTCHA --------------------------------------------------------------------------------------


def test_the_captcha_is_off_unless_both_url_and_secret_are_set() -> None:
    assert not CaptchaSettings().enabled
    assert not CaptchaSettings(verify_url=VERIFY_URL).enabled
    assert not CaptchaSettings(secret="x").enabled  # type: ignore[arg-type]
    assert CaptchaSettings(verify_url=VERIFY_URL, secret="x").enabled  # type: ignore[arg-type]
    assert CaptchaVerifier.from_settings(CaptchaSettings()) is None


def test_the_form_token_is_read_from_any_providers_field() -> None:
    assert token_from_form({"cf-turnstile-response": "t1"}) == "t1"
    assert token_from_form({"h-captcha-response": "t2"}) == "t2"
    assert token_from_form({"captcha_token": "t3", "h-captcha-response": "t2"}) == "t3"
    assert token_from_form({"captcha_token": "  "}) is None


async def test_without_a_captcha_configured_nothing_is_asked(pipeline: RecordingPipeline) -> None:
    async with make_client(pipeline) as client:
        assert (await client.post(URL, json=body())).status_code == 202


async def test_the_api_with_a_good_token_is_accepted_and_the_provider_gets_secret_token_and_ip(
    pipeline: RecordingPipeline,
) -> None:
    provider = FakeProvider()
    async with make_client(pipeline, provider) as client:
        response = await client.post(URL, json=body(), headers={"X-Captcha-Token": "good-token"})

    assert response.status_code == 202
    assert provider.calls == [{"secret": ["s3cret"], "response": ["good-token"], "remoteip": ["127.0.0.1"]}]


@pytest.mark.parametrize("headers", [{}, {"X-Captcha-Token": "forged"}, {"X-Captcha-Token": "x" * 5000}])
async def test_the_api_without_a_valid_token_is_refused(pipeline: RecordingPipeline, headers: dict[str, str]) -> None:
    provider = FakeProvider()
    async with make_client(pipeline, provider) as client:
        response = await client.post(URL, json=body(), headers={"Accept-Language": "fr", **headers})

    assert response.status_code == 422
    assert response.json() == {"error": "captcha_failed", "detail": "La vérification anti-robot a échoué : réessayez."}
    assert pipeline.drafts == []
    assert len(provider.calls) == (1 if headers.get("X-Captcha-Token") == "forged" else 0)  # no call without a usable token


@pytest.mark.parametrize("failure", ["down", "slow"])
async def test_an_unreachable_provider_fails_closed_with_retry_after(pipeline: RecordingPipeline, failure: str) -> None:
    provider = FakeProvider()
    setattr(provider, failure, True)
    async with make_client(pipeline, provider) as client:
        response = await client.post(URL, json=body(), headers={"X-Captcha-Token": "good-token"})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    assert response.json()["error"] == "captcha_unavailable"
    assert pipeline.drafts == []


async def test_the_form_checks_the_providers_field_and_keeps_what_was_typed(pipeline: RecordingPipeline) -> None:
    provider = FakeProvider()
    async with make_client(pipeline, provider) as client:
        refused = await client.post("/nl/", data=form(**{"cf-turnstile-response": "forged"}))
        accepted = await client.post("/nl/", data=form(**{"cf-turnstile-response": "good-token"}))

    assert refused.status_code == 422
    assert "De controle tegen robots is mislukt" in refused.text and "Amina El Idrissi" in refused.text
    assert accepted.status_code == 200
    assert len(pipeline.drafts) == 1


async def test_the_verifier_reads_the_providers_answer() -> None:
    def answer(payload: object) -> Callable[[httpx.Request], httpx.Response]:
        return lambda _: httpx.Response(200, content=json.dumps(payload).encode())

    async def verdict(payload: object) -> CaptchaVerdict:
        verifier = CaptchaVerifier(VERIFY_URL, "s", transport=httpx.MockTransport(answer(payload)))
        try:
            return await verifier.verify("t", None)
        finally:
            await verifier.aclose()

    assert await verdict({"success": True}) is CaptchaVerdict.PASSED
    assert await verdict({"success": "true"}) is CaptchaVerdict.FAILED  # only a JSON true passes
    assert await verdict({"success": False}) is CaptchaVerdict.FAILED
    assert await verdict([1]) is CaptchaVerdict.FAILED
