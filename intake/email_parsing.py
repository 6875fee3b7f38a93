"""Turns one received e-mail (raw RFC 5322 bytes) into what intake needs to know about it.

Pure: bytes in, `ParsedEmail` out, no I/O. `parse_email` never raises: a message that cannot be
understood is still somebody asking for help, so it comes back flagged for manual triage with
its raw text kept for the human who will read it. `to_draft` turns the result into the
`RequestDraft` the intake pipeline accepts, with the situation facts the person's own words state
plainly (`intake.situation`: "je n'ai pas d'ordinateur", "werkzoekend sinds 2023"...) marked as
coming from `email_text`.
"""

from __future__ import annotations

import codecs
import email
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from email import errors
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses
from html import unescape
from html.parser import HTMLParser
from typing import Any

import phonenumbers

from intake.domain import ChannelDetail, FactSource, RequestDraft
from intake.situation import SituationFacts, situation_from_text
from schemas import Channel, Language, RequestKind
from schemas.values import EMAIL_PATTERN
from services.calendar import BRUSSELS
from services.catalogue import Catalogue
from services.free_text import clean_name

__all__ = ["SERVICE_PHONE_NUMBERS", "SOURCE", "ParsedEmail", "html_to_text", "is_learner_question", "parse_email", "to_draft"]

SOURCE = "/intake/email"

SERVICE_PHONE_NUMBERS = frozenset({"+3280055566"})
"""Our own numbers (the free 0800 line): they appear in quoted replies and signatures we sent."""

MAX_RAW_TEXT_CHARS = 100_000
MAX_BODY_CHARS = 100_000
MAX_NEED_CHARS = 5_000
MAX_SUBJECT_DETAIL_CHARS = 200
MAX_ATTACHMENT_NAMES_CHARS = 500
MAX_NAME_CHARS = 200
# Header values are cut before the structured parser sees them: `email`'s header parser is
# quadratic on long runs of encoded-words (60 KB takes seconds), and nothing we read from a
# header (address, subject, file name, charset) is legitimately longer than this.
MAX_HEADER_CHARS = 4_096
# Past these sizes the analysis only costs time: a request is never that long.
MAX_ANALYSED_CHARS = 20_000
MAX_HTML_CHARS = 1_000_000
MAX_MIME_DEPTH = 30

_EMAIL_RE = re.compile(EMAIL_PATTERN)
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """What one e-mail says, decoded; personal data included, so never log it as a whole."""

    received_at: datetime
    dedup_key: str
    """`email:<Message-ID>`, or `email:sha256:<hash of the raw bytes>` when there is none."""
    sender: str | None = None
    """Lowercased address from From (else Reply-To, Sender, the envelope MAIL FROM), when usable."""
    display_name: str | None = None
    subject: str = ""
    message_id: str | None = None
    body: str = ""
    """The whole text body (text/plain, else text/html converted), quotes and signature included."""
    need: str = ""
    """The body without quoted replies and signature: what the person wrote this time."""
    attachments: tuple[tuple[str, int], ...] = ()
    """(file name, decoded size in bytes) of each attachment; their content is never kept."""
    phone: str | None = None
    """First phone number in the text, E.164, other than our own."""
    language: Language = Language.FR
    course_codes: tuple[str, ...] = ()
    """Catalogue codes of every course the subject or text names, best match first."""
    learner_question: bool = False
    """The person says they are already enrolled in a course and asks about it (`is_learner_question`)."""
    is_automatic: bool = False
    """An auto-reply, bounce or bulk mail: acknowledged, but no request is made of it."""
    automatic_reason: str | None = None
    needs_triage: bool = False
    triage_reason: str | None = None
    raw_text: str | None = None
    """The raw message as text (at most 100 000 characters), kept only when `needs_triage`."""
    situation: SituationFacts = field(default_factory=SituationFacts)
    """What the subject and the person's own text (quotes and signature left out) say of their situation."""

    @property
    def requested_course(self) -> str | None:
        return self.course_codes[0] if self.course_codes else None


