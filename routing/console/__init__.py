"""The desk in the browser, behind sign-in: the advisor's queue and the supervisor's team view.

The sign-in itself, sessions and rendering are `services.console`'s; this package adds the desk's pages
(`console_router`), words and templates, and `desk_console` to wire them."""

from pathlib import Path

from routing.console.web import COOKIE, PAGES, TEMPLATES, WORDS, console_router
from services.console import Console, OidcClient, SessionStore

__all__ = ["COOKIE", "console_router", "desk_console"]


def desk_console(sessions: SessionStore, oidc: OidcClient, *, templates: Path = TEMPLATES) -> Console:
    """The routing service's console: its sessions, the provider's client, the desk's words and pages."""
    return Console(sessions, oidc, WORDS, templates, cookie=COOKIE, pages=PAGES)
