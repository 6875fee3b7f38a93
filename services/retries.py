"""What a consumer does with a message its handler failed on: the decision and the headers.

Pure functions, no broker: `services.consumers.ErrorPolicy` applies them.

Four dispositions, decided by `classify` from the `CLASSIFICATION` table:

- `SKIP`: a well-formed CloudEvent of a type this consumer does not know (`UnknownEventType`).
  Topics are shared and gain event types over time, so a reader that does not know a type
  is not interested in it: the record is committed past, logged and counted
  (`consumer_skipped_events`), not dead-lettered. A known type with invalid data is not
  skipped: that is a broken contract and goes to the dead letters.
- `DEAD_LETTER`: the message can never succeed as it is (it breaks the contract, it fails
  validation, a handler said so with `PermanentError`). Its original bytes go to the
  service's dead-letter topic at once; an operator redrives it after the fix. That
  includes `UnsupportedSchemaVersion`: it goes away with a consumer upgrade, which takes
  longer than any retry level, so it waits in the dead letters for a redrive by type.
- `RETRY_LATER`: it might succeed later (a timeout, a Kafka error, anything we do not
  know). It is published to the service's retry topic of the next level and the original
  is committed, so the partition goes on; after the last level it is dead-lettered.
- `RETRY_IN_PLACE`: something every message needs is down (MongoDB unreachable,
  `DependencyUnavailable`). Sending messages through the retry topics would only move
  all of them to the dead letters in a minute; instead the consumer keeps the record,
  does not commit past it and tries again after a pause, as before retry topics existed.

Retry topics are one per level and service: `<service>.retry.<level>.v1`, level 1 waits
`delays[0]` (1 s by default), level 2 `delays[1]` (10 s), level 3 `delays[2]` (60 s).
Each level holds one uniform delay, so its messages come due in the order they were
written and waiting for the head of a partition never delays a message behind it by more
than that level's delay.

Ordering. A retried message keeps its key, so within one level a key's messages stay in
order; but a message waiting in a retry topic can be overtaken by a newer message of the
same key that succeeds at once on the main topic. That is accepted here because every
handler is idempotent by event id (`services.idempotency`) and every state transition is
a compare-and-set on the stored state: a late, older event either finds its effect
already applied or finds the state moved on and is refused, never rolling it back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import pydantic
from aiokafka.errors import KafkaError
from faststream.exceptions import SubscriberNotFound
from pymongo.errors import ConnectionFailure, PyMongoError

from schemas import ContractError, UnknownEventType
from services.logging import scrub

__all__ = [
    "CLASSIFICATION",
    "DEFAULT_RETRY_DELAYS",
    "DependencyUnavailable",
    "Disposition",
    "FailureHistory",
    "PermanentError",
    "classify",
    "dead_letter_headers",
    "describe",
    "failure_history",
    "mongodb_retryable",
    "retry_headers",
    "retry_not_before",
    "retry_topic",
    "text_headers",
    "validate_delays",
]

DEFAULT_RETRY_DELAYS: Final = (timedelta(seconds=1), timedelta(seconds=10), timedelta(seconds=60))


class PermanentError(Exception):
    """Raised by a handler when trying the same message again cannot help: dead-letter it now."""


class DependencyUnavailable(Exception):
    """Raised by a handler when something every message needs is down (a mail server, an API).

    The record is retried in place and nothing is committed past it, so no message is
    lost to the dead letters while the dependency is away.
    """


class Disposition(enum.StrEnum):
    SKIP = "skip"
    DEAD_LETTER = "dead_letter"
    RETRY_LATER = "retry_later"
    RETRY_IN_PLACE = "retry_in_place"


_MONGODB_RETRYABLE_LABELS: Final = frozenset(
    {"RetryableWriteError", "TransientTransactionError", "UnknownTransactionCommitResult"}
)


def mongodb_retryable(error: BaseException) -> bool:
    """A server error MongoDB itself labels retryable: a shutdown or step-down (also as a write
    concern error), a network error inside a transaction. The driver has retried it already
    (once for a write, for two minutes inside `with_transaction`) when it reaches a handler:
    the server is away, this message is not the problem."""
    return isinstance(error, PyMongoError) and any(error.has_error_label(label) for label in _MONGODB_RETRYABLE_LABELS)


Match = type[BaseException] | Callable[[BaseException], bool]

CLASSIFICATION: Final[tuple[tuple[Match, Disposition], ...]] = (
    # Not for us: a type this reader does not know (before ContractError, its base class).
    (UnknownEventType, Disposition.SKIP),
    # Permanent: the same bytes will fail the same way.
    (PermanentError, Disposition.DEAD_LETTER),
    (ContractError, Disposition.DEAD_LETTER),
    (pydantic.ValidationError, Disposition.DEAD_LETTER),
    (SubscriberNotFound, Disposition.DEAD_LETTER),  # no handler (left) for this message
    # Infrastructure down: ConnectionFailure covers AutoReconnect, NotPrimaryError (also
    # raised for a mongod shutting down), ServerSelectionTimeoutError and NetworkTimeout.
    (ConnectionFailure, Disposition.RETRY_IN_PLACE),
    (mongodb_retryable, Disposition.RETRY_IN_PLACE),
    (DependencyUnavailable, Disposition.RETRY_IN_PLACE),
    # Transient, one message at a time. Listed though it is the default, to say so.
    (TimeoutError, Disposition.RETRY_LATER),
    (KafkaError, Disposition.RETRY_LATER),
)
"""First matching row (a class, or a predicate) wins; an exception matching no row is retried
later, then dead-lettered."""


def classify(error: BaseException) -> Disposition:
    """What to do after `error`: the first row matching it, else its explicit cause (`raise .. from`)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for match, disposition in CLASSIFICATION:
            if isinstance(current, match) if isinstance(match, type) else match(current):
                return disposition
        current = current.__cause__
    return Disposition.RETRY_LATER


