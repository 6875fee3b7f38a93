"""What every staff console shares: signing in through the identity provider's own login page, the
session behind the cookie, and rendering pages in the person's language.

    GET  /console/login     public: start the authorization code flow (PKCE S256)
    GET  /console/callback  public: the provider's redirect; exchange, verify, sign in
    POST /console/logout    public: end the session (its CSRF token checked), then the provider's

A service serves its own pages under `/console/{lang}/...` with `requires_signed_in(signed_in_principal,
...)` and puts its `Console` in `runtime.app_state["console"]`. Pages are server-rendered, without
script: every form posts and is answered by a redirect (post/redirect/get). A session is a random id in
an HttpOnly, SameSite=Lax cookie (Secure unless on a loopback host), named per service so two consoles
on one host keep their own; its tokens stay server-side (`services.console.sessions`). The access token
is verified on every request by the service's `TokenVerifier` and refreshed with the refresh token when
it has expired, so a session lasts as long as the provider's own (and picks up role changes). A browser
without a valid session is sent to sign in (303), never answered 401; a signed-in person without the
page's role gets a page saying so (403).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import jinja2
import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas import Language
from services.auth import IdentityProviderUnavailable, InvalidToken, Principal, get_token_verifier, public
from services.auth.roles import PUBLIC_CONSOLE_SIGN_IN, PUBLIC_CONSOLE_SIGN_OUT
from services.console.i18n import LANGUAGE_NAMES, ConsoleTexts
from services.console.oidc import OidcClient, SignInFailed
from services.console.sessions import ConsoleSession, SessionStore, csrf_matches, new_secret, pkce_verifier

__all__ = [
    "Console",
    "NavLink",
    "checked_form",
    "console_of",
    "page_language",
    "render",
    "render_message",
    "session_of",
    "sign_in_router",
    "forbidden_page",
    "install_forbidden_page",
    "signed_in_principal",
]

log = structlog.get_logger(__name__)

SHARED_TEMPLATES = Path(__file__).parent / "templates"
SIGN_IN_TIMEOUT = timedelta(minutes=10)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

HTML_HEADERS = {
    # Pages show people's names and phone numbers: never cache them.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
}


@dataclass(frozen=True)
class NavLink:
    """A page of the console, shown in its masthead to those who may open it."""

    path: str
    """Under `/console/{lang}/`, e.g. `""` or `"team"`."""
    label_key: str
    roles: frozenset[str]


@dataclass
class Console:
    """One service's console: where its sessions live, the provider's client, its words and pages."""

    sessions: SessionStore
    oidc: OidcClient
    texts: ConsoleTexts
    templates: Path
    """The service's own templates; `base.html` and `message.html` come from here when not overridden."""
    cookie: str = "console_session"
    pages: tuple[NavLink, ...] = field(default_factory=tuple)

    def now(self) -> datetime:
        # Sessions age on the wall clock, like the tokens in them, whatever a service's (simulated) clock says.
        return datetime.now(UTC)

    def home(self, language: Language, principal: Principal | None = None) -> str:
        """The first page this person may open (the first page at all when nobody is known)."""
        for page in self.pages:
            if principal is None or principal.has_any(page.roles):
                return f"/console/{language.value}/{page.path}"
        return f"/console/{language.value}/"


def console_of(request: Request) -> Console:
    console: Console = request.app.state.runtime.app_state["console"]
    return console


ConsoleDep = Annotated[Console, Depends(console_of)]


def page_language(lang: str) -> Language:
    """The language a page's path names; 404 for anything else."""
    try:
        return Language(lang)
    except ValueError:
        raise HTTPException(404, "no such page") from None


def _language_or_french(lang: str | None) -> Language:
    return Language(lang) if lang is not None and lang in Language._value2member_map_ else Language.FR


def _secure(request: Request) -> bool:
    """Secure cookies everywhere but on a loopback host (a local run over plain HTTP)."""
    return request.url.hostname not in _LOOPBACK


