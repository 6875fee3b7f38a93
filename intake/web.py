"""The web channel of intake: a JSON API for partner sites and the Cité des métiers, and a
server-rendered form (French, Dutch, English) for job seekers on their phones.

Both turn a submission into a `RequestDraft` and hand it to `AcceptRequests.accept`; they answer
only once `accept` returned, so a 202 or a confirmation page means the request is stored.

    web_router(pipeline, WebSettings(), load_catalogue()) -> APIRouter
        POST /api/v1/requests   JSON in, JSON out (202 accepted, 200 duplicate)
        GET  /                  302 to /fr/ (the query string, i.e. the campaign, is kept)
        GET  /{lang}/           the form, lang in fr | nl | en
        POST /{lang}/           form-encoded submission: 422 form with errors, or 200 confirmation

The router parses and validates bodies itself instead of letting FastAPI do it, because a
router cannot install exception handlers on the app that mounts it, and this channel owes its
clients a 400 (not FastAPI's 422) for malformed JSON, a 413 before reading an oversized body,
and validation messages in the client's language.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import jinja2
import phonenumbers
import pydantic_core
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from intake.domain import AcceptedRequest, AcceptRequests, ChannelDetail, RequestDraft
from intake.i18n import LANGUAGE_NAMES, negotiate, qualification_label, text
from schemas import CampaignAttribution, Channel, Language, QualificationLevel
from schemas.values import EMAIL_PATTERN
from services.catalogue import Catalogue

__all__ = [
    "API_SOURCE",
    "FORM_SOURCE",
    "CampaignSubmission",
    "FieldProblem",
    "Problem",
    "RateLimiter",
    "SubmissionAccepted",
    "TrainingRequestSubmission",
    "ValidationProblem",
    "WebSettings",
    "web_router",
]

log = structlog.get_logger(__name__)

API_SOURCE = "/intake/web/api"
FORM_SOURCE = "/intake/web/form"
CITE_DES_METIERS = "cite-des-metiers"
"""A request from this partner is a hand-over: a Cité des métiers advisor already saw the person."""

BRUSSELS = ZoneInfo("Europe/Brussels")
OLDEST_UNEMPLOYMENT = date(1900, 1, 1)
TEMPLATES = Path(__file__).with_name("templates")
IDEMPOTENCY_KEY = re.compile(r"^[!-~](?:[ -~]{0,253}[!-~])?$")
"""1 to 255 printable ASCII characters, no leading or trailing space (proxies strip those)."""
PARTNER_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
JSON_TYPES = ("application/json",)
_LANGUAGE_CODES = frozenset(language.value for language in Language)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebSettings(BaseSettings):
    """The web channel's limits, from `INTAKE_WEB_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_WEB_", extra="ignore")

    max_body_bytes: int = Field(64 * 1024, gt=0, description="Largest request body accepted (413 beyond).")
    rate_per_minute: float = Field(30, gt=0, description="Sustained submissions per client and minute.")
    burst: int = Field(10, ge=1, description="Submissions a client may send at once before being slowed down.")
    trust_forwarded_for: bool = Field(
        False,
        description="Identify clients by the address our edge proxy appended to X-Forwarded-For; "
        "only when that proxy is the sole way in.",
    )


# --- The submission, as partners post it and as the form is checked ----------------------------


