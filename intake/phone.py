"""The telephony webhook: every call to the free line 0800 555 66 becomes a callback request.

The telephony platform posts one event per call (answered, missed, voicemail left, call outside
opening hours) either as our documented JSON (`POST /webhooks/phone`) or as a Twilio-style form
(`POST /webhooks/phone/twilio`). Both are authenticated before anything is parsed, turned into
the same `RequestDraft` and handed to the intake pipeline; a retried webhook for the same call is
answered with the first request's id.

The voice menu's answers (language, highest qualification, computer and internet at home, how long
the caller has been looking for a job; the keys are `intake.ivr.MENU`, documented for the telephony
team in docs/phone-ivr.md) become the request's situation facts, with `phone_ivr` as their source:

- generic JSON: an optional `ivr` object, each answer the key pressed or the answer's name
  (`"ivr": {"qualification": "4", "computer": "no", "job_seeker": 3}`);
- Twilio: one `<Gather numDigits="1">` per question, each answer carried to the next step in the
  query string of the `action` URL (the usual way to keep state between TwiML steps), and the
  menu's last step notifying us, during the call, with every answer as `ivr_<question>` parameters
  in the query string or the form (`?ivr_language=2&ivr_qualification=4&ivr_computer=2`). Twilio
  signs the full URL, query included, so both are authenticated. A form with `Digits` alone (a
  menu with the language question only) still means the language: 1 fr, 2 nl, 3 en.

An answer the menu does not have leaves its fact unknown and is noted in
`channel_details["ivr_unrecognised"]`; the call is never refused for it, nor sent to triage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import structlog
from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from intake.domain import AcceptRequests, ChannelDetail, FactSource, RequestDraft
from intake.ivr import QUESTIONS, callback_window, facts_from_ivr
from schemas import Channel, Language
from services.app import Runtime, get_runtime
from services.auth import public
from services.auth.roles import PUBLIC_PHONE_WEBHOOK
from services.calendar import BRUSSELS, BrusselsCalendar

__all__ = [
    "PhoneCallEvent",
    "PhoneChannel",
    "PhoneIvrAnswers",
    "PhoneWebhookReply",
    "PhoneWebhookSettings",
    "TwilioCallForm",
    "generic_signature",
    "get_phone_channel",
    "now_utc",
    "phone_router",
    "twilio_signature",
]

log = structlog.get_logger("intake.phone")

NO_CALLER_NUMBER = "no caller number"
Platform = Literal["generic", "twilio"]


def now_utc() -> datetime:
    return datetime.now(UTC)


class PhoneWebhookSettings(BaseSettings):
    """How the telephony platform authenticates (from `INTAKE_PHONE_*` variables).

    With no secret and no Twilio auth token configured every webhook is refused: the endpoint
    fails closed rather than accepting unsigned calls.
    """

    # populate_by_name: `PhoneWebhookSettings(secret=...)` in code, INTAKE_PHONE_WEBHOOK_SECRET in the environment.
    model_config = SettingsConfigDict(env_prefix="INTAKE_PHONE_", extra="ignore", populate_by_name=True)

    secret: SecretStr | None = Field(
        None,
        validation_alias="INTAKE_PHONE_WEBHOOK_SECRET",
        description="Shared HMAC-SHA256 secret of the generic scheme (env INTAKE_PHONE_WEBHOOK_SECRET).",
    )
    previous_secret: SecretStr | None = Field(
        None,
        validation_alias="INTAKE_PHONE_WEBHOOK_PREVIOUS_SECRET",
        description="The secret being rotated out, still accepted (env INTAKE_PHONE_WEBHOOK_PREVIOUS_SECRET).",
    )
    tolerance_s: int = Field(300, ge=1, description="How far X-Signature-Timestamp may be from our clock.")
    public_base_url: str = Field(
        "http://127.0.0.1:8001",
        description="Scheme and host the platform calls (before any proxy); Twilio signs the full URL.",
    )
    twilio_auth_token: SecretStr | None = Field(None, description="Auth token Twilio signs its webhooks with.")
    max_body_bytes: int = Field(64 * 1024, ge=1, description="Larger bodies are refused with 413 unread.")

    @property
    def signing_secrets(self) -> list[SecretStr]:
        """Every secret a generic signature may be made with, current first."""
        return [s for s in (self.secret, self.previous_secret) if s is not None and s.get_secret_value()]


# --- payloads ------------------------------------------------------------------------


def _menu_answers(question: str) -> str:
    answers = QUESTIONS[question].answers
    return "; ".join(f"`{a.key}` or `{a.name}`: {a.label}" for a in answers)


IvrAnswer = str | int | bool | None


class PhoneIvrAnswers(BaseModel):
    """What the caller keyed in the voice menu (docs/phone-ivr.md); every answer is optional.

    Each answer is the key the caller pressed or the answer's name. An answer the menu does not
    have leaves its fact unknown: the call is still accepted, never refused for it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    qualification: IvrAnswer = Field(
        None, description=f"Highest school qualification. {_menu_answers('qualification')}.", examples=["4", "none"]
    )
    computer: IvrAnswer = Field(
        None, description=f"A computer at home. {_menu_answers('computer')}; also `true`/`false`.", examples=["2", "no"]
    )
    internet: IvrAnswer = Field(
        None, description=f"Internet at home. {_menu_answers('internet')}; also `true`/`false`.", examples=["1", "yes"]
    )
    job_seeker: IvrAnswer = Field(
        None,
        description=f"How long the caller has been looking for a job, as of the call. {_menu_answers('job_seeker')}.",
        examples=["3", "12_to_24_months"],
    )
    callback: IvrAnswer = Field(
        None,
        description=f"When to call back: the next working day (holidays and closures skipped). {_menu_answers('callback')}.",
        examples=["1", "afternoon"],
    )

    @field_validator("*", mode="before")
    @classmethod
    def _unreadable_is_unanswered(cls, value: Any) -> Any:
        # A menu answer is never a reason to refuse a call: what is not a key or a name is no answer.
        return value if isinstance(value, str | int | bool) else None

    def by_question(self) -> dict[str, IvrAnswer]:
        return {name: getattr(self, name) for name in type(self).model_fields}