def _set_cookie(response: Response, request: Request, console: Console, session_id: str, max_age: timedelta) -> None:
    response.set_cookie(
        console.cookie,
        session_id,
        max_age=int(max_age.total_seconds()),
        path="/console",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def _sign_in_redirect(request: Request) -> HTTPException:
    """A browser without a valid session goes to sign in, and comes back to the page it asked for
    (a GET page; after a POST, to its language's first page)."""
    path = request.url.path
    lang = path.split("/")[2] if path.count("/") >= 2 else "fr"
    language = _language_or_french(lang)
    back = path if request.method == "GET" else f"/console/{language.value}/"
    query = urlencode({"lang": language.value, "next": back})
    return HTTPException(303, "sign in first", headers={"Location": f"/console/login?{query}"})


async def signed_in_principal(request: Request) -> Principal:
    """The principal of the request's session, its access token verified now (refreshed first when it
    has expired and the session holds a refresh token); else a redirect to sign in."""
    console = console_of(request)
    session_id = request.cookies.get(console.cookie)
    session = await console.sessions.find(session_id, console.now()) if session_id else None
    if session_id is None or session is None or session.access_token is None:
        raise _sign_in_redirect(request)
    verifier = get_token_verifier(request)
    if verifier is None:
        raise HTTPException(503, "token verification is not configured")
    try:
        try:
            principal: Principal = await verifier.verify(session.access_token)
        except InvalidToken:
            if session.refresh_token is None:
                raise
            session = await _refreshed(console, session_id, session)
            principal = await verifier.verify(session.access_token or "")
    except (InvalidToken, SignInFailed) as error:
        log.info("console.session_ended", reason=str(error))
        await console.sessions.delete(session_id)
        raise _sign_in_redirect(request) from error
    except IdentityProviderUnavailable as error:
        raise HTTPException(503, "the identity provider cannot be reached", headers={"Retry-After": "5"}) from error
    request.state.console_session = session
    return principal


async def _refreshed(console: Console, session_id: str, session: ConsoleSession) -> ConsoleSession:
    assert session.refresh_token is not None
    tokens = await console.oidc.refresh(session.refresh_token)
    renewed = session.refreshed_with(
        tokens.access_token,
        tokens.id_token,
        console.now() + timedelta(seconds=tokens.session_lifetime()),
        tokens.refresh_token,
    )
    await console.sessions.save(session_id, renewed)
    log.info("console.session_refreshed")
    return renewed


def session_of(request: Request) -> ConsoleSession:
    """The signed-in session `signed_in_principal` found for this request."""
    session: ConsoleSession = request.state.console_session
    return session


async def checked_form(request: Request) -> dict[str, str] | None:
    """The form's fields, or None when its CSRF token is not the session's."""
    form = await request.form(max_files=0, max_fields=32)
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    return fields if csrf_matches(session_of(request).csrf, fields.get("csrf")) else None


# --- rendering ---------------------------------------------------------------------------------


@cache
def _environment(templates: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(templates), jinja2.FileSystemLoader(SHARED_TEMPLATES)]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    request: Request,
    name: str,
    language: Language,
    status: int = 200,
    *,
    principal: Principal | None = None,
    here: str = "",
    **context: Any,
) -> HTMLResponse:
    """A page of the service's console; with `principal`, the masthead names them, links the pages
    their roles open and offers to sign out."""
    console = console_of(request)
    signed_in = principal is not None and getattr(request.state, "console_session", None) is not None
    nav = [
        {"href": f"/console/{language.value}/{page.path}", "label": page.label_key, "current": page.path == here}
        for page in console.pages
        if principal is not None and principal.has_any(page.roles)
    ]
    page = (
        _environment(console.templates)
        .get_template(name)
        .render(
            lang=language.value,
            t=partial(console.texts.text, language),
            language_names=LANGUAGE_NAMES,
            who=principal.username if signed_in and principal is not None else None,
            csrf=session_of(request).csrf if signed_in else None,
            here=here,
            nav=nav,
            **context,
        )
    )
    return HTMLResponse(page, status, headers=HTML_HEADERS)


def render_message(request: Request, language: Language, status: int, message: str, *, back: str) -> HTMLResponse:
    """A page with one message (a refusal, an expired form, a failed sign-in) and a way back."""
    return render(request, "message.html", language, status, message=message, back=back)


def forbidden_page(request: Request) -> HTMLResponse:
    """What a signed-in person without the page's role sees, instead of a JSON 403."""
    path = request.url.path
    language = _language_or_french(path.split("/")[2] if path.count("/") >= 2 else None)
    console = console_of(request)
    return render_message(request, language, 403, console.texts.text(language, "forbidden"), back=f"/console/{language.value}/")


