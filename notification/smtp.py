"""The e-mail adapter: a MIME message (plain text and HTML alternatives, UTF-8) sent over SMTP.

`compose_mime` is pure, so the message's shape is tested without a server. `SmtpMailSender`
opens one SMTP connection per message (aiosmtplib): notifications are a trickle, and a
connection held open between them would only time out on the server side.

The Message-ID is derived from the delivery id: if the process dies after the server accepted a
message but before the delivery was marked sent, the resend carries the same Message-ID, which
lets mail clients and some servers fold the duplicate. SMTP itself has no idempotency key, so
that resend can still reach the inbox - at most once more, see `notification.sender`.
"""

from __future__ import annotations

import email.errors
import email.policy
import re
import unicodedata
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib
import structlog

from notification.ports import MailSender, OutgoingEmail, SendResult
from services.clock import Clock, SystemClock
from services.logging import scrub

__all__ = ["InvalidMessage", "SmtpMailSender", "classify_smtp_error", "compose_mime", "header_text", "message_id_for"]

log = structlog.get_logger(__name__)


def message_id_for(delivery_id: str, domain: str) -> str:
    # A Message-ID's left part is a dot-atom: the colon of the delivery id is not allowed there.
    return f"<{delivery_id.replace(':', '.')}@{domain}>"


class InvalidMessage(ValueError):
    """The message cannot be written as e-mail (a malformed recipient address): sending it again
    would fail the same way. Its text never quotes the address."""


# Control characters (CR, LF, NUL, ...), format characters (bidi overrides, zero-width) and
# line/paragraph separators: none belongs in a one-line header, and CR/LF would start a new one.
_NOT_IN_HEADERS = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# A recipient address as we accept it: one @, no whitespace or control character, a dotted domain.
_ADDRESS = re.compile(r"[^\s@]+@[^\s@.][^\s@]*\.[^\s@]+")


def header_text(value: str) -> str:
    """`value` fit for a header: every control or separator character becomes a space, runs of
    spaces one. A name typed with a line break is still the person's name, so it is cleaned
    rather than refused; the e-mail library would refuse it, and a raw CR/LF would inject headers."""
    cleaned = "".join(" " if unicodedata.category(char) in _NOT_IN_HEADERS else char for char in value)
    return " ".join(cleaned.split())


def _recipient(name: str | None, address: str) -> Address:
    if not _ADDRESS.fullmatch(address) or any(unicodedata.category(c) in _NOT_IN_HEADERS for c in address):
        raise InvalidMessage("invalid recipient address")
    user, _, domain = address.rpartition("@")
    return Address(display_name=header_text(name or ""), username=user, domain=domain)


def _mailbox(header: str) -> Address:
    name, address = parseaddr(header)
    if "@" not in address:
        raise ValueError("the From address must be like 'Name <user@domain>'")
    user, domain = address.rsplit("@", 1)
    return Address(display_name=name, username=user, domain=domain)


def compose_mime(message: OutgoingEmail, *, from_address: str, sent_at: datetime, message_id_domain: str) -> EmailMessage:
    """A `multipart/alternative` message, plain text first and HTML second (the preferred one last)."""
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must be timezone-aware")
    mime = EmailMessage(policy=email.policy.SMTP)
    mime["From"] = _mailbox(from_address)
    mime["To"] = _recipient(message.to_name, message.to_address)
    mime["Subject"] = header_text(message.subject)  # a course title is typed by staff, and may hold a line break
    mime["Date"] = format_datetime(sent_at)
    mime["Message-ID"] = message_id_for(message.delivery_id, message_id_domain)
    # RFC 3834: an automatic message; vacation responders and our own intake inbox leave it be.
    mime["Auto-Submitted"] = "auto-generated"
    mime.set_content(message.text, subtype="plain", charset="utf-8")
    mime.add_alternative(message.html, subtype="html", charset="utf-8")
    # After the content: setting it clears every Content-* header.
    mime["Content-Language"] = message.language
    return mime


def classify_smtp_error(error: Exception) -> SendResult:
    """Transient for 4xx replies, timeouts and broken connections; permanent for 5xx replies and for
    a message that cannot be written (an address or header the e-mail library refuses)."""
    if isinstance(error, InvalidMessage):
        return SendResult.permanent(f"invalid message: {error}")
    if isinstance(error, ValueError | email.errors.MessageError):
        # The library's text may quote the header it refused: only the kind of error is kept.
        return SendResult.permanent(f"invalid message: {type(error).__name__}")
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in error.recipients]
        if codes and all(500 <= c < 600 for c in codes):
            return SendResult.permanent(f"SMTP {codes[0]} recipient refused", bounced=True)
        return SendResult.transient(f"SMTP {codes[0] if codes else '?'} recipient deferred")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        reason = f"SMTP {error.code} {scrub(error.message)[:200]}".strip()
        if 500 <= error.code < 600:
            return SendResult.permanent(reason, bounced=isinstance(error, aiosmtplib.SMTPRecipientRefused))
        return SendResult.transient(reason)
    if isinstance(error, aiosmtplib.SMTPException | OSError | TimeoutError):
        return SendResult.transient(f"SMTP unavailable: {type(error).__name__}")
    raise error


class SmtpMailSender(MailSender):
    def __init__(
        self,
        *,
        host: str,
        port: int,
        from_address: str,
        message_id_domain: str,
        tls: str = "none",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        if tls not in ("none", "starttls", "tls"):
            raise ValueError("tls is one of none, starttls, tls")
        _mailbox(from_address)  # fail at start, not on the first message
        self.host = host
        self.port = port
        self.from_address = from_address
        self.message_id_domain = message_id_domain
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self._clock: Clock = clock or SystemClock()

    async def send(self, email: OutgoingEmail) -> SendResult:
        try:
            mime = compose_mime(
                email,
                from_address=self.from_address,
                sent_at=self._clock.now().astimezone(UTC),
                message_id_domain=self.message_id_domain,
            )
        except ValueError as error:  # the same message would be refused the same way: never retried
            return classify_smtp_error(error)
        try:
            errors, response = await aiosmtplib.send(
                mime,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.tls == "tls",
                start_tls=self.tls == "starttls",
                timeout=self.timeout_s,
            )
        except Exception as error:  # noqa: BLE001 - classified; anything unknown is re-raised
            return classify_smtp_error(error)
        if errors:  # a single recipient: refused ones raise, so this is defensive
            code = next(iter(errors.values())).code
            return SendResult.permanent(f"SMTP {code} recipient refused", bounced=True)
        return SendResult.sent(provider_message_id=scrub(response)[:200] or None)
