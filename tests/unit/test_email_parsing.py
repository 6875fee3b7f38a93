"""E-mails as job seekers and their mail programs really write them, turned into requests."""

from __future__ import annotations

import base64
import contextlib
import time
from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake import email_parsing
from intake.email_parsing import ParsedEmail, html_to_text, parse_email, to_draft
from schemas import Channel, Language, QualificationLevel
from services.catalogue import load_catalogue

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
INBOX = "formations-en-ligne@bruxellesformation.brussels"
CATALOGUE = load_catalogue()


def parse(raw: bytes | EmailMessage, envelope_sender: str | None = None) -> ParsedEmail:
    data = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
    return parse_email(data, catalogue=CATALOGUE, received_at=RECEIVED_AT, envelope_sender=envelope_sender)


def message(body: str = "", *, subject: str = "Demande de formation", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "Amina El Idrissi <Amina.ElIdrissi@Example.be>")
    msg["To"] = INBOX
    msg["Subject"] = subject
    msg["Message-ID"] = headers.pop("Message_ID", "<20261127103000.1234@mail.example.be>")
    if body:
        msg.set_content(body)
    for name, value in headers.items():  # after set_content, which replaces the Content-* ones
        msg[name.replace("_", "-")] = value
    return msg


def raw(*lines: str | bytes, body: bytes) -> bytes:
    head = b"".join((line.encode() if isinstance(line, str) else line) + b"\r\n" for line in lines)
    return head + b"\r\n" + body


def assert_surrogate_free(parsed: ParsedEmail) -> None:
    """Whatever came in, what goes out can be encoded (JSON, BSON) without error."""
    draft = to_draft(parsed)
    for value in (
        parsed.sender,
        parsed.display_name,
        parsed.subject,
        parsed.body,
        parsed.need,
        parsed.raw_text,
        parsed.dedup_key,
        parsed.message_id,
        *(name for name, _ in parsed.attachments),
        *(str(v) for v in draft.channel_details.values()),
    ):
        if value is not None:
            value.encode("utf-8")


# --- charsets and transfer encodings -----------------------------------------------------------


def test_plain_utf8_french_request_is_understood() -> None:
    parsed = parse(
        message(
            "Bonjour,\n\nJe suis demandeuse d'emploi depuis mars et je voudrais suivre une formation "
            "en bureautique en ligne.\nJe suis joignable au 0470 12 34 56.\n\nMerci d'avance,\nAmina\n"
        )
    )

    assert parsed.sender == "amina.elidrissi@example.be"
    assert parsed.display_name == "Amina El Idrissi"
    assert parsed.subject == "Demande de formation"
    assert parsed.message_id == "<20261127103000.1234@mail.example.be>"
    assert parsed.dedup_key == "email:<20261127103000.1234@mail.example.be>"
    assert parsed.language is Language.FR
    assert parsed.phone == "+32470123456"
    assert parsed.requested_course == "BUREAUTIQUE-INIT"
    assert parsed.need.startswith("Bonjour,\n\nJe suis demandeuse d'emploi")
    assert not parsed.needs_triage and parsed.triage_reason is None and parsed.raw_text is None
    assert not parsed.is_automatic


def test_dutch_quoted_printable_iso_8859_1() -> None:
    parsed = parse(
        raw(
            "From: Renee Peeters <renee.peeters@example.be>",
            "To: " + INBOX,
            "Subject: Vraag over opleiding",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=ISO-8859-1",
            "Content-Transfer-Encoding: quoted-printable",
            body=(
                b"Goedendag,\r\n\r\nIk wil graag een opleiding Excel volgen. Ik ben werkzoekende en heb e=\r\n"
                b"en computer thuis.\r\n\r\nMet vriendelijke groeten,\r\nRen=E9e\r\n"
            ),
        )
    )

    assert parsed.language is Language.NL
    assert "Ik wil graag een opleiding Excel volgen. Ik ben werkzoekende en heb een computer thuis." in parsed.need
    assert parsed.need.endswith("Renée")
    assert parsed.course_codes == ("EXCEL",)
    assert not parsed.needs_triage


@pytest.mark.parametrize("declared", ["windows-1252", "iso-8859-1", "us-ascii"])
def test_windows_1252_curly_quotes_and_euro_whatever_the_latin_label(declared: str) -> None:
    parsed = parse(
        raw(
            "From: jean.dupont@example.be",
            "Subject: Photoshop",
            f"Content-Type: text/plain; charset={declared}",
            "Content-Transfer-Encoding: 8bit",
            body=b"Bonjour, je voudrais \x93une formation\x94 Photoshop ; 50 \x80 ne me d\xe9range pas\x85\r\n",
        )
    )

    assert parsed.need == "Bonjour, je voudrais “une formation” Photoshop ; 50 € ne me dérange pas…"
    assert parsed.requested_course == "PHOTOSHOP"
    assert not parsed.needs_triage


