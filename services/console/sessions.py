"""The console's server-side sessions, and the small secrets a browser sign-in needs (PKCE, state, CSRF).

The browser holds only a random session id in an HttpOnly cookie; what it stands for (the pending
sign-in's state and PKCE verifier, then the tokens and the CSRF token) stays here. The store keeps a
SHA-256 of the id, not the id: a copy of the collection does not let anyone ride a session.
`SessionStore` is the port; `MongoSessions` the real adapter, `InMemorySessions` the fake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

__all__ = [
    "ConsoleSession",
    "InMemorySessions",
    "MongoSessions",
    "SessionStore",
    "csrf_matches",
    "new_secret",
    "pkce_challenge",
    "pkce_verifier",
]


def new_secret() -> str:
    """256 random bits, URL-safe: session ids, `state`, CSRF tokens."""
    return secrets.token_urlsafe(32)


def pkce_verifier() -> str:
    """A PKCE code verifier (RFC 7636 §4.1): 43 to 128 characters of [A-Za-z0-9-._~]; 64 random bytes give 86."""
    return secrets.token_urlsafe(64)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of `verifier`: BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_matches(expected: str, sent: str | None) -> bool:
    """Whether a form carried the session's CSRF token; compared in constant time."""
    return bool(expected) and sent is not None and hmac.compare_digest(expected.encode(), sent.encode())


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    """One browser's session: a sign-in under way (`state` set), then a signed-in one (`access_token` set)."""

    csrf: str
    expires_at: datetime
    language: str = "fr"
    # A sign-in under way: what the callback must find again.
    state: str | None = None
    verifier: str | None = None
    return_to: str | None = None
    # Signed in.
    access_token: str | None = None
    id_token: str | None = None
    refresh_token: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.access_token is not None

    def as_document(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ConsoleSession:
        fields: dict[str, Any] = {name: document[name] for name in cls.__dataclass_fields__ if name in document}
        return cls(**fields)

    def signed_in_with(
        self, access_token: str, id_token: str | None, expires_at: datetime, refresh_token: str | None = None
    ) -> ConsoleSession:
        """The session after the code exchange: the pending sign-in forgotten, a fresh CSRF token."""
        return replace(
            self,
            csrf=new_secret(),
            expires_at=expires_at,
            state=None,
            verifier=None,
            access_token=access_token,
            id_token=id_token,
            refresh_token=refresh_token,
        )

    def refreshed_with(
        self, access_token: str, id_token: str | None, expires_at: datetime, refresh_token: str | None
    ) -> ConsoleSession:
        """The same session on refreshed tokens (its CSRF token kept: open forms stay valid)."""
        return replace(
            self,
            expires_at=expires_at,
            access_token=access_token,
            id_token=id_token or self.id_token,
            refresh_token=refresh_token or self.refresh_token,
        )


class SessionStore(ABC):
    """Sessions by id. `find` answers None for an unknown or expired one."""

    @abstractmethod
    async def save(self, session_id: str, session: ConsoleSession) -> None: ...

    @abstractmethod
    async def find(self, session_id: str, now: datetime) -> ConsoleSession | None: ...

    @abstractmethod
    async def delete(self, session_id: str) -> None: ...


class InMemorySessions(SessionStore):
    def __init__(self) -> None:
        self.sessions: dict[str, ConsoleSession] = {}

    async def save(self, session_id: str, session: ConsoleSession) -> None:
        self.sessions[_key(session_id)] = session

    async def find(self, session_id: str, now: datetime) -> ConsoleSession | None:
        session = self.sessions.get(_key(session_id))
        return session if session is not None and session.expires_at > now else None

    async def delete(self, session_id: str) -> None:
        self.sessions.pop(_key(session_id), None)


class MongoSessions(SessionStore):
    """Sessions in `console_sessions`; a TTL index removes the expired ones (find checks expiry too,
    because the TTL monitor only runs once a minute)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], collection: str = "console_sessions") -> None:
        self._sessions = db[collection]

    async def ensure_indexes(self) -> None:
        await self._sessions.create_index("expires_at", expireAfterSeconds=0)

    async def save(self, session_id: str, session: ConsoleSession) -> None:
        await self._sessions.replace_one({"_id": _key(session_id)}, session.as_document(), upsert=True)

    async def find(self, session_id: str, now: datetime) -> ConsoleSession | None:
        document = await self._sessions.find_one({"_id": _key(session_id), "expires_at": {"$gt": now}})
        if document is None:
            return None
        document.pop("_id", None)
        expires_at = document["expires_at"]
        if expires_at.tzinfo is None:  # MongoDB keeps UTC without the zone
            document["expires_at"] = expires_at.replace(tzinfo=now.tzinfo)
        return ConsoleSession.from_document(document)

    async def delete(self, session_id: str) -> None:
        await self._sessions.delete_one({"_id": _key(session_id)})