class PhoneCallEvent(BaseModel):
    """One call event as our documented generic JSON webhook receives it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    call_id: str = Field(
        min_length=1,
        max_length=128,
        description="The platform's id of the call; the same call's retries carry the same id.",
        examples=["c-2026-05-08-0001"],
    )
    event: Literal["answered", "missed", "voicemail", "out_of_hours", "completed"] = Field(
        description="What happened to the call.", examples=["voicemail"]
    )
    caller: str | None = Field(
        None,
        max_length=64,
        description="The caller's number as the platform gives it; absent or `anonymous` when withheld.",
        examples=["+32470123456"],
    )
    called: str | None = Field(
        None, max_length=64, description="The number that was called (our line).", examples=["+3280055566"]
    )
    started_at: AwareDatetime = Field(
        description="When the call started, with its UTC offset.", examples=["2026-05-08T09:14:52+02:00"]
    )
    # A Literal rather than `schemas.Language`: the OpenAPI schema of this body is inlined and
    # cannot refer to a shared component.
    language: Literal["fr", "nl", "en"] | None = Field(
        None, description="Language chosen in the voice menu; French when absent.", examples=["nl"]
    )
    agent_notes: str | None = Field(
        None,
        max_length=5000,
        description="What the agent who took the call noted about the caller's need.",
        examples=["Cherche une formation Excel en ligne, disponible les matins."],
    )
    agent_id: str | None = Field(None, max_length=64, description="The agent who took the call.", examples=["agt_017"])
    voicemail_url: str | None = Field(
        None,
        max_length=2048,
        description="Where the voicemail recording can be fetched.",
        examples=["https://telephony.example.be/recordings/r-8812.wav"],
    )
    recording_duration_s: int | None = Field(None, ge=0, description="Length of the voicemail in seconds.", examples=[42])
    ivr: PhoneIvrAnswers | None = Field(
        None,
        description="The caller's answers in the voice menu, when the menu asked them (docs/phone-ivr.md).",
        examples=[{"qualification": "2", "computer": "no", "internet": "yes", "job_seeker": "over_24_months", "callback": "1"}],
    )

    @field_validator("ivr", mode="before")
    @classmethod
    def _unreadable_menu_is_no_menu(cls, value: Any) -> Any:
        return value if isinstance(value, dict | PhoneIvrAnswers) else None


_IVR_FORM_FIELDS = ("ivr_language", "ivr_qualification", "ivr_computer", "ivr_internet", "ivr_job_seeker", "ivr_callback")
"""The Twilio parameters of the menu's answers, taken from the query string as well as the form."""