OUTLOOK_HTML = """<html xmlns:o="urn:schemas-microsoft-com:office:office" xmlns="http://www.w3.org/TR/REC-html40">
<head><meta http-equiv=Content-Type content="text/html; charset=utf-8">
<!--[if gte mso 9]><xml><o:OfficeDocumentSettings><o:PixelsPerInch>96</o:PixelsPerInch></o:OfficeDocumentSettings></xml>\
<![endif]-->
<style><!-- p.MsoNormal, li.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;} --></style>
<title>Formation</title></head>
<body lang=FR-BE link="#0563C1"><div class=WordSection1>
<p class=MsoNormal>Bonjour,<o:p></o:p></p>
<p class=MsoNormal><o:p>&nbsp;</o:p></p>
<p class=MsoNormal>Je souhaite m&#8217;inscrire &agrave; la formation Excel.<br>Mon GSM&nbsp;: 0470/12.34.56<o:p></o:p></p>
<p class=MsoNormal>Bien &agrave; vous,<br>Fatima &amp; famille<o:p></o:p></p>
</div><script>alert("not text")</script></body></html>
"""


def test_outlook_html_only_in_base64_becomes_readable_text() -> None:
    msg = message(From="Fatima <fatima@example.be>")
    msg.set_content(OUTLOOK_HTML, subtype="html", cte="base64")
    assert b"Content-Transfer-Encoding: base64" in msg.as_bytes()

    parsed = parse(msg)

    assert parsed.need == (
        "Bonjour,\n\nJe souhaite m’inscrire à la formation Excel.\nMon GSM : 0470/12.34.56\nBien à vous,\nFatima & famille"
    )
    assert parsed.phone == "+32470123456"
    assert parsed.requested_course == "EXCEL"
    assert parsed.language is Language.FR


def test_html_to_text_keeps_line_breaks_and_marks_blockquotes() -> None:
    html = (
        "<div>Oui, toujours int&eacute;ress&eacute;e.</div><div><br></div>"
        "<div class=gmail_quote>Le lun. 3 f&eacute;vr. 2020, BF a &eacute;crit&nbsp;:<br>"
        "<blockquote>Souhaitez-vous suivre <b>Photoshop</b>&nbsp;?<br/>Cordialement</blockquote></div>"
        "<style>.x{color:red}</style><script>var x = '<p>';</script>"
    )

    assert html_to_text(html) == (
        "Oui, toujours intéressée.\n\nLe lun. 3 févr. 2020, BF a écrit :\n> Souhaitez-vous suivre Photoshop ?\n> Cordialement"
    )


def test_multipart_alternative_prefers_the_plain_text() -> None:
    msg = message("Je voudrais suivre Word en ligne.\n")
    msg.add_alternative("<p>Je voudrais suivre <b>Word</b> en ligne. HTML-ONLY</p>", subtype="html")

    parsed = parse(msg)

    assert parsed.need == "Je voudrais suivre Word en ligne."
    assert parsed.requested_course == "WORD"
    assert parsed.attachments == ()


def test_empty_plain_alternative_falls_back_to_html() -> None:
    msg = message()
    msg.set_content(" \n")
    msg.add_alternative("<p>Formation <i>InDesign</i> svp</p>", subtype="html")

    assert parse(msg).need == "Formation InDesign svp"


def test_attachments_keep_name_and_size_but_never_content() -> None:
    pdf = b"%PDF-1.4\n" + b"SECRET-CV-CONTENT " * 200 + b"\n%%EOF\n"
    msg = message("Bonjour, vous trouverez mon CV en pièce jointe. Formation Excel svp.\n")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="CV Amina.pdf")
    msg.add_attachment(b"GIF89a", maintype="image", subtype="gif", filename="Lettre – André.gif")

    parsed = parse(msg)
    draft = to_draft(parsed)

    assert parsed.attachments == (("CV Amina.pdf", len(pdf)), ("Lettre – André.gif", 6))
    assert draft.channel_details["attachment_count"] == 2
    assert draft.channel_details["attachment_names"] == "CV Amina.pdf, Lettre – André.gif"
    assert "SECRET-CV-CONTENT" not in repr(draft) and "SECRET-CV-CONTENT" not in repr(parsed)
    assert base64.b64encode(pdf)[:40].decode() not in repr(draft)
    assert parsed.need == "Bonjour, vous trouverez mon CV en pièce jointe. Formation Excel svp."


