"""Structured logging for every service: events, not sentences, and never personal data in clear.

`configure_logging()` is called once by the app factory. Records go out as JSON when
stderr is not a terminal (what log shippers want) and as coloured key=value lines
otherwise. `mask_personal_data` runs on every record, including those that the
standard library loggers of aiokafka, uvicorn and FastStream emit.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

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

# Loose on purpose: a false positive costs a masked number in a log, a false negative a data leak.
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.])(?:\+|00)?\d(?:[\s./-]?\d){7,14}(?![\w.])")


# Identifiers and times are ours (person ids are already pseudonymous); scrubbing them
# would only garble dates and UUIDs that happen to look like phone numbers.
_NEVER_PERSONAL = frozenset({"timestamp", "level", "logger", "service", "instance", "topic"})
_NEVER_PERSONAL_SUFFIXES = ("_id", "_ids", "_at", "deadline", "offset", "partition", "_s", "_ms")


def pseudonym(value: str) -> str:
    """A short stable token for a personal value, so logs can still be correlated."""
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:10]
    return f"<pii:{digest}>"


def scrub(text: str) -> str:
    """Replace e-mail addresses and phone numbers inside free text."""
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


def mask_personal_data(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: pseudonymise personal fields and scrub free text."""
    for key, value in list(event_dict.items()):
        if key in _NEVER_PERSONAL or key.endswith(_NEVER_PERSONAL_SUFFIXES):
            continue
        event_dict[key] = _mask_value(key, value)
    return event_dict


def configure_logging(*, service: str, instance: str | None = None, level: str = "INFO", fmt: str = "auto") -> None:
    """Route structlog and the standard library through one pipeline; idempotent."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
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