def retry_topic(service: str, level: int) -> str:
    """The unprefixed name of a service's retry topic of `level` (1-based)."""
    return f"{service}.retry.{level}.v1"


def describe(error: BaseException) -> tuple[str, str]:
    """The type name and a one-line message of `error` fit for headers: no personal data.

    Pydantic's own message quotes the offending input, so only locations and reasons are
    kept; any other message is scrubbed of e-mail addresses and phone numbers.
    """
    if isinstance(error, pydantic.ValidationError):
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<input>'}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        )
        message = f"{error.error_count()} validation error(s) for {error.title}: {details}"
    else:
        message = str(error) or repr(error)
    return type(error).__name__, scrub(" ".join(message.split()))[:1000]


# Headers a retried message carries (besides its original ones).
RETRY_ATTEMPT: Final = "retry_attempt"
RETRY_ORIGINAL_TOPIC: Final = "retry_original_topic"
RETRY_ORIGINAL_PARTITION: Final = "retry_original_partition"
RETRY_ORIGINAL_OFFSET: Final = "retry_original_offset"
RETRY_ORIGINAL_TIMESTAMP: Final = "retry_original_timestamp"
RETRY_FIRST_FAILURE_AT: Final = "retry_first_failure_at"
RETRY_LAST_FAILURE_AT: Final = "retry_last_failure_at"
RETRY_EXCEPTION_TYPE: Final = "retry_exception_type"
RETRY_EXCEPTION_MESSAGE: Final = "retry_exception_message"
RETRY_NOT_BEFORE: Final = "retry_not_before"
RETRY_CONSUMER: Final = "retry_consumer"

OUR_HEADER_PREFIXES: Final = ("retry_", "dlq_")
"""Headers of ours, dropped before a message is retried, dead-lettered or redriven anew."""