def test_rfc2047_encoded_from_and_subject_are_decoded() -> None:
    parsed = parse(
        raw(
            "From: =?iso-8859-1?q?Andr=E9?= Dupont <ANDRE.DUPONT@Example.BE>",
            "Subject: =?utf-8?b?" + base64.b64encode("Formation « français » pour débutants".encode()).decode() + "?=",
            "Content-Type: text/plain; charset=utf-8",
            body="Je voudrais apprendre le français.\r\n".encode(),
        )
    )

    assert parsed.display_name == "André Dupont"
    assert parsed.sender == "andre.dupont@example.be"
    assert parsed.subject == "Formation « français » pour débutants"
    assert parsed.requested_course == "FR-BASE"


def test_raw_8bit_utf8_headers_are_decoded_too() -> None:
    parsed = parse(raw("From: Zoë Janssens <zoe@example.be>", "Subject: Opleiding €", body=b"Ik wil graag Excel leren.\r\n"))

    assert parsed.display_name == "Zoë Janssens"
    assert parsed.subject == "Opleiding €"


# --- replies and signatures --------------------------------------------------------------------


@pytest.mark.parametrize(
    "attribution",
    [
        "Le lun. 3 févr. 2020 à 10:15, Bruxelles Formation <formations-en-ligne@bruxellesformation.brussels> a\nécrit :",
        "Le 03/02/2020 à 10:15, Bruxelles Formation a écrit :",
        "Op ma 3 feb. 2020 om 10:15 schreef Bruxelles Formation <formations-en-ligne@bruxellesformation.brussels>:",
        "On Mon, Feb 3, 2020 at 10:15 AM Bruxelles Formation <formations-en-ligne@bruxellesformation.brussels> wrote:",
    ],
)
def test_quoted_replies_are_not_part_of_the_need(attribution: str) -> None:
    body = (
        "Oui, je suis toujours intéressée par Excel.\n\n"
        f"{attribution}\n"
        "> Bonjour, souhaitez-vous suivre une formation Photoshop ?\n"
        "> Appelez-nous au 0800 555 66.\n"
    )
    parsed = parse(message(body, subject="Re: Votre demande"))

    assert parsed.need == "Oui, je suis toujours intéressée par Excel."
    assert "Photoshop" in parsed.body  # the full text stays, for whoever reads it
    assert parsed.course_codes == ("EXCEL",)
    assert parsed.phone is None


def test_dutch_reply_with_answer_below_the_quote_keeps_the_answer() -> None:
    body = (
        "Op ma 3 feb. 2020 om 10:15 schreef Bruxelles Formation <info@bf.brussels>:\n"
        "> Welke opleiding wilt u volgen?\n\n"
        "Ik wil graag een opleiding Excel volgen.\n"
    )
    parsed = parse(message(body, subject="Re: Uw vraag"))

    assert parsed.need == "Ik wil graag een opleiding Excel volgen."
    assert parsed.language is Language.NL


def test_outlook_reply_cuts_the_original_message_and_the_signature_keeps_its_phone() -> None:
    body = (
        "Bonjour, je confirme mon intérêt pour la formation AutoCAD.\n\n"
        "-- \nKarim Benali\nGSM 0486 11 22 33\n\n"
        "De : Bruxelles Formation <formations-en-ligne@bruxellesformation.brussels>\n"
        "Envoyé : lundi 3 février 2020 10:15\n"
        "À : Karim Benali\n"
        "Objet : Votre demande de formation Photoshop\n\n"
        "Appelez le 02 555 66 77 pour Photoshop.\n"
    )
    parsed = parse(message(body, subject="RE: Votre demande"))

    assert parsed.need == "Bonjour, je confirme mon intérêt pour la formation AutoCAD."
    assert parsed.phone == "+32486112233"
    assert parsed.course_codes == ("AUTOCAD",)


def test_sent_from_my_phone_is_dropped() -> None:
    parsed = parse(message("Formation Word svp\n\nEnvoyé de mon iPhone\n"))

    assert parsed.need == "Formation Word svp"


def test_a_reply_with_nothing_but_quotes_goes_to_triage() -> None:
    parsed = parse(message("> Souhaitez-vous suivre Excel ?\n> BF\n"))

    assert parsed.needs_triage and parsed.triage_reason == "only quoted text"
    assert to_draft(parsed).need == "> Souhaitez-vous suivre Excel ?\n> BF"


# --- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("0470 12 34 56", "+32470123456"),
        ("0470/12.34.56", "+32470123456"),
        ("0470123456", "+32470123456"),
        ("02 555 66 77", "+3225556677"),
        ("+32 470 12 34 56", "+32470123456"),
        ("0032 470 12 34 56", "+32470123456"),
        ("+33 6 12 34 56 78", "+33612345678"),
    ],
)
def test_phone_numbers_in_belgian_and_international_formats(written: str, e164: str) -> None:
    parsed = parse(message(f"Bonjour, vous pouvez me joindre au {written}, le matin.\n"))

    assert parsed.phone == e164
    assert to_draft(parsed).phone == e164


