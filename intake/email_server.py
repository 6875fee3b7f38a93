"""The e-mail channel: an SMTP listener (aiosmtpd) for the service's inbox.

Each message delivered to an accepted inbox address becomes one request through
`AcceptRequests.accept`; the sending server gets `250` only after `accept` returned, and a
temporary `451` when it failed, so that it retries: a mail is never silently dropped.
Auto-replies and bounces get `250` and no request. Messages over `max_message_bytes` are
refused with `552` by aiosmtpd itself (SIZE is advertised in the EHLO reply).

The SMTP server runs on the caller's event loop (`loop.create_server`), not in aiosmtpd's
`Controller` thread: the pipeline's MongoDB client belongs to that loop, and one loop means no
cross-thread hand-over to get wrong. Only the CPU-bound parse runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from intake.domain import AcceptRequests
from intake.email_parsing import parse_email, to_draft
from services.catalogue import Catalogue, load_catalogue

__all__ = ["EmailInbox", "EmailInboxSettings", "InboxHandler"]

log = structlog.get_logger(__name__)

ACCEPTED = "250 Message accepted for delivery (request {request_id})"
AUTOMATIC = "250 OK: automatic message, no request made"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please retry"
UNKNOWN_RECIPIENT = "550 5.1.1 Unknown recipient"


class EmailInboxSettings(BaseSettings):
    """The SMTP listener, from `INTAKE_SMTP_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_SMTP_", extra="ignore")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8025, ge=0, le=65535, description="0 picks a free port (tests).")
    hostname: str | None = Field(None, description="Name in the greeting and the EHLO reply; the host's FQDN when unset.")
    accepted_recipients: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["formations-en-ligne@bruxellesformation.brussels"],
        description="Inbox addresses (case-insensitive); a comma-separated list in the environment.",
    )
    max_message_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Larger messages are refused with 552 (advertised as SIZE)."
    )
    shutdown_grace_s: float = Field(10.0, ge=0, description="How long `stop` waits for messages being accepted.")

    @field_validator("accepted_recipients", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [address for address in (part.strip() for part in value.split(",")) if address]
        return value


class InboxHandler:
    """aiosmtpd handler: recipients are checked at RCPT, each message becomes a request at DATA."""

    def __init__(
        self,
        pipeline: AcceptRequests,
        *,
        accepted_recipients: Sequence[str],
        catalogue: Catalogue,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pipeline = pipeline
        self._recipients = frozenset(address.strip().lower() for address in accepted_recipients)
        self._catalogue = catalogue
        self._clock = clock
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.strip().lower() not in self._recipients:
            log.info("email.recipient_refused")
            return UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._deliver(envelope)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Returns once no message is being accepted."""
        await self._idle.wait()

    async def _deliver(self, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            # A 10 MiB message with attachments is real CPU work: not on the event loop.
            parsed = await asyncio.to_thread(
                parse_email,
                raw,
                catalogue=self._catalogue,
                received_at=self._clock(),
                envelope_sender=envelope.mail_from,
            )
            if parsed.is_automatic:
                log.info("email.automatic_ignored", reason=parsed.automatic_reason, size_bytes=len(raw))
                return AUTOMATIC
            draft = to_draft(parsed)
            accepted = await self._pipeline.accept(draft)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the sender must retry
            # The type only: messages of validation or driver errors can quote personal data.
            log.warning("email.accept_failed", error=type(exc).__name__)
            return TEMPORARY_FAILURE
        log.info(
            "email.accepted",
            request_id=accepted.request_id,
            duplicate=accepted.duplicate,
            language=str(parsed.language),
            needs_triage=parsed.needs_triage,
            attachments=len(parsed.attachments),
        )
        return ACCEPTED.format(request_id=accepted.request_id[:8])


class EmailInbox:
    """The SMTP listener's lifecycle: `await start()` in the service's lifespan, `await stop()` after."""

    def __init__(
        self,
        pipeline: AcceptRequests,
        settings: EmailInboxSettings | None = None,
        *,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.settings = settings or EmailInboxSettings()
        self.handler = InboxHandler(
            pipeline,
            accepted_recipients=self.settings.accepted_recipients,
            catalogue=catalogue or load_catalogue(),
        )
        self._server: asyncio.Server | None = None
        self._connections: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def port(self) -> int:
        """The port actually listened on (useful with `port=0`)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the inbox is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        if not self.settings.enabled:
            log.info("email.inbox_disabled")
            return
        if self._server is not None:
            return
        # aiosmtpd logs every envelope address at INFO and message lines at DEBUG.
        mail_log = logging.getLogger("mail.log")
        mail_log.setLevel(max(mail_log.getEffectiveLevel(), logging.WARNING))
        loop = asyncio.get_running_loop()
        hostname = self.settings.hostname or await asyncio.to_thread(socket.getfqdn)

        def protocol() -> SMTP:
            smtp = SMTP(
                self.handler,
                data_size_limit=self.settings.max_message_bytes,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname=hostname,
                loop=loop,
            )
            self._connections.add(smtp)
            return smtp

        self._server = await loop.create_server(protocol, host=self.settings.host, port=self.settings.port)
        log.info("email.inbox_listening", host=self.settings.host, port=self.port)

    async def stop(self) -> None:
        """Stop listening, let messages being accepted finish (within the grace time), hang up."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        try:
            await asyncio.wait_for(self.handler.wait_idle(), self.settings.shutdown_grace_s)
        except TimeoutError:
            # Those senders get no reply and retry; a request accepted meanwhile is deduplicated.
            log.warning("email.inbox_stop_timeout")
        for smtp in list(self._connections):
            if smtp.transport is not None:
                smtp.transport.close()
        await server.wait_closed()
        log.info("email.inbox_stopped")