class CampaignSubmission(BaseModel):
    """Where the person came from: UTM parameters of the landing page and its HTTP referrer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    utm_source: str | None = Field(None, max_length=200, description="`utm_source` of the landing page.", examples=["facebook"])
    utm_medium: str | None = Field(None, max_length=200, description="`utm_medium` of the landing page.", examples=["cpc"])
    utm_campaign: str | None = Field(
        None, max_length=200, description="`utm_campaign` of the landing page.", examples=["confine-mais-connecte"]
    )
    utm_term: str | None = Field(None, max_length=200, description="`utm_term` of the landing page.", examples=["excel"])
    utm_content: str | None = Field(
        None, max_length=200, description="`utm_content` of the landing page.", examples=["banner-a"]
    )
    referrer: str | None = Field(
        None,
        max_length=2000,
        description="Page the person came from (HTTP Referer of the landing page).",
        examples=["https://www.bruxellesformation.brussels/"],
    )

    def attribution(self) -> CampaignAttribution | None:
        values = {k: v for k, v in self.model_dump().items() if v}
        return CampaignAttribution(**values) if values else None


_EXAMPLE_WEB = {
    "name": "Amina El Idrissi",
    "phone": "0470 12 34 56",
    "email": "amina.elidrissi@example.be",
    "language": "fr",
    "need": "Je voudrais apprendre Excel pour trouver un emploi de bureau.",
    "requested_course": "EXCEL",
    "qualification_level": "upper_secondary",
    "has_computer": True,
    "has_internet": True,
    "unemployed_since": "2024-11-01",
    "consent_to_contact": True,
    "campaign": {"utm_source": "facebook", "utm_medium": "cpc", "utm_campaign": "confine-mais-connecte"},
}
_EXAMPLE_CITE = {
    "name": "Jan Peeters",
    "phone": "+32 2 555 12 12",
    "language": "nl",
    "need": "Wil leren werken met een computer; heeft geen computer thuis.",
    "qualification_level": "lower_secondary",
    "has_computer": False,
    "has_internet": False,
    "consent_to_contact": True,
    "partner": CITE_DES_METIERS,
}


class TrainingRequestSubmission(BaseModel):
    """A job seeker's training request, as a partner site or the Cité des métiers posts it.

    Give a phone number or an e-mail address (or both), and `consent_to_contact: true`:
    Bruxelles Formation may only contact people who agreed to it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [_EXAMPLE_WEB, _EXAMPLE_CITE]})

    name: str | None = Field(
        None, max_length=200, description="Name as the person gave it; free text.", examples=["Amina El Idrissi"]
    )
    phone: str | None = Field(
        None,
        max_length=40,
        description="Phone number in any Belgian or international notation (0470 12 34 56, +32 2 555 12 12, "
        "0033 6 12 34 56 78); stored as given, normalised to E.164 by intake.",
        examples=["0470 12 34 56"],
    )
    email: str | None = Field(
        None,
        max_length=254,
        pattern=EMAIL_PATTERN,
        description="E-mail address.",
        examples=["amina.elidrissi@example.be"],
    )
    language: Language = Field(
        Language.FR, description="Language the person wants to be contacted in.", examples=[Language.NL]
    )
    need: str = Field(
        "",
        max_length=5000,
        description="What the person wants, in their own words; may be empty.",
        examples=["Je voudrais apprendre Excel pour trouver un emploi de bureau."],
    )
    requested_course: str | None = Field(
        None,
        max_length=64,
        description="Catalogue code of the course asked for (case-insensitive); omit when unsure.",
        examples=["EXCEL"],
    )
    qualification_level: QualificationLevel | None = Field(
        None, description="Highest school qualification (upper_secondary is the CESS).", examples=["upper_secondary"]
    )
    has_computer: bool | None = Field(None, description="Whether the person has a computer.", examples=[True])
    has_internet: bool | None = Field(None, description="Whether the person has internet at home.", examples=[False])
    unemployed_since: date | None = Field(
        None, description="Date since which the person has been a job seeker; not in the future.", examples=["2024-11-01"]
    )
    consent_to_contact: bool = Field(
        description="The person agreed to be contacted about this request. Must be true: without consent "
        "the request is refused (422).",
        examples=[True],
    )
    campaign: CampaignSubmission | None = Field(
        None, description="Marketing attribution, when the request came from a campaign landing page."
    )
    partner: str | None = Field(
        None,
        max_length=64,
        pattern=PARTNER_PATTERN,
        description=f"Partner that collected the request. `{CITE_DES_METIERS}` marks a hand-over from the "
        "Cité des métiers.",
        examples=[CITE_DES_METIERS],
    )

    @field_validator("name", "phone", "email", "requested_course", "partner", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("phone")
    @classmethod
    def _possible_phone_number(cls, value: str | None) -> str | None:
        if value is not None and not _is_possible_phone_number(value):
            raise PydanticCustomError("phone_invalid", "not a possible phone number")
        return value

    @field_validator("requested_course")
    @classmethod
    def _known_course(cls, value: str | None, info: ValidationInfo) -> str | None:
        catalogue = (info.context or {}).get("catalogue")
        if value is None or catalogue is None:
            return value
        course = catalogue.course(value)
        if course is None:
            codes = ", ".join(c.code for c in catalogue.courses)
            raise PydanticCustomError("course_unknown", "unknown course {code}", {"code": value, "codes": codes})
        return course.code

    @field_validator("unemployed_since")
    @classmethod
    def _not_in_the_future(cls, value: date | None, info: ValidationInfo) -> date | None:
        today = (info.context or {}).get("today")
        if value is not None and today is not None and value > today:
            raise PydanticCustomError("date_future", "date in the future")
        if value is not None and value < OLDEST_UNEMPLOYMENT:
            raise PydanticCustomError("date_too_old", "date too far in the past")
        return value

    @field_validator("consent_to_contact")
    @classmethod
    def _consent_given(cls, value: bool) -> bool:
        if not value:
            raise PydanticCustomError("consent_required", "consent to contact is required")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> TrainingRequestSubmission:
        if not self.phone and not self.email:
            raise PydanticCustomError("contact_required", "a phone number or an e-mail address is required")
        return self

    def body_sha256(self) -> str:
        """Hash of the canonical submission: the same request hashes alike however its JSON was spelled."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _is_possible_phone_number(raw: str) -> bool:
    text_ = raw.replace("(0)", "")  # "+32 (0)470 ..." is how Belgians often write it
    if text_.startswith("00"):
        text_ = "+" + text_[2:]
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(text_, "BE"))
    except phonenumbers.NumberParseException:
        return False


class SubmissionAccepted(BaseModel):
    """The request is stored; an advisor will call or write back."""

    request_id: str = Field(description="Id of the request (the first 8 characters are its reference).")
    person_id: str = Field(description="Pseudonymous id of the person, shared by their other requests.")
    status: Literal["accepted", "duplicate"] = Field(
        description="`duplicate` when an Idempotency-Key retry matched an earlier request; nothing new was stored."
    )
    linked_request_ids: list[str] = Field(
        default_factory=list, description="Earlier requests of the same person, found by phone number or e-mail."
    )


class Problem(BaseModel):
    """Why the whole request was refused."""

    error: str = Field(description="Machine-readable reason.", examples=["malformed_json"])
    detail: str = Field(description="Explanation in the requested language.")


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the field, e.g. `phone` or `campaign.utm_source`.", examples=["phone"])
    code: str = Field(description="Machine-readable reason.", examples=["phone_invalid"])
    message: str = Field(
        description="Explanation in the requested language.",
        examples=["This phone number is not valid. Example: 0470 12 34 56 or +32 470 12 34 56."],
    )


class ValidationProblem(BaseModel):
    """What to correct, field by field."""

    error: Literal["validation_failed", "idempotency_key_reused"] = Field(description="Machine-readable reason.")
    detail: list[FieldProblem]


# --- Validation messages -------------------------------------------------------------------------

_OWN_CODES = frozenset({"phone_invalid", "course_unknown", "date_future", "date_too_old", "consent_required"})
_PATTERN_CODES = {"email": "email_invalid", "partner": "partner_invalid"}


@dataclass(frozen=True, slots=True)
class _FieldError:
    field: str
    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def message(self, language: Language) -> str:
        try:
            return text(language, f"error_{self.code}", **self.params)
        except (KeyError, IndexError):  # a pydantic error without the context our sentence needs
            return text(language, "error_invalid")


def _field_errors(exc: ValidationError, data: Any) -> list[_FieldError]:
    """Pydantic's errors as our codes (stable, documented) rather than its English sentences.

    `data` is the input as parsed, used to say "give a phone or an e-mail" together with the other
    problems: pydantic only runs the model-level check once every field is valid, and a person
    should not have to submit three times to learn everything that is wrong.
    """
    found = _translated(exc)
    if (
        isinstance(data, Mapping)
        and not any(p.field in ("phone", "email") for p in found)
        and not _given(data.get("phone"))
        and not _given(data.get("email"))
    ):
        found += [_FieldError("phone", "contact_required"), _FieldError("email", "contact_required")]
    return found


def _given(value: Any) -> bool:
    return not (value is None or (isinstance(value, str) and not value.strip()))


def _translated(exc: ValidationError) -> list[_FieldError]:
    found: list[_FieldError] = []
    for error in exc.errors(include_url=False, include_input=False):
        kind, ctx = error["type"], error.get("ctx") or {}
        name = ".".join(str(part) for part in error["loc"]) or "body"
        if kind == "contact_required":
            # Either field fixes it, so both say so (the form shows it next to each).
            found += [_FieldError("phone", kind), _FieldError("email", kind)]
        elif kind in _OWN_CODES:
            found.append(_FieldError(name, kind, ctx))
        elif kind == "missing":
            found.append(_FieldError(name, "required"))
        elif kind == "string_too_long":
            found.append(_FieldError(name, "too_long", {"max_length": ctx.get("max_length", "?")}))
        elif kind == "string_pattern_mismatch":
            found.append(_FieldError(name, _PATTERN_CODES.get(name, "invalid")))
        elif kind == "extra_forbidden":
            found.append(_FieldError(name, "unknown_field"))
        elif kind in ("enum", "literal_error"):
            found.append(_FieldError(name, "choice_invalid", {"choices": ctx.get("expected", "?")}))
        elif kind.startswith("bool"):
            found.append(_FieldError(name, "bool_invalid"))
        elif kind.startswith("date"):
            found.append(_FieldError(name, "date_invalid"))
        elif kind == "string_type":
            found.append(_FieldError(name, "text_expected"))
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            found.append(_FieldError(name, "object_expected"))
        else:
            found.append(_FieldError(name, "invalid"))
    return found


# --- Abuse brakes: request size and rate ---------------------------------------------------------


class RateLimiter:
    """A token bucket per client: `burst` submissions at once, then `per_minute` on average.

    In memory, so each replica counts on its own and a restart forgets. That is enough for what
    it is: a brake on a script hammering one replica with submissions, not a quota anyone is
    billed against. The global limit is the edge proxy's job; a shared counter (Redis, Mongo)
    would add a network round trip and a failure mode to every submission for little gain.
    At most `max_clients` buckets are kept; the least recently seen client is forgotten first,
    which only ever errs on the lenient side.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Take a token for `client`: None if it may go on, else the seconds to wait (≥ 1)."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return None if allowed else max(1, math.ceil((1.0 - tokens) / self._rate))


class _RecentKeys:
    """Idempotency keys seen lately by this replica, with the hash of the body they came with.

    Only for telling a client that it reused a key for another request (422). That is
    best effort: another replica, or this one after a restart, does not know the key, and then
    the other body becomes a new request, which is what `dedup_key = web:{key}:{body hash}` says.
    The guarantee that matters, a retried POST is stored once, rests on the pipeline's durable
    dedup key and holds across replicas.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._hashes: OrderedDict[str, str] = OrderedDict()

    def conflicts(self, key: str, body_hash: str) -> bool:
        known = self._hashes.get(key)
        return known is not None and known != body_hash

    def remember(self, key: str, body_hash: str) -> None:
        self._hashes.pop(key, None)
        self._hashes[key] = body_hash
        while len(self._hashes) > self._size:
            self._hashes.popitem(last=False)


class _Refused(Exception):
    """A request stopped before validation; rendered as JSON by the API and as a page by the form."""

    def __init__(self, status: int, error: str, **params: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.params = status, error, params


def _client_address(request: Request, trust_forwarded_for: bool) -> str:
    """The client's address; behind our edge proxy, the one that proxy appended.

    The *last* X-Forwarded-For entry is the hop nearest to us, written by the proxy itself; the
    earlier ones are whatever the client sent, so trusting the first would let anyone pick a new
    identity per request and walk past the limiter.
    """
    if trust_forwarded_for:
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        nearest = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(nearest))
        except ValueError:
            pass
    return request.client.host if request.client else "unknown"


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) as soon as it is known to exceed `limit` bytes: from
    Content-Length before reading anything, else while counting the chunks as they arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise _Refused(400, "invalid_content_length")
        if int(declared) > limit:
            raise _Refused(413, "too_large", limit=limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(413, "too_large", limit=limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise _Refused(400, "client_disconnected") from None
    return b"".join(chunks)


def _replayed(request: Request, body: bytes) -> Request:
    """A request whose body is `body`, already read and bounded, for Starlette's form parser."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


# --- The form's fields ---------------------------------------------------------------------------

_TEXT_FIELDS = ("name", "phone", "email", "need")
_FORM_FIELDS = (
    # In the order they appear on the page, which is also the order errors are listed in.
    "name", "phone", "email", "language", "need", "requested_course", "qualification_level",
    "has_computer", "has_internet", "unemployed_since", "consent_to_contact",
)
_CAMPAIGN_FIELDS = tuple(CampaignSubmission.model_fields)
_CAMPAIGN_LIMITS = {name: 2000 if name == "referrer" else 200 for name in _CAMPAIGN_FIELDS}
_SUBMISSION_ID = re.compile(r"^[0-9a-f]{32}$")
_DAY_MONTH_YEAR = re.compile(r"^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})$")


def _form_date(value: str) -> str | None:
    """ISO date for the form's date field; browsers without a date picker let people type 31/12/2024."""
    value = value.strip()
    if not value:
        return None
    if match := _DAY_MONTH_YEAR.match(value):
        day, month, year = match.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return value


def _form_submission(values: Mapping[str, str], page_language: Language) -> dict[str, Any]:
    """The form's strings as the API's submission; validation is the same model's."""
    data: dict[str, Any] = {name: values[name] for name in _TEXT_FIELDS}
    data["language"] = values["language"] or page_language.value
    data["requested_course"] = values["requested_course"] or None
    data["qualification_level"] = values["qualification_level"] or None
    data["has_computer"] = values["has_computer"] or None
    data["has_internet"] = values["has_internet"] or None
    data["unemployed_since"] = _form_date(values["unemployed_since"])
    data["consent_to_contact"] = bool(values["consent_to_contact"])
    campaign = {name: values[name] for name in _CAMPAIGN_FIELDS if values[name]}
    data["campaign"] = campaign or None
    return data


def _campaign_from_landing(request: Request) -> dict[str, str]:
    """UTM parameters of the landing URL, and where the person came from (our own pages excluded)."""
    found = {name: request.query_params.get(name, "").strip() for name in _CAMPAIGN_FIELDS}
    if not found["referrer"]:
        referer = request.headers.get("referer", "").strip()
        if referer and urlsplit(referer).netloc != request.url.netloc:
            found["referrer"] = referer
    return {name: value[: _CAMPAIGN_LIMITS[name]] for name, value in found.items()}


def _preserved_query(values: Mapping[str, str]) -> str:
    """Campaign values as a query string, so that switching language keeps the attribution."""
    kept = {name: values[name] for name in _CAMPAIGN_FIELDS if values.get(name)}
    return f"?{urlencode(kept)}" if kept else ""


# --- The router ----------------------------------------------------------------------------------

_HTML_HEADERS = {
    # Pages may echo personal data (a form with errors, a confirmation): never cache them.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # No script at all; inline styles only; the form posts to us and cannot be framed elsewhere.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'self'",
}

_API_PARAMETERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Client-chosen key (1-255 printable ASCII characters). A retried POST with the same key "
        "and body is stored once and answered 200 with the first result; the same key with another body "
        "is refused (422) when this replica still remembers it, and otherwise stored as a new request.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY.pattern},
        "example": "3f1c9a4e-7d2b-4b8e-9a61-0c5d2e8f1a73",
    },
    {
        "name": "Accept-Language",
        "in": "header",
        "required": False,
        "description": "Language of error messages: fr, nl or en (default en).",
        "schema": {"type": "string"},
        "example": "nl-BE,nl;q=0.9",
    },
    {
        "name": "lang",
        "in": "query",
        "required": False,
        "description": "Language of error messages, overrides Accept-Language: fr, nl or en; others are ignored.",
        "schema": {"type": "string"},
        "example": "fr",
    },
]
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}