class TwilioCallForm(BaseModel):
    """The form fields a Twilio-style platform posts about a call; other fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    call_sid: str = Field(alias="CallSid", min_length=1, max_length=128, description="Id of the call.")
    from_: str | None = Field(None, alias="From", description="Caller's number, or a marker when withheld.")
    to: str | None = Field(None, alias="To", description="The number that was called.")
    call_status: str = Field(
        alias="CallStatus",
        description="queued, ringing, in-progress, completed, busy, failed, no-answer or canceled.",
        examples=["completed"],
    )
    direction: str | None = Field(None, alias="Direction", examples=["inbound"])
    timestamp: str | None = Field(None, alias="Timestamp", description="RFC 2822 date of the event.")
    digits: str | None = Field(
        None, alias="Digits", description="The last key(s) pressed; alone, the language menu's choice: 1 fr, 2 nl, 3 en."
    )
    ivr_language: str | None = Field(
        None, description=f"Voice menu, language (wins over `Digits`). {_menu_answers('language')}.", examples=["2"]
    )
    ivr_qualification: str | None = Field(
        None, description=f"Voice menu, highest qualification. {_menu_answers('qualification')}.", examples=["4"]
    )
    ivr_computer: str | None = Field(None, description=f"Voice menu, computer at home. {_menu_answers('computer')}.")
    ivr_internet: str | None = Field(None, description=f"Voice menu, internet at home. {_menu_answers('internet')}.")
    ivr_job_seeker: str | None = Field(
        None, description=f"Voice menu, looking for a job for how long. {_menu_answers('job_seeker')}.", examples=["3"]
    )
    ivr_callback: str | None = Field(
        None, description=f"Voice menu, when to call back (next working day). {_menu_answers('callback')}.", examples=["1"]
    )
    recording_url: str | None = Field(None, alias="RecordingUrl")
    recording_duration: int | None = Field(None, alias="RecordingDuration", ge=0, description="Seconds.")
    transcription_text: str | None = Field(None, alias="TranscriptionText", max_length=5000)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        # Form posts send absent values as empty strings.
        return None if isinstance(value, str) and not value.strip() else value


class PhoneWebhookReply(BaseModel):
    request_id: str = Field(description="Id of the callback request the call became.")
    status: Literal["accepted", "duplicate"] = Field(
        description="`duplicate`: this call was already received; the id is the first request's."
    )


class WebhookError(BaseModel):
    detail: str


# --- signatures ----------------------------------------------------------------------


def generic_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Signature` header value of the generic scheme: HMAC-SHA256 over `timestamp.body`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1 of the full URL followed by every POST
    parameter's name and value, sorted by name (repeated names: their sorted distinct values)."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(by_name) for value in sorted(by_name[name]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _with_and_without_default_port(url: str) -> list[str]:
    # Twilio's own validators accept the URL with or without the scheme's default port,
    # because what it signs depends on how the webhook URL was configured.
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if parts.hostname is None or default is None:
        return [url]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None and parts.port != default:
        return [url]
    without = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{default}"))
    return list(dict.fromkeys([url, without, with_port]))


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _BodyTooLarge(Exception):
    pass


# --- mapping to a draft --------------------------------------------------------------

# Markers platforms put in `From` for withheld numbers; Twilio spells them on a keypad:
# +266696687 ANONYMOUS, +8656696 UNKNOWN, +7378742833 RESTRICTED, +2562533 BLOCKED,
# +86282452253 UNAVAILABLE.
_WITHHELD = frozenset(
    {
        "anonymous",
        "unknown",
        "restricted",
        "blocked",
        "unavailable",
        "private",
        "withheld",
        "+266696687",
        "+8656696",
        "+7378742833",
        "+2562533",
        "+86282452253",
    }
)
_MISSED_STATUSES = frozenset({"no-answer", "busy", "failed", "canceled"})


def _caller_number(raw: str | None) -> str | None:
    if raw is None:
        return None
    number = raw.strip()
    if number.lower() in _WITHHELD or not any(ch.isdigit() for ch in number):
        return None
    return number


def _twilio_call_status(call_status: str, recording_url: str | None) -> str:
    platform_status = call_status.strip().lower()
    if platform_status in _MISSED_STATUSES:
        return "missed"
    if platform_status == "completed" and recording_url:
        return "voicemail"
    if platform_status in ("completed", "in-progress"):
        return "answered"
    return platform_status  # queued, ringing: the call is known, its outcome not yet


def _twilio_time(timestamp: str | None) -> datetime | None:
    if not timestamp:
        return None
    try:
        at = parsedate_to_datetime(timestamp)
    except (TypeError, ValueError):
        return None
    # RFC 2822 "-0000" means UTC with no information about the local zone.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Call:
    """A call as both payloads describe it."""

    platform: Platform
    call_id: str
    call_status: str
    at: datetime
    caller: str | None
    called: str | None = None
    language: Language = Language.FR
    notes: str = ""
    agent_id: str | None = None
    voicemail_url: str | None = None
    recording_duration_s: int | None = None
    platform_status: str | None = None
    direction: str | None = None
    ivr: Mapping[str, object] = field(default_factory=dict)
    """The menu's answers by question name (`intake.ivr.MENU`), as given."""


