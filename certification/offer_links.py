"""The links a candidate answers a seat offer with: signed, expiring tokens, one per offer and action.

A token says *who may do what until when*: `offer id`, `action` (accept or decline) and the offer's
deadline, signed with HMAC-SHA256 (truncated to 128 bits) under `CERTIFICATION_OFFER_TOKEN_KEY`. Nothing is stored per token:

- **signed**: a token whose signature does not match (forged, altered, another key) is `BadToken`;
- **expiring**: past its expiry (the offer's deadline) it is `TokenExpired`, whatever the offer says;
- **single-use**: a token only acts on an offer that is still `offered`; once the offer is answered
  (by this token, its twin, or staff) or lapsed, every token of it answers "already answered". The
  offer's compare-and-set save is what makes one answer win when two clicks race.

Tokens are bearer capabilities: whoever holds one answers for the candidate. So they travel on
Kafka only sealed with the person's key (`ExamSeatOffered.sealed`), are never logged, and the page
that shows an offer never changes it on GET. Pure: no I/O, the clock is an argument.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote

__all__ = [
    "LOCAL_OFFER_TOKEN_KEY",
    "RESPOND_PATH",
    "BadToken",
    "OfferAction",
    "OfferLinks",
    "OfferToken",
    "OfferTokens",
    "TokenExpired",
]

RESPOND_PATH = "/seat-offers/respond"
"""The public page a link opens (on certification's public surface)."""

LOCAL_OFFER_TOKEN_KEY = "local-only seat offer token key: production refuses to start without its own"  # noqa: S105
"""The key of local and test runs when none is set, the same in every replica so that any one can check
a link another signed. Public, so worthless: production settings refuse to load without a real key."""

_VERSION = "v1"
_DOMAIN = b"formation-events/seat-offer-response/v1\x00"
"""Signed with the payload, so a signature made with this key for another purpose never passes here."""


class OfferAction(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"


class BadToken(ValueError):
    """Not a token this service signed (malformed, altered, or signed with another key)."""


class TokenExpired(ValueError):
    """A genuine token past its expiry."""

    def __init__(self, token: OfferToken) -> None:
        super().__init__(f"the link of offer {token.offer_id} expired")
        self.token = token


@dataclass(frozen=True, slots=True)
class OfferToken:
    offer_id: str
    action: OfferAction
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OfferTokens:
    """Signs and checks offer tokens with one key (at least 32 bytes)."""

    def __init__(self, key: str | bytes) -> None:
        key_bytes = key.encode() if isinstance(key, str) else key
        if len(key_bytes) < 32:
            raise ValueError("an offer token key has at least 32 bytes")
        self._key = key_bytes

    def _signature(self, payload: bytes) -> bytes:
        # Truncated to 128 bits (RFC 2104 allows it; still far beyond guessing): a link must fit in a text message.
        return hmac.new(self._key, _DOMAIN + payload, hashlib.sha256).digest()[:16]

    def sign(self, offer_id: str, action: OfferAction, expires_at: datetime) -> str:
        """`v1.<payload>.<signature>`, URL-safe; the payload is `offer_id|action|expiry (epoch seconds)`."""
        if expires_at.tzinfo is None:
            raise ValueError("a token expires at a timezone-aware instant")
        payload = f"{offer_id}|{action.value}|{int(expires_at.timestamp())}".encode()
        return f"{_VERSION}.{_b64(payload)}.{_b64(self._signature(payload))}"

    def verify(self, token: str, *, now: datetime) -> OfferToken:
        """What a genuine, unexpired token allows; `BadToken` or `TokenExpired` otherwise."""
        try:
            version, payload_b64, signature_b64 = token.split(".")
            payload, signature = _unb64(payload_b64), _unb64(signature_b64)
        except (ValueError, binascii.Error):
            raise BadToken("malformed token") from None
        if version != _VERSION or not hmac.compare_digest(signature, self._signature(payload)):
            raise BadToken("bad signature")
        try:
            offer_id, action, expiry = payload.decode().split("|")
            found = OfferToken(offer_id, OfferAction(action), datetime.fromtimestamp(int(expiry), UTC))
        except (ValueError, UnicodeDecodeError):
            raise BadToken("malformed payload") from None  # signed by us, so only an old format would get here
        if now >= found.expires_at:
            raise TokenExpired(found)
        return found


@dataclass(frozen=True, slots=True)
class OfferLinks:
    """The absolute links of an offer, on certification's public address."""

    public_base_url: str
    tokens: OfferTokens

    def url(self, offer_id: str, action: OfferAction, expires_at: datetime) -> str:
        token = self.tokens.sign(offer_id, action, expires_at)
        return f"{self.public_base_url.rstrip('/')}{RESPOND_PATH}?token={quote(token, safe='')}"

    def both(self, offer_id: str, expires_at: datetime) -> dict[str, str]:
        """`accept_url` and `decline_url`, as `ExamSeatOffered` carries them (sealed)."""
        return {
            "accept_url": self.url(offer_id, OfferAction.ACCEPT, expires_at),
            "decline_url": self.url(offer_id, OfferAction.DECLINE, expires_at),
        }
