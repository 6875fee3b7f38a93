"""Each service's Kafka handlers, in memory (`TestKafkaBroker`): an event on a topic becomes one
call on the service's use case, and an event of an unknown type is skipped and counted.

The broker is built as the services build theirs (`create_broker` with the `ErrorPolicy`
middleware and its retry subscribers), so what is asserted here is what runs on the real broker;
the use cases are small recording fakes of our own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.subscriber.usecase import DefaultSubscriber
from prometheus_client import CollectorRegistry

from certification import handlers as certification_handlers
from notification import handlers as notification_handlers
from routing import handlers as routing_handlers
from routing.batches import FailedRequest, RequestNotRoutedYet
from schemas import (
    CallbackDue,
    CallbackSlotChosen,
    ContactDetailsConfirmed,
    DigitalDivideAdmitted,
    DigitalDivideMemberReleased,
    DigitalDivideProgrammeSuspended,
    DigitalDivideQuotaChanged,
    DigitalDivideSpaceAssigned,
    DigitalSpaceChanged,
    EnrolmentConfirmed,
    Event,
    ExamRequestReason,
    ExamSchedulingRequested,
    ExamSeatOfferAccepted,
    ExamSeatOfferDeclined,
    ExamSeatOffered,
    ExamSeatOfferExpired,
    Language,
    PartnerInformationRequested,
    PersonDataErased,
    RequestFactsRecorded,
    SelfTrainingSlotBooked,
    SelfTrainingSlotCancelled,
    SelfTrainingSlotOpened,
    Target,
    TrainingCompleted,
    TrainingRequestReceived,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
    codec,
)
from schemas.topics import CERTIFICATION_EXAMS, PRIVACY, TRAINING_ENROLMENTS, TRAINING_REQUESTS, TRAINING_ROUTING, TopicSpec
from services import ErrorPolicy, retries
from services.kafka import create_broker, topic_name
from services.retries import PermanentError
from services.settings import KafkaSettings
from tests.factories import make_request

pytestmark = pytest.mark.unit

TELEPORTED = "be.bruxellesformation.tests.person.teleported"
"""An event type no reader knows."""


@asynccontextmanager
async def in_memory(service: str, include: Callable[[KafkaBroker], None]) -> AsyncIterator[tuple[KafkaBroker, CollectorRegistry]]:
    """A broker wired like `services.app.build_runtime` builds it, running in memory, and its metrics."""
    metrics = CollectorRegistry()
    policy = ErrorPolicy(service, registry=metrics)
    broker = create_broker(KafkaSettings(), client_id=f"{service}-tests", middlewares=(policy,))
    policy.bind(broker)
    include(broker)
    policy.attach_retries(broker)
    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker, metrics


async def publish(broker: KafkaBroker, topic: TopicSpec, event: Event) -> None:
    headers = {name: value.decode() for name, value in codec.headers(event).items()}
    await broker.publish(codec.encode(event), topic=topic_name(topic), key=(event.subject or "").encode(), headers=headers)


async def publish_unknown(broker: KafkaBroker, topic: TopicSpec, like: Event) -> None:
    """A well-formed CloudEvent of a type nobody knows, made from a known one."""
    value = json.loads(codec.encode(like)) | {"type": TELEPORTED}
    await broker.publish(json.dumps(value).encode(), topic=topic_name(topic), headers={"content-type": codec.CONTENT_TYPE})


def dead_letters(metrics: CollectorRegistry) -> float:
    return sum(
        sample.value
        for metric in metrics.collect()
        if metric.name == "consumer_dead_letters"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def skipped(metrics: CollectorRegistry, service: str, topic: TopicSpec) -> float:
    """`consumer_skipped_events_total` for the unknown type on `topic`."""
    value = metrics.get_sample_value(
        "consumer_skipped_events_total", {"consumer": service, "topic": topic_name(topic), "type": TELEPORTED}
    )
    return value or 0.0


def erased(person_id: str) -> PersonDataErased:
    return PersonDataErased(
        source="/tests", subject=person_id, person_id=person_id, erased_at=datetime.now(UTC), requested_by="data_subject"
    )


def routed(request: TrainingRequestReceived) -> TrainingRequestRouted:
    return TrainingRequestRouted.following(
        request,
        source="/routing",
        request_id=request.request_id,
        person_id=request.person_id,
        target=Target.ESPACES_NUMERIQUES,
        rule_id="named-online-course",
        rule_set_version="test",
        explanation="staff only",
        priority=60,
        callback_deadline=request.received_at,
    )


def enrolled(request: TrainingRequestReceived) -> EnrolmentConfirmed:
    return EnrolmentConfirmed.following(
        request,
        source="/routing",
        request_id=request.request_id,
        person_id=request.person_id,
        course_code="EXCEL",
        course_title="Excel : les bases",
        language=Language.FR,
    )


def exam_requested(request: TrainingRequestReceived) -> ExamSchedulingRequested:
    return ExamSchedulingRequested.following(
        request,
        source="/routing",
        person_id=request.person_id,
        certification_code="MOS-EXCEL",
        reason=ExamRequestReason.PATH_COMPLETED,
    )


def callback_due(request: TrainingRequestReceived) -> CallbackDue:
    return CallbackDue.following(
        request, source="/routing", request_id=request.request_id, person_id=request.person_id, deadline=request.received_at
    )


# -- routing ---------------------------------------------------------------------------


class RecordingRouting:
    """The routing use case as the handlers see it, recording each call; the requests in `refused`
    fail for good."""

    def __init__(self, *, refused: Collection[str] = (), late: Collection[str] = ()) -> None:
        self.routed: list[TrainingRequestReceived] = []
        self.batches: list[list[TrainingRequestReceived]] = []
        self.erased: list[str] = []
        self.applied: list[Event] = []
        """Every call in order: requests routed and the person's events applied."""
        self.refused = set(refused)
        self.late = set(late)
        """Requests whose first routing times out (a transient failure)."""

    async def route(self, request: TrainingRequestReceived, /) -> None:
        if request.request_id in self.refused:
            raise PermanentError("refused")
        if request.request_id in self.late:
            self.late.discard(request.request_id)
            raise TimeoutError("late")
        self.routed.append(request)
        self.applied.append(request)

    async def apply_person_event(self, event: routing_handlers.PersonEvent, /) -> None:
        if event.request_id not in {r.request_id for r in self.routed}:
            raise RequestNotRoutedYet(event.request_id)
        self.applied.append(event)

    async def route_batch(self, requests: Sequence[TrainingRequestReceived], /) -> list[FailedRequest]:
        self.batches.append(list(requests))
        failed = []
        for request in requests:
            try:
                await self.route(request)
            except (PermanentError, TimeoutError) as error:
                failed.append(FailedRequest(request, error))
        return failed

    async def erase_person(self, person_id: str, /) -> int:
        self.erased.append(person_id)
        return 1