def test_the_service_s_own_number_is_not_the_person_s() -> None:
    assert parse(message("On m'a dit d'appeler le 0800 555 66 mais c'est occupé.\n")).phone is None
    assert parse(message("J'ai appelé le 0800/555.66 ; rappelez-moi au 0486 11 22 33.\n")).phone == "+32486112233"


def test_dates_and_postcodes_are_not_phone_numbers() -> None:
    assert parse(message("Depuis le 03/02/2020, j'habite 1000 Bruxelles.\n")).phone is None


# --- catalogue and language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Je voudrais une formation Excel.", "EXCEL"),
        ("je veux apprendre photoshop", "PHOTOSHOP"),
        ("Cours de français pour débutants ?", "FR-BASE"),
    ],
)
def test_a_course_named_in_the_text_is_requested(text: str, code: str) -> None:
    assert parse(message(text + "\n")).requested_course == code


def test_a_course_named_in_the_subject_counts_and_every_match_is_kept() -> None:
    parsed = parse(message("Bonjour, et aussi Word si possible.\n", subject="Formation Excel"))
    draft = to_draft(parsed)

    assert set(parsed.course_codes) == {"EXCEL", "WORD"}
    assert draft.requested_course == parsed.course_codes[0]
    assert draft.channel_details["all_course_codes"] == ",".join(parsed.course_codes)


def test_no_course_named_means_none_requested() -> None:
    parsed = parse(message("Bonjour, quelles formations proposez-vous ?\n", subject="Question"))

    assert parsed.requested_course is None and to_draft(parsed).channel_details["all_course_codes"] is None


def test_english_mail() -> None:
    parsed = parse(
        message(
            "Hello,\n\nI would like to take the online Excel course. I am unemployed and I have a laptop.\n"
            "Thanks in advance,\nJohn\n",
            subject="Online course",
            From="John Smith <john.smith@example.com>",
        )
    )

    assert parsed.language is Language.EN
    assert parsed.requested_course == "EXCEL"


@pytest.mark.parametrize(
    ("header", "expected"), [("nl-BE", Language.NL), ("en", Language.EN), ("de-DE", Language.FR), ("??", Language.FR)]
)
def test_content_language_wins_when_it_is_one_of_ours(header: str, expected: Language) -> None:
    parsed = parse(message("Bonjour, je voudrais une formation.\n", Content_Language=header))

    assert parsed.language is expected


def test_language_defaults_to_french_when_unsure() -> None:
    assert parse(message("Excel\n", subject="Excel")).language is Language.FR


# --- what cannot be understood -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "body", "expected"),
    [
        ("iso-8859-1", "Je voudrais une formation en français, merci.".encode(), "en français, merci."),
        ('"utf-8 "', "Formation à distance".encode(), "Formation à distance"),
    ],
)
def test_charset_declarations_that_read_the_text(declared: str, body: bytes, expected: str) -> None:
    # UTF-8 labelled Latin-1 is read as the UTF-8 it is; a quoted, padded label is still the label.
    parsed = parse(raw("From: a@example.be", f"Content-Type: text/plain; charset={declared}", body=body + b"\r\n"))

    assert parsed.need.endswith(expected)
    assert not parsed.needs_triage


@pytest.mark.parametrize(
    ("declared", "body", "expected", "reason"),
    [
        ("utf-8", "Je voudrais une formation en français, merci.".encode("latin-1"), "en français, merci.", "charset mismatch"),
        ("x-unknown-charset", "Je voudrais une formation en français.".encode("cp1252"), "en français.", "unknown charset"),
        ("base64", "Je voudrais une formation en français.".encode(), "en français.", "unknown charset"),
    ],
)
def test_wrong_or_unknown_charset_declarations_go_to_triage(declared: str, body: bytes, expected: str, reason: str) -> None:
    # The text is read another way than declared: a guess, readable, that a human checks against the raw message.
    parsed = parse(raw("From: a@example.be", f"Content-Type: text/plain; charset={declared}", body=body + b"\r\n"))

    assert parsed.need.endswith(expected)
    assert "\ufffd" not in parsed.need
    assert parsed.needs_triage and parsed.triage_reason == reason
    assert parsed.raw_text and f"charset={declared}" in parsed.raw_text


def test_garbage_bytes_become_a_request_for_triage() -> None:
    garbage = bytes(range(256)) * 4 + b"\r\n\x00\xff\xfe"
    parsed = parse(garbage)

    assert parsed.needs_triage
    assert "no usable sender address" in (parsed.triage_reason or "")
    assert parsed.raw_text and len(parsed.raw_text) > 1000
    assert_surrogate_free(parsed)
    assert to_draft(parsed).channel_details["raw_text"] == parsed.raw_text


