"""The e-mail's MIME shape (multipart/alternative, UTF-8, headers) and how SMTP failures are read."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import aiosmtplib
import pytest

from notification.ports import SendStatus
from notification.smtp import SmtpMailSender, classify_smtp_error, compose_mime, message_id_for
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
