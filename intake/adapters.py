"""The channel adapters' API: a third party's channel (a call centre's telephony, a partner's chat,
another inbox) hands intake the requests it collected, as a client of the identity provider.

    POST /adapters/v1/requests   JSON in, JSON out (202 accepted, 200 duplicate); role `channel-adapter`

An adapter never writes to Kafka: its request goes through the pipeline every channel uses
(identity linking, sealing of the personal fields under the person's key, the outbox), so what
reaches `training.requests.v1` is what intake vouches for. The adapter is the token's client
(`azp`): the event's CloudEvents `source` is `/intake/adapters/<client id>`, its idempotency keys
and rate counters are its own. The contract, with examples, is docs/adapters/README.md.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from intake.domain import ChannelDetail
from intake.i18n import text
from intake.web.api import (
    IDEMPOTENCY_KEY,
    JSON_TYPES,
    field_problems_response,
    language_of,
    parse_submission,
    problem_response,
    request_body_schema,
)
from intake.web.channel import WebChannel, get_web_channel
from intake.web.idempotency import scoped_key
from intake.web.limits import Refused, read_body, require_media_type
from intake.web.submission import (
    FieldError,
    Problem,
    SubmissionAccepted,
    TrainingRequestSubmission,
    ValidationProblem,
    draft,
)
from schemas import Channel
from services.auth import PROTECTED, Principal, error_responses, requires
from services.auth.roles import INTAKE_ADAPTER, may
from services.catalogue import load_catalogue

__all__ = ["ADAPTER_PATH", "EXAMPLE_EMAIL", "EXAMPLE_PHONE", "AdapterSubmission", "adapter_router", "adapter_source"]

log = structlog.get_logger(__name__)

ADAPTER_PATH = "/adapters/v1/requests"
ADAPTER_SOURCE_PREFIX = "/intake/adapters/"
REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

EXAMPLE_PHONE: JsonDict = {
    "channel": "phone",
    "reference": "call-2025-03-10-0042",
    "name": "Jan Peeters",
    "phone": "+32 2 555 12 12",
    "language": "nl",
    "need": "Wil leren werken met Excel.",
    "requested_course": "EXCEL",
    "has_computer": False,
    "consent_to_contact": True,
    "partner": "callcentre-nord",
}
EXAMPLE_EMAIL: JsonDict = {
    "channel": "email",
    "reference": "ticket-88412",
    "email": "amina.elidrissi@example.be",
    "language": "fr",
    "need": "Je cherche une formation en bureautique, je n'ai pas de diplôme.",
    "qualification_level": "none",
    "consent_to_contact": True,
    "partner": "guichet-emploi",
}


def adapter_source(client_id: str) -> str:
    """The CloudEvents `source` of an adapter's requests: its client id, URI-escaped."""
    return ADAPTER_SOURCE_PREFIX + quote(client_id, safe="-._~")