def parse_email(
    raw: bytes,
    *,
    catalogue: Catalogue,
    received_at: datetime,
    envelope_sender: str | None = None,
) -> ParsedEmail:
    """Parse one message; never raises (a failure becomes a request flagged for triage).

    `envelope_sender` is the SMTP `MAIL FROM`: the sender of last resort, and `<>` (the null
    reverse-path of bounces) marks the message as automatic.
    """
    try:
        return _parse(bytes(raw), catalogue=catalogue, received_at=received_at, envelope_sender=envelope_sender)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"; a human reads the rest
        return _unparseable(raw, received_at, envelope_sender, f"unparseable MIME: {type(exc).__name__}")


def to_draft(parsed: ParsedEmail) -> RequestDraft:
    """The request an e-mail makes: the person wrote to us, so they consent to being contacted."""
    need = parsed.need or parsed.body or parsed.subject
    names = ", ".join(name for name, _ in parsed.attachments)
    details: dict[str, ChannelDetail] = {
        "message_id": parsed.message_id,
        "subject": _truncate(parsed.subject, MAX_SUBJECT_DETAIL_CHARS),
        "attachment_count": len(parsed.attachments),
        "attachment_names": _truncate(names, MAX_ATTACHMENT_NAMES_CHARS) or None,
        "all_course_codes": ",".join(parsed.course_codes) or None,
    }
    if parsed.needs_triage:
        # Personal data: it travels inside the event for the person doing triage, never in logs.
        details["raw_text"] = parsed.raw_text
    return RequestDraft(
        channel=Channel.EMAIL,
        source=SOURCE,
        received_at=parsed.received_at,
        language=parsed.language,
        consent_to_contact=True,
        name=parsed.display_name,
        phone=parsed.phone,
        email=parsed.sender,
        need=_truncate(need, MAX_NEED_CHARS),
        requested_course=parsed.requested_course,
        qualification_level=parsed.situation.get("qualification_level"),
        has_computer=parsed.situation.get("has_computer"),
        has_internet=parsed.situation.get("has_internet"),
        unemployed_since=parsed.situation.get("unemployed_since"),
        kind=RequestKind.LEARNER_QUESTION if parsed.learner_question else RequestKind.TRAINING_REQUEST,
        needs_triage=parsed.needs_triage,
        triage_reason=parsed.triage_reason,
        channel_details=details,
        fact_sources=dict.fromkeys(parsed.situation, FactSource.EMAIL_TEXT),
        dedup_key=parsed.dedup_key,
    )


# --- the parse itself ---------------------------------------------------------------------


class _BoundedPolicy(EmailPolicy):
    """`email.policy.default`, except that header values are cut to `MAX_HEADER_CHARS` first."""

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_HEADER_CHARS:
            value = value[:MAX_HEADER_CHARS]
        return super().header_fetch_parse(name, value)


_POLICY = _BoundedPolicy()