def routing_in_batches(routing: RecordingRouting, max_records: int) -> Callable[[KafkaBroker], None]:
    return lambda broker: routing_handlers.include(broker, routing, batch_max_records=max_records)


@pytest.mark.parametrize("max_records", [1, 50])
async def test_routing_routes_a_received_request(max_records: int) -> None:
    routing = RecordingRouting()
    request = make_request()
    async with in_memory("routing", routing_in_batches(routing, max_records)) as (broker, _):
        await publish(broker, TRAINING_REQUESTS, request)
    assert routing.routed == [request]
    assert routing.erased == []
    assert len(routing.batches) == (1 if max_records > 1 else 0)


def _slot_and_withdrawal(request: TrainingRequestReceived) -> tuple[CallbackSlotChosen, TrainingRequestWithdrawn]:
    start = datetime(2031, 3, 11, 8, 0, tzinfo=UTC)
    slot = CallbackSlotChosen(
        source="/intake",
        request_id=request.request_id,
        person_id=request.person_id,
        slot_start=start,
        slot_end=start.replace(hour=11),
        chosen_through="phone_ivr",
    )
    withdrawn = TrainingRequestWithdrawn(
        source="/intake", request_id=request.request_id, person_id=request.person_id, withdrawn_through="status_page"
    )
    return slot, withdrawn


