"""The advisor's desk in the browser, behind sign-in: `console_router` and what it is built from."""

from routing.console.oidc import OidcClient, SignInFailed, Tokens
from routing.console.sessions import ConsoleSession, InMemorySessions, MongoSessions, SessionStore
from routing.console.web import COOKIE, Console, console_router

__all__ = [
    "COOKIE",
    "Console",
    "ConsoleSession",
    "InMemorySessions",
    "MongoSessions",
    "OidcClient",
    "SessionStore",
    "SignInFailed",
    "Tokens",
    "console_router",
]
