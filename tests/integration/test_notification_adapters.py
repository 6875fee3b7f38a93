"""The real adapters against real servers over TCP: SMTP to an aiosmtpd sink, SMS to an HTTP
provider (FastAPI on uvicorn, in a thread). The port contracts of the fakes run here too.

`SmtpSink` and `SmsProvider` are also used by tests/integration/test_notification_service.py.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from notification.ports import MailSender, SendStatus
from notification.sms_http import HttpSmsSender
from notification.smtp import SmtpMailSender
from tests.unit.test_notification_ports import MailSenderContract, SmsSenderContract, an_email, an_sms

pytestmark = pytest.mark.integration

SMS_TOKEN = "provider-test-token"
FROM = "Bruxelles Formation <no-reply@bruxellesformation.brussels>"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpSink:
    """A real SMTP server (aiosmtpd's Controller, in its own thread) that keeps what it accepts.

    Addresses in `refuse` get `550 5.1.1` at RCPT, like a server whose mailbox does not exist.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.refuse: set[str] = set()
        self._messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:  # noqa: N802 - aiosmtpd's hook name
        if address.lower() in self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(message)
        return "250 2.0.0 Message accepted"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] | None = None
    delay_s: float = 0.0
    error: str = ""


class SmsProvider:
    """A real HTTP server playing an SMS provider: `POST /v1/messages` with a bearer token.

    Answers come from `script` (then 200); `calls` has every request body, `accepted` those answered 2xx.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.script: deque[Answer] = deque()
        self._calls: list[dict[str, Any]] = []
        self._accepted: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        app = FastAPI()

        @app.post("/v1/messages")
        async def send(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {SMS_TOKEN}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            body = await request.json()
            with self._lock:
                self._calls.append(body)
                answer = self.script.popleft() if self.script else Answer()
            if answer.delay_s:
                await asyncio.sleep(answer.delay_s)
            if 200 <= answer.status < 300:
                with self._lock:
                    self._accepted.append(body)
                return JSONResponse({"id": f"msg-{next(self._ids)}", "status": "queued"}, status_code=answer.status)
            return JSONResponse({"error": answer.error or "failed"}, status_code=answer.status, headers=answer.headers)

        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, log_level="warning", ws="none", lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, name="sms-provider", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/messages"

    @property
    def calls(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._calls)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._accepted)

    def start(self) -> SmsProvider:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "the SMS provider did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    started = SmtpSink().start()
    yield started
    started.stop()


@pytest.fixture
def provider() -> Iterator[SmsProvider]:
    started = SmsProvider().start()
    yield started
    started.stop()


def smtp_sender(port: int, timeout_s: float = 10.0) -> SmtpMailSender:
    return SmtpMailSender(
        host="127.0.0.1", port=port, from_address=FROM, message_id_domain="notification.test", timeout_s=timeout_s
    )


class TestSmtpMailSender(MailSenderContract):
    @pytest.fixture(autouse=True)
    def server(self, sink: SmtpSink) -> None:
        self._sink = sink

    def sender(self) -> MailSender:
        return smtp_sender(self._sink.port)

    async def received(self) -> list[tuple[str, str]]:
        return [(m["To"].addresses[0].addr_spec, str(m["Subject"])) for m in self._sink.messages]

    async def test_the_message_arrives_as_multipart_alternative_in_utf8(self) -> None:
        assert (await self.sender().send(an_email())).status is SendStatus.SENT
        (message,) = self._sink.messages
        assert message.get_content_type() == "multipart/alternative"
        plain, html = message.iter_parts()
        assert plain.get_content_type() == "text/plain" and "confirmée" in plain.get_content()
        assert html.get_content_type() == "text/html" and "confirmée" in html.get_content()
        assert message["Message-ID"] == "<0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11.email@notification.test>"
        assert str(message["To"]) == "Amina Ël Idrissi <amina@example.org>"
        assert message["Date"] is not None and message["Auto-Submitted"] == "auto-generated"

    async def test_a_refused_recipient_bounces(self) -> None:
        self._sink.refuse.add("amina@example.org")
        result = await self.sender().send(an_email())
        assert result.status is SendStatus.PERMANENT and result.bounced
        assert self._sink.messages == []


async def test_smtp_with_nobody_listening_is_transient() -> None:
    result = await smtp_sender(free_port(), timeout_s=2).send(an_email())
    assert result.status is SendStatus.TRANSIENT


class TestHttpSmsSender(SmsSenderContract):
    @pytest.fixture(autouse=True)
    async def server(self, provider: SmsProvider) -> AsyncIterator[None]:
        self._provider = provider
        self._senders: list[HttpSmsSender] = []
        yield
        for sender in self._senders:
            await sender.aclose()

    def sender(self, timeout_s: float = 5.0, token: str = SMS_TOKEN) -> HttpSmsSender:
        sender = HttpSmsSender(self._provider.url, token=token, timeout_s=timeout_s)
        self._senders.append(sender)
        return sender

    async def received(self) -> list[tuple[str, str, str]]:
        return [(b["to"], b["text"], b["reference"]) for b in self._provider.accepted]

    async def test_each_answer_of_a_real_provider(self) -> None:
        now = datetime.now(UTC)
        self._provider.script.extend(
            [
                Answer(503, error="maintenance"),
                Answer(400, error="invalid destination +32470123456"),
                Answer(429, headers={"Retry-After": "60"}),
            ]
        )
        sender = self.sender()
        unavailable, invalid, throttled, fine = [await sender.send(an_sms()) for _ in range(4)]
        assert unavailable.status is SendStatus.TRANSIENT and unavailable.reason == "HTTP 503 maintenance"
        assert invalid.status is SendStatus.PERMANENT and "470123456" not in invalid.reason
        assert throttled.status is SendStatus.TRANSIENT and throttled.retry_at is not None
        assert now + timedelta(seconds=59) <= throttled.retry_at <= datetime.now(UTC) + timedelta(seconds=61)
        assert fine.status is SendStatus.SENT and fine.provider_message_id == "msg-1"
        assert len(self._provider.calls) == 4 and len(self._provider.accepted) == 1

    async def test_a_provider_slower_than_the_timeout_is_transient(self) -> None:
        self._provider.script.append(Answer(200, delay_s=1.5))
        result = await self.sender(timeout_s=0.3).send(an_sms())
        assert result.status is SendStatus.TRANSIENT and "timeout" in result.reason

    async def test_a_wrong_token_is_transient(self) -> None:
        result = await self.sender(token="wrong").send(an_sms())
        assert result.status is SendStatus.TRANSIENT and result.reason.startswith("HTTP 401")