def _parse(raw: bytes, *, catalogue: Catalogue, received_at: datetime, envelope_sender: str | None) -> ParsedEmail:
    msg = email.message_from_bytes(raw, policy=_POLICY)
    reasons: list[str] = []

    sender, display_name = _sender(msg, envelope_sender)
    if sender is None:
        reasons.append("no usable sender address")
    subject = _collapse_spaces(_header_text(msg, "Subject") or "")
    message_id = _message_id(msg)

    parts = _Parts()
    _collect(msg, parts, depth=0)
    if parts.plain and any(text.strip() for text in parts.plain):
        body = "\n\n".join(text for text in parts.plain if text.strip())
    else:
        body = "\n\n".join(html_to_text(html) for html in parts.html)
    body = _tidy(body[: MAX_BODY_CHARS * 2])[:MAX_BODY_CHARS]
    undecodable = parts.undecodable or _looks_undecodable(body)
    body = _tidy(_CONTROLS.sub("", body))
    own_text = _strip_quotes(body)
    need = _strip_signature(own_text)

    if parts.broken:
        reasons.append(f"unparseable MIME: {parts.broken}")
    if undecodable:
        reasons.append("undecodable content")
    reasons += sorted(parts.decoding_problems - {"undecodable charset"})
    if undecodable:
        pass
    elif not body:
        reasons.append("no text body")
    elif not need:
        reasons.append("only quoted text")

    analysed = f"{subject}\n{need or body}"[:MAX_ANALYSED_CHARS]
    courses = catalogue.find_courses_in(analysed)
    automatic_reason = _automatic_reason(msg, parts, sender, envelope_sender)
    language = _content_language(msg, parts) or detect_language(analysed)
    needs_triage = bool(reasons)
    return ParsedEmail(
        received_at=received_at,
        dedup_key=_dedup_key(message_id, raw),
        sender=sender,
        display_name=display_name,
        subject=subject,
        message_id=message_id,
        body=body,
        need=need,
        attachments=tuple(parts.attachments),
        phone=_phone((own_text or body)[:MAX_ANALYSED_CHARS]),
        language=language,
        course_codes=tuple(course.code for course in courses),
        learner_question=is_learner_question(subject, need),
        is_automatic=automatic_reason is not None,
        automatic_reason=automatic_reason,
        needs_triage=needs_triage,
        triage_reason="; ".join(reasons) or None,
        raw_text=_raw_text(raw) if needs_triage else None,
        # Only the person's own words: "je n'ai pas d'ordinateur" quoted from someone else's mail is not theirs.
        situation=situation_from_text(
            f"{subject}\n{need}"[:MAX_ANALYSED_CHARS], language, today=received_at.astimezone(BRUSSELS).date()
        ),
    )


def _unparseable(raw: object, received_at: datetime, envelope_sender: str | None, reason: str) -> ParsedEmail:
    """The result of last resort: nothing but the raw text, the envelope sender and a reason."""
    try:
        data = bytes(raw) if isinstance(raw, bytes | bytearray | memoryview) else str(raw).encode("utf-8", "replace")
    except Exception:  # noqa: BLE001
        data = b""
    text = _raw_text(data)
    sender = _usable_address(envelope_sender) if isinstance(envelope_sender, str) else None
    return ParsedEmail(
        received_at=received_at,
        dedup_key=_dedup_key(None, data),
        sender=sender,
        body=text,
        needs_triage=True,
        triage_reason=reason if sender else f"{reason}; no usable sender address",
        raw_text=text,
    )


# --- headers ---------------------------------------------------------------------------------