def _draft(call: _Call, calendar: BrusselsCalendar) -> RequestDraft:
    phone = _caller_number(call.caller)
    menu = facts_from_ivr(call.ivr, call.at.astimezone(BRUSSELS).date())
    details: dict[str, ChannelDetail] = {
        "platform": call.platform,
        "call_id": call.call_id,
        "call_status": call.call_status,
        # Computed here, never taken from the payload: the platform's idea of our opening
        # hours is not what the callback SLA is measured against.
        "out_of_hours": not calendar.is_open(call.at),
        "holiday": calendar.holiday_name(call.at.astimezone(BRUSSELS).date()),
    }
    optional: dict[str, ChannelDetail] = {
        "called": call.called,
        "agent_id": call.agent_id,
        "voicemail_url": call.voicemail_url,
        "recording_duration": call.recording_duration_s,
        "platform_status": call.platform_status,
        "direction": call.direction,
        "ivr_unrecognised": ",".join(menu.unrecognised) or None,
    }
    details.update({key: value for key, value in optional.items() if value is not None})
    facts: dict[str, Any] = dict(menu.facts)
    return RequestDraft(
        channel=Channel.PHONE,
        source=f"/intake/phone/{call.platform}",
        received_at=call.at,
        language=menu.language or call.language,
        # Calling the free line is asking to be called back: that is the service it offers.
        consent_to_contact=True,
        phone=phone,
        need=call.notes,
        needs_triage=phone is None,
        triage_reason=NO_CALLER_NUMBER if phone is None else None,
        qualification_level=facts.get("qualification_level"),
        has_computer=facts.get("has_computer"),
        has_internet=facts.get("has_internet"),
        unemployed_since=facts.get("unemployed_since"),
        channel_details=details,
        fact_sources=dict.fromkeys(facts, FactSource.PHONE_IVR),
        dedup_key=f"phone:{call.platform}:{call.call_id}",
        callback_slot=callback_window(menu.callback, call.at, calendar) if menu.callback else None,
    )


def _from_generic(event: PhoneCallEvent) -> _Call:
    return _Call(
        platform="generic",
        call_id=event.call_id,
        call_status=event.event,
        at=event.started_at,
        caller=event.caller,
        called=event.called,
        language=Language(event.language) if event.language else Language.FR,
        notes=(event.agent_notes or "").strip(),
        agent_id=event.agent_id,
        voicemail_url=event.voicemail_url,
        recording_duration_s=event.recording_duration_s,
        ivr=event.ivr.by_question() if event.ivr else {},
    )


def _from_twilio(form: TwilioCallForm, received: datetime) -> _Call:
    return _Call(
        platform="twilio",
        call_id=form.call_sid,
        call_status=_twilio_call_status(form.call_status, form.recording_url),
        at=_twilio_time(form.timestamp) or received,
        caller=form.from_,
        called=form.to,
        language=Language.FR,  # unless the menu's answers say otherwise (`_draft`)
        notes=(form.transcription_text or "").strip(),
        voicemail_url=form.recording_url,
        recording_duration_s=form.recording_duration,
        platform_status=form.call_status,
        direction=form.direction,
        ivr=_twilio_menu(form),
    )


