"""The job seeker's status page and what they can do from it (French, Dutch, English).

    GET  /{lang}/status/{token}            the request's status (404 unknown link, 410 expired/revoked/erased)
    POST /{lang}/status/{token}/slot       choose a callback window (303 back to the page)
    GET  /{lang}/status/{token}/withdraw   ask to confirm the withdrawal
    POST /{lang}/status/{token}/withdraw   withdraw (303 back to the page)
    POST /{lang}/status/{token}/details    correct the need, the course, the contact details (303 back)
    POST /{lang}/status/{token}/revoke     turn the link off (200: the page says so, and offers nothing more)

Public on purpose: the signed link is the capability (`intake.status.links`), so no CSRF token is
needed, and the posts take the web form's rate limits. Server-rendered, no script. The token is in
the path: the pages are never cached and send no Referer, so the link does not leak to other sites.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from intake.i18n import LANGUAGE_NAMES
from intake.status.links import status_path
from intake.status.service import ActionRefused, Found, StatusService
from intake.status.texts import HELPLINE, text
from intake.status.view import build_view, window_label
from intake.web.channel import LANGUAGE_CODES, WebChannel, get_web_channel
from intake.web.form import template_environment
from intake.web.limits import Refused, read_body, require_media_type
from schemas import Language
from services import Runtime, get_runtime
from services.auth import public
from services.auth.roles import PUBLIC_STATUS_PAGE

__all__ = ["get_status_service", "router"]

_HTML_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # The token is a capability in the path: never sent on to another site.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}
_DONE = ("slot", "withdrawn", "corrected")
_GONE = {"expired": ("expired_title", "expired"), "revoked": ("revoked_title", "revoked"), "erased": ("erased_title", "erased")}


async def get_status_service(runtime: Annotated[Runtime, Depends(get_runtime)]) -> StatusService:
    """FastAPI dependency: the status use cases of the app serving the request (`runtime.app_state["status"]`)."""
    return runtime.app_state["status"]  # type: ignore[no-any-return]


Service = Annotated[StatusService, Depends(get_status_service)]
Channel = Annotated[WebChannel, Depends(get_web_channel)]

router = APIRouter(dependencies=[public(PUBLIC_STATUS_PAGE)])


def _render(name: str, language: Language, status: int, token: str | None, **context: Any) -> HTMLResponse:
    hrefs = {code.value: status_path(code, token) if token else f"/{code.value}/" for code in Language}
    html = (
        template_environment()
        .get_template(name)
        .render(
            lang=language.value,
            t=partial(text, language),
            language_names=LANGUAGE_NAMES,
            language_href=hrefs,
            query="",
            helpline=text(language, "helpline", phone=HELPLINE),
            **context,
        )
    )
    return HTMLResponse(html, status, headers=_HTML_HEADERS)


def _message(language: Language, status: int, title: str, message: str, token: str | None = None) -> HTMLResponse:
    return _render("status_message.html", language, status, token, title=text(language, title), message=text(language, message))


def _language(lang: str) -> Language | None:
    return Language(lang) if lang in LANGUAGE_CODES else None


def _not_found(language: Language | None = None) -> HTMLResponse:
    return _message(language or Language.FR, 404, "not_found_title", "not_found")


async def _page(
    service: StatusService,
    found: Found,
    language: Language,
    token: str,
    *,
    status: int = 200,
    notice: str | None = None,
    error: ActionRefused | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    if found.outcome == "not_found":
        return _not_found(language)
    if found.outcome in _GONE:
        title, message = _GONE[found.outcome]
        return _message(language, 410, title, message, token)
    if found.outcome == "pending" or found.entry is None:
        return _message(language, 200, "title", "pending", token)
    entry = found.entry
    course = service.catalogue.course(entry["requested_course"]) if entry.get("requested_course") else None
    view = build_view(
        entry,
        found.person,
        need=await service.need_of(entry),
        language=language,
        windows=service.windows(entry),
        course_title=course.title_in(language) if course else None,
    )
    return _render(
        "status.html",
        language,
        status,
        token,
        view=view,
        base=status_path(language, token),
        notice=notice,
        error=text(language, error.reason) if error else None,
        error_field=error.field if error else None,
        values=values or {"need": "", "requested_course": "", "phone": "", "email": ""},
    )


async def _form(request: Request, channel: WebChannel) -> dict[str, str]:
    """The posted form's fields (urlencoded), after the web form's rate and size limits."""
    await channel.check_rate(request)
    require_media_type(request, ("application/x-www-form-urlencoded",))
    body = await read_body(request, channel.settings.max_body_bytes)
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed_form") from None
    return {name: values[0] for name, values in fields.items()}


def _refused(language: Language, refused: Refused, token: str) -> HTMLResponse:
    if refused.error == "rate_limited":
        response = _render(
            "status_message.html",
            language,
            429,
            token,
            title=text(language, "title"),
            message=text(language, "rate_limited", seconds=refused.params.get("seconds", 60)),
        )
        response.headers["Retry-After"] = str(refused.params.get("seconds", 60))
        return response
    return _message(language, refused.status, "title", "malformed", token)


def _back(language: Language, token: str, done: str) -> RedirectResponse:
    # 303: the browser GETs the page, so reloading it does not post again.
    return RedirectResponse(f"{status_path(language, token)}?done={done}", status_code=303)


@router.get("/{lang}/status/{token}", name="intake_status_page", include_in_schema=False)
async def show_status(lang: str, token: str, service: Service, done: str | None = None) -> Response:
    language = _language(lang)
    if language is None:
        return _not_found()
    found = await service.find(token)
    notice = None
    if done in _DONE and found.entry is not None:
        notice = text(language, f"done_{done}")
        slot = found.entry.get("slot")
        if done == "slot" and slot:
            when = window_label(slot["start"], slot["end"], language)
            late = found.entry.get("callback_deadline") and slot["end"] > found.entry["callback_deadline"]
            notice = text(language, "done_slot_late" if late else "done_slot", when=when)
    return await _page(service, found, language, token, notice=notice)


async def _act(
    request: Request,
    lang: str,
    token: str,
    service: StatusService,
    channel: WebChannel,
    act: Callable[[Found, dict[str, str]], Awaitable[object]],
    *,
    done: str,
    kept: Callable[[dict[str, str]], dict[str, str]] | None = None,
) -> Response:
    """One of the person's actions: the form read within the web form's limits, `act` on the request
    the link names, then back to the page (303) saying it is done - or the page with the refusal
    beside its field, what was typed kept (`kept`)."""
    language = _language(lang)
    if language is None:
        return _not_found()
    try:
        form = await _form(request, channel)
    except Refused as refused:
        return _refused(language, refused, token)
    found = await service.find(token)
    try:
        await act(found, form)
    except ActionRefused as refused:
        values = kept(form) if kept else None
        return await _page(
            service, await service.find(token), language, token, status=_status_of(refused), error=refused, values=values
        )
    return _back(language, token, done)


@router.post("/{lang}/status/{token}/slot", name="intake_status_slot", include_in_schema=False)
async def choose_slot(request: Request, lang: str, token: str, service: Service, channel: Channel) -> Response:
    return await _act(
        request, lang, token, service, channel, lambda found, form: service.choose_slot(found, form.get("slot", "")), done="slot"
    )


@router.get("/{lang}/status/{token}/withdraw", name="intake_status_withdraw_confirm", include_in_schema=False)
async def confirm_withdrawal(lang: str, token: str, service: Service) -> Response:
    language = _language(lang)
    if language is None:
        return _not_found()
    found = await service.find(token)
    if found.outcome != "found" or found.entry is None:
        return await _page(service, found, language, token)
    if found.entry.get("closed") or found.entry.get("withdrawn_at"):
        return await _page(service, found, language, token, status=409, error=ActionRefused("refused_closed"))
    return _render("status_withdraw.html", language, 200, token, base=status_path(language, token))


@router.post("/{lang}/status/{token}/withdraw", name="intake_status_withdraw", include_in_schema=False)
async def withdraw(request: Request, lang: str, token: str, service: Service, channel: Channel) -> Response:
    return await _act(request, lang, token, service, channel, lambda found, _: service.withdraw(found), done="withdrawn")


_DETAILS = ("need", "requested_course", "phone", "email")


def _details(form: dict[str, str]) -> dict[str, str]:
    return {name: form.get(name, "")[:4000] for name in _DETAILS}


@router.post("/{lang}/status/{token}/details", name="intake_status_details", include_in_schema=False)
async def correct_details(request: Request, lang: str, token: str, service: Service, channel: Channel) -> Response:
    async def correct(found: Found, form: dict[str, str]) -> None:
        values = _details(form)
        await service.correct(found, **{"course" if k == "requested_course" else k: v for k, v in values.items()})

    # What was typed is kept on a refusal, with the error next to its field.
    return await _act(request, lang, token, service, channel, correct, done="corrected", kept=_details)


@router.post("/{lang}/status/{token}/revoke", name="intake_status_revoke", include_in_schema=False)
async def revoke(request: Request, lang: str, token: str, service: Service, channel: Channel) -> Response:
    language = _language(lang)
    if language is None:
        return _not_found()
    try:
        await _form(request, channel)
    except Refused as refused:
        return _refused(language, refused, token)
    found = await service.find(token)
    try:
        await service.revoke(found)
    except ActionRefused:
        return await _page(service, found, language, token)
    return _message(language, 200, "revoked_title", "done_revoked")


def _status_of(refused: ActionRefused) -> int:
    if refused.reason == "not_found":
        return 404
    if refused.reason == "refused_closed":
        return 409
    return 422
