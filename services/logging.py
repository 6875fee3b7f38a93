"""Structured logging for every service: events, not sentences, and never personal data in clear.

`configure_logging()` is called once by the app factory. Records go out as JSON when
stderr is not a terminal (what log shippers want) and as coloured key=value lines
otherwise. `mask_personal_data` runs on every record, including those that the
standard library loggers of aiokafka, uvicorn and FastStream emit:

- a key of `PERSONAL_KEYS` (`phone`, `name`, ...) gets a pseudonym of its value;
- a key of `LOGGED_KEYS` (ids, counts, statuses, reasons, error types...) keeps its value, with
  e-mail addresses, phone numbers and pydantic's quoted inputs scrubbed out of text;
- any other key is not trusted: its text and numbers become pseudonyms (so a new field never
  leaks by default; add it to `LOGGED_KEYS` once it is known to be safe);
- values marked personal with `redacting(...)` (a person's name) are replaced wherever they appear,
  exception text included.

A pseudonym is an HMAC-SHA256 keyed by a secret pepper (`LOG_PEPPER`), cut to 64 bits: stable
across the replicas of one deployment, so logs can be correlated, but not reversible by hashing
every Belgian mobile number, which anyone could do with an unkeyed hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog
from opentelemetry import trace

__all__ = [
    "LOGGED_KEYS",
    "PERSONAL_KEYS",
    "add_trace_ids",
    "configure_logging",
    "mask_fields",
    "mask_personal_data",
    "pseudonym",
    "redacting",
    "scrub",
    "set_pepper",
]

# Keys whose values are personal data whatever they hold.
PERSONAL_KEYS = frozenset(
    {
        "name",
        "full_name",
        "first_name",
        "last_name",
        "phone",
        "phone_number",
        "caller",
        "from",
        "from_",
        "to",
        "email",
        "e_mail",
        "mail",
        "address",
        "sender",
        "recipient",
        "contact",
        "need",
        "notes",
        "agent_notes",
        "body",
        "text",
        "raw",
        "subject_line",
    }
)

# The allow-list: keys whose values are ours (ids, counts, states, reasons, error types) and are
# logged as they are, but for the scrubbing of free text. Keys ending in one of
# `LOGGED_SUFFIXES` are allowed too. Everything else is pseudonymised (see the module docstring);
# tests/unit/test_logging.py checks that every key the code logs is on one of the two lists.
LOGGED_KEYS = frozenset(
    {
        # the record itself
        "event",
        "level",
        "logger",
        "timestamp",
        "service",
        "instance",
        "trace_id",  # OpenTelemetry's, hex: which trace (and span) the line was logged in
        "span_id",
        "exception",
        "exc_info",
        "stack",
        "stack_info",
        "color_message",  # uvicorn's copy of the message, with colours
        # what happened, and why
        "reason",
        # what the person did about their request (routing): a window's bounds, where they acted
        "slot_start",
        "slot_end",
        "deadline_by_choice",
        "not_before",
        "chosen_through",
        "withdrawn_through",
        "corrected_through",
        "why",
        "error",
        "error_type",
        "cause",
        "hint",
        "codes",  # a CAPTCHA provider's error codes
        "scope",  # which rate limit: per client network, channel adapter or destination
        "environment",
        "status",
        "state",
        "outcome",
        "disposition",  # how a request's attempts ended: reached, unreachable, wrong_number, withdrawn
        "kind",
        "command",
        "call_status",
        "waiting_reason",
        "duplicate",
        "needs_triage",
        "passed",
        "opted_out",
        "readable",
        "applied",  # whether an event changed a projection
        "holder",  # how a credential names its holder: by e-mail (hashed) or by person id (hashed)
        "found",
        "possible",
        "linked",
        "has_session",
        "waiting_for_contact",
        "queued_to",  # the team a request waits with (a `Target`)
        "programme",  # a place in the digital-divide programme (`ProgrammePlace`)
        "suspended",
        "year",  # a programme year
        "quota",
        "facts",  # names of the facts recorded, never their values
        "replaced",
        "setting",  # a staff-run setting's name (services.configuration), or a topic config's
        "version",
        # counts and sizes
        "count",
        "max_recipients",
        "attempt",
        "attempts",
        "cases",
        "deliveries",
        "seats",
        "capacity",  # places in a course session
        "admitted",  # how many people a freed or new place enrolled from a waitlist
        "released",
        "consumed",
        "attachments",
        "outbox",
        "offers",
        "levels",
        "requests",  # how many requests a batch held
        "batch",  # whether a subscriber takes its records in batches
        # what it is about (ours, not the person's)
        "channel",
        "template",
        "language",
        "priority",
        "target",
        "certification",
        "certifications",
        "course",
        "late",  # a callback window chosen after the promise (intake's status page)
        "campaign",
        "partner",
        "platform",
        "source",
        "fields",
        "keys",
        "roles",
        "subject",  # a token's subject: the staff member's pseudonymous id at the provider
        "client_id",  # a token's client (`azp`): a channel adapter's client id in the realm, not a person
        "actor",
        "by",  # a staff member's subject at the identity provider, like `actor`
        "owner",
        "task",
        "step",  # which step of a shutdown
        "timeout_s",
        "escalated_to",
        "role",  # why a member of staff is told (`assignee`, `supervisor`)
        "joined_to",
        "taken_from",
        "offered_to",
        "approved_by",
        "requested_by",
        "confirmed_by",
        "key",
        "kid",
        "kids",
        "keeping",
        # Kafka, HTTP and the process
        "topic",
        "topics",
        "retry_topic",
        "declared",  # a topic config as declared in schemas.topics (retention.ms, cleanup.policy)
        "actual",  # the same config as the cluster has it
        "group",
        "groups",
        "consumer",
        "offset",
        "partition",
        "host",
        "port",
        "http_port",
        "path",
        "method",
        "status_code",
    }
)
LOGGED_SUFFIXES = ("_id", "_ids", "_at", "_s", "_ms", "_bytes", "_type", "_count", "deadline")

# Identifiers and times are ours (person ids are already pseudonymous); scrubbing them
# would only garble dates and UUIDs that happen to look like phone numbers.
_NEVER_PERSONAL = frozenset({"timestamp", "level", "logger", "service", "instance", "topic"})
_NEVER_PERSONAL_SUFFIXES = ("_id", "_ids", "_at", "deadline", "offset", "partition", "_s", "_ms")

# Loose on purpose: a false positive costs a masked number in a log, a false negative a data leak.
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.])(?:\+|00)?\d(?:[\s./-]?\d){7,14}(?![\w.])")
# Pydantic quotes the offending input in its messages: `[type=..., input_value='Amina', input_type=str]`.
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=)|input_value=[^\]\n]*", re.DOTALL)
_PSEUDONYM = re.compile(r"<pii:[0-9a-f]+>")

# 64 bits: with the pepper unknown, nothing to brute-force; with it, still no collisions in practice.
PSEUDONYM_HEX_CHARS = 16

# Without a configured pepper, one drawn for this process: pseudonyms are then stable only
# within the process (configure_logging warns once).
_PROCESS_PEPPER = secrets.token_bytes(32)
_pepper: bytes = _PROCESS_PEPPER
_warned_missing_pepper = False

_redacted: ContextVar[tuple[str, ...]] = ContextVar("log_redacted_values", default=())


def set_pepper(pepper: str | bytes | None) -> None:
    """Key pseudonyms with `pepper`; None goes back to this process's random one."""
    global _pepper
    if isinstance(pepper, str):
        pepper = pepper.encode()
    _pepper = _PROCESS_PEPPER if pepper is None else pepper