async def _console_aware_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    runtime = getattr(request.app.state, "runtime", None)
    has_console = runtime is not None and "console" in getattr(runtime, "app_state", {})
    if error.status_code == 403 and has_console and request.url.path.startswith("/console/"):
        return forbidden_page(request)
    return await http_exception_handler(request, error)


def install_forbidden_page(app: FastAPI) -> None:
    """Answer a console page's 403 with a page in the person's language, any other HTTP error as FastAPI does."""
    app.add_exception_handler(StarletteHTTPException, _console_aware_http_error)


# --- sign-in -----------------------------------------------------------------------------------

sign_in_router = APIRouter(prefix="/console", include_in_schema=False)


def _safe_next(value: str | None) -> str | None:
    """Only a path of the console itself: never an open redirect to another site."""
    if value and value.startswith("/console/") and not value.startswith("//") and not urlsplit(value).netloc:
        return value
    return None


@sign_in_router.get("/login", dependencies=[public(PUBLIC_CONSOLE_SIGN_IN)])
async def login(request: Request, console: ConsoleDep, lang: str = "fr", next: str | None = None) -> Response:
    language = _language_or_french(lang)
    session_id, verifier, state = new_secret(), pkce_verifier(), new_secret()
    pending = ConsoleSession(
        csrf=new_secret(),
        expires_at=console.now() + SIGN_IN_TIMEOUT,
        language=language.value,
        state=state,
        verifier=verifier,
        return_to=_safe_next(next),
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
        text = console.texts.text(language, "sign_in_failed")
        return render_message(request, language, 503, text, back=f"/console/login?lang={language.value}")
    await console.sessions.save(session_id, pending)
    response = RedirectResponse(url, status_code=303)
    _set_cookie(response, request, console, session_id, SIGN_IN_TIMEOUT)
    return response


@sign_in_router.get("/callback", name="console_callback", dependencies=[public(PUBLIC_CONSOLE_SIGN_IN)])
async def callback(
    request: Request, console: ConsoleDep, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    session_id = request.cookies.get(console.cookie)
    pending = await console.sessions.find(session_id, console.now()) if session_id else None
    language = Language(pending.language) if pending else Language.FR
    retry = f"/console/login?lang={language.value}"
    failed = console.texts.text(language, "sign_in_failed")
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
        return render_message(request, language, 400, failed, back=retry)
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
        return render_message(request, language, 400, failed, back=retry)
    lifetime = timedelta(seconds=tokens.session_lifetime())
    # A new id once signed in: an id planted before sign-in (session fixation) leads nowhere.
    signed_in_id = new_secret()
    await console.sessions.save(
        signed_in_id,
        pending.signed_in_with(tokens.access_token, tokens.id_token, console.now() + lifetime, tokens.refresh_token),
    )
    log.info("console.signed_in", subject=principal.subject)
    response = RedirectResponse(pending.return_to or console.home(language, principal), status_code=303)
    _set_cookie(response, request, console, signed_in_id, lifetime)
    return response


@sign_in_router.post("/logout", dependencies=[public(PUBLIC_CONSOLE_SIGN_OUT)])
async def logout(request: Request, console: ConsoleDep) -> Response:
    form = await request.form(max_files=0, max_fields=8)
    session_id = request.cookies.get(console.cookie)
    session = await console.sessions.find(session_id, console.now()) if session_id else None
    lang = form.get("lang")
    language = _language_or_french(lang if isinstance(lang, str) else None)
    if session_id is None or session is None:
        return RedirectResponse(f"/console/login?lang={language.value}", status_code=303)
    csrf = form.get("csrf")
    if not csrf_matches(session.csrf, csrf if isinstance(csrf, str) else None):
        expired = console.texts.text(language, "form_expired")
        return render_message(request, language, 403, expired, back=console.home(language))
    await console.sessions.delete(session_id)
    back = str(request.base_url).rstrip("/") + console.home(language)
    try:
        url = await console.oidc.logout_url(id_token=session.id_token, post_logout_redirect_uri=back)
    except SignInFailed:
        url = None
    response = RedirectResponse(url or back, status_code=303)
    response.delete_cookie(console.cookie, path="/console", httponly=True, samesite="lax", secure=_secure(request))
    return response