@pytest.mark.parametrize("max_records", [1, 50])
async def test_routing_applies_the_persons_events_after_their_request_in_order(max_records: int) -> None:
    request, other = make_request(), make_request()
    slot, withdrawn = _slot_and_withdrawal(request)
    routing = RecordingRouting()
    async with in_memory("routing", routing_in_batches(routing, max_records)) as (broker, metrics):
        for event in (request, slot, other, withdrawn):
            await publish(broker, TRAINING_REQUESTS, event)
        assert dead_letters(metrics) == 0
    assert [e.id for e in routing.applied if getattr(e, "request_id", None) == request.request_id] == [
        request.id,
        slot.id,
        withdrawn.id,
    ]
    assert other in routing.applied


async def test_routing_in_batches_retries_a_persons_event_whose_request_waits_for_a_retry() -> None:
    request = make_request()
    slot, _ = _slot_and_withdrawal(request)
    routing = RecordingRouting(late={request.request_id})
    async with in_memory("routing", routing_in_batches(routing, 50)) as (broker, metrics):
        await publish(broker, TRAINING_REQUESTS, request)
        await publish(broker, TRAINING_REQUESTS, slot)
        assert dead_letters(metrics) == 0
    assert [e.id for e in routing.applied] == [request.id, slot.id], "the slot is not lost: it applies after the retry"


async def test_routing_in_batches_dead_letters_a_refused_request_and_routes_the_others() -> None:
    good, refused, other = make_request(), make_request(), make_request()
    routing = RecordingRouting(refused={refused.request_id})
    async with in_memory("routing", routing_in_batches(routing, 50)) as (broker, metrics):
        for request in (good, refused, other):
            await publish(broker, TRAINING_REQUESTS, request)
        assert dead_letters(metrics) == 1
    assert routing.routed == [good, other]


async def test_routing_in_batches_retries_a_request_that_failed_for_now_alone() -> None:
    late, other = make_request(), make_request()
    routing = RecordingRouting(late={late.request_id})
    async with in_memory("routing", routing_in_batches(routing, 50)) as (broker, metrics):
        await publish(broker, TRAINING_REQUESTS, late)
        await publish(broker, TRAINING_REQUESTS, other)
        assert dead_letters(metrics) == 0
    assert routing.routed == [late, other], "the retry topic routes it through `route`"
    assert [[r.request_id for r in batch] for batch in routing.batches] == [[late.request_id], [other.request_id]]


async def test_routing_in_batches_skips_an_unknown_event_type_and_routes_the_rest() -> None:
    routing = RecordingRouting()
    request = make_request()
    async with in_memory("routing", routing_in_batches(routing, 50)) as (broker, metrics):
        await publish_unknown(broker, TRAINING_REQUESTS, make_request())
        await publish(broker, TRAINING_REQUESTS, request)
        assert skipped(metrics, "routing", TRAINING_REQUESTS) == 1
        assert dead_letters(metrics) == 0
    assert routing.routed == [request]


async def test_routing_in_batches_retries_requests_one_at_a_time() -> None:
    """The retry topics of a batch subscriber are read by the handler that takes one request."""
    routing = RecordingRouting()
    async with in_memory("routing", routing_in_batches(routing, 50)) as (broker, _):
        retried = {
            topic.name
            for subscriber in broker.subscribers
            if isinstance(subscriber, DefaultSubscriber) and subscriber.group_id == topic_name("routing.retries")
            for topic in subscriber.topics
        }
    assert topic_name(retries.retry_topic("routing", 1)) in retried


async def test_routing_erases_an_erased_person() -> None:
    routing = RecordingRouting()
    person_id = f"p-{uuid.uuid4().hex[:8]}"
    async with in_memory("routing", lambda broker: routing_handlers.include(broker, routing)) as (broker, _):
        await publish(broker, PRIVACY, erased(person_id))
    assert routing.erased == [person_id]
    assert routing.routed == []


