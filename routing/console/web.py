"""The advisor's desk in the browser: sign-in through the identity provider's own login page, then the
signed-in worker's queue, accept / decline, and the outcome of a call (French, Dutch, English).

    GET  /console/login                        public: start the authorization code flow (PKCE S256)
    GET  /console/callback                     public: the provider's redirect; exchange, verify, sign in
    POST /console/logout                       public: end the session (its CSRF token checked), then the provider's
    GET  /console/{lang}/                      my queue, nearest deadline first, with why and the priority's parts
    POST /console/{lang}/requests/{id}/accept  |
    POST /console/{lang}/requests/{id}/decline | each calls one `Desk` method, as the desk API does
    POST /console/{lang}/requests/{id}/outcome |

Server-rendered, without script: every form posts and is answered by a redirect (post/redirect/get).
A session is a random id in an HttpOnly, SameSite=Lax cookie (Secure unless on a loopback host); its
tokens stay server-side (`routing.console.sessions`). Every form carries the session's CSRF token. The
worker is the access token's subject, verified on every request by the service's `TokenVerifier`; a
browser without a valid session is sent to sign in (303), never answered 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import jinja2
import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from routing.api import Outcome, get_desk
from routing.console.i18n import LANGUAGE_NAMES, text
from routing.console.oidc import OidcClient, SignInFailed
from routing.console.sessions import ConsoleSession, SessionStore, csrf_matches, new_secret, pkce_verifier
from routing.desk import Desk, DeskError, QueueItem
from schemas import ContactOutcome, Language, QualificationLevel, Target
from services.auth import IdentityProviderUnavailable, InvalidToken, Principal, get_token_verifier, public, requires_signed_in
from services.auth.roles import DESK_OWN_WORK, PUBLIC_CONSOLE_SIGN_IN, PUBLIC_CONSOLE_SIGN_OUT, may

__all__ = ["COOKIE", "Console", "console_router"]

log = structlog.get_logger(__name__)

COOKIE = "console_session"
TEMPLATES = Path(__file__).parent / "templates"
SIGN_IN_TIMEOUT = timedelta(minutes=10)
BRUSSELS = ZoneInfo("Europe/Brussels")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

_HTML_HEADERS = {
    # Pages show people's names and phone numbers: never cache them.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
}


@dataclass
class Console:
    """What the console's routes share: where sessions live and the provider's client."""

    sessions: SessionStore
    oidc: OidcClient

    def now(self) -> datetime:
        # Sessions age on the wall clock, like the tokens in them, whatever the desk's (simulated) clock says.
        return datetime.now(UTC)


def _console(request: Request) -> Console:
    console: Console = request.app.state.runtime.app_state["console"]
    return console


ConsoleDep = Annotated[Console, Depends(_console)]


def _language(lang: str) -> Language:
    try:
        return Language(lang)
    except ValueError:
        raise HTTPException(404, "no such page") from None


def _secure(request: Request) -> bool:
    """Secure cookies everywhere but on a loopback host (a local run over plain HTTP)."""
    return request.url.hostname not in _LOOPBACK


def _set_cookie(response: Response, request: Request, session_id: str, max_age: timedelta) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(max_age.total_seconds()),
        path="/console",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def _sign_in_redirect(request: Request) -> HTTPException:
    """A browser without a valid session goes to sign in, and comes back to the page it asked for
    (a GET page; after a POST, to its language's queue)."""
    path = request.url.path
    lang = path.split("/")[2] if path.count("/") >= 2 else "fr"
    back = path if request.method == "GET" else f"/console/{lang}/"
    query = urlencode({"lang": lang if lang in Language._value2member_map_ else "fr", "next": back})
    return HTTPException(303, "sign in first", headers={"Location": f"/console/login?{query}"})


async def signed_in_principal(request: Request) -> Principal:
    """The principal of the request's session, its access token verified now; else a redirect to sign in."""
    console = _console(request)
    session_id = request.cookies.get(COOKIE)
    session = await console.sessions.find(session_id, console.now()) if session_id else None
    if session_id is None or session is None or session.access_token is None:
        raise _sign_in_redirect(request)
    verifier = get_token_verifier(request)
    if verifier is None:
        raise HTTPException(503, "token verification is not configured")
    try:
        principal: Principal = await verifier.verify(session.access_token)
    except InvalidToken as error:
        log.info("console.session_token_refused", reason=str(error))
        await console.sessions.delete(session_id)
        raise _sign_in_redirect(request) from error
    except IdentityProviderUnavailable as error:
        raise HTTPException(503, "the identity provider cannot be reached", headers={"Retry-After": "5"}) from error
    request.state.console_session = session
    return principal


Advisor = Annotated[Principal, requires_signed_in(signed_in_principal, *may(DESK_OWN_WORK))]


def _session(request: Request) -> ConsoleSession:
    session: ConsoleSession = request.state.console_session
    return session


# --- rendering ---------------------------------------------------------------------------------


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(name: str, language: Language, status: int = 200, **context: Any) -> HTMLResponse:
    page = (
        _templates()
        .get_template(name)
        .render(lang=language.value, t=partial(text, language), language_names=LANGUAGE_NAMES, **context)
    )
    return HTMLResponse(page, status, headers=_HTML_HEADERS)


def _message(language: Language, status: int, message: str, *, back: str) -> HTMLResponse:
    return _render("message.html", language, status, message=message, back=back, csrf=None, who=None, here="")


def _countdown(language: Language, item: QueueItem) -> str | None:
    if item.deadline_in_s is None or item.deadline_in is None:
        return None
    words = item.deadline_in.removeprefix("late by ")
    return text(language, "deadline_in" if item.deadline_in_s >= 0 else "late_by", countdown=words)


async def _card(desk: Desk, language: Language, item: QueueItem) -> dict[str, Any]:
    """One queue entry with its decision: the rule's explanation and how its priority adds up."""
    try:
        decision = (await desk.request(item.request_id))["decision"]
    except DeskError:
        decision = {}
    parts: dict[str, int] = dict(decision.get("priority_parts") or {})
    ageing = item.priority - int(decision.get("priority", item.priority))
    if ageing:
        parts[text(language, "ageing")] = ageing
    explanation = decision.get("explanation_fr") if language is Language.FR else decision.get("explanation")
    return {
        "item": item,
        "countdown": _countdown(language, item),
        "deadline_local": item.deadline.astimezone(BRUSSELS).strftime("%d/%m %H:%M") if item.deadline else None,
        "explanation": explanation or decision.get("explanation"),
        "rule_id": decision.get("rule_id"),
        "parts": parts,
    }


# --- sign-in -----------------------------------------------------------------------------------

console_router = APIRouter(prefix="/console", include_in_schema=False)


def _safe_next(value: str | None, language: Language) -> str:
    """Only a path of the console itself: never an open redirect to another site."""
    if value and value.startswith("/console/") and not value.startswith("//") and not urlsplit(value).netloc:
        return value
    return f"/console/{language.value}/"


@console_router.get("/login", dependencies=[public(PUBLIC_CONSOLE_SIGN_IN)])
async def login(request: Request, console: ConsoleDep, lang: str = "fr", next: str | None = None) -> Response:
    language = Language(lang) if lang in Language._value2member_map_ else Language.FR
    session_id, verifier, state = new_secret(), pkce_verifier(), new_secret()
    pending = ConsoleSession(
        csrf=new_secret(),
        expires_at=console.now() + SIGN_IN_TIMEOUT,
        language=language.value,
        state=state,
        verifier=verifier,
        return_to=_safe_next(next, language),
    )
    try:
        url = await console.oidc.authorization_url(
            redirect_uri=str(request.url_for("console_callback")),
            state=state,
            verifier=verifier,
            language=language.value,
        )
    except SignInFailed as error:
        log.warning("console.sign_in_unavailable", error=str(error))
        return _message(language, 503, text(language, "sign_in_failed"), back=f"/console/login?lang={language.value}")
    await console.sessions.save(session_id, pending)
    response = RedirectResponse(url, status_code=303)
    _set_cookie(response, request, session_id, SIGN_IN_TIMEOUT)
    return response


@console_router.get("/callback", name="console_callback", dependencies=[public(PUBLIC_CONSOLE_SIGN_IN)])
async def callback(
    request: Request, console: ConsoleDep, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    session_id = request.cookies.get(COOKIE)
    pending = await console.sessions.find(session_id, console.now()) if session_id else None
    language = Language(pending.language) if pending else Language.FR
    retry = f"/console/login?lang={language.value}"
    # The state must be the one this browser's session sent: a code injected into another browser is refused.
    if (
        session_id is None
        or pending is None
        or pending.state is None
        or pending.verifier is None
        or code is None
        or not csrf_matches(pending.state, state)
    ):
        log.info("console.callback_refused", error=error, has_session=pending is not None)
        return _message(language, 400, text(language, "sign_in_failed"), back=retry)
    await console.sessions.delete(session_id)  # one use only, whatever happens next
    try:
        tokens = await console.oidc.exchange(
            code=code, verifier=pending.verifier, redirect_uri=str(request.url_for("console_callback"))
        )
        verifier = get_token_verifier(request)
        if verifier is None:
            raise SignInFailed("token verification is not configured")
        principal = await verifier.verify(tokens.access_token)
    except (SignInFailed, InvalidToken, IdentityProviderUnavailable) as failure:
        log.warning("console.sign_in_failed", error=str(failure))
        return _message(language, 400, text(language, "sign_in_failed"), back=retry)
    lifetime = timedelta(seconds=tokens.expires_in)
    # A new id once signed in: an id planted before sign-in (session fixation) leads nowhere.
    signed_in_id = new_secret()
    await console.sessions.save(
        signed_in_id, pending.signed_in_with(tokens.access_token, tokens.id_token, console.now() + lifetime)
    )
    log.info("console.signed_in", subject=principal.subject)
    response = RedirectResponse(pending.return_to or f"/console/{language.value}/", status_code=303)
    _set_cookie(response, request, signed_in_id, lifetime)
    return response


@console_router.post("/logout", dependencies=[public(PUBLIC_CONSOLE_SIGN_OUT)])
async def logout(request: Request, console: ConsoleDep) -> Response:
    form = await request.form()
    session_id = request.cookies.get(COOKIE)
    session = await console.sessions.find(session_id, console.now()) if session_id else None
    lang = str(form.get("lang") or "fr")
    language = Language(lang) if lang in Language._value2member_map_ else Language.FR
    if session_id is None or session is None:
        return RedirectResponse(f"/console/login?lang={language.value}", status_code=303)
    csrf = form.get("csrf")
    if not csrf_matches(session.csrf, csrf if isinstance(csrf, str) else None):
        return _message(language, 403, text(language, "form_expired"), back=f"/console/{language.value}/")
    await console.sessions.delete(session_id)
    back = str(request.url_for("console_queue", lang=language.value))
    try:
        url = await console.oidc.logout_url(id_token=session.id_token, post_logout_redirect_uri=back)
    except SignInFailed:
        url = None
    response = RedirectResponse(url or back, status_code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="lax", secure=_secure(request))
    return response


# --- the desk ----------------------------------------------------------------------------------

DeskDep = Annotated[Desk, Depends(get_desk)]


@console_router.get("/{lang}/", name="console_queue")
async def queue(request: Request, lang: str, desk: DeskDep, worker: Advisor, done: str | None = None) -> HTMLResponse:
    language = _language(lang)
    try:
        items = await desk.queue(worker.subject)
    except DeskError as error:
        return _message(language, error.status, text(language, "refused", reason=str(error)), back=f"/console/{lang}/")
    cards = [await _card(desk, language, item) for item in items]
    return _render(
        "queue.html",
        language,
        cards=cards,
        who=worker.username,
        csrf=_session(request).csrf,
        here="",
        done=text(language, f"done_{done}") if done in ("accepted", "declined", "outcome") else None,
        outcomes=[o.value for o in ContactOutcome],
        targets=[t.value for t in Target],
        qualifications=[q.value for q in QualificationLevel],
        courses=[(c["code"], c["title"]) for c in await desk.courses()],
    )


async def _checked_form(request: Request) -> dict[str, str] | None:
    """The form's fields, or None when its CSRF token is not the session's."""
    form = await request.form(max_files=0, max_fields=32)
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    return fields if csrf_matches(_session(request).csrf, fields.get("csrf")) else None


def _done(lang: str, what: str) -> RedirectResponse:
    return RedirectResponse(f"/console/{lang}/?done={what}", status_code=303)


@console_router.post("/{lang}/requests/{request_id}/accept")
async def accept(request: Request, lang: str, request_id: str, desk: DeskDep, worker: Advisor) -> Response:
    language = _language(lang)
    if await _checked_form(request) is None:
        return _message(language, 403, text(language, "form_expired"), back=f"/console/{lang}/")
    try:
        await desk.accept(request_id, worker.subject)
    except DeskError as error:
        return _message(language, error.status, text(language, "refused", reason=str(error)), back=f"/console/{lang}/")
    return _done(lang, "accepted")


@console_router.post("/{lang}/requests/{request_id}/decline")
async def decline(request: Request, lang: str, request_id: str, desk: DeskDep, worker: Advisor) -> Response:
    language = _language(lang)
    if await _checked_form(request) is None:
        return _message(language, 403, text(language, "form_expired"), back=f"/console/{lang}/")
    try:
        await desk.decline(request_id, worker.subject)
    except DeskError as error:
        return _message(language, error.status, text(language, "refused", reason=str(error)), back=f"/console/{lang}/")
    return _done(lang, "declined")


_OUTCOME_FIELDS = tuple(name for name in Outcome.model_fields if name != "retry_at")


def _outcome_from_form(fields: dict[str, str]) -> Outcome:
    """The form's strings as the desk API's own `Outcome` model (the same validation); an empty field is
    "not given", and `retry_at` is Brussels time as the page's datetime-local input sends it."""
    data: dict[str, Any] = {name: fields[name] for name in _OUTCOME_FIELDS if fields.get(name)}
    if fields.get("retry_at"):
        data["retry_at"] = datetime.fromisoformat(fields["retry_at"]).replace(tzinfo=BRUSSELS)
    return Outcome.model_validate(data)


@console_router.post("/{lang}/requests/{request_id}/outcome")
async def outcome(request: Request, lang: str, request_id: str, desk: DeskDep, worker: Advisor) -> Response:
    language = _language(lang)
    fields = await _checked_form(request)
    if fields is None:
        return _message(language, 403, text(language, "form_expired"), back=f"/console/{lang}/")
    try:
        body = _outcome_from_form(fields)
    except (ValueError, ValidationError) as error:
        return _message(language, 422, text(language, "refused", reason=str(error)[:200]), back=f"/console/{lang}/")
    try:
        await desk.record_outcome(
            request_id,
            worker_id=worker.subject,
            outcome=body.outcome,
            notes=body.notes,
            redirect_to=body.redirect_to,
            course_code=body.course_code,
            certification_code=body.certification_code,
            retry_at=body.retry_at,
            facts=body.facts(),
        )
    except DeskError as error:
        return _message(language, error.status, text(language, "refused", reason=str(error)), back=f"/console/{lang}/")
    return _done(lang, "outcome")