def _twilio_menu(form: TwilioCallForm) -> dict[str, object]:
    answers: dict[str, object] = {
        "language": form.ivr_language,
        "qualification": form.ivr_qualification,
        "computer": form.ivr_computer,
        "internet": form.ivr_internet,
        "job_seeker": form.ivr_job_seeker,
        "callback": form.ivr_callback,
    }
    if not any(answers.values()):
        # A menu with the language question only: `Digits` is its answer. With `ivr_*` answers,
        # `Digits` is whichever question came last, and is already among them.
        answers["language"] = form.digits
    return answers


def _validation_error(exc: ValidationError) -> RequestValidationError:
    """FastAPI's own 422 shape, with locations under `body` as for a declared body parameter."""
    errors: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        entry: dict[str, Any] = {**error, "loc": ("body", *error["loc"])}
        if "ctx" in entry:
            entry["ctx"] = {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in entry["ctx"].items()}
        errors.append(entry)
    return RequestValidationError(errors)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its nested models written in place: the schema is inlined in
    OpenAPI, where `#/$defs/...` would point nowhere."""
    schema = model.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: inline(v) for k, v in node.items() if k != "$ref"}
                return {**inline(defs[ref.removeprefix("#/$defs/")]), **rest}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


# --- the router ----------------------------------------------------------------------

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": PhoneWebhookReply, "description": "The call was already received (a retried webhook)."},
    401: {"model": WebhookError, "description": "Missing, invalid or stale signature."},
    413: {"model": WebhookError, "description": "Body larger than 64 KiB."},
    422: {"description": "The body is not a valid call event (FastAPI's field-by-field details)."},
}


class PhoneChannel:
    """The phone channel as the webhooks use it: body limits, both signature schemes, and handing
    a call to the intake pipeline; nothing here connects."""

    def __init__(
        self,
        pipeline: AcceptRequests,
        settings: PhoneWebhookSettings,
        calendar: BrusselsCalendar,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.calendar = calendar
        self.clock = clock
        if not settings.signing_secrets and settings.twilio_auth_token is None:
            log.warning("phone.webhook_unconfigured")

    async def read_body(self, request: Request) -> bytes:
        # Refused before reading when announced, and while reading when not (chunked bodies).
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.settings.max_body_bytes:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def check_generic_signature(self, request: Request, body: bytes) -> None:
        timestamp = request.headers.get("x-signature-timestamp")
        signature = request.headers.get("x-signature")
        if not timestamp or not signature:
            raise _Rejected("missing_signature")
        secrets = self.settings.signing_secrets
        if not secrets:
            raise _Rejected("not_configured")
        try:
            signed_at = int(timestamp.strip())
        except ValueError:
            raise _Rejected("bad_timestamp") from None
        if abs(self.clock().timestamp() - signed_at) > self.settings.tolerance_s:
            raise _Rejected("stale")
        matches = [
            hmac.compare_digest(signature.strip(), generic_signature(s.get_secret_value(), timestamp.strip(), body))
            for s in secrets  # every secret is tried, so timing does not tell which one matched
        ]
        if not any(matches):
            raise _Rejected("bad_signature")

    def check_twilio_signature(self, request: Request, params: list[tuple[str, str]]) -> None:
        signature = request.headers.get("x-twilio-signature", "")
        if self.settings.twilio_auth_token is None:
            raise _Rejected("not_configured")
        token = self.settings.twilio_auth_token.get_secret_value()
        # The URL the platform called, not the one we see: proxies rewrite scheme and host.
        url = self.settings.public_base_url.rstrip("/") + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        matches = [
            hmac.compare_digest(signature.strip(), twilio_signature(token, candidate, params))
            for candidate in _with_and_without_default_port(url)
        ]
        if not any(matches):
            raise _Rejected("bad_signature")

    async def accept(self, call: _Call) -> JSONResponse:
        accepted = await self.pipeline.accept(_draft(call, self.calendar))
        log.info(
            "phone.call_accepted",
            request_id=accepted.request_id,
            platform=call.platform,
            call_status=call.call_status,
            duplicate=accepted.duplicate,
        )
        reply = PhoneWebhookReply(request_id=accepted.request_id, status="duplicate" if accepted.duplicate else "accepted")
        return JSONResponse(
            reply.model_dump(),
            status_code=status.HTTP_200_OK if accepted.duplicate else status.HTTP_202_ACCEPTED,
        )

    def refuse(self, platform: Platform, error: _Rejected | _BodyTooLarge) -> JSONResponse:
        if isinstance(error, _BodyTooLarge):
            log.warning("phone.webhook_rejected", reason="too_large", platform=platform)
            return JSONResponse(
                {"detail": f"body larger than {self.settings.max_body_bytes} bytes"},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            )
        log.warning("phone.webhook_rejected", reason=error.reason, platform=platform)
        # One answer for every reason: a caller probing the endpoint learns nothing.
        return JSONResponse(
            {"detail": "missing or invalid webhook signature"},
            status_code=status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": 'Signature realm="phone-webhook"'},
        )


async def get_phone_channel(runtime: Annotated[Runtime, Depends(get_runtime)]) -> PhoneChannel:
    """FastAPI dependency: the phone channel of the app serving the request (`runtime.app_state["phone"]`).

    Tests that mount `phone_router` on an app of their own override it."""
    channel: PhoneChannel = runtime.app_state["phone"]
    return channel


Phone = Annotated[PhoneChannel, Depends(get_phone_channel)]

phone_router = APIRouter(tags=["phone"], dependencies=[public(PUBLIC_PHONE_WEBHOOK)])
"""The telephony webhooks, ready for `app.include_router`."""


@phone_router.post(
    "/webhooks/phone",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PhoneWebhookReply,
    responses=_ERROR_RESPONSES,
    summary="A call event from the telephony platform (generic JSON)",
    description=(
        "Signed with HMAC-SHA256 over `{X-Signature-Timestamp}.{raw body}` and the shared secret, "
        "sent as `X-Signature: sha256=<hex>`; the timestamp (unix seconds) must be within "
        "five minutes of our clock."
    ),
    openapi_extra={
        "parameters": [
            {"name": "X-Signature-Timestamp", "in": "header", "required": True, "schema": {"type": "string"}},
            {"name": "X-Signature", "in": "header", "required": True, "schema": {"type": "string"}},
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _schema(PhoneCallEvent)}}},
    },
)
async def on_generic_call(request: Request, phone: Phone) -> JSONResponse:
    # The body is read and authenticated by hand, before FastAPI would parse it: the
    # signature covers the raw bytes, and an unsigned body must not cost a parse.
    try:
        body = await phone.read_body(request)
        phone.check_generic_signature(request, body)
    except (_Rejected, _BodyTooLarge) as error:
        return phone.refuse("generic", error)
    try:
        event = PhoneCallEvent.model_validate_json(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    return await phone.accept(_from_generic(event))


@phone_router.post(
    "/webhooks/phone/twilio",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PhoneWebhookReply,
    responses=_ERROR_RESPONSES,
    summary="A call status callback from a Twilio-style platform (form-encoded)",
    description=(
        "Authenticated by `X-Twilio-Signature` (Twilio's HMAC-SHA1 of the public URL and the sorted "
        "form parameters) or, without it, by the generic `X-Signature` scheme."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _schema(TwilioCallForm)}},
        }
    },
)
async def on_twilio_call(request: Request, phone: Phone) -> JSONResponse:
    try:
        body = await phone.read_body(request)
        try:
            params = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise _Rejected("bad_encoding") from None
        if "x-twilio-signature" in request.headers:
            phone.check_twilio_signature(request, params)
        else:
            phone.check_generic_signature(request, body)
    except (_Rejected, _BodyTooLarge) as error:
        return phone.refuse("twilio", error)
    # The menu's answers may ride on the URL (signed with it); the form's own values win.
    menu = {name: value for name, value in request.query_params.items() if name in _IVR_FORM_FIELDS}
    try:
        form = TwilioCallForm.model_validate(menu | dict(params))
    except ValidationError as exc:
        raise _validation_error(exc) from None
    return await phone.accept(_from_twilio(form, phone.clock()))