def pseudonym(value: str) -> str:
    """A short stable token for a personal value, so logs can still be correlated."""
    normalised = value.strip().lower().encode()
    digest = hmac.new(_pepper, normalised, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_CHARS]
    return f"<pii:{digest}>"


@contextlib.contextmanager
def redacting(*values: str | None) -> Iterator[None]:
    """Within the block (and the tasks it starts), replace these personal values wherever they are
    logged, exception text included: for what no pattern recognises, such as a person's name."""
    kept = tuple(v for v in (value.strip() if value else "" for value in values) if len(v) >= 2)
    token = _redacted.set((*_redacted.get(), *kept))
    try:
        yield
    finally:
        _redacted.reset(token)


def _redact_marked(text: str, marked: Iterable[str]) -> str:
    # Longest first, so that "Amina Test" is replaced whole before "Amina" could be.
    for value in sorted(marked, key=len, reverse=True):
        if value in text:
            text = text.replace(value, pseudonym(value))
    return text


def scrub(text: str) -> str:
    """Replace e-mail addresses, phone numbers, pydantic's quoted inputs and values marked with
    `redacting` inside free text."""
    text = _redact_marked(text, _redacted.get())
    text = _PYDANTIC_INPUT.sub("input_value=<redacted>", text)
    # Numbers first: a pseudonym of an address may be all digits and must not be masked again.
    text = _PHONE.sub(lambda m: pseudonym(m.group()), text)
    return _EMAIL.sub(lambda m: pseudonym(m.group()), text)