def test_binary_body_is_undecodable() -> None:
    parsed = parse(raw("From: a@example.be", "Content-Type: text/plain", body=bytes(range(32)) * 50))

    assert parsed.needs_triage and parsed.triage_reason == "undecodable content"
    assert parsed.sender == "a@example.be"


def test_empty_message() -> None:
    parsed = parse(b"")

    assert parsed.needs_triage
    assert parsed.triage_reason == "no usable sender address; no text body"
    assert parsed.raw_text == ""
    assert parsed.dedup_key.startswith("email:sha256:")


def test_no_text_body_only_an_attachment() -> None:
    msg = message()
    msg.set_content(b"%PDF-1.4", maintype="application", subtype="pdf", disposition="attachment", filename="cv.pdf")

    parsed = parse(msg)

    assert parsed.needs_triage and parsed.triage_reason == "no text body"
    assert parsed.attachments == (("cv.pdf", 8),)
    assert parsed.raw_text and "Subject: Demande de formation" in parsed.raw_text


def test_no_from_goes_to_triage_unless_another_address_is_there() -> None:
    no_from = raw("To: " + INBOX, "Subject: Excel", body=b"Je voudrais Excel.\r\n")

    parsed = parse(no_from)
    assert parsed.needs_triage and parsed.triage_reason == "no usable sender address"
    assert parsed.sender is None and to_draft(parsed).channel_details["raw_text"]

    assert parse(no_from, envelope_sender="Bounce.Me@Example.be").sender == "bounce.me@example.be"
    with_reply_to = raw("From: broken@", "Reply-To: Jo <jo@example.be>", body=b"Je voudrais Excel.\r\n")
    assert (parse(with_reply_to).sender, parse(with_reply_to).display_name) == ("jo@example.be", "Jo")


def test_a_display_name_that_is_an_address_is_no_name() -> None:
    parsed = parse(message("Excel\n", From='"jean@example.be" <jean@example.be>'))

    assert parsed.display_name is None and parsed.sender == "jean@example.be"


def test_multipart_without_boundary_is_flagged() -> None:
    parsed = parse(raw("From: a@example.be", "Content-Type: multipart/mixed", body=b"--x\r\n\r\nJe voudrais Excel.\r\n--x--\r\n"))

    assert parsed.needs_triage
    assert (parsed.triage_reason or "").startswith("unparseable MIME: ")
    assert "Je voudrais Excel." in parsed.body


def test_parse_never_raises_even_when_parsing_itself_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> ParsedEmail:
        raise RuntimeError("boom")

    monkeypatch.setattr(email_parsing, "_parse", explode)
    parsed = parse(b"From: a@example.be\r\n\r\nExcel", envelope_sender="a@example.be")

    assert parsed.needs_triage and parsed.triage_reason == "unparseable MIME: RuntimeError"
    assert parsed.sender == "a@example.be"
    assert parsed.raw_text == "From: a@example.be\n\nExcel"
    assert to_draft(parsed).need == parsed.raw_text


# --- machines writing to us --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Auto-Submitted", "auto-replied", "auto-submitted: auto-replied"),
        ("Auto-Submitted", "auto-generated", "auto-submitted: auto-generated"),
        ("X-Autoreply", "yes", "x-autoreply"),
        ("Precedence", "bulk", "precedence: bulk"),
        ("Precedence", "auto_reply", "precedence: auto_reply"),
    ],
)
def test_auto_replies_are_automatic(header: str, value: str, reason: str) -> None:
    msg = message("Je suis absente jusqu'au 10 février.\n", subject="Réponse automatique : Excel")
    msg[header] = value

    parsed = parse(msg)

    assert parsed.is_automatic and parsed.automatic_reason == reason


def test_auto_submitted_no_is_a_person() -> None:
    assert not parse(message("Excel svp\n", Auto_Submitted="no")).is_automatic


def test_delivery_status_notification_is_automatic() -> None:
    bounce = raw(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.be>",
        "To: " + INBOX,
        "Subject: Undelivered Mail Returned to Sender",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"',
        body=(
            b"--BOUND\r\nContent-Type: text/plain\r\n\r\n"
            b"I'm sorry to have to inform you that your message could not be delivered.\r\n"
            b"--BOUND\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.be\r\n\r\n"
            b"Final-Recipient: rfc822; nobody@example.be\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            b"--BOUND\r\nContent-Type: message/rfc822\r\n\r\nFrom: "
            + INBOX.encode()
            + b"\r\nSubject: Votre demande\r\n\r\nBonjour\r\n"
            b"--BOUND--\r\n"
        ),
    )

    parsed = parse(bounce)

    assert parsed.is_automatic and parsed.automatic_reason == "delivery status notification"
    assert "Bonjour" not in parsed.body  # the returned message is not the bounce's text


