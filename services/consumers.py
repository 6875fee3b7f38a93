"""How every service consumes: CloudEvents decoding, commit-after-effect, and what to do on failure.

Offsets are committed only after the handler returned (AckPolicy.NACK_ON_ERROR): a
process killed between receiving and storing gets the record again on restart
(at-least-once), and `services.idempotency` turns that into one effect.

Failures are classified once, here:
- a `schemas.ContractError` (bad JSON, unknown type or schema version, invalid fields)
  will never succeed: the original bytes go to the service's dead-letter topic with
  headers saying why, and the consumer moves on;
- anything else is taken as transient (MongoDB down, a timeout): the record is not
  committed, the consumer seeks back to it and retries after a growing pause, so
  nothing is committed past unstored work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream._internal.middlewares import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from schemas import ContractError, Event, codec
from services.kafka import topic_name

log = structlog.get_logger(__name__)


def dead_letter_topic(service: str) -> str:
    return topic_name(f"{service}.dead-letters.v1")


async def decode_event(msg: StreamMessage[Any], _original: Any = None) -> Event:
    """FastStream decoder: the record's CloudEvent, whatever mode the producer used."""
    record: ConsumerRecord[Any, Any] = msg.raw_message  # type: ignore[assignment]
    return codec.decode(record.value or b"", list(record.headers or ()))


def subscriber_options(group_id: str) -> dict[str, Any]:
    """Keyword arguments every event subscriber of ours uses."""
    return {
        "group_id": group_id,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "decoder": decode_event,
    }


def _header_text(value: object) -> str:
    return str(value).replace("\n", " ")[:1000]


class ErrorPolicy:
    """Broker middleware factory applying the failure policy above for one service."""

    def __init__(self, service: str, *, max_pause_s: float = 10.0) -> None:
        self.service = service
        self.max_pause_s = max_pause_s
        self._broker: KafkaBroker | None = None
        self._consecutive_failures = 0

    def bind(self, broker: KafkaBroker) -> None:
        self._broker = broker

    def __call__(self, msg: Any, /, *, context: Any) -> _ErrorPolicyMiddleware:
        return _ErrorPolicyMiddleware(msg, context=context, policy=self)

    async def dead_letter(self, record: ConsumerRecord[Any, Any], error: BaseException, attempts: int = 1) -> None:
        if self._broker is None:
            raise RuntimeError("ErrorPolicy.bind(broker) was not called")
        original_headers: Mapping[str, bytes] = dict(record.headers or ())
        headers = {k: v.decode("utf-8", "replace") for k, v in original_headers.items()}
        headers.update(
            {
                "dlq_original_topic": record.topic,
                "dlq_original_partition": str(record.partition),
                "dlq_original_offset": str(record.offset),
                "dlq_original_timestamp": str(record.timestamp),
                "dlq_consumer": self.service,
                "dlq_exception_type": type(error).__name__,
                "dlq_exception_message": _header_text(error),
                "dlq_attempts": str(attempts),
                "dlq_dead_lettered_at": datetime.now(UTC).isoformat(),
            }
        )
        await self._broker.publish(
            record.value or b"", topic=dead_letter_topic(self.service), key=record.key, headers=headers
        )
        log.warning(
            "event.dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_type=type(error).__name__,
        )


class _ErrorPolicyMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, policy: ErrorPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        policy = self.policy
        if exc_val is None:
            policy._consecutive_failures = 0
            return False
        record = self.msg
        if isinstance(exc_val, ContractError) and isinstance(record, ConsumerRecord):
            await policy.dead_letter(record, exc_val)
            policy._consecutive_failures = 0
            return True  # suppressed: the record is committed, its bytes are safe in the dead letters
        if not isinstance(exc_val, Exception):
            return False  # cancellation and exits pass through untouched
        policy._consecutive_failures += 1
        pause = min(policy.max_pause_s, 0.2 * 2 ** (policy._consecutive_failures - 1))
        log.warning(
            "event.retry_after_failure",
            topic=getattr(record, "topic", None),
            partition=getattr(record, "partition", None),
            offset=getattr(record, "offset", None),
            error_type=type(exc_val).__name__,
            error=str(exc_val)[:500],
            pause_s=pause,
        )
        await asyncio.sleep(pause)
        return False  # NACK_ON_ERROR then seeks back: the record comes again