def _raw_header(msg: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return str(value)[:MAX_HEADER_CHARS]
    return None


def _decode_words(raw: str) -> str:
    """RFC 2047 decoding the old way: the fallback when the structured parser gives up."""
    try:
        return str(make_header(decode_header(raw)))
    except Exception:  # noqa: BLE001 - unknown charset, broken encoded-word: keep it as written
        return raw


def _header_text(msg: Message, name: str) -> str | None:
    raw = _raw_header(msg, name)
    if raw is None:
        return None
    try:
        text = str(msg[name])
    except Exception:  # noqa: BLE001
        text = _decode_words(raw)
    return _clean(text).strip()


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, however broken it is."""
    raw = _raw_header(msg, name)
    if raw is None:
        return []
    try:
        header = msg[name]
        if isinstance(header, AddressHeader):  # it is, with the EmailPolicy the message is parsed with
            return [(_clean(a.display_name), _clean(a.addr_spec)) for a in header.addresses]
    except Exception:  # noqa: BLE001, S110 - too broken for the header registry: read the old way below
        pass
    try:
        return [(_clean(_decode_words(n)), _clean(a)) for n, a in getaddresses([raw])]
    except Exception:  # noqa: BLE001
        return []


def _usable_address(address: str | None) -> str | None:
    if not address:
        return None
    address = _clean(address).strip().strip("<>").strip().lower()
    if len(address) > 254 or not _EMAIL_RE.match(address) or any(c in address for c in '<>(),;:"[]\\'):
        return None
    return address


def _usable_name(name: str | None) -> str | None:
    name = _collapse_spaces(name or "").strip(" \"'")
    if not name or "@" in name:  # "jean@example.be" <jean@example.be> is no name
        return None
    # A From display name is the sender's to choose: one with a link or control characters is dropped, not echoed.
    return clean_name(name[:MAX_NAME_CHARS])


def _sender(msg: Message, envelope_sender: str | None) -> tuple[str | None, str | None]:
    first_name: str | None = None
    for header in ("From", "Reply-To", "Sender"):
        for display_name, address in _addresses(msg, header):
            name = _usable_name(display_name)
            first_name = first_name or name
            if usable := _usable_address(address):
                return usable, name or first_name
    return _usable_address(envelope_sender), first_name


def _message_id(msg: Message) -> str | None:
    raw = _raw_header(msg, "Message-ID")
    if raw is None:
        return None
    message_id = re.sub(r"\s+", "", _clean(raw))
    return message_id or None


def _dedup_key(message_id: str | None, raw: bytes) -> str:
    if message_id and len(message_id) <= 500:
        return f"email:{message_id}"
    source = message_id.encode() if message_id else raw
    return f"email:sha256:{hashlib.sha256(source).hexdigest()}"


_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Failed-Recipients")
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply"})
_REPORT_TYPES = frozenset({"message/delivery-status", "message/disposition-notification"})


def _automatic_reason(msg: Message, parts: _Parts, sender: str | None, envelope_sender: str | None) -> str | None:
    """Why this mail was sent by a machine (RFC 3834 and the usual non-standard headers), if it was.

    The reason is logged: it is built from a fixed vocabulary, never copied from the message.
    """
    auto_submitted = (_raw_header(msg, "Auto-Submitted") or "").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        known = auto_submitted in {"auto-replied", "auto-generated", "auto-notified"}
        return f"auto-submitted: {auto_submitted if known else 'other'}"
    for header in _AUTO_HEADERS:
        if _raw_header(msg, header) is not None:
            return header.lower()
    precedence = (_raw_header(msg, "Precedence") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"precedence: {precedence}"
    if parts.root_type == "multipart/report" or parts.content_types & _REPORT_TYPES:
        return "delivery status notification"
    if envelope_sender is not None and envelope_sender.strip() in ("", "<>"):
        return "null reverse-path"
    if sender and sender.split("@")[0] == "mailer-daemon":
        return "mailer-daemon"
    return None


def _content_language(msg: Message, parts: _Parts) -> Language | None:
    """`Content-Language` (of the message, else of its text part), when it is fr, nl or en."""
    for value in (_raw_header(msg, "Content-Language"), parts.content_language):
        if value:
            primary = re.split(r"[-_,;\s]", value.strip().lower(), maxsplit=1)[0]
            if primary in {language.value for language in Language}:
                return Language(primary)
    return None


# --- MIME tree -------------------------------------------------------------------------------


@dataclass
class _Parts:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[tuple[str, int]] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)
    root_type: str | None = None
    content_language: str | None = None
    undecodable: bool = False
    decoding_problems: set[str] = field(default_factory=set)
    """What kept a text part from being decoded as declared: `_DecodingProblem` values, never message text."""
    broken: str | None = None
    """The name of the defect that kept the parser from understanding the MIME structure."""


def _collect(part: Message, out: _Parts, depth: int) -> None:
    """Walk the MIME tree: text parts to `plain`/`html`, everything else to `attachments`."""
    if depth > MAX_MIME_DEPTH:
        out.undecodable = True
        return
    content_type = _content_type(part)
    out.content_types.add(content_type)
    if depth == 0:
        out.root_type = content_type
    if content_type.startswith("message/"):
        # A forwarded message or a delivery report: somebody else's text, kept as an attachment.
        out.attachments.append((_filename(part) or f"unnamed ({content_type})", _size(part)))
        return
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _collect(sub, out, depth + 1)
        return
    if content_type.startswith("multipart/"):
        # No boundary, or not found: the parser could not split it. Its text is all there is.
        defects = [type(d).__name__ for d in part.defects] or ["NoBoundaryInMultipartDefect"]
        out.broken = out.broken or defects[0]
        out.plain.append(_decode_bytes(_payload_bytes(part), _charset(part))[0])
        return
    filename = _filename(part)
    disposition = _disposition(part)
    if content_type in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        data, transfer_clean = _transfer_decoded(part)
        text, problem = _decode_text(data, _charset(part))
        if not transfer_clean:
            problem = "undecodable transfer encoding"
        if problem is not None:
            out.decoding_problems.add(problem)
        if problem in ("undecodable transfer encoding", "undecodable charset"):
            # Garbled text is worse than none: the person doing triage reads the raw message instead.
            out.undecodable = True
            return
        (out.plain if content_type == "text/plain" else out.html).append(text)
        out.content_language = out.content_language or _raw_header(part, "Content-Language")
        return
    out.attachments.append((filename or f"unnamed ({content_type})", _size(part)))


def _content_type(part: Message) -> str:
    try:
        return _clean(part.get_content_type()).lower()[:100]
    except Exception:  # noqa: BLE001
        return "text/plain"


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        return None
    name = _collapse_spaces(_clean(name)) if isinstance(name, str) else ""
    return name[:MAX_NAME_CHARS] or None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return None


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        return None
    return charset if isinstance(charset, str) else None


def _payload_bytes(part: Message) -> bytes:
    """The part's content with its transfer encoding (quoted-printable, base64) undone."""
    return _transfer_decoded(part)[0]


_TRANSFER_DEFECTS = (
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64LengthDefect,
)


def _transfer_decoded(part: Message) -> tuple[bytes, bool]:
    """The part's content with its transfer encoding undone, and whether that went cleanly.

    `email` never refuses bad base64: it drops the characters it cannot read and notes a defect,
    so the bytes it returns are a guess; the defects it noted while decoding say so."""
    known_defects = len(part.defects)
    try:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            fresh = part.defects[known_defects:]
            return payload, not any(isinstance(defect, _TRANSFER_DEFECTS) for defect in fresh)
    except Exception:  # noqa: BLE001, S110 - undecodable: the payload as written, below
        pass
    payload = part.get_payload()
    return (payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""), False


def _size(part: Message) -> int:
    if part.is_multipart() or _content_type(part).startswith("message/"):
        try:
            return len(part.as_bytes())
        except Exception:  # noqa: BLE001
            return 0
    return len(_payload_bytes(part))


# --- charsets --------------------------------------------------------------------------------

# What browsers do (WHATWG Encoding): these labels mean windows-1252, which agrees with them
# on every byte they define and gives Outlook's curly quotes and € their meaning.
_AS_CP1252 = frozenset({"ascii", "latin_1", "iso8859_1", "cp1252"})


def _codec(declared: str | None) -> str | None:
    if not declared:
        return None
    try:
        info = codecs.lookup(declared.strip().strip("\"'"))
    except Exception:  # noqa: BLE001 - LookupError, or a label that is not even a name
        return None
    if not getattr(info, "_is_text_encoding", True):  # base64_codec, zlib_codec, rot_13...
        return None
    return "cp1252" if info.name.replace("-", "_") in _AS_CP1252 else info.name


def _decode_text(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Text of a body part, and what was wrong with it, if anything.

    The problem is None when the declared charset (or, undeclared, UTF-8 or windows-1252) read the
    bytes; "unknown charset" or "charset mismatch" when the text had to be read with another one
    than declared (readable, but a guess: a human checks it against the raw message);
    "undecodable charset" when no charset read it."""
    text, clean = _decode_bytes(data, declared)
    if not clean:
        return text, "undecodable charset"
    if declared and declared.strip().strip("\"'"):
        codec = _codec(declared)
        if codec is None:
            return text, "unknown charset"
        if not _decodes(data, codec):
            return text, "charset mismatch"
    return text, None


def _decodes(data: bytes, codec: str) -> bool:
    try:
        return not _SURROGATES.search(data.decode(codec))
    except Exception:  # noqa: BLE001
        return False


def _decode_bytes(data: bytes, declared: str | None) -> tuple[str, bool]:
    """Text of `data`: the declared charset, else utf-8, then cp1252, then latin-1 with replacement.

    Returns the text and whether a real decoding succeeded (False: the latin-1 last resort).
    """
    codec = _codec(declared)
    ladder: list[str] = []
    if codec == "cp1252" and not data.isascii():
        # "iso-8859-1" declared on UTF-8 text is a classic; valid multi-byte UTF-8 in real
        # Latin-1 text almost never happens, so UTF-8 that decodes is believed first.
        ladder.append("utf-8")
    ladder += [c for c in (codec, "utf-8", "cp1252") if c and c not in ladder]
    for candidate in ladder:
        try:
            text = data.decode(candidate)
        except Exception:  # noqa: BLE001, S112 - the next charset on the ladder
            continue
        if not _SURROGATES.search(text):  # utf-7 and friends can decode to lone surrogates
            return _normalise(text), True
    return _normalise(data.decode("latin-1", errors="replace")), False


def _clean(text: object) -> str:
    """A string safe to store and send: lone surrogates (undecoded 8-bit bytes) decoded properly."""
    if not isinstance(text, str):
        return ""
    if _SURROGATES.search(text):
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogatepass")
        text, _ = _decode_bytes(data, None)
    return text.replace("\x00", "")


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _raw_text(raw: bytes) -> str:
    try:
        text, _ = _decode_bytes(raw[: MAX_RAW_TEXT_CHARS * 4], None)
        return text[:MAX_RAW_TEXT_CHARS]
    except Exception:  # noqa: BLE001
        return ""


def _looks_undecodable(text: str) -> bool:
    """Mostly control characters or replacement marks: binary data, or a charset we got wrong."""
    sample = text[:MAX_ANALYSED_CHARS]
    if not sample:
        return False
    bad = sum(
        1 for ch in sample if ch == "\ufffd" or (ch not in "\n\t\f\v" and unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs"))
    )
    return bad / len(sample) > 0.05


# --- HTML ------------------------------------------------------------------------------------

_SKIPPED = frozenset({"script", "style", "title", "xml", "template", "noscript", "svg"})
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "tr",
        "li",
        "ul",
        "ol",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "hr",
        "section",
        "article",
        "header",
        "footer",
        "address",
        "dl",
        "dt",
        "dd",
    }
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self._line: list[str] = []
        self._skip = 0
        self._quote = 0
        self._pre = 0

    def newline(self) -> None:
        self.lines.append((self._quote, "".join(self._line)))
        self._line = []

    def end_block(self) -> None:
        """A block ends its line, if it has one: empty blocks and source indentation add none.
        (`&nbsp;` counts as content, as in a browser: Outlook's `<p>&nbsp;</p>` is a blank line.)"""
        if "".join(self._line).strip(" "):
            self.newline()
        else:
            self._line = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "br":
            self.newline()
        elif tag in _BLOCKS:
            self.end_block()
            self._quote += tag == "blockquote"
            self._pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.newline()
        elif tag in _BLOCKS:
            self.end_block()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self.end_block()
            if tag == "blockquote":
                self._quote = max(0, self._quote - 1)
            elif tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            first, *rest = data.split("\n")
            self._line.append(first)
            for line in rest:
                self.newline()
                self._line.append(line)
        else:
            self._line.append(re.sub(r"[ \t\n\r\f]+", " ", data))


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: no tags, scripts or styles; blocks and <br> become line
    breaks; entities unescaped; <blockquote> lines prefixed with "> " like a plain-text reply."""
    html = html[:MAX_HTML_CHARS]
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - HTMLParser is lenient, but a broken page still has words
        return _tidy(unescape(re.sub(r"<[^>]*>", " ", html)))
    parser.newline()
    lines = [(depth, text.replace("\xa0", " ").strip()) for depth, text in parser.lines]
    return _tidy("\n".join(("> " * depth + text) if text else "" for depth, text in lines))


def _tidy(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, no blank lines around the text."""
    text = "\n".join(line.rstrip() for line in _normalise(text).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _collapse_spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --- quoted replies and signatures -------------------------------------------------------------

# Attribution lines that introduce a quoted message; Gmail wraps long ones over two lines.
_ATTRIBUTION = [
    re.compile(r"\s*Le\s.{0,250}\sa\s+[ée]crit\s*:\s*$", re.IGNORECASE),
    re.compile(r"\s*Op\s.{0,250}\sschreef\s.{0,250}:\s*$", re.IGNORECASE),
    re.compile(r"\s*On\s.{0,250}\swrote\s*:\s*$", re.IGNORECASE),
    re.compile(r"\s*Am\s.{0,250}\sschrieb\s.{0,250}:\s*$", re.IGNORECASE),
]
# Outlook and webmail quote without ">": everything after these lines is the older message.
_ORIGINAL_MESSAGE = re.compile(
    r"\s*(-{2,}\s*(original message|message d'origine|oorspronkelijk bericht|forwarded message"
    r"|message transféré|doorgestuurd bericht)\s*-{2,}|_{20,})\s*$",
    re.IGNORECASE,
)
_HEADER_BLOCK_FROM = re.compile(r"\s*\*?(de|from|van)\s*\*?\s*:\s*\S", re.IGNORECASE)
_HEADER_BLOCK_NEXT = re.compile(
    r"\s*\*?(envoy[ée]|sent|verzonden|date|datum|[àa]|to|aan|objet|subject|onderwerp)\s*\*?\s*:",
    re.IGNORECASE,
)
_SENT_FROM_DEVICE = re.compile(r"\s*(envoy[ée] de mon|sent from my|verzonden (vanaf|met) mijn|get outlook for)\b", re.IGNORECASE)


def _is_attribution(line: str, following: str) -> int:
    """How many lines (1 or 2) form an attribution starting at `line`; 0 if it is not one."""
    if len(line) > 300:
        return 0
    if any(p.match(line) for p in _ATTRIBUTION):
        return 1
    joined = f"{line} {following.strip()}"
    if following and len(joined) <= 400 and any(p.match(joined) for p in _ATTRIBUTION):
        return 2
    return 0


def _strip_quotes(text: str) -> str:
    """The text without quoted replies ("> " lines, "Le ... a écrit :", Outlook's header block)."""
    lines = text.split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if span := _is_attribution(line, following):
            rest = [candidate for candidate in lines[i + span :] if candidate.strip()]
            if not rest or not rest[0].lstrip().startswith(">"):
                break  # the quote is not marked with ">": all that follows is the old message
            i += span
            continue
        if len(line) <= 300 and _ORIGINAL_MESSAGE.match(line):
            break
        if len(line) <= 300 and _HEADER_BLOCK_FROM.match(line) and _HEADER_BLOCK_NEXT.match(following[:300]):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line)
        i += 1
    return _tidy("\n".join(kept))


def _strip_signature(text: str) -> str:
    """The text up to the signature separator ("-- "), without "Sent from my phone" lines."""
    kept: list[str] = []
    for line in text.split("\n"):
        if line.rstrip() == "--":
            break
        if len(line) <= 100 and _SENT_FROM_DEVICE.match(line):
            continue
        kept.append(line)
    return _tidy("\n".join(kept))


# --- what the text says ----------------------------------------------------------------------

_STOPWORDS: dict[Language, frozenset[str]] = {
    Language.FR: frozenset(
        "le la les je j de des du et pour une un est suis voudrais aimerais souhaite souhaiterais "
        "formation formations bonjour merci cordialement madame monsieur avec dans pas vous votre mon ma "
        "mes sur qui que qu au aux cours inscrire inscription chômage demandeur emploi salutations bien "
        "svp ce cette il elle nous être avoir suivre apprendre".split()
    ),
    Language.NL: frozenset(
        "de het een ik en voor opleiding opleidingen graag bedankt goedendag goedemorgen dag hallo wil "
        "zou met van niet mijn u uw zijn naar op te dank vriendelijke groeten cursus werkzoekende heb kan "
        "ook wat hoe volgen inschrijven leren beste mevrouw meneer alvast".split()
    ),
    Language.EN: frozenset(
        "the and i to course courses would please thanks thank hello hi you my for like want training am "
        "dear regards with this can could job unemployed learn take enrol enroll sincerely kind best "
        "interested looking".split()
    ),
}


def detect_language(text: str) -> Language:
    """fr, nl or en by counting common words; French (most of our public) when unsure."""
    words = re.findall(r"[^\W\d_]+", text[:MAX_ANALYSED_CHARS].casefold())
    scores = {language: sum(word in stopwords for word in words) for language, stopwords in _STOPWORDS.items()}
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, best_score), (_, second_score) = ranked[0], ranked[1]
    if best_score < 2 or best_score == second_score:
        return Language.FR
    return best


def _phone(text: str) -> str | None:
    """The first Belgian (or international) number in the text, E.164; ours are skipped."""
    try:
        for match in phonenumbers.PhoneNumberMatcher(text, "BE"):
            number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            if number not in SERVICE_PHONE_NUMBERS:
                return number
    except Exception:  # noqa: BLE001 - a phone number is a nice-to-have, never a reason to fail
        return None
    return None


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- learner questions ----------------------------------------------------------------------

_REPLY_PREFIX = r"(?:(?:re|aw|antw|antwoord|tr|fw|fwd|sv)\s*:\s*)+"
# Subjects of our own enrolment confirmations (notification/templates/*/enrolment_confirmed.j2).
_ENROLMENT_SUBJECT = re.compile(
    rf"^{_REPLY_PREFIX}(?:inscription confirmee|inschrijving bevestigd|enrolment confirmed|enrollment confirmed)\b"
)
_COURSE = r"(?:formation|cours|module|opleiding|cursus|course|training|class)"
_LEARNER_PHRASES = re.compile(
    "|".join(
        (
            # fr: "je suis (déjà) inscrit(e) à la formation", "j'ai une question sur ma formation"
            rf"\bje suis (?:deja )?inscrit(?:e|\(e\)|·e|\.e)? (?:a|au|aux|en|pour|dans) (?:la |le |une |un |l')?{_COURSE}",
            rf"\b(?:question|probleme|souci) (?:sur|concernant|a propos de|avec|dans) (?:ma|mon) {_COURSE}",
            # nl: "ik ben (al) ingeschreven voor de opleiding", "een vraag over mijn cursus"
            rf"\bik ben (?:al |reeds )?ingeschreven (?:voor|in|bij) (?:de |een |het |mijn )?(?:online )?{_COURSE}",
            rf"\b(?:vraag|probleem) (?:over|bij|met|in) mijn (?:online )?{_COURSE}",
            # en: "I am (already) enrolled in the course", "a question about my online course"
            rf"\bi(?: am|'m) (?:already )?(?:enrolled|enroled|registered) (?:in|on|for) "
            rf"(?:the |a |an |my )?(?:online )?{_COURSE}",
            rf"\b(?:question|problem|issue) (?:about|on|with|in|regarding) my (?:online )?{_COURSE}",
        )
    )
)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", stripped.casefold()).strip()


def is_learner_question(subject: str, text: str) -> bool:
    """Whether the person clearly says they already follow a course and ask about it.

    Conservative: an explicit "je suis inscrit(e) à la formation…" / "ik ben ingeschreven voor de
    opleiding…" / "I am enrolled in the course…", a question about *my* course, or a reply to our
    own enrolment confirmation. Wanting to enrol, or naming a course, is a training request.
    `text` is what the person wrote this time (quotes stripped): our own quoted words never count.
    """
    folded_subject = _fold(subject[:MAX_HEADER_CHARS])
    if _ENROLMENT_SUBJECT.search(folded_subject):
        return True
    return _LEARNER_PHRASES.search(f"{folded_subject}\n{_fold(text[:MAX_ANALYSED_CHARS])}") is not None