async def test_routing_skips_an_unknown_event_type() -> None:
    routing = RecordingRouting()
    async with in_memory("routing", lambda broker: routing_handlers.include(broker, routing)) as (broker, metrics):
        await publish_unknown(broker, TRAINING_REQUESTS, make_request())
        assert skipped(metrics, "routing", TRAINING_REQUESTS) == 1
    assert routing.routed == []


# -- certification ---------------------------------------------------------------------


class RecordingCandidates:
    """The certification candidates use case as the handlers see it, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Event]] = []

    async def on_enrolment(self, event: EnrolmentConfirmed, /) -> bool:
        self.calls.append(("on_enrolment", event))
        return True

    async def on_exam_requested(self, event: ExamSchedulingRequested, /) -> bool:
        self.calls.append(("on_exam_requested", event))
        return True

    async def on_routed(self, event: TrainingRequestRouted, /) -> bool:
        self.calls.append(("on_routed", event))
        return True


class RecordingContacts:
    """The holders' contact projection as the handlers see it, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Event]] = []

    async def on_request(self, event: TrainingRequestReceived, /) -> bool:
        self.calls.append(("on_request", event))
        return True

    async def on_erased(self, event: PersonDataErased, /) -> bool:
        self.calls.append(("on_erased", event))
        return True


def certification(
    candidates: RecordingCandidates, *, priority_from_routing: bool = True, contacts: RecordingContacts | None = None
) -> Callable[[KafkaBroker], None]:
    return lambda broker: certification_handlers.include(
        broker, candidates, priority_from_routing=priority_from_routing, contacts=contacts
    )


async def test_certification_keeps_requests_contacts_and_honours_erasures() -> None:
    candidates, contacts = RecordingCandidates(), RecordingContacts()
    request = make_request()
    person = request.person_id
    erasure = PersonDataErased(
        source="/intake", subject=person, person_id=person, erased_at=request.received_at, requested_by="dpo"
    )
    async with in_memory("certification", certification(candidates, contacts=contacts)) as (broker, metrics):
        await publish(broker, TRAINING_REQUESTS, request)
        await publish(broker, PRIVACY, erasure)
        assert dead_letters(metrics) == 0
    assert contacts.calls == [("on_request", request), ("on_erased", erasure)]
    assert candidates.calls == []


async def test_certification_reads_requests_and_erasures_only_with_a_contact_projection() -> None:
    async with in_memory("certification", certification(RecordingCandidates())) as (broker, _):
        topics = {t.name for s in broker.subscribers if isinstance(s, DefaultSubscriber) for t in s.topics}
    assert topic_name(TRAINING_REQUESTS) not in topics and topic_name(PRIVACY) not in topics


async def test_certification_takes_enrolments_and_exam_requests() -> None:
    candidates = RecordingCandidates()
    request = make_request()
    enrolment, exam = enrolled(request), exam_requested(request)
    async with in_memory("certification", certification(candidates)) as (broker, _):
        await publish(broker, TRAINING_ENROLMENTS, enrolment)
        await publish(broker, TRAINING_ENROLMENTS, exam)
    assert candidates.calls == [("on_enrolment", enrolment), ("on_exam_requested", exam)]


async def test_certification_passes_over_waitlistings_and_completions() -> None:
    candidates = RecordingCandidates()
    request = make_request()
    completed = TrainingCompleted.following(
        request,
        source="/routing",
        request_id=request.request_id,
        person_id=request.person_id,
        course_code="EXCEL",
        session_id="EXCEL-1",
        at=request.received_at,
    )
    async with in_memory("certification", certification(candidates)) as (broker, metrics):
        await publish(broker, TRAINING_ENROLMENTS, completed)
        assert dead_letters(metrics) == 0
    assert candidates.calls == []


async def test_certification_takes_routed_requests_and_passes_over_the_rest_of_routing() -> None:
    candidates = RecordingCandidates()
    request = make_request()
    routed_event = routed(request)
    async with in_memory("certification", certification(candidates)) as (broker, metrics):
        await publish(broker, TRAINING_ROUTING, callback_due(request))
        await publish(broker, TRAINING_ROUTING, routed_event)
        assert dead_letters(metrics) == 0
    assert candidates.calls == [("on_routed", routed_event)]


