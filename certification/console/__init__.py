"""The certification staff's console in the browser, behind sign-in: centres and sessions, seat offers
and waitlists, results and revocations.

The sign-in itself, sessions and rendering are `services.console`'s; this package adds certification's
pages (`console_router`), words and templates, and `staff_console` to wire them. Only the staff surface
serves it: the public verification surface has no console."""

from pathlib import Path

from certification.console.web import COOKIE, PAGES, TEMPLATES, WORDS, console_router
from services.console import Console, OidcClient, SessionStore

__all__ = ["COOKIE", "SESSIONS_COLLECTION", "console_router", "staff_console"]

SESSIONS_COLLECTION = "certification_console_sessions"
"""Apart from routing's, so a session of one console never opens the other."""


def staff_console(sessions: SessionStore, oidc: OidcClient, *, templates: Path = TEMPLATES) -> Console:
    """The certification service's console: its sessions, the provider's client, its words and pages."""
    return Console(sessions, oidc, WORDS, templates, cookie=COOKIE, pages=PAGES)