def test_null_reverse_path_is_automatic() -> None:
    parsed = parse(message("Excel\n"), envelope_sender="<>")

    assert parsed.is_automatic and parsed.automatic_reason == "null reverse-path"


# --- the draft ------------------------------------------------------------------------------


def test_to_draft_carries_what_the_pipeline_needs() -> None:
    parsed = parse(message("Bonjour, formation Excel. 0470 12 34 56\n", subject="S" * 300))
    draft = to_draft(parsed)

    assert draft.channel is Channel.EMAIL and draft.source == "/intake/email"
    assert draft.consent_to_contact is True
    assert draft.received_at == RECEIVED_AT
    assert (draft.name, draft.email, draft.phone) == ("Amina El Idrissi", "amina.elidrissi@example.be", "+32470123456")
    assert draft.requested_course == "EXCEL" and draft.language is Language.FR
    assert draft.dedup_key == "email:<20261127103000.1234@mail.example.be>"
    assert not draft.needs_triage and draft.triage_reason is None
    assert draft.channel_details == {
        "message_id": "<20261127103000.1234@mail.example.be>",
        "subject": "S" * 199 + "…",
        "attachment_count": 0,
        "attachment_names": None,
        "all_course_codes": "EXCEL",
    }


def test_long_needs_are_truncated() -> None:
    draft = to_draft(parse(message("Excel. " + "blabla " * 2000 + "\n")))

    assert len(draft.need) == 5000


def test_without_message_id_the_dedup_key_is_a_hash_of_the_bytes() -> None:
    data = raw("From: a@example.be", body=b"Excel\r\n")

    assert parse(data).dedup_key == parse(data).dedup_key
    assert parse(data).dedup_key != parse(data + b"!").dedup_key
    assert parse(data).dedup_key.startswith("email:sha256:")


# --- never raises ----------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        b"From: Jo <jo@example.be>\r\n",
        b"From: =?utf-8?q?Z=C3=B6e?= <",
        b"From: =?x-bad?b?!!!?= <broken@\r\n",
        b"Subject: =?utf-7?q?+2AA-?=\r\n",
        b"Subject: =?iso-8859-1?b?6Q==?=\r\n",
        b"Message-ID: <a@b>\r\n",
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n',
        b"Content-Type: multipart/alternative; boundary=b\r\n",
        b"Content-Type: text/html; charset=utf-16\r\n",
        b"Content-Type: text/plain; charset=zlib\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
        b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%ZZ.pdf\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Transfer-Encoding: x-uuencode\r\n",
        b"\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"SGVsbG8gd29ybGQ=\r\n",
        b"=E9=\r\n",
        b"<p>Bonjour<br><blockquote>Le 3 a \xe9crit :</blockquote><script>",
        b"> quoted\r\n",
        b"-- \r\n",
        b"0470 12 34 56 Excel\r\n",
        b"\xff\xfe\x00\x80",
    ]
)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_parse_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    parsed = parse(data)

    assert isinstance(parsed, ParsedEmail)
    assert parsed.is_automatic or parsed.sender is None or "@" in parsed.sender
    assert_surrogate_free(parsed)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(FRAGMENTS, st.binary(max_size=40)), max_size=40))
def test_parse_never_raises_on_mime_shaped_junk(fragments: list[bytes]) -> None:
    assert_surrogate_free(parse(b"".join(fragments)))


HEADER_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=200)
# No control characters: C1 ones (U+0080-U+009F) are read as windows-1252 on purpose, as browsers do.
BODY_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc"), include_characters="\n\t"), max_size=2000)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=HEADER_TEXT,
    body=BODY_TEXT,
    name=HEADER_TEXT,
    charset=st.sampled_from(["utf-8", "iso-8859-1", "windows-1252"]),
)
def test_parse_never_raises_on_any_text_in_any_charset(subject: str, body: str, name: str, charset: str) -> None:
    # Only what the charset can encode: that is all a sender could put in such a message.
    subject, body = (text.encode(charset, "ignore").decode(charset) for text in (subject, body))
    msg = EmailMessage()
    msg["From"] = f'"{name.replace(chr(34), "").replace(chr(92), "")}" <jo@example.be>'
    msg["Subject"] = subject
    msg.set_content(body, charset=charset)

    parsed = parse(msg)

    assert parsed.sender == "jo@example.be"
    assert parsed.subject == " ".join(subject.split())
    # The text survives encoding and decoding, up to whitespace; except where Latin-1 bytes happen
    # to be valid UTF-8 ("Â\xa0"), which is read as UTF-8 by design (mislabelled UTF-8 is common).
    expected = body
    if charset != "utf-8":
        with contextlib.suppress(UnicodeDecodeError):
            expected = body.encode(charset).decode("utf-8")
    assert parsed.body.split() == expected.split()
    assert_surrogate_free(parsed)


