"""The job seeker's status link: a signed, expiring, revocable token naming one request.

A token says *which request, until when, and which link*, signed with HMAC-SHA256 (truncated to 128
bits, so that the link fits in a text message) under `INTAKE_STATUS_LINK_KEY`. Two forms:

- `s2.<base64url(request UUID, 16 bytes | expiry, 4 bytes | link id, 6 bytes | MAC, 16 bytes)>`, 59
  characters, minted for every request whose id is a UUID (all of intake's): the link is short enough
  to leave room in the acknowledgement text message;
- `s1.<base64url(request_id|expiry|link_id)>.<base64url(MAC)>`, 106 characters for a UUID, minted only for a
  request id that is not a UUID, and still checked because links sent before s2 live 90 days.

Both name the link by the same kind of id (12 hex digits), so revocation does not care which form
carried it. Nothing is stored per token to check it:

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
import re
import secrets
import struct
import uuid
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
_COMPACT_VERSION = "s2"
_COMPACT_DOMAIN = b"formation-events/request-status/v2\x00"
"""A domain of its own, so that no s1 payload and signature can be read as an s2 one, nor the reverse."""
_EXPIRY = struct.Struct(">I")
"""Unsigned seconds since the epoch: enough until 2106."""
_LINK_ID_BYTES = 6
_MAC_BYTES = 16
_COMPACT_BYTES = 16 + _EXPIRY.size + _LINK_ID_BYTES + _MAC_BYTES
_COMPACT_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{(_COMPACT_BYTES * 4 + 2) // 3}}}")
"""42 bytes are exactly 56 characters, no padding and no spare bits: one text per token, so that
changing any character changes the bytes (the decoder alone would skip characters it does not know)."""
_LINK_ID = re.compile(rf"[0-9a-f]{{{2 * _LINK_ID_BYTES}}}")


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

    def _signature(self, payload: bytes, domain: bytes = _DOMAIN) -> bytes:
        return hmac.new(self._key, domain + payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, request_id: str, expires_at: datetime, link_id: str | None = None) -> str:
        """A URL-safe token: the compact `s2` when the request id is a UUID (in its canonical spelling,
        so that the id read back is the one signed) and the link id 12 hex digits (a fresh one if
        none is given), `s1.<payload>.<signature>` otherwise."""
        if expires_at.tzinfo is None:
            raise ValueError("a token expires at a timezone-aware instant")
        link_id = link_id or secrets.token_hex(_LINK_ID_BYTES)
        compact = self._sign_compact(request_id, expires_at, link_id)
        if compact is not None:
            return compact
        if "|" in request_id or "|" in link_id:
            raise ValueError("request and link ids never hold '|'")
        payload = f"{request_id}|{int(expires_at.timestamp())}|{link_id}".encode()
        return f"{_VERSION}.{_b64(payload)}.{_b64(self._signature(payload))}"

    def _sign_compact(self, request_id: str, expires_at: datetime, link_id: str) -> str | None:
        try:
            request_uuid = uuid.UUID(request_id)
        except ValueError:
            return None
        expiry = int(expires_at.timestamp())
        if str(request_uuid) != request_id or not _LINK_ID.fullmatch(link_id) or not 0 <= expiry < 2**32:
            return None
        payload = request_uuid.bytes + _EXPIRY.pack(expiry) + bytes.fromhex(link_id)
        return f"{_COMPACT_VERSION}.{_b64(payload + self._signature(payload, _COMPACT_DOMAIN))}"

    def verify(self, token: str, *, now: datetime) -> StatusToken:
        """What a genuine, unexpired token names; `BadStatusToken` or `StatusLinkExpired` otherwise."""
        found = self._verify_compact(token) if token.startswith(f"{_COMPACT_VERSION}.") else self._verify_s1(token)
        if now >= found.expires_at:
            raise StatusLinkExpired(found)
        return found

    def _verify_compact(self, token: str) -> StatusToken:
        body = token.removeprefix(f"{_COMPACT_VERSION}.")
        if not _COMPACT_TOKEN.fullmatch(body):
            raise BadStatusToken("malformed token")
        raw = _unb64(body)
        payload, signature = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(signature, self._signature(payload, _COMPACT_DOMAIN)):
            raise BadStatusToken("bad signature")
        (expiry,) = _EXPIRY.unpack_from(payload, 16)
        link_id = payload[16 + _EXPIRY.size :].hex()
        return StatusToken(str(uuid.UUID(bytes=payload[:16])), datetime.fromtimestamp(expiry, UTC), link_id)

    def _verify_s1(self, token: str) -> StatusToken:
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