@dataclass(frozen=True, slots=True)
class FailureHistory:
    """Where a failing message first came from and how it has failed so far."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    failed_attempts: int
    """Attempts that failed before the current one: 0 on the main topic."""
    first_failure_at: datetime | None


def failure_history(topic: str, partition: int, offset: int, timestamp_ms: int, headers: Mapping[str, str]) -> FailureHistory:
    """The history of a record: its own position, unless it is a retry carrying its origin."""
    if RETRY_ORIGINAL_TOPIC not in headers:
        return FailureHistory(topic, partition, offset, timestamp_ms, 0, None)
    first = headers.get(RETRY_FIRST_FAILURE_AT)
    return FailureHistory(
        topic=headers[RETRY_ORIGINAL_TOPIC],
        partition=int(headers.get(RETRY_ORIGINAL_PARTITION, "-1")),
        offset=int(headers.get(RETRY_ORIGINAL_OFFSET, "-1")),
        timestamp_ms=int(headers.get(RETRY_ORIGINAL_TIMESTAMP, "-1")),
        failed_attempts=int(headers.get(RETRY_ATTEMPT, "0")),
        first_failure_at=datetime.fromisoformat(first) if first else None,
    )


def retry_not_before(headers: Mapping[str, str]) -> datetime | None:
    value = headers.get(RETRY_NOT_BEFORE)
    return datetime.fromisoformat(value) if value else None


def _originals(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if not k.startswith(OUR_HEADER_PREFIXES)}


def retry_headers(
    headers: Mapping[str, str],
    history: FailureHistory,
    error: BaseException,
    *,
    consumer: str,
    failed_at: datetime,
    delay: timedelta,
) -> dict[str, str]:
    """Headers of the copy published to the next retry level after one more failure."""
    error_type, message = describe(error)
    return {
        **_originals(headers),
        RETRY_ATTEMPT: str(history.failed_attempts + 1),
        RETRY_ORIGINAL_TOPIC: history.topic,
        RETRY_ORIGINAL_PARTITION: str(history.partition),
        RETRY_ORIGINAL_OFFSET: str(history.offset),
        RETRY_ORIGINAL_TIMESTAMP: str(history.timestamp_ms),
        RETRY_FIRST_FAILURE_AT: (history.first_failure_at or failed_at).isoformat(),
        RETRY_LAST_FAILURE_AT: failed_at.isoformat(),
        RETRY_EXCEPTION_TYPE: error_type,
        RETRY_EXCEPTION_MESSAGE: message,
        RETRY_NOT_BEFORE: (failed_at + delay).isoformat(),
        RETRY_CONSUMER: consumer,
    }


def dead_letter_headers(
    headers: Mapping[str, str],
    history: FailureHistory,
    error: BaseException,
    *,
    consumer: str,
    failed_at: datetime,
    reason: str,
) -> dict[str, str]:
    """Headers of a dead letter: the original headers, then why and after what it was given up on."""
    error_type, message = describe(error)
    return {
        **_originals(headers),
        "dlq_original_topic": history.topic,
        "dlq_original_partition": str(history.partition),
        "dlq_original_offset": str(history.offset),
        "dlq_original_timestamp": str(history.timestamp_ms),
        "dlq_consumer": consumer,
        "dlq_reason": reason,
        "dlq_exception_type": error_type,
        "dlq_exception_message": message,
        "dlq_attempts": str(history.failed_attempts + 1),
        "dlq_first_failure_at": (history.first_failure_at or failed_at).isoformat(),
        "dlq_last_failure_at": failed_at.isoformat(),
    }


def text_headers(pairs: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    """Kafka record headers as text, the way FastStream publishes them."""
    return {k: v.decode("utf-8", "replace") for k, v in pairs}


def validate_delays(delays: Sequence[timedelta]) -> tuple[timedelta, ...]:
    if not delays or any(d < timedelta(0) for d in delays):
        raise ValueError("retry delays must be one or more non-negative durations")
    return tuple(delays)


def now() -> datetime:
    return datetime.now(UTC)
