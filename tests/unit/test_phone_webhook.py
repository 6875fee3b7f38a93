"""The telephony webhook: authentication, mapping of both payloads to one draft, limits, logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from intake.phone import (
    NO_CALLER_NUMBER,
    PhoneChannel,
    PhoneWebhookSettings,
    generic_signature,
    get_phone_channel,
    phone_router,
    twilio_signature,
)
from schemas import Channel, Language, QualificationLevel
from services.calendar import BRUSSELS, BrusselsCalendar
from services.logging import configure_logging
from tests.fakes import RecordingPipeline

pytestmark = pytest.mark.unit

SECRET = "s3cret-current"
OLD_SECRET = "s3cret-previous"
TWILIO_TOKEN = "twilio-auth-token"
PUBLIC = "https://intake.bruxellesformation.example"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=BRUSSELS)  # a Tuesday, the line is open
CALLER = "+32470123456"


def settings(**overrides: Any) -> PhoneWebhookSettings:
    values: dict[str, Any] = {
        "secret": SecretStr(SECRET),
        "previous_secret": SecretStr(OLD_SECRET),
        "twilio_auth_token": SecretStr(TWILIO_TOKEN),
        "public_base_url": PUBLIC,
        **overrides,
    }
    return PhoneWebhookSettings(**values)


@pytest.fixture
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


def make_client(pipeline: RecordingPipeline, config: PhoneWebhookSettings) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(phone_router)
    channel = PhoneChannel(pipeline, config, BrusselsCalendar(), clock=lambda: NOW.astimezone(UTC))
    app.dependency_overrides[get_phone_channel] = lambda: channel
    # The client reaches us on the internal address; the platform signed the public one.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8001")


@pytest.fixture
async def client(pipeline: RecordingPipeline) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(pipeline, settings()) as c:
        yield c


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    configure_logging(service="test", instance="t-1", level="INFO", fmt="json")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def call_event(**overrides: Any) -> dict[str, Any]:
    return {
        "call_id": "c-0001",
        "event": "answered",
        "caller": CALLER,
        "called": "+3280055566",
        "started_at": NOW.isoformat(),
        "language": "nl",
        "agent_notes": "Zoekt een online cursus Excel.",
        "agent_id": "agt_017",
        **overrides,
    }


def signed_headers(body: bytes, *, secret: str = SECRET, timestamp: int | str | None = None) -> dict[str, str]:
    ts = str(int(NOW.timestamp()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "X-Signature-Timestamp": ts,
        "X-Signature": generic_signature(secret, ts, body),
    }


async def post_generic(client: httpx.AsyncClient, payload: dict[str, Any], **signing: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    return await client.post("/webhooks/phone", content=body, headers=signed_headers(body, **signing))


def twilio_params(**overrides: str) -> dict[str, str]:
    params = {
        "CallSid": "CA0123456789abcdef0123456789abcdef",
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": CALLER,
        "To": "+3280055566",
        "CallStatus": "completed",
        "Direction": "inbound",
        "Digits": "2",
        "ApiVersion": "2010-04-01",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


async def post_twilio(
    client: httpx.AsyncClient, params: dict[str, str], *, token: str = TWILIO_TOKEN, url: str | None = None
) -> httpx.Response:
    path = "/webhooks/phone/twilio"
    signature = twilio_signature(token, url or PUBLIC + path, params.items())
    return await client.post(
        path,
        content=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


# --- the generic JSON webhook --------------------------------------------------------


async def test_signed_call_becomes_a_request(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    response = await post_generic(client, call_event(caller="0470 12 34 56"))
    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert response.json() == {"request_id": response.json()["request_id"], "status": "accepted"}
    assert draft.channel is Channel.PHONE
    assert draft.source == "/intake/phone/generic"
    assert draft.phone == "0470 12 34 56"  # kept as given; the pipeline normalises
    assert draft.language is Language.NL
    assert draft.need == "Zoekt een online cursus Excel."
    assert draft.received_at == NOW
    assert draft.consent_to_contact and not draft.needs_triage
    assert draft.dedup_key == "phone:generic:c-0001"
    assert draft.channel_details == {
        "platform": "generic",
        "call_id": "c-0001",
        "call_status": "answered",
        "out_of_hours": False,
        "holiday": None,
        "called": "+3280055566",
        "agent_id": "agt_017",
    }


async def test_e164_number_and_voicemail_details_are_kept(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    response = await post_generic(
        client,
        call_event(
            event="voicemail",
            language=None,
            agent_notes=None,
            agent_id=None,
            voicemail_url="https://telephony.example.be/r/8812.wav",
            recording_duration_s=42,
        ),
    )
    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.phone == CALLER
    assert draft.language is Language.FR  # no menu choice
    assert draft.need == ""
    assert draft.channel_details["call_status"] == "voicemail"
    assert draft.channel_details["voicemail_url"] == "https://telephony.example.be/r/8812.wav"
    assert draft.channel_details["recording_duration"] == 42


@pytest.mark.parametrize(
    ("started_at", "holiday"),
    [
        (datetime(2026, 3, 14, 11, 0, tzinfo=BRUSSELS), None),  # Saturday
        (datetime(2026, 3, 10, 20, 0, tzinfo=BRUSSELS), None),  # weekday evening
        (datetime(2026, 3, 10, 7, 0, tzinfo=UTC), None),  # 08:00 in Brussels, before opening
        (datetime(2026, 4, 6, 10, 0, tzinfo=BRUSSELS), "Easter Monday"),
        (datetime(2026, 5, 8, 10, 0, tzinfo=BRUSSELS), "Iris Day"),
    ],
)
async def test_out_of_hours_calls_are_requests_too(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, started_at: datetime, holiday: str | None
) -> None:
    # The payload's own opinion about opening hours is ignored.
    payload = call_event(event="out_of_hours", started_at=started_at.isoformat(), out_of_hours=False)
    response = await post_generic(client, payload)
    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.channel_details["out_of_hours"] is True
    assert draft.channel_details["holiday"] == holiday
    assert draft.channel_details["call_status"] == "out_of_hours"
    assert draft.received_at == started_at


async def test_in_hours_is_computed_not_trusted(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    response = await post_generic(client, call_event(event="out_of_hours", started_at="2026-03-10T16:59:00+01:00"))
    assert response.status_code == 202
    assert pipeline.drafts[0].channel_details["out_of_hours"] is False
    assert pipeline.drafts[0].channel_details["holiday"] is None


async def test_missed_call_is_a_request(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    response = await post_generic(client, call_event(event="missed", agent_notes=None, agent_id=None))
    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.channel_details["call_status"] == "missed"
    assert draft.phone == CALLER and not draft.needs_triage


async def test_a_retried_webhook_gives_one_request(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    first = await post_generic(client, call_event())
    again = await post_generic(client, call_event(event="completed"))
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert again.status_code == 200
    assert again.json() == {"request_id": first.json()["request_id"], "status": "duplicate"}
    assert len(pipeline.drafts) == 1


@pytest.mark.parametrize("caller", [None, "anonymous", "Anonymous", "+266696687", "  ", "unknown"])
async def test_a_withheld_number_needs_triage(client: httpx.AsyncClient, pipeline: RecordingPipeline, caller: str | None) -> None:
    response = await post_generic(client, call_event(caller=caller))
    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.phone is None
    assert draft.needs_triage and draft.triage_reason == NO_CALLER_NUMBER


# --- authentication ------------------------------------------------------------------


async def test_unsigned_is_refused(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    response = await client.post("/webhooks/phone", json=call_event())
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "missing or invalid webhook signature"}
    assert "www-authenticate" in response.headers
    assert pipeline.drafts == []


async def test_forged_signature_is_refused(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    assert (await post_generic(client, call_event(), secret="guessed")).status_code == 401
    body = json.dumps(call_event()).encode()
    headers = signed_headers(body)
    tampered = json.dumps(call_event(caller="+32499999999")).encode()
    assert (await client.post("/webhooks/phone", content=tampered, headers=headers)).status_code == 401
    headers["X-Signature"] = headers["X-Signature"].removeprefix("sha256=")
    assert (await client.post("/webhooks/phone", content=body, headers=headers)).status_code == 401
    assert pipeline.drafts == []


@pytest.mark.parametrize(
    "timestamp",
    [
        int(NOW.timestamp()) - 301,  # older than the tolerance: a replay
        int(NOW.timestamp()) + 301,  # from the future
        "yesterday",
    ],
)
async def test_stale_or_bad_timestamps_are_refused(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, timestamp: int | str
) -> None:
    response = await post_generic(client, call_event(), timestamp=timestamp)
    assert response.status_code == 401
    assert pipeline.drafts == []


async def test_timestamps_within_the_tolerance_pass(client: httpx.AsyncClient) -> None:
    assert (await post_generic(client, call_event(call_id="a"), timestamp=int(NOW.timestamp()) - 299)).status_code == 202
    assert (await post_generic(client, call_event(call_id="b"), timestamp=int(NOW.timestamp()) + 299)).status_code == 202


async def test_the_previous_secret_still_works_during_rotation(client: httpx.AsyncClient) -> None:
    assert (await post_generic(client, call_event(), secret=OLD_SECRET)).status_code == 202


async def test_without_any_secret_everything_is_refused(pipeline: RecordingPipeline) -> None:
    config = PhoneWebhookSettings(public_base_url=PUBLIC)
    async with make_client(pipeline, config) as c:
        assert (await post_generic(c, call_event(), secret="")).status_code == 401
        assert (await post_twilio(c, twilio_params(), token="")).status_code == 401
    assert pipeline.drafts == []


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_PHONE_WEBHOOK_SECRET", "from-env")
    monkeypatch.setenv("INTAKE_PHONE_TOLERANCE_S", "60")
    monkeypatch.setenv("INTAKE_PHONE_PUBLIC_BASE_URL", PUBLIC)
    monkeypatch.setenv("INTAKE_PHONE_TWILIO_AUTH_TOKEN", "tok")
    config = PhoneWebhookSettings()
    assert [s.get_secret_value() for s in config.signing_secrets] == ["from-env"]
    assert config.tolerance_s == 60 and config.public_base_url == PUBLIC
    assert config.twilio_auth_token is not None and config.twilio_auth_token.get_secret_value() == "tok"
    assert "from-env" not in repr(config)


# --- validation and limits -----------------------------------------------------------


async def test_invalid_fields_are_422_field_by_field(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    payload = call_event(started_at="2026-03-10T10:00:00", event="hung-up")
    del payload["call_id"]
    response = await post_generic(client, payload)
    assert response.status_code == 422
    locations = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert locations == {("body", "call_id"), ("body", "event"), ("body", "started_at")}
    assert pipeline.drafts == []


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    body = b'{"call_id": "c-1",'
    response = await client.post("/webhooks/phone", content=body, headers=signed_headers(body))
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_oversize_body_is_413_before_anything_else(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    payload = call_event(agent_notes="x" * (64 * 1024))
    body = json.dumps(payload).encode()
    response = await client.post("/webhooks/phone", content=body, headers=signed_headers(body))
    assert response.status_code == 413
    unsigned = await client.post("/webhooks/phone", content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 413

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    streamed = await client.post("/webhooks/phone", content=chunked(), headers=signed_headers(body))
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert pipeline.drafts == []


async def test_a_body_of_exactly_64_kib_is_read(client: httpx.AsyncClient) -> None:
    base = json.dumps(call_event(padding="")).encode()
    body = json.dumps(call_event(padding="x" * (64 * 1024 - len(base)))).encode()
    assert len(body) == 64 * 1024
    response = await client.post("/webhooks/phone", content=body, headers=signed_headers(body))
    assert response.status_code == 202


# --- the Twilio-style form -----------------------------------------------------------


def test_twilio_signature_matches_twilios_documented_vectors() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


async def test_signed_twilio_form_becomes_the_same_draft(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    params = twilio_params(Timestamp="Tue, 10 Mar 2026 09:00:00 +0000", TranscriptionText="Ik wil een cursus Excel volgen.")
    response = await post_twilio(client, params)
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status"] == "accepted"
    [draft] = pipeline.drafts
    assert draft.channel is Channel.PHONE
    assert draft.source == "/intake/phone/twilio"
    assert draft.phone == CALLER
    assert draft.language is Language.NL
    assert draft.need == "Ik wil een cursus Excel volgen."
    assert draft.received_at == NOW
    assert draft.dedup_key == "phone:twilio:CA0123456789abcdef0123456789abcdef"
    assert draft.channel_details == {
        "platform": "twilio",
        "call_id": "CA0123456789abcdef0123456789abcdef",
        "call_status": "answered",
        "out_of_hours": False,
        "holiday": None,
        "called": "+3280055566",
        "platform_status": "completed",
        "direction": "inbound",
    }


@pytest.mark.parametrize(
    ("call_status", "recording", "expected"),
    [
        ("no-answer", None, "missed"),
        ("busy", None, "missed"),
        ("failed", None, "missed"),
        ("canceled", None, "missed"),
        ("completed", "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1", "voicemail"),
        ("completed", None, "answered"),
        ("in-progress", None, "answered"),
        ("ringing", None, "ringing"),
    ],
)
async def test_twilio_statuses_are_mapped(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, call_status: str, recording: str | None, expected: str
) -> None:
    extra = {"RecordingUrl": recording, "RecordingDuration": "17"} if recording else {}
    response = await post_twilio(client, twilio_params(CallStatus=call_status, **extra))
    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.channel_details["call_status"] == expected
    assert draft.channel_details["platform_status"] == call_status
    if recording:
        assert draft.channel_details["voicemail_url"] == recording
        assert draft.channel_details["recording_duration"] == 17


@pytest.mark.parametrize(
    ("digits", "language"), [("1", Language.FR), ("2", Language.NL), ("3", Language.EN), ("9", Language.FR), (None, Language.FR)]
)
async def test_twilio_menu_choice_is_the_language(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, digits: str | None, language: Language
) -> None:
    params = twilio_params()
    params.pop("Digits")
    if digits is not None:
        params["Digits"] = digits
    assert (await post_twilio(client, params)).status_code == 202
    assert pipeline.drafts[0].language is language


async def test_twilio_call_on_a_holiday_uses_its_timestamp(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    params = twilio_params(CallStatus="no-answer", Timestamp="Fri, 08 May 2026 08:30:00 +0000")
    assert (await post_twilio(client, params)).status_code == 202
    [draft] = pipeline.drafts
    assert draft.received_at == datetime(2026, 5, 8, 10, 30, tzinfo=BRUSSELS)
    assert draft.channel_details["out_of_hours"] is True
    assert draft.channel_details["holiday"] == "Iris Day"


@pytest.mark.parametrize("caller", ["+266696687", "anonymous", None, ""])
async def test_twilio_anonymous_caller_needs_triage(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, caller: str | None
) -> None:
    params = twilio_params()
    params.pop("From")
    if caller is not None:
        params["From"] = caller
    assert (await post_twilio(client, params)).status_code == 202
    [draft] = pipeline.drafts
    assert draft.phone is None and draft.needs_triage and draft.triage_reason == NO_CALLER_NUMBER


async def test_twilio_wrong_signature_is_refused(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    assert (await post_twilio(client, twilio_params(), token="not-the-token")).status_code == 401
    # Signed for the internal address a proxy forwards to, not the public URL Twilio calls.
    internal = "http://127.0.0.1:8001/webhooks/phone/twilio"
    assert (await post_twilio(client, twilio_params(), url=internal)).status_code == 401
    # Parameters changed after signing.
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC + "/webhooks/phone/twilio", twilio_params().items())
    response = await client.post(
        "/webhooks/phone/twilio",
        content=urlencode(twilio_params(From="+32499999999")).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status_code == 401
    assert pipeline.drafts == []


async def test_twilio_url_with_the_default_port_is_accepted(pipeline: RecordingPipeline) -> None:
    async with make_client(pipeline, settings(public_base_url=PUBLIC + ":443")) as c:
        assert (await post_twilio(c, twilio_params(), url=PUBLIC + "/webhooks/phone/twilio")).status_code == 202


async def test_twilio_endpoint_also_takes_the_generic_signature(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    body = urlencode(twilio_params()).encode()
    headers = {**signed_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
    assert (await client.post("/webhooks/phone/twilio", content=body, headers=headers)).status_code == 202
    unsigned = await client.post(
        "/webhooks/phone/twilio", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert unsigned.status_code == 401
    assert len(pipeline.drafts) == 1


async def test_twilio_retries_give_one_request(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    first = await post_twilio(client, twilio_params(CallStatus="no-answer"))
    again = await post_twilio(client, twilio_params(CallStatus="no-answer"))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"request_id": first.json()["request_id"], "status": "duplicate"}
    assert len(pipeline.drafts) == 1


async def test_twilio_form_without_call_sid_is_422(client: httpx.AsyncClient) -> None:
    params = twilio_params()
    params.pop("CallSid")
    response = await post_twilio(client, params)
    assert response.status_code == 422
    assert [tuple(e["loc"]) for e in response.json()["detail"]] == [("body", "CallSid")]


# --- logs and documentation ----------------------------------------------------------


async def test_rejections_are_logged_without_personal_data(client: httpx.AsyncClient, captured: io.StringIO) -> None:
    await post_generic(client, call_event(), secret="guessed")
    await post_twilio(client, twilio_params(), token="guessed")
    await post_generic(client, call_event(call_id="ok"))
    records = [json.loads(line) for line in captured.getvalue().splitlines() if line.strip()]
    rejected = [r for r in records if r["event"] == "phone.webhook_rejected"]
    assert [(r["reason"], r["platform"]) for r in rejected] == [("bad_signature", "generic"), ("bad_signature", "twilio")]
    assert all(r["level"] == "warning" for r in rejected)
    assert any(r["event"] == "phone.call_accepted" for r in records)
    text = captured.getvalue()
    for secret in (CALLER, "470123456", "Zoekt een online cursus", SECRET, TWILIO_TOKEN):
        assert secret not in text


async def test_openapi_documents_both_bodies(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    generic = schema["paths"]["/webhooks/phone"]["post"]
    body = generic["requestBody"]["content"]["application/json"]["schema"]
    assert body["title"] == "PhoneCallEvent"
    assert set(body["required"]) == {"call_id", "event", "started_at"}
    assert body["properties"]["caller"]["examples"] == [CALLER]
    assert {"202", "200", "401", "413", "422"} <= set(generic["responses"])
    twilio = schema["paths"]["/webhooks/phone/twilio"]["post"]
    form = twilio["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert {"CallSid", "From", "CallStatus", "Digits", "RecordingUrl"} <= set(form["properties"])


# --- the voice menu's answers (intake.ivr, docs/phone-ivr.md) ------------------------------


async def test_generic_menu_answers_become_the_callers_facts(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    ivr = {"qualification": "1", "computer": "no", "internet": 1, "job_seeker": "4"}
    response = await post_generic(client, call_event(ivr=ivr))

    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.qualification_level is QualificationLevel.NONE
    assert (draft.has_computer, draft.has_internet) == (False, True)
    assert draft.unemployed_since == date(2024, 3, 10)  # "more than two years" before the call
    assert draft.known_fact_sources() == dict.fromkeys(
        ("qualification_level", "has_computer", "has_internet", "unemployed_since"), "phone_ivr"
    )
    assert not draft.needs_triage and "ivr_unrecognised" not in draft.channel_details


async def test_a_call_without_the_menu_has_no_facts(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    assert (await post_generic(client, call_event())).status_code == 202
    [draft] = pipeline.drafts
    assert (draft.qualification_level, draft.has_computer, draft.has_internet, draft.unemployed_since) == (None,) * 4
    assert draft.known_fact_sources() == {}


@pytest.mark.parametrize(
    ("ivr", "unrecognised"),
    [
        ({"qualification": "9", "computer": "2"}, "qualification"),
        ({"qualification": "7", "computer": "oui", "internet": [1], "job_seeker": {"months": 3}}, "qualification,computer"),
        ({"job_seeker": -1, "internet": "#"}, "internet,job_seeker"),
        ("4213", None),  # not an object: no menu
        ([1, 2], None),
    ],
)
async def test_menu_answers_the_table_does_not_have_never_lose_the_call(
    client: httpx.AsyncClient, pipeline: RecordingPipeline, ivr: object, unrecognised: str | None
) -> None:
    response = await post_generic(client, call_event(ivr=ivr))

    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.qualification_level is None and draft.has_internet is None and draft.unemployed_since is None
    assert draft.has_computer is (False if isinstance(ivr, dict) and ivr.get("computer") == "2" else None)
    assert not draft.needs_triage and draft.phone == CALLER
    assert draft.channel_details.get("ivr_unrecognised") == unrecognised


async def test_a_callback_window_chosen_in_the_menu_is_the_next_working_days_part(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    assert (await post_generic(client, call_event(ivr={"callback": "1"}))).status_code == 202
    assert (await post_generic(client, call_event(call_id="c-0002", ivr={"callback": "0"}))).status_code == 202
    morning, any_time = pipeline.drafts
    wednesday = NOW.date() + timedelta(days=1)
    assert morning.callback_slot == (
        datetime.combine(wednesday, time(9, 0), BRUSSELS),
        datetime.combine(wednesday, time(12, 30), BRUSSELS),
    )
    assert any_time.callback_slot is None and "ivr_unrecognised" not in any_time.channel_details


async def test_a_twilio_callback_choice_skips_the_weekend_and_easter_monday(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    # Friday 3 April 2026; Monday 6 April is Easter Monday: the next working day is Tuesday 7 April.
    friday = "Fri, 03 Apr 2026 11:00:00 +0000"
    params = twilio_params(CallStatus="in-progress", Digits="2", ivr_callback="2", Timestamp=friday)
    assert (await post_twilio_to(client, MENU_QUERY, params)).status_code == 202
    [draft] = pipeline.drafts
    assert draft.callback_slot == (
        datetime(2026, 4, 7, 13, 0, tzinfo=BRUSSELS),
        datetime(2026, 4, 7, 17, 15, tzinfo=BRUSSELS),
    )


async def test_a_job_seeking_band_counts_back_from_the_calls_day_in_brussels(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    # 23:30 UTC on 31 March is already 1 April in Brussels.
    started = datetime(2026, 3, 31, 23, 30, tzinfo=UTC).isoformat()
    assert (await post_generic(client, call_event(started_at=started, ivr={"job_seeker": "2"}))).status_code == 202
    assert pipeline.drafts[0].unemployed_since == date(2025, 10, 1)


async def post_twilio_to(
    client: httpx.AsyncClient, query: dict[str, str], params: dict[str, str], *, signed_query: dict[str, str] | None = None
) -> httpx.Response:
    path = "/webhooks/phone/twilio?" + urlencode(query)
    signed = "/webhooks/phone/twilio?" + urlencode(query if signed_query is None else signed_query)
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC + signed, params.items())
    return await client.post(
        path,
        content=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


MENU_QUERY = {"ivr_language": "3", "ivr_qualification": "2", "ivr_computer": "2", "ivr_internet": "2"}


async def test_twilio_menu_answers_on_the_action_url_become_facts(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    # The last question's key is both `Digits` and, added by the menu's last step, `ivr_job_seeker`.
    params = twilio_params(CallStatus="in-progress", Digits="3", ivr_job_seeker="3")
    response = await post_twilio_to(client, MENU_QUERY, params)

    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.language is Language.EN  # from ivr_language; `Digits` is the last question's key here
    assert draft.qualification_level is QualificationLevel.PRIMARY
    assert (draft.has_computer, draft.has_internet) == (False, False)
    assert draft.unemployed_since == date(2025, 3, 10)
    assert set(draft.known_fact_sources().values()) == {"phone_ivr"} and len(draft.known_fact_sources()) == 4
    assert "ivr_unrecognised" not in draft.channel_details


async def test_twilio_menu_answers_in_the_form_win_over_the_url(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    params = twilio_params(ivr_computer="1")
    assert (await post_twilio_to(client, MENU_QUERY, params)).status_code == 202
    assert pipeline.drafts[0].has_computer is True


async def test_twilio_menu_answers_are_covered_by_the_signature(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    # Signed for "has a computer"; a changed query string does not pass.
    forged = {**MENU_QUERY, "ivr_computer": "2"}
    response = await post_twilio_to(client, forged, twilio_params(), signed_query={**MENU_QUERY, "ivr_computer": "1"})
    assert response.status_code == 401
    assert pipeline.drafts == []


async def test_twilio_unknown_menu_keys_are_accepted_with_the_facts_unknown(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    query = {"ivr_language": "2", "ivr_qualification": "8", "ivr_computer": "*", "ivr_job_seeker": "hangup"}
    response = await post_twilio_to(client, query, twilio_params(Digits=""))

    assert response.status_code == 202
    [draft] = pipeline.drafts
    assert draft.language is Language.NL
    assert (draft.qualification_level, draft.has_computer, draft.unemployed_since) == (None, None, None)
    assert draft.known_fact_sources() == {}
    assert draft.channel_details["ivr_unrecognised"] == "qualification,computer,job_seeker"
    assert not draft.needs_triage


async def test_openapi_documents_the_menu_answers_inline(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/webhooks/phone"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" not in json.dumps(body), "the body schema is inlined: a $ref into $defs would point nowhere"
    ivr = next(option for option in body["properties"]["ivr"]["anyOf"] if option.get("type") == "object")
    assert set(ivr["properties"]) == {"qualification", "computer", "internet", "job_seeker", "callback"}
    assert "`4` or `upper_secondary`" in ivr["properties"]["qualification"]["description"]
    form = schema["paths"]["/webhooks/phone/twilio"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert {"ivr_language", "ivr_qualification", "ivr_computer", "ivr_internet", "ivr_job_seeker", "ivr_callback"} <= set(
        form["schema"]["properties"]
    )
