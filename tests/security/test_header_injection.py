"""Header injection through a name: a web form's name field carries `CR LF Bcc: <attacker>`, hoping that
the confirmation e-mail also goes to the attacker. Against the real sender, the running mongod and a
real SMTP server that records each envelope: exactly one message goes out, to the person only, with the
name cleaned, and the delivery is not retried."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from notification.ports import MailSender, OutgoingEmail, SendResult
from schemas import Contact
from services.clock import FixedClock
from services.logging import configure_logging
from tests.factories import make_request
from tests.integration.test_notification_adapters import SmtpSink
from tests.integration.test_notification_service import EMAIL, Replicas, provider, replicas, routed_after
from tests.security.conftest import Attacks

pytestmark = [pytest.mark.security, pytest.mark.integration]

__all__ = ["provider", "replicas"]  # fixtures of the notification tests, used here

ATTACKER = "evil@attacker.example"
INJECTING_NAME = f"Amina\r\nBcc: {ATTACKER}"


class EnvelopeSink(SmtpSink):
    """The SMTP sink, also keeping each message's envelope recipients (what a Bcc would add to)."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[list[str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(list(envelope.rcpt_tos))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def sink() -> Iterator[EnvelopeSink]:
    started = EnvelopeSink()
    started.start()
    yield started
    started.stop()


async def test_a_name_carrying_a_bcc_header_sends_one_clean_email_to_the_person_only(
    replicas: Replicas, sink: EnvelopeSink, attacks: Attacks
) -> None:
    request = make_request(contact=Contact(name=INJECTING_NAME, email=EMAIL, phone=None))
    await replicas.service.record_contact(request)
    await replicas.service.notify(routed_after(request))
    sender = replicas.make_sender("replica-a")
    clock = replicas.service.clock
    assert isinstance(clock, FixedClock)

    assert await sender.run_once() == 1
    clock.advance(timedelta(hours=2))  # past every retry the policy could have scheduled
    assert await sender.run_once() == 0

    assert sink.envelopes == [[EMAIL]]
    (message,) = sink.messages
    assert message["Bcc"] is None and ATTACKER not in [a.addr_spec for a in message["To"].addresses]
    assert message["To"].addresses[0].display_name == f"Amina Bcc: {ATTACKER}"
    deliveries: list[dict[str, Any]] = await replicas.deliveries._deliveries.find({}).to_list()  # a test may look inside
    assert [(d["status"], d["attempts"]) for d in deliveries] == [("sent", 1)]
    attacks.record(
        "header injection: CR/LF + Bcc in a name",
        tried="confirmation e-mail through the real sender and SMTP",
        refused=True,
        nothing_lost=True,
    )


class QuotingMailSender(MailSender):
    """An adapter that crashes with the recipient's name and address in its message, as a library might."""

    async def send(self, email: OutgoingEmail) -> SendResult:
        raise RuntimeError(f"cannot encode header {email.to_name!r} <{email.to_address}>")


async def test_an_adapter_error_quoting_the_name_reaches_the_logs_scrubbed(replicas: Replicas, attacks: Attacks) -> None:
    name = " ".join(["Wendy", "Vanderbeken"])  # not a literal: a traceback quotes source lines
    request = make_request(contact=Contact(name=name, email=EMAIL, phone=None))
    await replicas.service.record_contact(request)
    await replicas.service.notify(routed_after(request))
    sender = replicas.make_sender("replica-a")
    sender.mail = QuotingMailSender()
    configure_logging(service="notification", fmt="json")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    try:
        assert await sender.run_once() == 1
    finally:
        handler.setStream(previous)
    logged = stream.getvalue()
    assert "notification.adapter_failed" in logged and "cannot encode header" in logged
    assert name not in logged and "Vanderbeken" not in logged and EMAIL not in logged
    attacks.record(
        "read a name from the logs: an adapter error quoting it",
        tried="exception text logged by the sender",
        refused=True,
        nothing_lost=True,
    )