@pytest.mark.parametrize(
    "subject",
    [b"x" * 200_000, b"=?utf-8?q?abc?= " * 15_000, b"\xc3\xa9" * 100_000],
    ids=["plain", "encoded-words", "raw-utf8"],
)
def test_huge_headers_are_cut_quickly(subject: bytes) -> None:
    data = b"From: jo@example.be\r\nSubject: " + subject + b"\r\nContent-Type: text/plain\r\n\r\nExcel svp\r\n"

    started = time.perf_counter()
    parsed = parse(data)

    assert time.perf_counter() - started < 5
    assert parsed.sender == "jo@example.be" and parsed.need == "Excel svp"
    assert 0 < len(parsed.subject) <= email_parsing.MAX_HEADER_CHARS
    kept = to_draft(parsed).channel_details["subject"]
    assert isinstance(kept, str) and len(kept) == 200


def test_a_from_name_with_a_link_is_dropped_and_the_request_kept() -> None:
    lure = raw("From: URGENT confirm at https://evil.example <jo@example.be>", "To: " + INBOX, body=b"Je voudrais Excel.\r\n")

    parsed = parse(lure)
    assert parsed.sender == "jo@example.be" and parsed.display_name is None
    assert not parsed.needs_triage


# --- transfer encodings and charsets that cannot be decoded cleanly: triage, raw kept, no garbled text ---


def mime_text(text: str, *, charset: str, cte: str) -> EmailMessage:
    """A message as a mail client writes it: one text part in a charset and a transfer encoding."""
    msg = EmailMessage()
    msg["From"] = "Jo Peeters <jo.peeters@example.be>"
    msg["Subject"] = "Inscription"
    msg.set_content(text.encode(charset), maintype="text", subtype="plain", cte=cte)
    msg.set_param("charset", charset)
    return msg


@pytest.mark.parametrize(
    ("charset", "cte"),
    [("utf-8", "quoted-printable"), ("utf-8", "base64"), ("iso-8859-1", "quoted-printable"), ("windows-1252", "base64")],
)
def test_well_declared_encodings_are_read_without_triage(charset: str, cte: str) -> None:
    text = "Bonjour, je voudrais suivre la formation « Excel » à Anderlecht. Coût : 0 €?\n"
    if charset == "iso-8859-1":
        text = text.replace("€", "EUR").replace("«", '"').replace("»", '"')
    parsed = parse(mime_text(text, charset=charset, cte=cte))

    assert parsed.need == text.strip()
    assert not parsed.needs_triage and parsed.raw_text is None


def test_invalid_base64_goes_to_triage_with_no_text_but_the_raw_message() -> None:
    mime = mime_text("Bonjour, je voudrais une formation en français.\n", charset="utf-8", cte="base64")
    data = mime.as_bytes().replace(b"Qm9uam91", b"Qm9u*?!am91")  # a corrupted line, as a broken relay leaves it
    parsed = parse(data)

    assert parsed.needs_triage
    assert parsed.triage_reason == "undecodable content; undecodable transfer encoding"
    assert parsed.body == "" and parsed.need == ""
    assert parsed.raw_text is not None and "Qm9u*?!am91" in parsed.raw_text
    draft = to_draft(parsed)
    assert "\ufffd" not in draft.need and draft.need == "Inscription"
    assert draft.channel_details["raw_text"] == parsed.raw_text


def test_latin1_bytes_declared_utf8_in_quoted_printable_go_to_triage_readable() -> None:
    body = "Je souhaite une formation en comptabilité, je suis à Schaerbeek.\n"
    mime = mime_text(body, charset="iso-8859-1", cte="quoted-printable")
    mime.set_param("charset", "utf-8")  # the classic: a client that declares UTF-8 and writes Latin-1
    parsed = parse(mime)

    assert parsed.needs_triage and parsed.triage_reason == "charset mismatch"
    assert parsed.need == body.strip()  # read as windows-1252: no replacement marks
    assert "\ufffd" not in parsed.need
    assert parsed.raw_text is not None and "comptabilit=E9" in parsed.raw_text


# --- the person's situation, in their own words (intake.situation) -------------------------------


def test_a_dutch_mail_says_the_person_has_no_computer_and_where_that_came_from() -> None:
    parsed = parse(
        message(
            "Goedemorgen,\n\nIk ben werkzoekend sinds 2023 en wil graag Excel leren.\n"
            "Ik heb geen computer thuis, wel een gsm.\n\nMet vriendelijke groeten,\nJan\n",
            subject="Vraag opleiding",
        )
    )
    draft = to_draft(parsed)

    assert parsed.language is Language.NL
    assert (draft.has_computer, draft.has_internet, draft.qualification_level) == (False, None, None)
    assert draft.unemployed_since == date(2023, 12, 31)
    assert draft.known_fact_sources() == {"has_computer": "email_text", "unemployed_since": "email_text"}


