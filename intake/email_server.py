"""The e-mail channel: an SMTP listener (aiosmtpd) for the service's inbox.

Each message delivered to an accepted inbox address becomes one request through
`AcceptRequests.accept`; the sending server gets `250` only after `accept` returned, and a
temporary `451` when it failed, so that it retries: a mail is never silently dropped.
Auto-replies and bounces get `250` and no request.

Every entry is bounded, because the inbox is open to the Internet: at most `max_connections`
sessions at once (one more gets `421` and is hung up on), at most `max_recipients` RCPT per
message (`452` after), RCPT only to the inbox addresses (`550`: never a relay), SIZE advertised
in the EHLO reply and enforced (`552`, on MAIL FROM's SIZE and while DATA streams in). DATA is
written to a spool file that stays in memory up to `spool_memory_bytes` and goes to disk past
it (aiosmtpd keeps it as a list of lines, about three times its size), and at most
`parallel_parses` messages are parsed at once: the memory used is bounded by those numbers,
not by how many senders push maximum-size mail at the same moment.

The SMTP server runs on the caller's event loop (`loop.create_server`), not in aiosmtpd's
`Controller` thread: the pipeline's MongoDB client belongs to that loop, and one loop means no
cross-thread hand-over to get wrong. Only the CPU-bound parse runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import IO, Annotated, Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from intake.domain import AcceptRequests
from intake.email_parsing import ParsedEmail, parse_email, to_draft
from services.catalogue import Catalogue, load_catalogue

__all__ = ["EmailInbox", "EmailInboxSettings", "InboxHandler"]

log = structlog.get_logger(__name__)

ACCEPTED = "250 Message accepted for delivery (request {request_id})"
AUTOMATIC = "250 OK: automatic message, no request made"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please retry"
UNKNOWN_RECIPIENT = "550 5.1.1 Unknown recipient"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MUCH_DATA = "552 5.3.4 Message size exceeds fixed maximum message size"
LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"


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
    max_connections: int = Field(50, gt=0, description="SMTP sessions at once; one more is answered 421 and hung up on.")
    max_recipients: int = Field(20, gt=0, description="RCPT commands per message; more are answered 452.")
    spool_memory_bytes: int = Field(
        1024 * 1024, ge=0, description="DATA is held in memory up to this size, then spooled to a temporary file."
    )
    parallel_parses: int = Field(
        1,
        gt=0,
        description=(
            "Messages parsed at once: a parse holds about seven times the message in memory, and parses share the GIL, "
            "so more than one buys little time for much memory."
        ),
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
        max_recipients: int = 20,
        parallel_parses: int = 1,
    ) -> None:
        self._pipeline = pipeline
        self._recipients = frozenset(address.strip().lower() for address in accepted_recipients)
        self._max_recipients = max_recipients
        self._parses = asyncio.Semaphore(parallel_parses)
        self._catalogue = catalogue
        self._clock = clock
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        attempts = getattr(envelope, "rcpt_attempts", 0) + 1
        # Counted on the envelope, so that RSET and each new message start again.
        envelope.rcpt_attempts = attempts  # type: ignore[attr-defined]
        if attempts > self._max_recipients:
            # Refused ones count too: 5 000 guesses at our addresses in one session are no mail.
            if attempts == self._max_recipients + 1:
                log.info("email.recipients_capped", max_recipients=self._max_recipients)
            return TOO_MANY_RECIPIENTS
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

    def _parse(self, envelope: Envelope, received_at: datetime) -> tuple[ParsedEmail, int]:
        """Parse the message (a worker thread): its bytes are read from the spool only for the parse."""
        spool: IO[bytes] | None = getattr(envelope, "spool", None)
        if spool is not None:
            spool.seek(0)
            raw = spool.read()
        else:
            raw = envelope.original_content or b""
        parsed = parse_email(raw, catalogue=self._catalogue, received_at=received_at, envelope_sender=envelope.mail_from)
        return parsed, len(raw)

    async def _deliver(self, envelope: Envelope) -> str:
        try:
            # A 10 MiB message with attachments is real CPU work (not on the event loop) and a few
            # times its size in memory while parsed: a few at a time, whoever sends how much.
            async with self._parses:
                parsed, size = await asyncio.to_thread(self._parse, envelope, self._clock())
            if parsed.is_automatic:
                log.info("email.automatic_ignored", reason=parsed.automatic_reason, size_bytes=size)
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
            max_recipients=self.settings.max_recipients,
            parallel_parses=self.settings.parallel_parses,
        )
        self._server: asyncio.Server | None = None
        self._connections: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._open_sessions = 0

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

        def protocol() -> asyncio.BaseProtocol:
            if self._open_sessions >= self.settings.max_connections:
                log.warning("email.connection_refused", reason="too many connections")
                return _RefuseConnection()
            self._open_sessions += 1
            smtp = _SpoolingSMTP(
                self.handler,
                spool_memory_bytes=self.settings.spool_memory_bytes,
                on_closed=self._session_closed,
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

    @property
    def open_sessions(self) -> int:
        return self._open_sessions

    def _session_closed(self) -> None:
        self._open_sessions -= 1

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


class _RefuseConnection(asyncio.Protocol):
    """One connection too many: `421` (RFC 5321 3.8) and hang up, before any session is set up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(f"{TOO_MANY_CONNECTIONS}\r\n".encode())
        transport.close()