async def test_certification_reads_routing_only_when_asked() -> None:
    candidates = RecordingCandidates()
    async with in_memory("certification", certification(candidates, priority_from_routing=False)) as (broker, _):
        topics = {
            topic.name
            for subscriber in broker.subscribers
            if isinstance(subscriber, DefaultSubscriber)
            for topic in subscriber.topics
        }
    assert topic_name(TRAINING_ROUTING) not in topics
    assert topic_name(TRAINING_ENROLMENTS) in topics


async def test_certification_skips_an_unknown_event_type() -> None:
    candidates = RecordingCandidates()
    async with in_memory("certification", certification(candidates)) as (broker, metrics):
        await publish_unknown(broker, TRAINING_ENROLMENTS, enrolled(make_request()))
        await publish_unknown(broker, TRAINING_ROUTING, routed(make_request()))
        assert skipped(metrics, "certification", TRAINING_ENROLMENTS) == 1
        assert skipped(metrics, "certification", TRAINING_ROUTING) == 1
    assert candidates.calls == []


# -- notification ----------------------------------------------------------------------


class RecordingNotifications:
    """The notification use case as the handlers see it, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Event]] = []

    async def record_contact(self, event: TrainingRequestReceived, /) -> None:
        self.calls.append(("record_contact", event))

    async def erase(self, event: PersonDataErased, /) -> None:
        self.calls.append(("erase", event))

    async def confirm_contact(self, event: ContactDetailsConfirmed, /) -> None:
        self.calls.append(("confirm_contact", event))

    async def notify(self, event: Event, /) -> None:
        self.calls.append(("notify", event))


async def test_notification_records_contacts_erases_and_notifies_the_rest() -> None:
    notifications = RecordingNotifications()
    request = make_request()
    erasure = erased(request.person_id)
    routed_event, enrolment, due = routed(request), enrolled(request), callback_due(request)
    async with in_memory("notification", lambda broker: notification_handlers.include(broker, notifications)) as (broker, _):
        await publish(broker, TRAINING_REQUESTS, request)
        await publish(broker, TRAINING_ROUTING, routed_event)
        await publish(broker, TRAINING_ROUTING, due)
        await publish(broker, TRAINING_ENROLMENTS, enrolment)
        await publish(broker, PRIVACY, erasure)
    assert notifications.calls == [
        ("record_contact", request),
        ("notify", routed_event),
        ("notify", due),
        ("notify", enrolment),
        ("erase", erasure),
    ]


async def test_notification_decides_on_every_seat_offer_event_and_dead_letters_none() -> None:
    notifications = RecordingNotifications()
    at = datetime(2026, 3, 3, 9, tzinfo=UTC)
    offered = ExamSeatOffered(
        source="/certification",
        person_id="p1",
        offer_id="o1",
        certification_code="MOS-EXCEL",
        session_id="s1",
        centre_id="c1",
        centre_name="Centre",
        exam_at=at,
        respond_by=at,
    )
    closed: list[Event] = [
        cls(source="/certification", person_id="p1", offer_id="o1", certification_code="MOS-EXCEL", session_id="s1", closed_at=at)
        for cls in (ExamSeatOfferAccepted, ExamSeatOfferDeclined, ExamSeatOfferExpired)
    ]
    async with in_memory("notification", lambda broker: notification_handlers.include(broker, notifications)) as (broker, _):
        for event in (offered, *closed):
            await publish(broker, CERTIFICATION_EXAMS, event)
    assert notifications.calls == [("notify", e) for e in (offered, *closed)]


async def test_notification_skips_an_unknown_event_type() -> None:
    notifications = RecordingNotifications()
    async with in_memory("notification", lambda broker: notification_handlers.include(broker, notifications)) as (
        broker,
        metrics,
    ):
        await publish_unknown(broker, TRAINING_ROUTING, routed(make_request()))
        assert skipped(metrics, "notification", TRAINING_ROUTING) == 1
    assert notifications.calls == []


async def test_notification_passes_over_the_routing_events_that_tell_nobody_anything() -> None:
    notifications = RecordingNotifications()
    request = make_request()
    quiet = [
        RequestFactsRecorded(
            source="/routing/desk",
            request_id=request.request_id,
            person_id=request.person_id,
            recorded_by="adv-1",
            has_computer=False,
            priority=60,
        ),
        PartnerInformationRequested(
            source="/routing/desk",
            request_id=request.request_id,
            person_id=request.person_id,
            partner="cite-des-metiers",
            worker_id="en-1",
            asked_at=request.received_at,
            remind_at=request.received_at,
        ),
    ]
    async with in_memory("notification", lambda broker: notification_handlers.include(broker, notifications)) as (
        broker,
        metrics,
    ):
        for event in quiet:
            await publish(broker, TRAINING_ROUTING, event)
        assert dead_letters(metrics) == 0
    assert notifications.calls == []


# -- the programme's lifecycle, read by services it does not concern ---------------------------


def programme_events(request: TrainingRequestReceived) -> list[tuple[TopicSpec, Event]]:
    now = request.received_at
    return [
        (
            TRAINING_ROUTING,
            DigitalDivideAdmitted(
                source="/routing/programme",
                request_id=request.request_id,
                person_id=request.person_id,
                year=2026,
                priority=40,
                waiting_since=now,
            ),
        ),
        (
            TRAINING_ROUTING,
            DigitalDivideMemberReleased(
                source="/routing/programme",
                request_id=request.request_id,
                person_id=request.person_id,
                year=2026,
                reason="completed",
                released_by="sup-1",
            ),
        ),
        (TRAINING_ROUTING, DigitalDivideProgrammeSuspended(source="/routing/programme", changed_by="sup-1")),
        (
            TRAINING_ROUTING,
            DigitalDivideQuotaChanged(source="/routing/programme", year=2026, previous_quota=350, quota=360, changed_by="sup-1"),
        ),
        (
            TRAINING_ENROLMENTS,
            SelfTrainingSlotBooked(
                source="/routing/programme",
                person_id=request.person_id,
                slot_id="room:2026-03-02:0900",
                space_id="room",
                starts_at=now,
                ends_at=now,
                booked_by="adv-1",
            ),
        ),
        (
            TRAINING_ENROLMENTS,
            SelfTrainingSlotCancelled(
                source="/routing/programme",
                person_id=request.person_id,
                slot_id="room:2026-03-02:0900",
                space_id="room",
                starts_at=now,
                cancelled_by="adv-1",
            ),
        ),
        (
            TRAINING_ROUTING,
            DigitalSpaceChanged(
                source="/routing/programme",
                space_id="room",
                change="added",
                kind="self_training",
                name="Salle",
                capacity=4,
                changed_by="sup-1",
            ),
        ),
        (
            TRAINING_ROUTING,
            SelfTrainingSlotOpened(
                source="/routing/programme",
                slot_id="room:2026-03-02:0900",
                space_id="room",
                starts_at=now,
                ends_at=now,
                capacity=4,
                opened_by="sup-1",
            ),
        ),
        (
            TRAINING_ROUTING,
            DigitalDivideSpaceAssigned(
                source="/routing/programme",
                request_id=request.request_id,
                person_id=request.person_id,
                year=2026,
                space_id="room",
                assigned_by="sup-1",
            ),
        ),
    ]


async def test_certification_and_notification_pass_over_the_programmes_lifecycle() -> None:
    candidates, notifications = RecordingCandidates(), RecordingNotifications()
    request = make_request()
    async with in_memory("certification", certification(candidates)) as (broker, metrics):
        for topic, event in programme_events(request):
            await publish(broker, topic, event)
        assert dead_letters(metrics) == 0
    async with in_memory("notification", lambda broker: notification_handlers.include(broker, notifications)) as (
        broker,
        metrics,
    ):
        for topic, event in programme_events(request):
            await publish(broker, topic, event)
        assert dead_letters(metrics) == 0
    assert candidates.calls == [] and notifications.calls == []
