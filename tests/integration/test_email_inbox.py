"""The SMTP inbox over real TCP, spoken to by the standard library's SMTP client."""

from __future__ import annotations

import asyncio
import email.policy
import smtplib
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from typing import TypeVar

import pytest
import structlog

from intake.email_server import EmailInbox, EmailInboxSettings
from schemas import Channel, Language
from tests.fakes import RecordingPipeline

pytestmark = pytest.mark.integration

INBOX = "formations-en-ligne@bruxellesformation.brussels"
SENDER = "amina.elidrissi@example.be"
LIMIT = 50_000
T = TypeVar("T")


@pytest.fixture
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


@pytest.fixture
async def inbox(pipeline: RecordingPipeline) -> AsyncIterator[EmailInbox]:
    settings = EmailInboxSettings(port=0, hostname="intake.test", max_message_bytes=LIMIT, shutdown_grace_s=2)
    inbox = EmailInbox(pipeline, settings)
    await inbox.start()
    yield inbox
    await inbox.stop()


async def with_client(inbox: EmailInbox, use: Callable[[smtplib.SMTP], T]) -> T:
    """Runs the blocking client in a thread, so that the server keeps running on this loop."""

    def run() -> T:
        with smtplib.SMTP("127.0.0.1", inbox.port, timeout=10) as client:
            return use(client)

    return await asyncio.to_thread(run)


