"""The web channel's HTML form, for job seekers on their phones (French, Dutch, English).

    GET  /                  302 to /fr/ (the query string, i.e. the campaign, is kept)
    GET  /{lang}/           the form, lang in fr | nl | en
    POST /{lang}/           form-encoded submission: 422 form with errors, or 200 confirmation

Server-rendered, without script: the form is checked by the API's own model
(`TrainingRequestSubmission`) and answers only once the pipeline accepted the request, so a
confirmation page means the request is stored.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import jinja2
import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from intake.domain import ChannelDetail
from intake.i18n import LANGUAGE_NAMES, qualification_label, text
from intake.web.captcha import token_from_form
from intake.web.channel import LANGUAGE_CODES, WebChannel, get_web_channel
from intake.web.limits import Refused, read_body, require_media_type
from intake.web.submission import CampaignSubmission, FieldError, TrainingRequestSubmission, draft, field_errors
from schemas import Language, QualificationLevel, RequestKind

__all__ = ["FORM_SOURCE", "router", "template_environment"]

log = structlog.get_logger(__name__)

FORM_SOURCE = "/intake/web/form"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
TEMPLATES = Path(__file__).parent.parent / "templates"


# --- The form's fields ---------------------------------------------------------------------------

_TEXT_FIELDS = ("name", "phone", "email", "need")
_FORM_FIELDS = (
    # In the order they appear on the page, which is also the order errors are listed in.
    "name",
    "phone",
    "email",
    "language",
    "need",
    "kind",
    "requested_course",
    "qualification_level",
    "has_computer",
    "has_internet",
    "unemployed_since",
    "consent_to_contact",
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
    data["kind"] = values["kind"] or "training_request"
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


# --- Pages ---------------------------------------------------------------------------------------

_HTML_HEADERS = {
    # Pages may echo personal data (a form with errors, a confirmation): never cache them.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # No script at all; inline styles only; the form posts to us and cannot be framed elsewhere.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'self'",
}


@cache
def template_environment() -> jinja2.Environment:
    """One for the process (the web form's pages and the status pages): it caches compiled templates,
    and compiling them is the slow part."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(name: str, language: Language, status: int, *, script_origin: str | None = None, **context: Any) -> HTMLResponse:
    html = (
        template_environment()
        .get_template(name)
        .render(lang=language.value, t=partial(text, language), language_names=LANGUAGE_NAMES, **context)
    )
    headers = _HTML_HEADERS
    if script_origin is not None:
        # The CAPTCHA widget is the one script allowed, from its provider only, with its frame.
        policy = f"{headers['Content-Security-Policy']}; script-src {script_origin}; frame-src {script_origin}"
        headers = {**headers, "Content-Security-Policy": policy}
    return HTMLResponse(html, status, headers=headers)


def _render_form(
    channel: WebChannel,
    language: Language,
    values: Mapping[str, str],
    status: int = 200,
    errors: list[FieldError] | None = None,
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
    for course in channel.catalogue.courses:
        courses.setdefault(text(language, f"kind_{course.kind}"), []).append((course.code, course.title_in(language)))
    return _render(
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
        today=channel.today().isoformat(),
        captcha=channel.captcha_widget,
        script_origin=channel.captcha_widget.origin if channel.captcha_widget else None,
    )


def _render_message(
    language: Language, status: int, message: str, *, back: str = "./", retry_after: int | None = None
) -> HTMLResponse:
    response = _render("message.html", language, status, message=message, back=back, query="")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _not_found() -> HTMLResponse:
    return _render_message(Language.FR, 404, text(Language.FR, "not_found"), back="../fr/")


def _page_language(lang: str) -> Language | None:
    return Language(lang) if lang in LANGUAGE_CODES else None


# --- The routes ----------------------------------------------------------------------------------

router = APIRouter()


# HEAD too: uptime probes and link checkers use it.
@router.api_route("/", methods=["GET", "HEAD"], name="intake_web_home", include_in_schema=False)
async def home(request: Request) -> RedirectResponse:
    # Relative, so it also works when the router is mounted under a prefix; the query string
    # carries the campaign's utm_* parameters.
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"fr/{query}", status_code=302)


@router.api_route("/{lang}/", methods=["GET", "HEAD"], name="intake_web_form", include_in_schema=False)
async def show_form(request: Request, lang: str, channel: Annotated[WebChannel, Depends(get_web_channel)]) -> HTMLResponse:
    language = _page_language(lang)
    if language is None:
        return _not_found()
    values = dict.fromkeys(_FORM_FIELDS, "")
    values.update(_campaign_from_landing(request), language=language.value, submission_id=uuid.uuid4().hex)
    return _render_form(channel, language, values)


@router.post("/{lang}/", name="intake_web_form_submit", include_in_schema=False)
async def submit_form(request: Request, lang: str, channel: Annotated[WebChannel, Depends(get_web_channel)]) -> HTMLResponse:
    language = _page_language(lang)
    if language is None:
        return _not_found()
    try:
        await channel.check_rate(request)
        require_media_type(request, FORM_TYPES)
        body = await read_body(request, channel.settings.max_body_bytes)
        try:
            form = await _replayed(request, body).form(max_files=0, max_fields=64)
        except StarletteHTTPException:  # malformed multipart, or a file where none belongs
            raise Refused(400, "malformed_form") from None
    except Refused as refused:
        key = refused.error if refused.error in ("rate_limited", "unsupported_media_type") else "malformed_form"
        if refused.error == "too_large":
            key = "form_too_large"  # a person counts words, not bytes
        return _render_message(
            language, refused.status, text(language, key, **refused.params), retry_after=refused.params.get("seconds")
        )
    values = {name: _form_value(form.get(name)) for name in (*_FORM_FIELDS, *_CAMPAIGN_FIELDS, "submission_id")}
    values["language"] = values["language"] or language.value
    if not _SUBMISSION_ID.match(values["submission_id"]):
        values["submission_id"] = uuid.uuid4().hex
    try:
        await channel.check_captcha(request, token_from_form(form))
    except Refused as refused:
        # What was typed is kept: a failed or unreachable check only asks to send again.
        page = _render_form(channel, language, values, refused.status, general_error=text(language, refused.error))
        if "seconds" in refused.params:
            page.headers["Retry-After"] = str(refused.params["seconds"])
        return page
    data = _form_submission(values, language)
    try:
        submission = TrainingRequestSubmission.model_validate(data, context=channel.validation_context())
    except ValidationError as exc:
        problems = sorted(field_errors(exc, data), key=_form_order)
        log.info("web.request_refused", source=FORM_SOURCE, fields=sorted({p.field for p in problems}))
        return _render_form(channel, language, values, 422, problems)
    try:
        await channel.check_destination(submission.phone, submission.email)
    except Refused as refused:
        return _render_message(
            language, refused.status, text(language, "rate_limited", **refused.params), retry_after=refused.params.get("seconds")
        )
    body_hash = submission.body_sha256()
    token = values["submission_id"]
    details: dict[str, ChannelDetail] = {
        "page_language": language.value,
        "user_agent": request.headers.get("user-agent", "")[:200] or None,
        "body_sha256": body_hash,
    }
    # The page's one-time token: pressing "send" twice or reloading the confirmation is one request.
    request_draft = draft(
        submission, source=FORM_SOURCE, received_at=channel.clock(), details=details, dedup_key=f"web-form:{token}:{body_hash}"
    )
    accepted = await channel.accept(request_draft)
    if accepted is None:
        return _render_form(channel, language, values, 503, general_error=text(language, "unavailable"))
    return _render(
        "confirmation.html",
        language,
        200,
        request_id=accepted.request_id,
        reference=accepted.request_id[:8],
        query=_preserved_query(values),
        learner_question=submission.kind is RequestKind.LEARNER_QUESTION,
    )


def _form_order(problem: FieldError) -> int:
    """Errors in the order of the fields on the page, whatever order pydantic found them in."""
    return _FORM_FIELDS.index(problem.field) if problem.field in _FORM_FIELDS else len(_FORM_FIELDS)


def _form_value(value: str | UploadFile | None) -> str:
    return value if isinstance(value, str) else ""


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
