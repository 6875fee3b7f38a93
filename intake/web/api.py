"""The web channel's JSON API, for partner sites and the Cité des métiers.

    POST /api/v1/requests   JSON in, JSON out (202 accepted, 200 duplicate)

The handler parses and validates the body itself instead of letting FastAPI do it, because a
router cannot install exception handlers on the app that mounts it, and this API owes its
clients a 400 (not FastAPI's 422) for malformed JSON, a 413 before reading an oversized body,
and validation messages in the client's language. It answers only once the pipeline accepted the
request, so a 202 means the request is stored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import pydantic_core
import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from intake.domain import ChannelDetail
from intake.i18n import negotiate, text
from intake.web.captcha import API_TOKEN_HEADER
from intake.web.channel import LANGUAGE_CODES, WebChannel, get_web_channel
from intake.web.limits import Refused, read_body, require_media_type
from intake.web.submission import (
    CITE_DES_METIERS,
    EXAMPLE_CITE,
    EXAMPLE_WEB,
    FieldError,
    Problem,
    SubmissionAccepted,
    TrainingRequestSubmission,
    ValidationProblem,
    draft,
    field_errors,
)
from schemas import Language
from services.catalogue import Catalogue, load_catalogue

__all__ = ["API_SOURCE", "router"]

log = structlog.get_logger(__name__)

API_SOURCE = "/intake/web/api"
IDEMPOTENCY_KEY = re.compile(r"^[!-~](?:[ -~]{0,253}[!-~])?$")
"""1 to 255 printable ASCII characters, no leading or trailing space (proxies strip those)."""
JSON_TYPES = ("application/json",)

SubmissionT = TypeVar("SubmissionT", bound=BaseModel)


def language_of(request: Request) -> Language:
    chosen = request.query_params.get("lang", "").strip().lower()
    if chosen in LANGUAGE_CODES:
        return Language(chosen)
    return negotiate(request.headers.get("accept-language"), default=Language.EN)


def problem_response(refused: Refused, language: Language) -> JSONResponse:
    detail = text(language, refused.error, **refused.params)
    headers = {"Retry-After": str(refused.params["seconds"])} if "seconds" in refused.params else None
    return JSONResponse({"error": refused.error, "detail": detail}, refused.status, headers=headers)


def field_problems_response(error: str, problems: list[FieldError], language: Language) -> JSONResponse:
    detail = [{"field": p.field, "code": p.code, "message": p.message(language)} for p in problems]
    return JSONResponse({"error": error, "detail": detail}, 422)


def parse_submission(
    model: type[SubmissionT], body: bytes, channel: WebChannel, language: Language, *, refused_event: str, **log_fields: str
) -> SubmissionT | Response:
    """The body as `model`, or the answer that refuses it: 400 for JSON that does not parse, 422 with a
    problem per field (in the caller's language) for fields that do not validate, logged as `refused_event`."""
    try:
        return model.model_validate_json(body, strict=True, context=channel.validation_context())
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return JSONResponse({"error": "malformed_json", "detail": text(language, "malformed_json")}, 400)
        problems = field_errors(exc, pydantic_core.from_json(body))
        log.info(refused_event, **log_fields, fields=sorted({p.field for p in problems}))
        return field_problems_response("validation_failed", problems, language)


# --- The OpenAPI document ------------------------------------------------------------------------

_API_PARAMETERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Client-chosen key (1-255 printable ASCII characters), private to the client's network "
        "(its IPv4 address or IPv6 /64). A retried POST with the same key and body is stored once and answered "
        "200 with the first result; the same key with another body is refused (422) for 24 hours (by default).",
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


def request_body_schema(
    catalogue: Catalogue, model: type[TrainingRequestSubmission] = TrainingRequestSubmission
) -> dict[str, Any]:
    """The submission's JSON schema, self-contained (a router cannot add OpenAPI components) and
    with what only this catalogue knows: the course codes. `model`: the channel adapters' submission."""
    schema = model.model_json_schema()
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

    inlined: dict[str, Any] = inline(schema)
    properties = inlined["properties"]
    codes = [course.code for course in catalogue.courses]
    properties["requested_course"]["anyOf"] = [{"type": "string", "enum": codes}, {"type": "null"}]
    properties["consent_to_contact"]["const"] = True
    return inlined


# The documented course codes are the shipped catalogue's, the one every intake replica validates
# against (`intake.app`); a route's OpenAPI is fixed when the module is imported.
_REQUEST_BODY_SCHEMA = request_body_schema(load_catalogue())


# --- The route -----------------------------------------------------------------------------------

router = APIRouter()


@router.post(
    "/api/v1/requests",
    name="intake_web_api_submit",
    tags=["requests"],
    summary="Submit a training request",
    description="For partner sites and the Cité des métiers. The request is stored before the answer "
    "(202); an advisor contacts the person within 48 working hours. A learner already enrolled who asks about "
    "their course (`kind: learner_question`) is answered by BF espaces numériques within one working day. "
    "Error messages follow `?lang=` or "
    "`Accept-Language` (fr, nl, en).",
    status_code=202,
    response_model=SubmissionAccepted,
    responses={
        200: {"model": SubmissionAccepted, "description": "Retry of an earlier request (same Idempotency-Key and body)."},
        202: {"model": SubmissionAccepted, "description": "Stored; the person will be contacted."},
        400: {"model": Problem, "description": "Malformed JSON or invalid Idempotency-Key."},
        413: {"model": Problem, "description": "Body larger than the limit (64 KiB by default)."},
        415: {"model": Problem, "description": "Body not sent as application/json."},
        422: {
            "model": ValidationProblem,
            "description": "Fields to correct, an Idempotency-Key reused, or (when a CAPTCHA is configured) "
            "a missing or refused X-Captcha-Token (`captcha_failed`).",
        },
        429: {
            "model": Problem,
            "description": "Too many submissions from this client's network, or to this phone number or e-mail address.",
            "headers": _RETRY_AFTER,
        },
        503: {
            "model": Problem,
            "description": "Not stored, or the CAPTCHA provider unreachable (`captcha_unavailable`); try again later.",
            "headers": _RETRY_AFTER,
        },
    },
    openapi_extra={
        "parameters": _API_PARAMETERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _REQUEST_BODY_SCHEMA,
                    "examples": {
                        "web_partner": {"summary": "From a partner site's campaign page", "value": EXAMPLE_WEB},
                        "cite_des_metiers": {"summary": "A hand-over from the Cité des métiers", "value": EXAMPLE_CITE},
                    },
                }
            },
        },
    },
)
async def submit_request(request: Request, channel: Annotated[WebChannel, Depends(get_web_channel)]) -> Response:
    language = language_of(request)
    key = request.headers.get("idempotency-key")
    try:
        await channel.check_rate(request)
        require_media_type(request, JSON_TYPES)
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise Refused(400, "invalid_idempotency_key")
        body = await read_body(request, channel.settings.max_body_bytes)
        await channel.check_captcha(request, request.headers.get(API_TOKEN_HEADER))
    except Refused as refused:
        return problem_response(refused, language)
    submission = parse_submission(
        TrainingRequestSubmission, body, channel, language, refused_event="web.request_refused", source=API_SOURCE
    )
    if isinstance(submission, Response):
        return submission
    body_hash = submission.body_sha256()
    scoped = channel.scoped_idempotency_key(request, key) if key is not None else None
    if scoped is not None and not await channel.claim_idempotency_key(scoped, body_hash):
        reused = FieldError("Idempotency-Key", "idempotency_key_reused")
        return field_problems_response("idempotency_key_reused", [reused], language)
    try:
        await channel.check_destination(submission.phone, submission.email)
    except Refused as refused:
        return problem_response(refused, language)
    details: dict[str, ChannelDetail] = {
        "partner": submission.partner,
        "handover": submission.partner == CITE_DES_METIERS,
        "user_agent": request.headers.get("user-agent", "")[:200] or None,
        "idempotency_key": key is not None,
        "body_sha256": body_hash,
    }
    request_draft = draft(
        submission,
        source=API_SOURCE,
        received_at=channel.clock(),
        details=details,
        dedup_key=f"web:{scoped}:{body_hash}" if scoped is not None else None,
    )
    accepted = await channel.accept(request_draft, partner=submission.partner)
    if accepted is None:
        return JSONResponse({"error": "unavailable", "detail": text(language, "unavailable")}, 503, headers={"Retry-After": "30"})
    answer = SubmissionAccepted(
        request_id=accepted.request_id,
        status="duplicate" if accepted.duplicate else "accepted",
    )
    # Serialised by pydantic-core in one step (JSONResponse would build a dict and run json.dumps on it).
    return Response(answer.model_dump_json(), 200 if accepted.duplicate else 202, media_type="application/json")
