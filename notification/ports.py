"""The two outside dependencies of notification, as small ports: a mail sender and an SMS sender.

Real adapters: `notification.smtp.SmtpMailSender` (SMTP) and `notification.sms_http.HttpSmsSender`
(a provider's HTTP API). Tests use in-memory fakes that subclass these ports. An adapter never
raises for a failed send: it classifies the failure in a `SendResult`, because what to do next
(retry, give up, fall back) is the retry policy's decision, not the adapter's::

    SendResult.status
    ├── SENT        the provider took the message (an SMTP 250, an HTTP 2xx)
    ├── TRANSIENT   try again later: connection refused, timeout, SMTP 4xx, HTTP 5xx, 429 (retry_at)
    └── PERMANENT   never: SMTP 5xx (bounced when the recipient was refused), HTTP 4xx (invalid number),
                    a message that cannot be written (malformed address or header, a number not in E.164)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["MailSender", "OutgoingEmail", "OutgoingSms", "SendResult", "SendStatus", "SmsSender"]


class SendStatus(StrEnum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    reason: str = ""
    """For failures: what the provider said, without addresses or numbers."""
    retry_at: datetime | None = None
    """For a transient failure: when the provider asked us to come back (Retry-After)."""
    provider_message_id: str | None = None
    bounced: bool = False
    """For a permanent e-mail failure: the recipient was refused."""

    @classmethod
    def sent(cls, provider_message_id: str | None = None) -> SendResult:
        return cls(SendStatus.SENT, provider_message_id=provider_message_id)

    @classmethod
    def transient(cls, reason: str, retry_at: datetime | None = None) -> SendResult:
        return cls(SendStatus.TRANSIENT, reason=reason, retry_at=retry_at)

    @classmethod
    def permanent(cls, reason: str, *, bounced: bool = False) -> SendResult:
        return cls(SendStatus.PERMANENT, reason=reason, bounced=bounced)


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    delivery_id: str
    """Also the base of the Message-ID: a resend after a crash carries the same one."""
    to_address: str
    to_name: str | None
    language: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    reference: str
    """The delivery id, passed to the provider so that it can drop a duplicate."""
    to: str
    text: str


class MailSender(ABC):
    @abstractmethod
    async def send(self, email: OutgoingEmail) -> SendResult: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; nothing to do by default."""


class SmsSender(ABC):
    @abstractmethod
    async def send(self, sms: OutgoingSms) -> SendResult: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; nothing to do by default."""