def _mask_value(key: str, value: Any) -> Any:
    if key.lower() in PERSONAL_KEYS and value not in (None, "", [], {}):
        if isinstance(value, Mapping):
            return {k: _mask_value(k, v) if k.lower() in PERSONAL_KEYS else pseudonym(str(v)) for k, v in value.items()}
        return pseudonym(str(value))
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(key, v) for v in value]
    if isinstance(value, BaseException):
        return scrub(repr(value))
    return value


def _is_allowed(key: str) -> bool:
    return key in LOGGED_KEYS or key.endswith(LOGGED_SUFFIXES)


def _mask_untrusted(value: Any) -> Any:
    """The value of a key nobody declared safe: only its shape and pseudonyms remain."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _mask_untrusted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_untrusted(v) for v in value]
    if isinstance(value, str) and _PSEUDONYM.fullmatch(value):
        return value
    return pseudonym(str(value))


def mask_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a document (an event shown to an operator) with personal fields pseudonymised and
    free text scrubbed; unlike log records, other fields are kept as they are."""
    return {
        key: value if key in _NEVER_PERSONAL or key.endswith(_NEVER_PERSONAL_SUFFIXES) else _mask_value(key, value)
        for key, value in payload.items()
    }


def mask_personal_data(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: pseudonymise personal and unknown fields and scrub free text."""
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # structlog's own bookkeeping (`_record`), removed before rendering
            continue
        if key in _NEVER_PERSONAL or key.endswith(_NEVER_PERSONAL_SUFFIXES):
            continue
        if key.lower() in PERSONAL_KEYS or _is_allowed(key):
            event_dict[key] = _mask_value(key, value)
        else:
            event_dict[key] = _mask_untrusted(value)
    return event_dict


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`trace_id` and `span_id` of the current span (W3C hex, as a trace viewer shows them), on every
    line logged inside a trace: a log line leads to its trace and back. Lines outside any trace
    (a background loop between rounds) have none."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict


def configure_logging(
    *,
    service: str,
    instance: str | None = None,
    level: str = "INFO",
    fmt: str = "auto",
    pepper: str | None = None,
) -> None:
    """Route structlog and the standard library through one pipeline; idempotent.

    `pepper` keys the pseudonyms (`ServiceSettings.log_pepper`); without one, a random pepper of
    this process is used and a warning says so once."""
    global _warned_missing_pepper
    set_pepper(pepper)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        add_trace_ids,
        mask_personal_data,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty at INFO about every rebalance step; warnings still show.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service, **({"instance": instance} if instance else {}))
    if pepper is None and not _warned_missing_pepper:
        _warned_missing_pepper = True
        # Replicas then give one person different pseudonyms; fine on a laptop, not in production.
        structlog.get_logger(__name__).warning("logging.pepper_missing", reason="LOG_PEPPER not set: random per process")