class AdapterSubmission(TrainingRequestSubmission):
    """A training request as a channel adapter collected it: the web API's request, plus the channel
    the person used and the adapter's own reference for it.

    The same rules as the web API's: a phone number or an e-mail address, and the person's consent
    to be contacted (an adapter records it as the person gave it; without it, do not send the request).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [EXAMPLE_PHONE, EXAMPLE_EMAIL]})

    channel: Literal["phone", "email", "web"] = Field(
        description="How the person reached the adapter's channel: `phone` (a call, a voice menu), `email`, "
        "or `web` (a site, a chat).",
        examples=["phone"],
    )
    reference: str | None = Field(
        None,
        pattern=REFERENCE_PATTERN,
        description="The adapter's own id of this request (call id, ticket number), kept with it for support. "
        "Letters, digits and `._:-`, at most 128: never a phone number, an e-mail address or a name.",
        examples=["call-2025-03-10-0042"],
    )


# As the web API's: the shipped catalogue's course codes, documented when the module is imported.
_REQUEST_BODY_SCHEMA = request_body_schema(load_catalogue(), AdapterSubmission)

adapter_router = APIRouter(tags=["adapters"])


@adapter_router.post(
    ADAPTER_PATH,
    name="intake_adapter_submit",
    summary="Submit a training request collected by a channel adapter",
    description="For third-party channel adapters, signed in with a client-credentials token of the realm "
    "carrying the `channel-adapter` role. The request goes through intake's pipeline (linking, sealing, outbox) "
    "like every channel's and is stored before the answer (202). `Idempotency-Key` is required: retry with the "
    "same key and body after a 429, a 5xx or a lost answer, and the request is stored once (200, `duplicate`). "
    "See docs/adapters/README.md.",
    status_code=202,
    response_model=SubmissionAccepted,
    responses={
        **error_responses(
            *PROTECTED,
            described={503: "Not stored, or the identity provider unreachable: send the same request again after Retry-After."},
        ),
        200: {"model": SubmissionAccepted, "description": "Retry of an earlier request (same Idempotency-Key and body)."},
        202: {"model": SubmissionAccepted, "description": "Stored; it is on its way to training.requests.v1."},
        400: {"model": Problem, "description": "Malformed JSON, or an Idempotency-Key missing or invalid."},
        413: {"model": Problem, "description": "Body larger than the limit (64 KiB by default)."},
        415: {"model": Problem, "description": "Body not sent as application/json."},
        422: {"model": ValidationProblem, "description": "Fields to correct, or an Idempotency-Key reused with another body."},
        429: {"model": Problem, "description": "Too many submissions from this adapter, or to this phone number or address."},
    },
    openapi_extra={
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "The adapter's key for this request (1-255 printable ASCII characters), its own: "
                "another adapter's same key is another key. The same key and body is stored once; the same key "
                "with another body is refused (422) for 24 hours (by default).",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY.pattern},
                "example": "call-2025-03-10-0042",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _REQUEST_BODY_SCHEMA,
                    "examples": {"phone": {"value": EXAMPLE_PHONE}, "email": {"value": EXAMPLE_EMAIL}},
                }
            },
        },
    },
)
async def submit_adapter_request(
    request: Request,
    principal: Annotated[Principal, requires(*may(INTAKE_ADAPTER))],
    channel: Annotated[WebChannel, Depends(get_web_channel)],
) -> Response:
    language = language_of(request)
    # A service account's token names its client in `azp`; its subject is the account, as a fallback.
    client_id = principal.client_id or principal.subject
    key = request.headers.get("idempotency-key")
    try:
        await channel.check_adapter_rate(client_id)
        require_media_type(request, JSON_TYPES)
        if key is None:
            raise Refused(400, "idempotency_key_required")
        if not IDEMPOTENCY_KEY.match(key):
            raise Refused(400, "invalid_idempotency_key")
        body = await read_body(request, channel.settings.max_body_bytes)
    except Refused as refused:
        return problem_response(refused, language)
    submission = parse_submission(
        AdapterSubmission, body, channel, language, refused_event="adapter.request_refused", client_id=client_id
    )
    if isinstance(submission, Response):
        return submission
    body_hash = submission.body_sha256()
    scoped = scoped_key(f"adapter:{client_id}", key)
    if not await channel.claim_idempotency_key(scoped, body_hash):
        return field_problems_response(
            "idempotency_key_reused", [FieldError("Idempotency-Key", "idempotency_key_reused")], language
        )
    try:
        await channel.check_destination(submission.phone, submission.email)
    except Refused as refused:
        return problem_response(refused, language)
    details: dict[str, ChannelDetail] = {
        "adapter": client_id,
        "adapter_reference": submission.reference,
        "partner": submission.partner,
        "idempotency_key": True,
        "body_sha256": body_hash,
    }
    request_draft = draft(
        submission,
        source=adapter_source(client_id),
        received_at=channel.clock(),
        details=details,
        dedup_key=f"adapter:{scoped}:{body_hash}",
        channel=Channel(submission.channel),
    )
    accepted = await channel.accept(request_draft, partner=submission.partner)
    if accepted is None:
        return JSONResponse({"error": "unavailable", "detail": text(language, "unavailable")}, 503, headers={"Retry-After": "30"})
    answer = SubmissionAccepted(request_id=accepted.request_id, status="duplicate" if accepted.duplicate else "accepted")
    return Response(answer.model_dump_json(), 200 if accepted.duplicate else 202, media_type="application/json")
