"""How every service consumes: CloudEvents decoding, commit-after-effect, and what to do on failure.

Offsets are committed only after the handler returned (AckPolicy.NACK_ON_ERROR): a
process killed between receiving and storing gets the record again on restart
(at-least-once), and `services.idempotency` turns that into one effect.

A failure is classified by `services.retries.classify` and then:
- skip: a CloudEvent of a type the consumer does not know (`UnknownEventType`) is not
  for it; the record is committed, logged (`event.skipped`) and counted in
  `consumer_skipped_events{consumer,topic,type}`, and the consumer moves on;
- dead letter: the original bytes and key go to `<service>.dead-letters.v1` with
  headers saying where they came from and why (`services.deadletters` lists, shows and
  redrives them); the record is committed and the consumer moves on;
- retry later: the original bytes go to `<service>.retry.<level>.v1` with a
  `retry_not_before` time and the record is committed, so the partition is never
  blocked; a retry subscriber of the same service calls the same handler when the time
  comes, and a further failure moves the message one level up, then to the dead letters;
- retry in place (MongoDB down): the record is not committed, the consumer seeks back to
  it and retries after a growing pause, so nothing is committed past unstored work.
If publishing a retry or a dead letter fails, the record is retried in place too: it is
never committed before its copy is safely on Kafka.

A batch subscriber (`batch_subscriber_options`) takes what is waiting, up to a bound; its handler
decodes each record (`decode_each`) and raises `RecordsFailed` with the records it could not
handle, each of which then meets the policy above on its own (`ErrorPolicy.dispose_each`), as if
consumed alone. If one of them must be retried in place, none is forwarded: the whole batch comes
again, and the processed-events records make what was done no effect the second time.

Retry subscribers are attached by `ErrorPolicy.attach_retries(broker)`, which the app
factory calls after the service declared its subscribers: every subscriber declared with
`subscriber_options` (a consumer group, commit after effect) gets them, with no code in
the service; a batch handler marked `retried_one_at_a_time(handler)` has its retries handled by
`handler`, one record at a time.

Waiting in a retry topic does not sleep: a record that is not due yet pauses its
partition (`AIOKafkaConsumer.pause`), is sought back to, and the partition resumes when
the record is due. Other partitions and levels go on meanwhile, and shutdown is not held
up by a sleeping handler; the pause is lost on a rebalance, and whoever gets the
partition finds the record not due and pauses again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal, Protocol, TypedDict, TypeGuard, TypeVar

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream._internal.middlewares import BaseMiddleware
from faststream.exceptions import IgnoredException, NackMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber, DefaultSubscriber
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Counter

from schemas import Event, UnknownEventType, codec
from schemas.topics import DEAD_LETTER_RETENTION_MS, RETRY_RETENTION_MS, TopicSpec, kept_for
from services import retries
from services.kafka import topic_name
from services.retries import Disposition, FailureHistory

log = structlog.get_logger(__name__)

RETRY_TOPIC_PARTITIONS = 3
"""Retry topics hold only failures: a few partitions spread them over a few replicas."""


def dead_letter_topic(service: str) -> str:
    return topic_name(f"{service}.dead-letters.v1")


async def decode_event(msg: StreamMessage[Any], _original: Any = None) -> Event:
    """FastStream decoder: the record's CloudEvent, whatever mode the producer used."""
    return decode_record(msg.raw_message)


def decode_record(record: ConsumerRecord[Any, Any]) -> Event:
    """A record's CloudEvent, whatever mode the producer used."""
    return codec.decode(record.value or b"", list(record.headers or ()))


class _Decoder(Protocol):
    # A Protocol, not `Callable[[StreamMessage[Any]], ...]`: with the latter mypy finds
    # several `broker.subscriber` overloads matching and types the subscriber as Any.
    def __call__(self, msg: StreamMessage[Any], _original: Any = None, /) -> Awaitable[Event]: ...