def _request_body_schema(catalogue: Catalogue) -> dict[str, Any]:
    """The submission's JSON schema, self-contained (a router cannot add OpenAPI components) and
    with what only this catalogue knows: the course codes."""
    schema = TrainingRequestSubmission.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**inline(definitions[ref.removeprefix("#/$defs/")]), **inline(rest)}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    schema = inline(schema)
    properties = schema["properties"]
    codes = [course.code for course in catalogue.courses]
    properties["requested_course"]["anyOf"] = [{"type": "string", "enum": codes}, {"type": "null"}]
    properties["consent_to_contact"]["const"] = True
    return schema


@cache
def _template_environment() -> jinja2.Environment:
    """One for the process: it caches compiled templates, and compiling them is the slow part."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def web_router(
    pipeline: AcceptRequests,
    settings: WebSettings,
    catalogue: Catalogue,
    clock: Callable[[], datetime] = _utc_now,
    *,
    monotonic: Callable[[], float] = time.monotonic,
) -> APIRouter:
    """The web channel's routes, to be included at the root of the intake app.

    `clock` dates the requests (`received_at`) and decides what "in the future" means;
    `monotonic` drives the rate limiter (tests pass a fake one).
    """
    router = APIRouter()
    limiter = RateLimiter(settings.rate_per_minute, settings.burst, clock=monotonic)
    recent_keys = _RecentKeys()
    templates = _template_environment()

    def validation_context() -> dict[str, Any]:
        return {"catalogue": catalogue, "today": clock().astimezone(BRUSSELS).date()}

    def check_rate(request: Request) -> None:
        wait = limiter.retry_after(_client_address(request, settings.trust_forwarded_for))
        if wait is not None:
            raise _Refused(429, "rate_limited", seconds=wait)

    def check_media_type(request: Request, accepted: tuple[str, ...]) -> None:
        if _media_type(request) not in accepted:
            raise _Refused(415, "unsupported_media_type", expected=", ".join(accepted))

    async def accept(draft: RequestDraft) -> AcceptedRequest | None:
        try:
            return await pipeline.accept(draft)
        except Exception:
            # The client is told to retry (503); nothing was acknowledged, so nothing is lost.
            log.exception("web.accept_failed", source=draft.source)
            return None

    def accepted_log(draft: RequestDraft, accepted: AcceptedRequest, partner: str | None = None) -> None:
        log.info(
            "web.request_accepted",
            request_id=accepted.request_id,
            duplicate=accepted.duplicate,
            source=draft.source,
            language=draft.language.value,
            campaign=draft.campaign.utm_campaign if draft.campaign else None,
            partner=partner,
        )

    # --- JSON API ---

    def api_language(request: Request) -> Language:
        chosen = request.query_params.get("lang", "").strip().lower()
        if chosen in _LANGUAGE_CODES:
            return Language(chosen)
        return negotiate(request.headers.get("accept-language"), default=Language.EN)

    def api_problem(refused: _Refused, language: Language) -> JSONResponse:
        detail = text(language, refused.error, **refused.params)
        headers = {"Retry-After": str(refused.params["seconds"])} if refused.status == 429 else None
        return JSONResponse({"error": refused.error, "detail": detail}, refused.status, headers=headers)

    def api_field_problems(error: str, problems: list[_FieldError], language: Language) -> JSONResponse:
        detail = [{"field": p.field, "code": p.code, "message": p.message(language)} for p in problems]
        return JSONResponse({"error": error, "detail": detail}, 422)

    @router.post(
        "/api/v1/requests",
        name="intake_web_api_submit",
        tags=["requests"],
        summary="Submit a training request",
        description="For partner sites and the Cité des métiers. The request is stored before the answer "
        "(202); an advisor contacts the person within 48 working hours. Error messages follow `?lang=` or "
        "`Accept-Language` (fr, nl, en).",
        status_code=202,
        response_model=SubmissionAccepted,
        responses={
            200: {"model": SubmissionAccepted, "description": "Retry of an earlier request (same Idempotency-Key and body)."},
            202: {"model": SubmissionAccepted, "description": "Stored; the person will be contacted."},
            400: {"model": Problem, "description": "Malformed JSON or invalid Idempotency-Key."},
            413: {"model": Problem, "description": "Body larger than the limit (64 KiB by default)."},
            415: {"model": Problem, "description": "Body not sent as application/json."},
            422: {"model": ValidationProblem, "description": "Fields to correct, or an Idempotency-Key reused."},
            429: {"model": Problem, "description": "Too many submissions from this client.", "headers": _RETRY_AFTER},
            503: {"model": Problem, "description": "Not stored; try again later.", "headers": _RETRY_AFTER},
        },
        openapi_extra={
            "parameters": _API_PARAMETERS,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _request_body_schema(catalogue),
                        "examples": {
                            "web_partner": {"summary": "From a partner site's campaign page", "value": _EXAMPLE_WEB},
                            "cite_des_metiers": {"summary": "A hand-over from the Cité des métiers", "value": _EXAMPLE_CITE},
                        },
                    }
                },
            },
        },
    )
    async def submit_request(request: Request) -> Response:
        language = api_language(request)
        key = request.headers.get("idempotency-key")
        try:
            check_rate(request)
            check_media_type(request, JSON_TYPES)
            if key is not None and not IDEMPOTENCY_KEY.match(key):
                raise _Refused(400, "invalid_idempotency_key")
            body = await _read_body(request, settings.max_body_bytes)
        except _Refused as refused:
            return api_problem(refused, language)
        try:
            submission = TrainingRequestSubmission.model_validate_json(body, strict=True, context=validation_context())
        except ValidationError as exc:
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                return JSONResponse({"error": "malformed_json", "detail": text(language, "malformed_json")}, 400)
            problems = _field_errors(exc, pydantic_core.from_json(body))
            log.info("web.request_refused", source=API_SOURCE, fields=sorted({p.field for p in problems}))
            return api_field_problems("validation_failed", problems, language)
        body_hash = submission.body_sha256()
        if key is not None and recent_keys.conflicts(key, body_hash):
            reused = _FieldError("Idempotency-Key", "idempotency_key_reused")
            return api_field_problems("idempotency_key_reused", [reused], language)
        details: dict[str, ChannelDetail] = {
            "partner": submission.partner,
            "handover": submission.partner == CITE_DES_METIERS,
            "user_agent": request.headers.get("user-agent", "")[:200] or None,
            "idempotency_key": key is not None,
            "body_sha256": body_hash,
        }
        draft = _draft(submission, source=API_SOURCE, received_at=clock(), details=details,
                       dedup_key=f"web:{key}:{body_hash}" if key is not None else None)
        accepted = await accept(draft)
        if accepted is None:
            return JSONResponse(
                {"error": "unavailable", "detail": text(language, "unavailable")}, 503, headers={"Retry-After": "30"}
            )
        if key is not None:
            recent_keys.remember(key, body_hash)
        accepted_log(draft, accepted, submission.partner)
        answer = SubmissionAccepted(
            request_id=accepted.request_id,
            person_id=accepted.person_id,
            status="duplicate" if accepted.duplicate else "accepted",
            linked_request_ids=list(accepted.linked_request_ids),
        )
        return JSONResponse(answer.model_dump(mode="json"), 200 if accepted.duplicate else 202)

    # --- HTML form ---

    def render(name: str, language: Language, status: int, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(
            lang=language.value, t=partial(text, language), language_names=LANGUAGE_NAMES, **context
        )
        return HTMLResponse(html, status, headers=_HTML_HEADERS)

    def render_form(
        language: Language,
        values: Mapping[str, str],
        status: int = 200,
        errors: list[_FieldError] | None = None,
        general_error: str | None = None,
    ) -> HTMLResponse:
        by_field: dict[str, str] = {}
        for problem in errors or []:
            by_field.setdefault(problem.field, problem.message(language))
        summary: list[tuple[str, str]] = []
        for field_name, message in by_field.items():
            if message not in (shown for _, shown in summary):
                summary.append((field_name if field_name in _FORM_FIELDS else "", message))
        courses: dict[str, list[tuple[str, str]]] = {}
        for course in catalogue.courses:
            courses.setdefault(text(language, f"kind_{course.kind}"), []).append((course.code, course.title_in(language)))
        return render(
            "form.html",
            language,
            status,
            values=values,
            errors=by_field,
            summary=summary,
            general_error=general_error,
            courses=courses,
            qualifications=[(level.value, qualification_label(language, level)) for level in QualificationLevel],
            campaign_fields=_CAMPAIGN_FIELDS,
            query=_preserved_query(values),
            today=clock().astimezone(BRUSSELS).date().isoformat(),
        )

    def render_message(
        language: Language, status: int, message: str, *, back: str = "./", retry_after: int | None = None
    ) -> HTMLResponse:
        response = render("message.html", language, status, message=message, back=back, query="")
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def not_found() -> HTMLResponse:
        return render_message(Language.FR, 404, text(Language.FR, "not_found"), back="../fr/")

    def page_language(lang: str) -> Language | None:
        return Language(lang) if lang in _LANGUAGE_CODES else None

    # HEAD too: uptime probes and link checkers use it.
    @router.api_route("/", methods=["GET", "HEAD"], name="intake_web_home", include_in_schema=False)
    async def home(request: Request) -> RedirectResponse:
        # Relative, so it also works when the router is mounted under a prefix; the query string
        # carries the campaign's utm_* parameters.
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"fr/{query}", status_code=302)

    @router.api_route("/{lang}/", methods=["GET", "HEAD"], name="intake_web_form", include_in_schema=False)
    async def show_form(request: Request, lang: str) -> HTMLResponse:
        language = page_language(lang)
        if language is None:
            return not_found()
        values = dict.fromkeys(_FORM_FIELDS, "")
        values.update(_campaign_from_landing(request), language=language.value, submission_id=uuid.uuid4().hex)
        return render_form(language, values)

    @router.post("/{lang}/", name="intake_web_form_submit", include_in_schema=False)
    async def submit_form(request: Request, lang: str) -> HTMLResponse:
        language = page_language(lang)
        if language is None:
            return not_found()
        try:
            check_rate(request)
            check_media_type(request, FORM_TYPES)
            body = await _read_body(request, settings.max_body_bytes)
            try:
                form = await _replayed(request, body).form(max_files=0, max_fields=64)
            except StarletteHTTPException:  # malformed multipart, or a file where none belongs
                raise _Refused(400, "malformed_form") from None
        except _Refused as refused:
            key = refused.error if refused.error in ("too_large", "rate_limited", "unsupported_media_type") else "malformed_form"
            return render_message(language, refused.status, text(language, key, **refused.params),
                                  retry_after=refused.params.get("seconds"))
        values = {name: _form_value(form.get(name)) for name in (*_FORM_FIELDS, *_CAMPAIGN_FIELDS, "submission_id")}
        values["language"] = values["language"] or language.value
        if not _SUBMISSION_ID.match(values["submission_id"]):
            values["submission_id"] = uuid.uuid4().hex
        data = _form_submission(values, language)
        try:
            submission = TrainingRequestSubmission.model_validate(data, context=validation_context())
        except ValidationError as exc:
            problems = sorted(_field_errors(exc, data), key=_form_order)
            log.info("web.request_refused", source=FORM_SOURCE, fields=sorted({p.field for p in problems}))
            return render_form(language, values, 422, problems)
        body_hash = submission.body_sha256()
        token = values["submission_id"]
        details: dict[str, ChannelDetail] = {
            "page_language": language.value,
            "user_agent": request.headers.get("user-agent", "")[:200] or None,
            "body_sha256": body_hash,
        }
        # The page's one-time token: pressing "send" twice or reloading the confirmation is one request.
        draft = _draft(submission, source=FORM_SOURCE, received_at=clock(), details=details,
                       dedup_key=f"web-form:{token}:{body_hash}")
        accepted = await accept(draft)
        if accepted is None:
            return render_form(language, values, 503, general_error=text(language, "unavailable"))
        accepted_log(draft, accepted)
        return render(
            "confirmation.html",
            language,
            200,
            request_id=accepted.request_id,
            reference=accepted.request_id[:8],
            query=_preserved_query(values),
        )

    return router


def _form_order(problem: _FieldError) -> int:
    """Errors in the order of the fields on the page, whatever order pydantic found them in."""
    return _FORM_FIELDS.index(problem.field) if problem.field in _FORM_FIELDS else len(_FORM_FIELDS)


def _form_value(value: str | UploadFile | None) -> str:
    return value if isinstance(value, str) else ""


def _draft(
    submission: TrainingRequestSubmission,
    *,
    source: str,
    received_at: datetime,
    details: dict[str, ChannelDetail],
    dedup_key: str | None,
) -> RequestDraft:
    return RequestDraft(
        channel=Channel.WEB,
        source=source,
        received_at=received_at,
        language=submission.language,
        consent_to_contact=submission.consent_to_contact,
        name=submission.name,
        phone=submission.phone,
        email=submission.email,
        need=submission.need,
        requested_course=submission.requested_course,
        qualification_level=submission.qualification_level,
        has_computer=submission.has_computer,
        has_internet=submission.has_internet,
        unemployed_since=submission.unemployed_since,
        campaign=submission.campaign.attribution() if submission.campaign else None,
        channel_details=details,
        dedup_key=dedup_key,
    )