def request_mail(body: str = "Bonjour, je voudrais suivre la formation Excel. GSM 0470 12 34 56.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Amina El Idrissi <{SENDER}>"
    msg["To"] = INBOX
    msg["Subject"] = "Formation Excel"
    msg["Message-ID"] = "<request-1@mail.example.be>"
    msg.set_content(body)
    return msg


def wire(msg: EmailMessage) -> bytes:
    """The message as it travels over SMTP: CRLF line ends (smtplib sends bytes unchanged)."""
    return msg.as_bytes(policy=email.policy.SMTP)


def send(client: smtplib.SMTP, data: bytes | EmailMessage, to: str = INBOX) -> tuple[int, bytes]:
    """MAIL, RCPT, DATA by hand (no SIZE parameter), returning the reply to DATA."""
    client.ehlo()
    assert client.mail(SENDER)[0] == 250
    assert client.rcpt(to)[0] == 250
    return client.data(wire(data) if isinstance(data, EmailMessage) else data)


async def test_a_request_mail_is_accepted_and_becomes_a_draft(inbox: EmailInbox, pipeline: RecordingPipeline) -> None:
    code, reply = await with_client(inbox, lambda c: send(c, request_mail(), to=INBOX.upper()))

    assert code == 250
    assert reply.startswith(b"Message accepted for delivery (request ")
    [draft] = pipeline.drafts
    assert draft.channel is Channel.EMAIL and draft.source == "/intake/email"
    assert (draft.email, draft.name, draft.phone) == (SENDER, "Amina El Idrissi", "+32470123456")
    assert draft.requested_course == "EXCEL" and draft.language is Language.FR
    assert draft.dedup_key == "email:<request-1@mail.example.be>"
    assert not draft.needs_triage


async def test_the_same_message_sent_twice_is_one_request(inbox: EmailInbox, pipeline: RecordingPipeline) -> None:
    first = await with_client(inbox, lambda c: send(c, request_mail()))
    second = await with_client(inbox, lambda c: send(c, request_mail()))

    assert first == second and first[0] == 250
    assert len(pipeline.drafts) == 1


async def test_sendmail_with_8bit_utf8_content(inbox: EmailInbox, pipeline: RecordingPipeline) -> None:
    data = (
        "From: Zoë Janssens <zoe@example.be>\r\nTo: " + INBOX + "\r\nSubject: Opleiding\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Goedendag, ik wil graag een opleiding Photoshop volgen. Bedankt!\r\n"
    ).encode()

    refused = await with_client(inbox, lambda c: c.sendmail("zoe@example.be", [INBOX], data))

    assert refused == {}
    [draft] = pipeline.drafts
    assert (draft.name, draft.language, draft.requested_course) == ("Zoë Janssens", Language.NL, "PHOTOSHOP")


async def test_unknown_recipient_is_refused_with_550(inbox: EmailInbox, pipeline: RecordingPipeline) -> None:
    def use(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo()
        client.mail(SENDER)
        return client.rcpt("someone-else@bruxellesformation.brussels")

    assert await with_client(inbox, use) == (550, b"5.1.1 Unknown recipient")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await with_client(inbox, lambda c: c.sendmail(SENDER, ["nobody@example.be"], wire(request_mail())))
    assert pipeline.drafts == []


async def test_ehlo_advertises_the_size_limit(inbox: EmailInbox) -> None:
    def use(client: smtplib.SMTP) -> dict[str, str]:
        client.ehlo()
        return client.esmtp_features

    features = await with_client(inbox, use)

    assert features["size"] == str(LIMIT)
    assert "8bitmime" in features and "smtputf8" in features


async def test_an_oversized_message_is_refused_with_552(inbox: EmailInbox, pipeline: RecordingPipeline) -> None:
    big = request_mail("Je voudrais Excel.\n" + "Ligne de remplissage pour dépasser la limite.\n" * 2_000)
    assert len(wire(big)) > LIMIT

    # A client that announces the size (smtplib does when SIZE is advertised) is stopped at MAIL.
    with pytest.raises(smtplib.SMTPSenderRefused) as announced:
        await with_client(inbox, lambda c: c.sendmail(SENDER, [INBOX], wire(big)))
    assert announced.value.smtp_code == 552

    # One that does not is stopped after DATA; the connection stays usable for the next message.
    def oversized_then_normal(client: smtplib.SMTP) -> tuple[int, int]:
        refused, _ = send(client, big)
        assert pipeline.drafts == []
        accepted, _ = send(client, request_mail())
        return refused, accepted

    assert await with_client(inbox, oversized_then_normal) == (552, 250)
    assert len(pipeline.drafts) == 1


async def test_a_failing_pipeline_answers_451_so_the_sender_retries(inbox: EmailInbox, pipeline: RecordingPipeline) -> None:
    pipeline.fail_with = ConnectionError("mongod is down")

    code, reply = await with_client(inbox, lambda c: send(c, request_mail()))

    assert (code, reply) == (451, b"4.3.0 Temporary failure, please retry")
    assert pipeline.drafts == []

    pipeline.fail_with = None  # the sending server retries later: same message, now accepted
    assert (await with_client(inbox, lambda c: send(c, request_mail())))[0] == 250
    assert len(pipeline.drafts) == 1


async def test_an_unparseable_message_is_accepted_for_triage(inbox: EmailInbox, pipeline: RecordingPipeline) -> None:
    garbage = b"\x00\x01\xff\xfe not a mail at all\r\n\x80\x81\x82\r\n" * 5

    code, _ = await with_client(inbox, lambda c: send(c, garbage))

    assert code == 250
    [draft] = pipeline.drafts
    assert draft.needs_triage and draft.triage_reason
    assert draft.email == SENDER  # the envelope sender, so somebody can answer
    assert "not a mail at all" in str(draft.channel_details["raw_text"])


async def test_auto_replies_and_bounces_are_acknowledged_without_a_request(
    inbox: EmailInbox, pipeline: RecordingPipeline
) -> None:
    auto_reply = request_mail("Je suis absente jusqu'au 10 février.\n")
    auto_reply["Auto-Submitted"] = "auto-replied"

    code, _ = await with_client(inbox, lambda c: send(c, auto_reply))
    refused = await with_client(inbox, lambda c: c.sendmail("", [INBOX], wire(request_mail())))  # MAIL FROM:<>

    assert code == 250 and refused == {}
    assert pipeline.drafts == []


async def test_logs_name_the_request_never_the_person(inbox: EmailInbox) -> None:
    with structlog.testing.capture_logs() as logs:
        await with_client(inbox, lambda c: send(c, request_mail()))

    [accepted] = [entry for entry in logs if entry["event"] == "email.accepted"]
    assert accepted["needs_triage"] is False and accepted["attachments"] == 0 and accepted["language"] == "fr"
    assert accepted["request_id"]
    text = repr(logs)
    for personal in (SENDER, "Amina", "0470", "Excel"):
        assert personal not in text


async def test_a_disabled_inbox_does_not_listen(pipeline: RecordingPipeline) -> None:
    inbox = EmailInbox(pipeline, EmailInboxSettings(enabled=False, port=0))
    await inbox.start()

    with pytest.raises(RuntimeError):
        _ = inbox.port
    await inbox.stop()


async def test_stop_hangs_up_idle_connections(pipeline: RecordingPipeline) -> None:
    inbox = EmailInbox(pipeline, EmailInboxSettings(port=0, hostname="intake.test"))
    await inbox.start()
    client = await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", inbox.port, timeout=10)
    try:
        await asyncio.to_thread(client.ehlo)
        await asyncio.wait_for(inbox.stop(), timeout=5)
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            await asyncio.to_thread(client.noop)
    finally:
        client.close()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_SMTP_PORT", "2525")
    monkeypatch.setenv("INTAKE_SMTP_ACCEPTED_RECIPIENTS", "a@bf.brussels, B@bf.brussels")
    monkeypatch.setenv("INTAKE_SMTP_MAX_MESSAGE_BYTES", "1048576")

    settings = EmailInboxSettings()

    assert settings.port == 2525
    assert settings.accepted_recipients == ["a@bf.brussels", "B@bf.brussels"]
    assert settings.max_message_bytes == 1_048_576
    assert EmailInboxSettings.model_fields["accepted_recipients"].get_default(call_default_factory=True) == [INBOX]


async def test_a_message_spooled_to_disk_arrives_whole_with_its_dot_lines(pipeline: RecordingPipeline) -> None:
    # Past `spool_memory_bytes` DATA goes to a temporary file; the dot-stuffing of RFC 5321 4.5.2 is undone.
    settings = EmailInboxSettings(port=0, hostname="intake.test", spool_memory_bytes=1_000, shutdown_grace_s=2)
    inbox = EmailInbox(pipeline, settings)
    await inbox.start()
    try:
        lines = [f"Ligne {i} : je voudrais suivre la formation Excel." for i in range(60)]
        body = "\n".join([*lines[:30], ".", "..", ".Net aussi, merci.", *lines[30:]]) + "\n"
        code, _ = await with_client(inbox, lambda c: send(c, request_mail(body)))
    finally:
        await inbox.stop()

    assert code == 250
    [draft] = pipeline.drafts
    assert draft.need == body.strip()