class SubscriberOptions(TypedDict):
    """`broker.subscriber(...)` keyword arguments, typed so the decorated handlers stay typed."""

    group_id: str
    ack_policy: AckPolicy
    auto_offset_reset: Literal["latest", "earliest", "none"]
    decoder: _Decoder


def subscriber_options(group_id: str) -> SubscriberOptions:
    """Keyword arguments every event subscriber of ours uses."""
    return {
        # Prefixed like the topics: environments (and test runs) sharing a cluster never share a group.
        "group_id": topic_name(group_id),
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "decoder": decode_event,
    }


class BatchSubscriberOptions(TypedDict):
    """`broker.subscriber(...)` keyword arguments of a batch subscriber (`batch_subscriber_options`)."""

    group_id: str
    ack_policy: AckPolicy
    auto_offset_reset: Literal["latest", "earliest", "none"]
    batch: Literal[True]
    max_records: int
    batch_timeout_ms: int
    decoder: _RecordsDecoder


class _RecordsDecoder(Protocol):
    def __call__(self, msg: StreamMessage[Any], _original: Any = None, /) -> Awaitable[None]: ...


async def _left_to_the_handler(msg: StreamMessage[Any], _original: Any = None) -> None:
    """A batch is decoded record by record by its handler (`decode_each`): one bad record must not
    fail the others."""


def batch_subscriber_options(group_id: str, *, max_records: int, timeout_ms: int) -> BatchSubscriberOptions:
    """Keyword arguments of a subscriber that takes what is waiting, up to `max_records` records,
    waiting at most `timeout_ms` for them: a lone record is not held up, a busy topic gives batches.

    Its handler takes the message (`faststream.kafka.KafkaMessage`, the records in `raw_message`),
    decodes them with `decode_each`, and raises `RecordsFailed` for the records it could not handle:
    each then meets the failure policy as if it had been consumed alone. A handler marked with
    `retried_one_at_a_time` gets retry subscribers like the others."""
    return {
        "group_id": topic_name(group_id),
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "batch": True,
        "max_records": max_records,
        "batch_timeout_ms": timeout_ms,
        "decoder": _left_to_the_handler,
    }


def decode_each(
    records: ConsumerRecord[Any, Any] | Sequence[ConsumerRecord[Any, Any]],
) -> tuple[list[tuple[ConsumerRecord[Any, Any], Event]], list[tuple[ConsumerRecord[Any, Any], Exception]]]:
    """The events of a batch's records (a batch message's `raw_message`), and the records that are
    no event, with the error."""
    decoded: list[tuple[ConsumerRecord[Any, Any], Event]] = []
    failed: list[tuple[ConsumerRecord[Any, Any], Exception]] = []
    for record in [records] if isinstance(records, ConsumerRecord) else records:
        try:
            decoded.append((record, decode_record(record)))
        except Exception as error:  # noqa: BLE001 - every failure goes to the failure policy
            failed.append((record, error))
    return decoded, failed


class RecordsFailed(Exception):
    """Raised by a batch handler for the records of its batch it could not handle (the others are
    done): each one meets the failure policy on its own."""

    def __init__(self, failures: Sequence[tuple[ConsumerRecord[Any, Any], Exception]]) -> None:
        super().__init__(f"{len(failures)} record(s) of the batch failed")
        self.failures = list(failures)


_ONE_AT_A_TIME = "_retried_one_at_a_time"

H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


def retried_one_at_a_time(handler: Callable[..., Awaitable[Any]]) -> Callable[[H], H]:
    """Mark a batch handler: its records' retries are handled one at a time by `handler`, the
    subscriber's handler when it does not batch (it takes the decoded event)."""

    def mark(batch_handler: H) -> H:
        setattr(batch_handler, _ONE_AT_A_TIME, handler)
        return batch_handler

    return mark


