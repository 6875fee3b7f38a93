"""The e-mail's MIME shape (multipart/alternative, UTF-8, headers) and how SMTP failures are read."""

from __future__ import annotations

import email
import email.policy
import random
from datetime import UTC, datetime

import aiosmtplib
import pytest

from notification.ports import SendStatus
from notification.retry import RetryPolicy
from notification.smtp import (
    InvalidMessage,
    SmtpMailSender,
    classify_smtp_error,
    compose_mime,
    header_text,
    message_id_for,
)
from tests.unit.test_notification_ports import an_email

pytestmark = pytest.mark.unit

SENT_AT = datetime(2026, 3, 3, 9, 15, tzinfo=UTC)
FROM = "Bruxelles Formation <no-reply@bruxellesformation.brussels>"


def parsed() -> email.message.EmailMessage:
    mime = compose_mime(an_email(), from_address=FROM, sent_at=SENT_AT, message_id_domain="notification.test")
    # Read back from the bytes that go over the wire, as a mail client would.
    message = email.message_from_bytes(mime.as_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_the_message_is_multipart_alternative_with_plain_then_html() -> None:
    message = parsed()
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    # On the wire (and so read back) lines end in CRLF, as SMTP wants.
    assert parts[0].get_content().replace("\r\n", "\n") == "Bonjour Amina,\n\nVotre inscription est confirmée.\n"
    assert "<p>Votre inscription est confirmée.</p>" in parts[1].get_content()


def test_the_headers() -> None:
    message = parsed()
    assert message["From"] == FROM
    assert message["To"] == "Amina Ël Idrissi <amina@example.org>"
    assert message["Subject"] == "Inscription confirmée : Excel — niveau 1"
    assert email.utils.parsedate_to_datetime(message["Date"]) == SENT_AT
    assert message["Message-ID"] == "<0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11.email@notification.test>"
    assert message["Content-Language"] == "fr"
    assert message["Auto-Submitted"] == "auto-generated"


def test_non_ascii_headers_are_encoded_on_the_wire() -> None:
    raw = compose_mime(an_email(), from_address=FROM, sent_at=SENT_AT, message_id_domain="n.test").as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"=?utf-8?" in head.lower()


def test_the_message_id_is_stable_for_a_delivery() -> None:
    assert message_id_for("abc:email", "n.test") == "<abc.email@n.test>"
    one = compose_mime(an_email(), from_address=FROM, sent_at=SENT_AT, message_id_domain="n.test")
    two = compose_mime(an_email(), from_address=FROM, sent_at=datetime.now(UTC), message_id_domain="n.test")
    assert one["Message-ID"] == two["Message-ID"]


def test_a_recipient_without_a_name() -> None:
    mime = compose_mime(an_email(to_name=None), from_address=FROM, sent_at=SENT_AT, message_id_domain="n.test")  # type: ignore[arg-type]
    assert mime["To"] == "amina@example.org"


def test_a_naive_date_and_a_bad_sender_are_refused() -> None:
    with pytest.raises(ValueError):
        compose_mime(an_email(), from_address=FROM, sent_at=datetime(2026, 3, 3), message_id_domain="n.test")
    with pytest.raises(ValueError):
        SmtpMailSender(host="h", port=25, from_address="nobody", message_id_domain="n.test")


@pytest.mark.parametrize(
    ("error", "status", "bounced"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "5.1.1 <amina@example.org> unknown", "amina@example.org")]
            ),
            SendStatus.PERMANENT,
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "mailbox busy", "amina@example.org")]),
            SendStatus.TRANSIENT,
            False,
        ),
        (aiosmtplib.SMTPDataError(554, "5.7.1 rejected as spam"), SendStatus.PERMANENT, False),
        (aiosmtplib.SMTPSenderRefused(451, "4.3.0 try later", "no-reply@bf.be"), SendStatus.TRANSIENT, False),
        (aiosmtplib.SMTPConnectError("connection refused"), SendStatus.TRANSIENT, False),
        (aiosmtplib.SMTPServerDisconnected("gone"), SendStatus.TRANSIENT, False),
        (aiosmtplib.SMTPReadTimeoutError("slow"), SendStatus.TRANSIENT, False),
        (ConnectionRefusedError(111, "refused"), SendStatus.TRANSIENT, False),
    ],
)
def test_smtp_failures_are_classified(error: Exception, status: SendStatus, bounced: bool) -> None:
    result = classify_smtp_error(error)
    assert result.status is status and result.bounced is bounced
    assert "amina@example.org" not in result.reason


