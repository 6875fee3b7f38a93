"""The failure policy's pure parts: which exception goes where, and what a retried or dead-lettered
message says about itself; that the service defaults give every subscriber its retries; and, in
memory, that an unknown event type is skipped while broken events are dead-lettered."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from faststream.exceptions import SubscriberNotFound
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.subscriber.usecase import DefaultSubscriber
from prometheus_client import CollectorRegistry
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from schemas import (
    Event,
    InvalidEvent,
    MalformedEvent,
    TrainingRequestReceived,
    UnknownEventType,
    UnsupportedSchemaVersion,
    encode,
)
from schemas.topics import TRAINING_REQUESTS
from services import ServiceSettings, create_service_app, subscriber_options
from services.app import Runtime
from services.consumers import ErrorPolicy, dead_letter_topic
from services.kafka import topic_name
from services.retries import (
    CLASSIFICATION,
    DependencyUnavailable,
    Disposition,
    FailureHistory,
    PermanentError,
    classify,
    dead_letter_headers,
    describe,
    failure_history,
    retry_headers,
    retry_not_before,
    retry_topic,
)
from tests.factories import make_request

pytestmark = pytest.mark.unit

SKIP, DEAD, LATER, IN_PLACE = Disposition.SKIP, Disposition.DEAD_LETTER, Disposition.RETRY_LATER, Disposition.RETRY_IN_PLACE


class Strict(pydantic.BaseModel):
    phone: int


def validation_error() -> pydantic.ValidationError:
    try:
        Strict(phone="+32 470 12 34 56")  # type: ignore[arg-type]
    except pydantic.ValidationError as error:
        return error
    raise AssertionError("expected a validation error")


class CalendarRefused(PermanentError):
    pass


def caused_by(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # a type this reader does not know: not for it, skipped
        (UnknownEventType("be.bruxellesformation.nope"), SKIP),
        (caused_by(RuntimeError("decoding failed"), UnknownEventType("be.bruxellesformation.nope")), SKIP),
        # contract and validation errors, and anything a handler marks permanent: dead letters now
        (MalformedEvent("not JSON"), DEAD),
        (UnsupportedSchemaVersion("x", 3, 1), DEAD),
        (InvalidEvent("x", [{"loc": ("contact", "phone"), "msg": "bad"}]), DEAD),
        (validation_error(), DEAD),
        (PermanentError("refused"), DEAD),
        (CalendarRefused("refused"), DEAD),
        (SubscriberNotFound("no handler"), DEAD),
        # MongoDB unavailable: in place, nothing committed past it
        (ConnectionFailure("down"), IN_PLACE),
        (AutoReconnect("connection reset"), IN_PLACE),
        (NotPrimaryError("interrupted at shutdown"), IN_PLACE),
        (ServerSelectionTimeoutError("no servers"), IN_PLACE),
        (NetworkTimeout("timed out"), IN_PLACE),
        (DependencyUnavailable("smtp down"), IN_PLACE),
        (WriteConcernError("shutdown in progress", 91, {"errorLabels": ["RetryableWriteError"]}), IN_PLACE),
        (OperationFailure("commit outcome unknown", 6, {"errorLabels": ["UnknownTransactionCommitResult"]}), IN_PLACE),
        (OperationFailure("write conflict", 112, {"errorLabels": ["TransientTransactionError"]}), IN_PLACE),
        # transient for one message, and the unknown: retry topics, then dead letters
        (TimeoutError(), LATER),
        (KafkaTimeoutError(), LATER),
        (KafkaConnectionError("no broker"), LATER),
        (WTimeoutError("w timeout"), LATER),
        (OperationFailure("write conflict", code=112), LATER),  # without labels: not the server going away
        (DuplicateKeyError("dup"), LATER),
        (RuntimeError("who knows"), LATER),
        (KeyError("missing"), LATER),
        # an explicit cause is looked at when the error itself is not in the table
        (caused_by(RuntimeError("store failed"), ServerSelectionTimeoutError("no servers")), IN_PLACE),
        (caused_by(RuntimeError("bad input"), MalformedEvent("x")), DEAD),
        # ... but the error itself wins
        (caused_by(PermanentError("gave up"), AutoReconnect("reset")), DEAD),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_classification(error: BaseException, expected: Disposition) -> None:
    assert classify(error) is expected


def test_the_table_lists_each_class_once_and_the_permanent_ones_first() -> None:
    kinds = [kind for kind, _ in CLASSIFICATION]
    assert len(kinds) == len(set(kinds))
    dispositions = [disposition for _, disposition in CLASSIFICATION]
    assert dispositions == sorted(dispositions, key=[SKIP, DEAD, IN_PLACE, LATER].index)


def test_a_cause_cycle_does_not_loop() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert classify(a) is LATER


FAILED_AT = datetime(2026, 3, 3, 9, 0, 1, tzinfo=UTC)
ORIGINAL_HEADERS = {
    "ce_id": "e-1",
    "ce_type": "be.bruxellesformation.training.request.received",
    "content-type": "application/cloudevents+json",
}


def test_describe_scrubs_personal_data_and_pydantic_inputs() -> None:
    kind, message = describe(RuntimeError("no answer from amina@example.org\nat +32 470 12 34 56"))
    assert kind == "RuntimeError"
    assert "amina@example.org" not in message and "470 12 34 56" not in message
    assert "\n" not in message and message.count("<pii:") >= 2

    kind, message = describe(validation_error())
    assert kind == "ValidationError"
    assert "phone" in message and "32 470" not in message  # the location and the reason, never the input


def test_describe_truncates_and_names_silent_errors() -> None:
    assert len(describe(RuntimeError("x" * 5000))[1]) == 1000
    assert describe(TimeoutError())[1] == "TimeoutError()"


def test_first_retry_headers_carry_the_origin_and_the_time_it_is_due() -> None:
    history = failure_history("p.training.requests.v1", 4, 1200, 1_700_000_000_000, ORIGINAL_HEADERS)
    assert history == FailureHistory("p.training.requests.v1", 4, 1200, 1_700_000_000_000, 0, None)

    headers = retry_headers(
        ORIGINAL_HEADERS,
        history,
        TimeoutError("calendar for amina@example.org"),
        consumer="routing",
        failed_at=FAILED_AT,
        delay=timedelta(seconds=10),
    )
    assert headers == {
        **ORIGINAL_HEADERS,
        "retry_attempt": "1",
        "retry_original_topic": "p.training.requests.v1",
        "retry_original_partition": "4",
        "retry_original_offset": "1200",
        "retry_original_timestamp": "1700000000000",
        "retry_first_failure_at": FAILED_AT.isoformat(),
        "retry_last_failure_at": FAILED_AT.isoformat(),
        "retry_exception_type": "TimeoutError",
        "retry_exception_message": headers["retry_exception_message"],
        "retry_not_before": (FAILED_AT + timedelta(seconds=10)).isoformat(),
        "retry_consumer": "routing",
    }
    assert "amina@example.org" not in headers["retry_exception_message"]
    assert retry_not_before(headers) == FAILED_AT + timedelta(seconds=10)


def test_a_retry_failing_again_keeps_its_origin_and_first_failure() -> None:
    first = retry_headers(
        ORIGINAL_HEADERS,
        failure_history("main", 0, 7, 42, ORIGINAL_HEADERS),
        TimeoutError(),
        consumer="routing",
        failed_at=FAILED_AT,
        delay=timedelta(seconds=1),
    )
    later = FAILED_AT + timedelta(seconds=2)
    history = failure_history("svc.retry.1.v1", 2, 0, 99, first)  # as read back from the retry topic
    assert history == FailureHistory("main", 0, 7, 42, 1, FAILED_AT)

    second = retry_headers(first, history, KeyError("x"), consumer="routing", failed_at=later, delay=timedelta(seconds=10))
    assert second["retry_attempt"] == "2"
    assert second["retry_original_topic"] == "main" and second["retry_original_offset"] == "7"
    assert second["retry_first_failure_at"] == FAILED_AT.isoformat()
    assert second["retry_last_failure_at"] == later.isoformat()
    assert second["retry_exception_type"] == "KeyError"
    assert second["ce_id"] == "e-1"


def test_dead_letter_headers_after_retries() -> None:
    retried = {
        **ORIGINAL_HEADERS,
        **retry_headers(
            ORIGINAL_HEADERS,
            failure_history("main", 1, 7, 42, ORIGINAL_HEADERS),
            TimeoutError(),
            consumer="svc",
            failed_at=FAILED_AT,
            delay=timedelta(seconds=60),
        ),
    }
    retried["retry_attempt"] = "3"
    last = FAILED_AT + timedelta(seconds=71)
    headers = dead_letter_headers(
        retried,
        failure_history("svc.retry.3.v1", 0, 5, 99, retried),
        RuntimeError("boom at 0470 12 34 56"),
        consumer="svc",
        failed_at=last,
        reason="retries_exhausted",
    )
    assert not [name for name in headers if name.startswith("retry_")]
    assert headers == {
        **ORIGINAL_HEADERS,
        "dlq_original_topic": "main",
        "dlq_original_partition": "1",
        "dlq_original_offset": "7",
        "dlq_original_timestamp": "42",
        "dlq_consumer": "svc",
        "dlq_reason": "retries_exhausted",
        "dlq_exception_type": "RuntimeError",
        "dlq_exception_message": headers["dlq_exception_message"],
        "dlq_attempts": "4",
        "dlq_first_failure_at": FAILED_AT.isoformat(),
        "dlq_last_failure_at": last.isoformat(),
    }
    assert "0470" not in headers["dlq_exception_message"] and "<pii:" in headers["dlq_exception_message"]


def test_a_dead_letter_straight_from_the_main_topic() -> None:
    headers = dead_letter_headers(
        {**ORIGINAL_HEADERS, "dlq_consumer": "stale"},  # e.g. a redriven dead letter that fails again
        failure_history("main", 0, 3, 42, ORIGINAL_HEADERS),
        UnknownEventType("be.bruxellesformation.nope"),
        consumer="svc",
        failed_at=FAILED_AT,
        reason="permanent",
    )
    assert headers["dlq_attempts"] == "1"
    assert headers["dlq_consumer"] == "svc"
    assert headers["dlq_first_failure_at"] == headers["dlq_last_failure_at"] == FAILED_AT.isoformat()


def test_retry_topics_are_named_by_service_and_level() -> None:
    assert retry_topic("routing", 2) == "routing.retry.2.v1"
    policy = ErrorPolicy("routing", retry_delays=(timedelta(seconds=1), timedelta(seconds=5)))
    assert [(t.name, t.partitions) for t in policy.topics()] == [
        ("routing.retry.1.v1", 3),
        ("routing.retry.2.v1", 3),
        ("routing.dead-letters.v1", 1),
    ]


@pytest.mark.parametrize("delays", [(), (timedelta(seconds=-1),)])
def test_retry_delays_are_checked(delays: tuple[timedelta, ...]) -> None:
    with pytest.raises(ValueError, match="retry delays"):
        ErrorPolicy("svc", retry_delays=delays)


def test_retry_delays_come_from_the_service_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from routing.settings import RoutingSettings

    monkeypatch.setenv("ROUTING_RETRY_DELAYS", '[0.5, "PT30S"]')
    assert RoutingSettings().retry_delays == (timedelta(seconds=0.5), timedelta(seconds=30))
    assert ServiceSettings().retry_delays == (timedelta(seconds=1), timedelta(seconds=10), timedelta(seconds=60))


async def test_the_service_defaults_attach_retry_subscribers_to_every_subscriber() -> None:
    """No I/O: `create_service_app` only declares; the lifespan would create the topics and start."""
    handled: list[Event] = []

    def register(runtime: Runtime) -> list[Any]:
        @runtime.broker.subscriber(topic_name(TRAINING_REQUESTS), **subscriber_options("retrytest"))
        async def on_request(event: Event) -> None:
            handled.append(event)

        return []

    delays = (timedelta(seconds=0.2), timedelta(seconds=0.5), timedelta(seconds=1.0))
    app = create_service_app(
        ServiceSettings(service_name="retrytest", retry_delays=delays), title="t", description="d", register=register
    )
    runtime: Runtime = app.state.runtime
    try:
        policy = runtime.error_policy
        retry_subscribers = [s for s in runtime.broker.subscribers if getattr(s, "group_id", None) == "retrytest.retries"]
        assert len(retry_subscribers) == 1
        (retry,) = retry_subscribers
        assert isinstance(retry, DefaultSubscriber)
        assert sorted(t.name for t in retry.topics) == ["retrytest.retry.1.v1", "retrytest.retry.2.v1", "retrytest.retry.3.v1"]
        assert [call.handler for call in retry.calls] == [
            call.handler for s in runtime.broker.subscribers if getattr(s, "group_id", None) == "retrytest" for call in s.calls
        ]
        assert policy.has_retries(topic_name(TRAINING_REQUESTS))
        assert policy.retry_delays == (timedelta(seconds=0.2), timedelta(seconds=0.5), timedelta(seconds=1))

        policy.attach_retries(runtime.broker)  # again: nothing new to attach
        assert len(retry.calls) == 1
    finally:
        await runtime.mongo.close()


async def test_an_unknown_event_type_is_skipped_and_counted_while_broken_events_are_dead_lettered() -> None:
    """In memory (`TestKafkaBroker`): the policy as a broker middleware, the decoder every service uses."""
    registry = CollectorRegistry()
    policy = ErrorPolicy("svc", registry=registry)
    broker = KafkaBroker("127.0.0.1:1", middlewares=(policy,))
    policy.bind(broker)
    handled: list[str] = []
    dead: list[bytes] = []

    @broker.subscriber("requests", **subscriber_options("svc"))
    async def on_request(event: TrainingRequestReceived) -> None:
        handled.append(event.request_id)

    async def raw(message: Any, _original: Any = None) -> Any:
        return message.body

    @broker.subscriber(dead_letter_topic("svc"), decoder=raw)
    async def on_dead_letter(body: bytes) -> None:
        dead.append(body)

    teleported = "be.bruxellesformation.training.request.teleported"
    unknown = json.loads(encode(make_request())) | {"type": teleported}
    invalid = json.loads(encode(make_request()))
    invalid["data"]["request_id"] = ""
    good = make_request()
    async with TestKafkaBroker(broker) as test_broker:
        for value in (json.dumps(unknown).encode(), b"{not json", json.dumps(invalid).encode(), encode(good)):
            await test_broker.publish(value, topic="requests")

    assert handled == [good.request_id]
    assert dead == [b"{not json", json.dumps(invalid).encode()]
    assert (
        registry.get_sample_value("consumer_skipped_events_total", {"consumer": "svc", "topic": "requests", "type": teleported})
        == 1
    )
    assert (
        registry.get_sample_value(
            "consumer_dead_letters_total", {"service": "svc", "reason": "MalformedEvent", "cause": "permanent"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "consumer_dead_letters_total", {"service": "svc", "reason": "InvalidEvent", "cause": "permanent"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "consumer_dead_letters_total", {"service": "svc", "reason": "UnknownEventType", "cause": "permanent"}
        )
        is None
    )