def carrying(*types: type[Event]) -> Callable[[StreamMessage[Any]], Awaitable[bool]]:
    """A subscriber filter: the handler takes the records whose event is one of `types`.

    The filter decodes the record (FastStream keeps the result for the handler), so an event of
    a type nobody knows raises `UnknownEventType` here and is skipped like anywhere else; a
    known event no handler of the subscriber carries is `SubscriberNotFound`, a dead letter.
    """

    async def carries(message: StreamMessage[Any]) -> bool:
        return isinstance(await message.decode(), types)

    return carries


def service_topics(service: str, levels: int) -> tuple[TopicSpec, ...]:
    """A service's own topics, unprefixed: its retry levels and its dead letters (one partition,
    so that an offset alone names a dead letter)."""

    def spec(name: str, partitions: int, retention_ms: int, description: str) -> TopicSpec:
        return TopicSpec(
            name=name, partitions=partitions, key="", events=(), description=description, configs=kept_for(retention_ms)
        )

    return (
        *(
            spec(
                retries.retry_topic(service, level),
                RETRY_TOPIC_PARTITIONS,
                RETRY_RETENTION_MS,
                f"{service}: failed messages, retry level {level}",
            )
            for level in range(1, levels + 1)
        ),
        spec(f"{service}.dead-letters.v1", 1, DEAD_LETTER_RETENTION_MS, f"{service}: messages given up on"),
    )