def test_the_subject_counts_as_the_persons_words() -> None:
    draft = to_draft(parse(message("Bonjour, une formation Word svp.", subject="Pas d'ordi, pas de diplôme")))

    assert (draft.has_computer, draft.qualification_level) == (False, QualificationLevel.NONE)


@pytest.mark.parametrize(
    "attribution",
    [
        "Le 03/02/2020 à 10:15, Bruxelles Formation a écrit :",
        "On Mon, Feb 3, 2020 at 10:15 AM Bruxelles Formation <formations-en-ligne@bruxellesformation.brussels> wrote:",
    ],
)
def test_what_a_quoted_mail_says_is_not_the_persons_situation(attribution: str) -> None:
    body = (
        "Oui, j'ai un ordinateur portable.\n\n"
        f"{attribution}\n"
        "> Je n'ai pas d'ordinateur ni internet, je suis au chômage depuis 3 ans.\n"
        "> Sans diplôme.\n"
    )
    draft = to_draft(parse(message(body, subject="Re: Votre demande")))

    assert draft.has_computer is True
    assert (draft.has_internet, draft.unemployed_since, draft.qualification_level) == (None, None, None)
    assert draft.known_fact_sources() == {"has_computer": "email_text"}


def test_an_outlook_reply_reads_the_answer_above_the_original_message_only() -> None:
    body = (
        "I don't have a computer or internet at home. I have been unemployed for 18 months.\n\n"
        "-----Original Message-----\n"
        "From: Bruxelles Formation\n"
        "Do you have a computer? Answer: I have a laptop\n"
    )
    draft = to_draft(parse(message(body, subject="RE: your request")))

    assert (draft.has_computer, draft.has_internet) == (False, False)
    assert draft.unemployed_since == date(2025, 5, 27)  # 18 months before 27 November 2026


def test_an_html_mail_is_read_for_the_situation_too() -> None:
    msg = message(subject="Formation")
    msg.set_content("<p>Bonjour,</p><p>Je n&#39;ai pas le CESS et <b>pas de connexion internet</b>.</p>", subtype="html")
    draft = to_draft(parse(msg))

    assert (draft.qualification_level, draft.has_internet) == (QualificationLevel.LOWER_SECONDARY, False)


def test_a_mail_that_says_nothing_of_the_situation_has_no_facts() -> None:
    draft = to_draft(parse(message("Mon ordinateur est lent, je voudrais une formation Excel.")))

    assert (draft.has_computer, draft.has_internet, draft.qualification_level, draft.unemployed_since) == (None,) * 4
    assert draft.fact_sources == {}


# --- learner questions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        # fr
        ("Question", "Bonjour, je suis inscrite à la formation Excel en ligne et je bloque au module 3.", True),
        ("Aide", "Je suis déjà inscrit au cours de Word, où trouver les exercices ?", True),
        ("Aide", "Je suis inscrit(e) à la formation InDesign depuis lundi.", True),
        ("Formation", "J'ai une question sur ma formation : le lien ne marche plus.", True),
        ("Re: Inscription confirmée : Excel", "Merci ! Quand est-ce que ça commence ?", True),
        ("Demande de formation", "Je voudrais m'inscrire à la formation Excel.", False),
        ("Demande de formation", "Je suis inscrit chez Actiris depuis un an et je cherche une formation.", False),
        ("Inscription", "Comment s'inscrire à une formation en ligne ?", False),
        # nl
        ("Vraag", "Ik ben ingeschreven voor de online cursus Excel maar kan niet inloggen.", True),
        ("Hulp", "Ik heb een vraag over mijn cursus.", True),
        ("Antw: Inschrijving bevestigd: Word", "Bedankt, tot dan.", True),
        ("Opleiding", "Ik wil me inschrijven voor een online cursus.", False),
        # en
        ("Help", "I am enrolled in the online course on Excel and the video does not load.", True),
        ("my online course - question", "Hi, I have a question about my online course.", True),
        ("RE: Enrolment confirmed: Excel", "When does it start?", True),
        ("Training", "I would like to enrol in an online course.", False),
        ("Training", "My course of action: find a job.", False),
    ],
)
def test_a_learner_question_is_recognised_conservatively(subject: str, body: str, expected: bool) -> None:
    parsed = parse(message(body, subject=subject))
    assert parsed.learner_question is expected
    assert to_draft(parsed).kind.value == ("learner_question" if expected else "training_request")


def test_our_own_quoted_words_do_not_make_a_learner_question() -> None:
    body = "Je voudrais une autre formation.\n\nLe 3 mars, Bruxelles Formation a écrit :\n> Je suis inscrit à la formation"
    assert parse(message(body, subject="Demande")).learner_question is False
