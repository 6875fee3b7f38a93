"""What every staff console shares: browser sign-in through the identity provider (authorization code
with PKCE), server-side sessions, CSRF-checked forms and pages rendered in FR/NL/EN."""

from services.console.i18n import COMMON, LANGUAGE_NAMES, ConsoleTexts
from services.console.oidc import OidcClient, SignInFailed, Tokens
from services.console.sessions import ConsoleSession, InMemorySessions, MongoSessions, SessionStore
from services.console.web import (
    Console,
    NavLink,
    checked_form,
    console_of,
    install_forbidden_page,
    page_language,
    render,
    render_message,
    session_of,
    sign_in_router,
    signed_in_principal,
)

__all__ = [
    "COMMON",
    "LANGUAGE_NAMES",
    "Console",
    "ConsoleSession",
    "ConsoleTexts",
    "InMemorySessions",
    "MongoSessions",
    "NavLink",
    "OidcClient",
    "SessionStore",
    "SignInFailed",
    "Tokens",
    "checked_form",
    "console_of",
    "install_forbidden_page",
    "page_language",
    "render",
    "render_message",
    "session_of",
    "sign_in_router",
    "signed_in_principal",
]