class ErrorPolicy:
    """Broker middleware factory applying the failure policy above for one service."""

    def __init__(
        self,
        service: str,
        *,
        max_pause_s: float = 10.0,
        retry_delays: Sequence[timedelta] = retries.DEFAULT_RETRY_DELAYS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.service = service
        self.max_pause_s = max_pause_s
        self.retry_delays = retries.validate_delays(retry_delays)
        self._broker: KafkaBroker | None = None
        self._consecutive_failures = 0
        self._retry_subscriber: DefaultSubscriber | None = None
        self._attached: set[int] = set()
        """Subscribers given retries (by id: the broker keeps them alive)."""
        self._main_topics: set[str] = set()
        """Topics whose subscribers have retry subscribers: only their failures go to retry topics."""
        self._levels: dict[str, int] = {}
        """Retry topic name (prefixed) -> level."""
        self._resumes: dict[TopicPartition, asyncio.TimerHandle] = {}
        self.retried = Counter(
            "consumer_retries",
            "Failed messages retried, by service, exception type and level (or in place).",
            ("service", "reason", "level"),
            registry=registry,
        )
        self.dead_lettered = Counter(
            "consumer_dead_letters",
            "Messages moved to the dead letters, by service, exception type and cause.",
            ("service", "reason", "cause"),
            registry=registry,
        )
        self.skipped = Counter(
            "consumer_skipped_events",
            "Events of a type the consumer does not know, committed past unread, by consumer, topic and type.",
            ("consumer", "topic", "type"),
            registry=registry,
        )

    def bind(self, broker: KafkaBroker) -> None:
        self._broker = broker

    def __call__(self, msg: Any, /, *, context: Any) -> _ErrorPolicyMiddleware:
        return _ErrorPolicyMiddleware(msg, context=context, policy=self)

    # -- wiring ------------------------------------------------------------------------

    def topics(self) -> tuple[TopicSpec, ...]:
        """The topics to create with the declared ones: retry levels and dead letters."""
        return service_topics(self.service, len(self.retry_delays))

    def attach_retries(self, broker: KafkaBroker | None = None) -> None:
        """Give every commit-after-effect subscriber of `broker` a retry subscriber calling its handlers.

        One subscriber (group `<service>.retries`) reads every retry level; for each main
        handler it gets the same handler, filtered on the `retry_original_topic` header.
        Call after the service declared its subscribers and before the broker starts;
        calling again attaches only subscribers declared since.
        """
        broker = broker or self._broker
        if broker is None:
            raise RuntimeError("ErrorPolicy.bind(broker) was not called")
        for subscriber in list(broker.subscribers):
            if subscriber is self._retry_subscriber or id(subscriber) in self._attached:
                continue
            if not _commits_after_effect(subscriber):
                continue
            names = frozenset(t.name for t in subscriber.topics)
            if isinstance(subscriber, BatchSubscriber):
                self._attach_one_at_a_time(broker, subscriber, names)
                continue
            if shared := names & self._main_topics:
                # A retry goes to the first handler whose filter takes it: one subscriber per
                # topic and service is what this policy (and every service of ours) assumes.
                log.warning("consumer.retries_shared_topic", topics=sorted(shared))
            retry = self._ensure_retry_subscriber(broker)
            for call in subscriber.calls:
                retry(
                    call.handler,
                    filter=_from_topics(names, call.filter),
                    parser=call.item_parser,
                    decoder=call.item_decoder,
                    dependencies=call.dependencies,
                )
            self._main_topics |= names
            self._attached.add(id(subscriber))
            log.debug("consumer.retries_attached", topics=sorted(names), levels=len(self.retry_delays))

    def _attach_one_at_a_time(self, broker: KafkaBroker, subscriber: BatchSubscriber, names: frozenset[str]) -> None:
        retry = self._ensure_retry_subscriber(broker)
        for call in subscriber.calls:
            handler = getattr(call.handler._original_call, _ONE_AT_A_TIME, None)
            if handler is None:
                log.warning("consumer.batch_without_retries", topics=sorted(names))
                continue
            retry(handler, filter=_from_topics(names, _everything), decoder=decode_event, dependencies=call.dependencies)
        self._main_topics |= names
        self._attached.add(id(subscriber))
        log.debug("consumer.retries_attached", topics=sorted(names), levels=len(self.retry_delays), batch=True)

    def _ensure_retry_subscriber(self, broker: KafkaBroker) -> DefaultSubscriber:
        if self._retry_subscriber is None:
            self._levels = {
                topic_name(retries.retry_topic(self.service, level)): level for level in range(1, len(self.retry_delays) + 1)
            }
            subscriber = broker.subscriber(
                *self._levels,
                **subscriber_options(f"{self.service}.retries"),
                include_in_schema=False,
            )
            assert isinstance(subscriber, DefaultSubscriber)
            self._retry_subscriber = subscriber
        return self._retry_subscriber

    # -- outcomes ----------------------------------------------------------------------

    async def dead_letter(
        self,
        record: ConsumerRecord[Any, Any],
        error: BaseException,
        *,
        history: FailureHistory | None = None,
        reason: str = "permanent",
    ) -> None:
        broker = self._bound()
        headers = retries.text_headers(record.headers or ())
        history = history or retries.failure_history(record.topic, record.partition, record.offset, record.timestamp, headers)
        dlq_headers = retries.dead_letter_headers(
            headers, history, error, consumer=self.service, failed_at=retries.now(), reason=reason
        )
        await broker.publish(record.value or b"", topic=dead_letter_topic(self.service), key=record.key, headers=dlq_headers)
        self.dead_lettered.labels(self.service, type(error).__name__, reason).inc()
        log.warning(
            "event.dead_lettered",
            topic=history.topic,
            partition=history.partition,
            offset=history.offset,
            attempts=history.failed_attempts + 1,
            error_type=type(error).__name__,
            cause=reason,
        )

    def skip(self, record: ConsumerRecord[Any, Any], error: BaseException) -> None:
        """Count and log a record left unread because its event type is unknown to this consumer."""
        history = retries.failure_history(
            record.topic, record.partition, record.offset, record.timestamp, retries.text_headers(record.headers or ())
        )
        event_type = _unknown_type(error)
        self.skipped.labels(self.service, history.topic, event_type).inc()
        log.info(
            "event.skipped",
            topic=history.topic,
            partition=history.partition,
            offset=history.offset,
            event_type=event_type,
            reason="unknown_event_type",
        )

    async def retry_later(self, record: ConsumerRecord[Any, Any], error: BaseException) -> None:
        """Publish `record` to the next retry level, or to the dead letters after the last one."""
        broker = self._bound()
        headers = retries.text_headers(record.headers or ())
        history = retries.failure_history(record.topic, record.partition, record.offset, record.timestamp, headers)
        level = self._levels.get(record.topic, 0) + 1
        if level > len(self.retry_delays):
            await self.dead_letter(record, error, history=history, reason="retries_exhausted")
            return
        delay = self.retry_delays[level - 1]
        retry_headers = retries.retry_headers(
            headers, history, error, consumer=self.service, failed_at=retries.now(), delay=delay
        )
        topic = topic_name(retries.retry_topic(self.service, level))
        await broker.publish(record.value or b"", topic=topic, key=record.key, headers=retry_headers)
        self.retried.labels(self.service, type(error).__name__, str(level)).inc()
        log.warning(
            "event.retry_scheduled",
            topic=history.topic,
            partition=history.partition,
            offset=history.offset,
            retry_topic=topic,
            level=level,
            delay_s=delay.total_seconds(),
            error_type=type(error).__name__,
        )

    def has_retries(self, topic: str) -> bool:
        return topic in self._main_topics or topic in self._levels

    def wait_for(self, record: ConsumerRecord[Any, Any], consumer: Any) -> bool:
        """If `record` is a retry not yet due, pause its partition until it is and say so."""
        if record.topic not in self._levels or consumer is None:
            return False
        due = retries.retry_not_before(retries.text_headers(record.headers or ()))
        wait = (due - retries.now()).total_seconds() if due else 0.0
        if wait <= 0:
            return False
        tp = TopicPartition(record.topic, record.partition)
        consumer.pause(tp)
        if (previous := self._resumes.pop(tp, None)) is not None:
            previous.cancel()
        self._resumes[tp] = asyncio.get_running_loop().call_later(wait, self._resume, consumer, tp)
        log.debug(
            "event.retry_waiting", topic=record.topic, partition=record.partition, offset=record.offset, wait_s=round(wait, 3)
        )
        return True

    def _resume(self, consumer: Any, tp: TopicPartition) -> None:
        self._resumes.pop(tp, None)
        try:
            consumer.resume(tp)
        # Revoked meanwhile, or the consumer stopped (aiokafka raises several unrelated types then):
        # its new owner pauses anew. A timer callback has no caller to raise to.
        except Exception as error:  # noqa: BLE001
            log.debug("event.retry_resume_skipped", topic=tp.topic, partition=tp.partition, error=repr(error))

    async def pause_before_retry_in_place(self, record: Any, error: BaseException) -> None:
        self._consecutive_failures += 1
        pause = min(self.max_pause_s, 0.2 * 2 ** (self._consecutive_failures - 1))
        self.retried.labels(self.service, type(error).__name__, "in_place").inc()
        log.warning(
            "event.retry_after_failure",
            topic=getattr(record, "topic", None),
            partition=getattr(record, "partition", None),
            offset=getattr(record, "offset", None),
            error_type=type(error).__name__,
            error=retries.describe(error)[1][:500],
            pause_s=pause,
        )
        await asyncio.sleep(pause)

    # -- dispositions -------------------------------------------------------------------

    async def dispose(self, record: ConsumerRecord[Any, Any], error: Exception) -> bool:
        """Apply the policy to a record whose handling raised `error`: True when the record may be
        committed (skipped, or its bytes safe in a retry topic or the dead letters), False when it
        must come again (after a pause)."""
        disposition = self._disposition(record, error)
        if disposition is Disposition.SKIP:
            self.skip(record, error)
            self._consecutive_failures = 0
            return True  # suppressed: the record is committed, nothing to keep
        try:
            if disposition is Disposition.DEAD_LETTER:
                await self.dead_letter(record, error)
            elif disposition is Disposition.RETRY_LATER:
                await self.retry_later(record, error)
        # Kafka unreachable, whatever the error type: keep the record, commit nothing.
        except Exception as forwarding:  # noqa: BLE001
            log.warning("event.failure_not_forwarded", topic=record.topic, offset=record.offset, error=repr(forwarding))
            disposition = Disposition.RETRY_IN_PLACE
        if disposition is Disposition.RETRY_IN_PLACE:
            await self.pause_before_retry_in_place(record, error)
            return False  # NACK_ON_ERROR then seeks back: the record comes again
        self._consecutive_failures = 0
        return True  # suppressed: the record is committed, its bytes are safe in a retry topic or the dead letters

    def _disposition(self, record: ConsumerRecord[Any, Any], error: Exception) -> Disposition:
        disposition = retries.classify(error)
        if disposition is Disposition.RETRY_LATER and not self.has_retries(record.topic):
            return Disposition.RETRY_IN_PLACE  # a subscriber without retry topics
        return disposition

    async def dispose_each(self, failures: Sequence[tuple[ConsumerRecord[Any, Any], Exception]]) -> bool:
        """`dispose` of each failed record of a batch (the others are done). If any must be retried in
        place (MongoDB down), none is forwarded: the whole batch comes again, and what was done is
        turned into no effect by the processed-events records."""
        for record, error in failures:
            if self._disposition(record, error) is Disposition.RETRY_IN_PLACE:
                await self.pause_before_retry_in_place(record, error)
                return False
        for record, error in failures:
            if not await self.dispose(record, error):
                return False
        return True

    def _bound(self) -> KafkaBroker:
        if self._broker is None:
            raise RuntimeError("ErrorPolicy.bind(broker) was not called")
        return self._broker


async def _everything(message: StreamMessage[Any]) -> bool:
    return True


def _commits_after_effect(subscriber: Any) -> TypeGuard[DefaultSubscriber | BatchSubscriber]:
    """Subscribers declared with `subscriber_options` or `batch_subscriber_options`: a group,
    commit after the effect, topics by name."""
    return (
        isinstance(subscriber, DefaultSubscriber | BatchSubscriber)
        and bool(subscriber.group_id)
        and subscriber.ack_policy is AckPolicy.NACK_ON_ERROR
        and bool(subscriber.topics)
        and subscriber.pattern is None
    )


def _unknown_type(error: BaseException | None) -> str:
    """The event type an `UnknownEventType` (maybe the cause of `error`) names, cut short for a label."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UnknownEventType):
            return error.event_type[:200]
        error = error.__cause__
    return "?"


def _from_topics(topics: frozenset[str], original: Any) -> Any:
    """The main handler's filter, for retries of messages that came from its topics."""

    async def came_from(message: StreamMessage[Any]) -> bool:
        return message.headers.get(retries.RETRY_ORIGINAL_TOPIC) in topics and bool(await original(message))

    return came_from


class _ErrorPolicyMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, policy: ErrorPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def on_receive(self) -> None:
        record = self.msg
        if isinstance(record, ConsumerRecord):
            subscriber = self.context.get_local("handler_")
            if self.policy.wait_for(record, getattr(subscriber, "consumer", None)):
                # FastStream's acknowledgement seeks back to the record: it comes again on resume.
                raise NackMessage

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
        if not isinstance(exc_val, Exception) or isinstance(exc_val, IgnoredException):
            return False  # cancellation, exits and FastStream's Ack/Nack/Reject pass through untouched
        record = self.msg
        if isinstance(exc_val, RecordsFailed) and isinstance(record, tuple | list):  # a batch (a list in tests)
            return await policy.dispose_each(exc_val.failures)
        if not isinstance(record, ConsumerRecord):
            await policy.pause_before_retry_in_place(record, exc_val)
            return False
        return await policy.dispose(record, exc_val)