def test_an_unknown_error_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        classify_smtp_error(KeyError("bug"))


# --- names and addresses that cannot go into a header as they are ------------------------------------

INJECTING_NAME = "Amina\r\nBcc: evil@attacker.example"


@pytest.mark.parametrize(
    ("typed", "cleaned"),
    [
        ("Amina\r\nBcc: evil@attacker.example", "Amina Bcc: evil@attacker.example"),
        ("Jan\nPeeters", "Jan Peeters"),
        ("Ana\x00\x07 Lúcia\t", "Ana Lúcia"),
        ("Ama\u2028ra\u202e", "Ama ra"),  # a line separator and a bidi override
        ("  Ëlise   Dubois ", "Ëlise Dubois"),
    ],
)
def test_header_text_folds_control_characters_and_keeps_the_name(typed: str, cleaned: str) -> None:
    assert header_text(typed) == cleaned


def test_a_name_with_a_line_break_cannot_inject_a_header() -> None:
    mime = compose_mime(
        an_email(to_name=INJECTING_NAME, subject="Excel\r\nBcc: x@attacker.example"),
        from_address=FROM,
        sent_at=SENT_AT,
        message_id_domain="n.test",
    )
    wire = mime.as_bytes()
    assert b"\r\nBcc:" not in wire and b"\nBcc:" not in wire
    message = email.message_from_bytes(wire, policy=email.policy.default)
    assert message["Bcc"] is None
    assert [a.addr_spec for a in message["To"].addresses] == ["amina@example.org"]
    assert message["To"].addresses[0].display_name == "Amina Bcc: evil@attacker.example"
    assert message["Subject"] == "Excel Bcc: x@attacker.example"


@pytest.mark.parametrize(
    "address",
    ["amina@example.org\r\nBcc: evil@attacker.example", "amina", "amina@localhost", "a mina@example.org", "@example.org"],
)
def test_a_malformed_address_is_refused_without_quoting_it(address: str) -> None:
    with pytest.raises(InvalidMessage) as refused:
        compose_mime(an_email(to_address=address), from_address=FROM, sent_at=SENT_AT, message_id_domain="n.test")
    assert "amina" not in str(refused.value)


async def test_a_malformed_address_fails_permanently_once_without_connecting() -> None:
    # Nothing listens on port 9: trying to connect would be a transient failure, not this one.
    sender = SmtpMailSender(host="127.0.0.1", port=9, from_address=FROM, message_id_domain="n.test", timeout_s=1)
    result = await sender.send(an_email(to_address="amina@example.org\r\nBcc: evil@attacker.example"))
    assert result.status is SendStatus.PERMANENT and result.reason == "invalid message: invalid recipient address"
    step = RetryPolicy().after(result, attempts=1, now=SENT_AT, rng=random.Random(1))
    assert step.final and step.next_attempt_at is None


def test_a_header_the_library_refuses_is_permanent_and_not_quoted() -> None:
    result = classify_smtp_error(ValueError("invalid header for Amina Test <amina@example.org>"))
    assert result.status is SendStatus.PERMANENT and result.reason == "invalid message: ValueError"


async def test_a_refused_connection_is_transient() -> None:
    sender = SmtpMailSender(host="127.0.0.1", port=9, from_address=FROM, message_id_domain="n.test", timeout_s=1)
    assert (await sender.send(an_email())).status is SendStatus.TRANSIENT