class _SpooledEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.spool: IO[bytes] | None = None


class _SpoolingSMTP(SMTP):
    """aiosmtpd's SMTP, except that DATA goes to a spool file instead of a list of lines in memory.

    `smtp_DATA` follows aiosmtpd 1.4's (same replies, same states, dot-unstuffing of RFC 5321
    4.5.2), and the handler's DATA hook finds the message in `envelope.spool`, `original_content`
    staying None. The spool is closed (its file removed) once the hook has answered.
    """

    def __init__(self, handler: Any, *, spool_memory_bytes: int, on_closed: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._spool_memory_bytes = spool_memory_bytes
        self._on_closed: Callable[[], None] | None = on_closed

    def _create_envelope(self) -> Envelope:
        return _SpooledEnvelope()

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            on_closed, self._on_closed = self._on_closed, None
            if on_closed is not None:
                on_closed()

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - the name aiosmtpd calls
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert isinstance(envelope, _SpooledEnvelope)
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        limit = self.data_size_limit
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=self._spool_memory_bytes)  # noqa: SIM115 - closed below or by the hook's caller
        received = 0
        too_much = too_long = False
        fragments: list[bytes] = []
        try:
            while self.transport is not None:
                try:
                    line = await self._reader.readuntil(b"\r\n")
                except asyncio.CancelledError:
                    self._writer.close()  # the connection went away during DATA (as aiosmtpd does)
                    raise
                except asyncio.LimitOverrunError as overrun:
                    # A line longer than the stream's limit: drained, never stored.
                    too_long = True
                    line = await self._reader.read(overrun.consumed)
                if not fragments and line == b".\r\n":
                    break
                received += len(line)
                if limit and received > limit:
                    too_much = True  # keep reading to the end (RFC 5321 4.2.5), store nothing more
                if too_much or too_long:
                    fragments.clear()
                    continue
                fragments.append(line)
                if line.endswith(b"\r\n"):
                    whole = b"".join(fragments)
                    fragments.clear()
                    if len(whole) > self.line_length_limit:
                        too_long = True
                        continue
                    spool.write(whole[1:] if whole.startswith(b".") else whole)
            if too_long or too_much:
                spool.close()
                await self.push(LINE_TOO_LONG if too_long and not too_much else TOO_MUCH_DATA)
                self.envelope = self._create_envelope()  # aiosmtpd's post-DATA state
                return
            envelope.spool = spool
            status = await self._call_handler_hook("DATA")
        finally:
            spool.close()
        self.envelope = self._create_envelope()  # aiosmtpd's post-DATA state
        await self.push(status if isinstance(status, str) else "250 OK")
