"""The job seeker's status link: a signed, expiring, revocable token naming one request.

A token says *which request, until when, and which link*: `request_id|expiry|link_id`, signed with
HMAC-SHA256 (truncated to 128 bits, so that the link fits in a text message) under
`INTAKE_STATUS_LINK_KEY`. Nothing is stored per token to check it:

- **signed**: a forged or altered token, or one signed under another key, is `BadStatusToken`;
- **expiring**: past its expiry it is `StatusLinkExpired`;
- **revocable**: the link id is random; revoking a link records its id in the request's status
  entry (`intake.status.projection`), and the page refuses every token carrying it.

Tokens are bearer capabilities: they travel on Kafka only sealed (`TrainingRequestReceived.status_url`),
are never logged, and a GET of the page changes nothing. Pure: no I/O, the clock is an argument.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas import Language

__all__ = [
    "LOCAL_STATUS_LINK_KEY",
    "BadStatusToken",
    "StatusLinkExpired",
    "StatusLinks",
    "StatusToken",
    "StatusTokens",
    "status_path",
]

LOCAL_STATUS_LINK_KEY = "local-only status link key: production refuses to start without its own"
"""The key of local and test runs when none is set, the same in every replica so that any one can check
a link another signed. Public, so worthless: production settings refuse to load without a real key."""

_VERSION = "s1"
_DOMAIN = b"formation-events/request-status/v1\x00"
"""Signed with the payload, so a signature made with this key for another purpose never passes here."""


class BadStatusToken(ValueError):
    """Not a token this service signed (malformed, altered, or signed with another key)."""


class StatusLinkExpired(ValueError):
    """A genuine token past its expiry."""

    def __init__(self, token: StatusToken) -> None:
        super().__init__("the status link expired")
        self.token = token


@dataclass(frozen=True, slots=True)
class StatusToken:
    request_id: str
    expires_at: datetime
    link_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StatusTokens:
    """Signs and checks status tokens with one key (at least 32 bytes)."""

    def __init__(self, key: str | bytes) -> None:
        key_bytes = key.encode() if isinstance(key, str) else key
        if len(key_bytes) < 32:
            raise ValueError("a status link key has at least 32 bytes")
        self._key = key_bytes

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _DOMAIN + payload, hashlib.sha256).digest()[:16]

    def sign(self, request_id: str, expires_at: datetime, link_id: str | None = None) -> str:
        """`s1.<payload>.<signature>`, URL-safe; the payload is `request_id|expiry (epoch seconds)|link_id`."""
        if expires_at.tzinfo is None:
            raise ValueError("a token expires at a timezone-aware instant")
        link_id = link_id or secrets.token_hex(6)
        if "|" in request_id or "|" in link_id:
            raise ValueError("request and link ids never hold '|'")
        payload = f"{request_id}|{int(expires_at.timestamp())}|{link_id}".encode()
        return f"{_VERSION}.{_b64(payload)}.{_b64(self._signature(payload))}"

    def verify(self, token: str, *, now: datetime) -> StatusToken:
        """What a genuine, unexpired token names; `BadStatusToken` or `StatusLinkExpired` otherwise."""
        try:
            version, payload_b64, signature_b64 = token.split(".")
            payload, signature = _unb64(payload_b64), _unb64(signature_b64)
        except (ValueError, binascii.Error):
            raise BadStatusToken("malformed token") from None
        if version != _VERSION or not hmac.compare_digest(signature, self._signature(payload)):
            raise BadStatusToken("bad signature")
        try:
            request_id, expiry, link_id = payload.decode().split("|")
            found = StatusToken(request_id, datetime.fromtimestamp(int(expiry), UTC), link_id)
        except (ValueError, UnicodeDecodeError):
            raise BadStatusToken("malformed payload") from None
        if now >= found.expires_at:
            raise StatusLinkExpired(found)
        return found


def status_path(language: Language | str, token: str) -> str:
    code = language.value if isinstance(language, Language) else language
    return f"/{code}/status/{token}"


@dataclass(frozen=True, slots=True)
class StatusLinks:
    """Mints the absolute link of a request's status page, in the person's language."""

    public_base_url: str
    tokens: StatusTokens
    ttl: timedelta = timedelta(days=90)

    def mint(self, request_id: str, language: Language, *, now: datetime) -> str:
        token = self.tokens.sign(request_id, now + self.ttl)
        return f"{self.public_base_url.rstrip('/')}{status_path(language, token)}"
