"""Certification's Kafka handlers: each translates one event into one call on the candidates use case.

The use case reaches the handlers through the broker's context (`include`), not a closure, so the
same handlers run on the real broker and in `TestKafkaBroker` around a fake.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from faststream import Context
from faststream.kafka import KafkaBroker, KafkaRouter

from schemas import (
    EnrolmentConfirmed,
    Event,
    ExamSchedulingRequested,
    PersonDataErased,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from schemas.topics import PRIVACY, TRAINING_ENROLMENTS, TRAINING_REQUESTS, TRAINING_ROUTING
from services import carrying, subscriber_options
from services.kafka import topic_name

CONSUMED = (TRAINING_ENROLMENTS, TRAINING_ROUTING, TRAINING_REQUESTS, PRIVACY)
"""Every topic certification may read (routing's only with `priority_from_routing`)."""

USE_CASE = "certification_candidates"
"""The broker context key the candidates use case is set under (no dot: `Context` reads a dot as an attribute)."""
CONTACTS_USE_CASE = "certification_contacts"
"""The broker context key of the holders' contact projection (`certification.holders.HolderContacts`)."""


class CandidatesUseCase(Protocol):
    """What the handlers call: `certification.candidates.Candidates` in the service, a fake in tests."""

    async def on_enrolment(self, event: EnrolmentConfirmed, /) -> object: ...

    async def on_exam_requested(self, event: ExamSchedulingRequested, /) -> object: ...

    async def on_routed(self, event: TrainingRequestRouted, /) -> object: ...


class ContactsUseCase(Protocol):
    """What the contact handlers call: `certification.holders.HolderContacts`, or a fake in tests."""

    async def on_request(self, event: TrainingRequestReceived, /) -> object: ...

    async def on_erased(self, event: PersonDataErased, /) -> object: ...


Candidates = Annotated[CandidatesUseCase, Context(USE_CASE)]
Contacts = Annotated[ContactsUseCase, Context(CONTACTS_USE_CASE)]


def router(*, priority_from_routing: bool, contacts: bool = False) -> KafkaRouter:
    """Certification's subscribers, with the groups and options they have always had; routing's
    topic only with `priority_from_routing`. A new router each call: a router belongs to one broker."""
    router = KafkaRouter()

    # Titles keep the channel names the AsyncAPI document had when one handler took every type.
    enrolments = router.subscriber(
        topic_name(TRAINING_ENROLMENTS),
        **subscriber_options("certification"),
        title=f"{topic_name(TRAINING_ENROLMENTS)}:OnEnrolmentEvent",
        description="An enrolment in a preparing course makes a candidate; an exam request puts one on a waitlist.",
    )

    @enrolments(filter=carrying(EnrolmentConfirmed))
    async def on_enrolment_confirmed(event: EnrolmentConfirmed, candidates: Candidates) -> None:
        await candidates.on_enrolment(event)

    @enrolments(filter=carrying(ExamSchedulingRequested))
    async def on_exam_scheduling_requested(event: ExamSchedulingRequested, candidates: Candidates) -> None:
        await candidates.on_exam_requested(event)

    @enrolments
    async def on_other_enrolment_event(event: Event) -> None:
        """A waitlisting, a course completed or abandoned, a self-training slot booked or cancelled:
        committed, nothing to do (a completed path reaches certification as the `ExamSchedulingRequested`
        routing publishes with it)."""

    if priority_from_routing:
        # A group of its own: reading routing's busy topic must not hold up enrolments in rebalances.
        routing = router.subscriber(
            topic_name(TRAINING_ROUTING),
            **subscriber_options("certification-priority"),
            title=f"{topic_name(TRAINING_ROUTING)}:OnRoutingEvent",
            description="A request routed with high priority raises the person's candidate priority; the rest is passed over.",
        )

        @routing(filter=carrying(TrainingRequestRouted))
        async def on_training_request_routed(event: TrainingRequestRouted, candidates: Candidates) -> None:
            await candidates.on_routed(event)

        @routing
        async def on_routing_event(event: Event) -> None:
            """The callback timers and the calls at the desk: committed, nothing to do."""

    if contacts:
        # Groups of their own: intake's requests and the erasures must not wait behind enrolments.
        requests = router.subscriber(
            topic_name(TRAINING_REQUESTS),
            **subscriber_options("certification.contacts"),
            title=f"{topic_name(TRAINING_REQUESTS)}:OnTrainingRequest",
            description="A request's e-mail (sealed, opened here) is kept to name a credential's holder.",
        )

        @requests(filter=carrying(TrainingRequestReceived))
        async def on_training_request_received(event: TrainingRequestReceived, contacts: Contacts) -> None:
            await contacts.on_request(event)

        erasures = router.subscriber(
            topic_name(PRIVACY),
            **subscriber_options("certification.privacy"),
            title=f"{topic_name(PRIVACY)}:OnPersonDataErased",
            description="An erasure blanks the person's e-mail: later credentials name them by a hash of their id.",
        )

        @erasures(filter=carrying(PersonDataErased))
        async def on_person_data_erased(event: PersonDataErased, contacts: Contacts) -> None:
            await contacts.on_erased(event)

    return router


def include(
    broker: KafkaBroker,
    candidates: CandidatesUseCase,
    *,
    priority_from_routing: bool,
    contacts: ContactsUseCase | None = None,
) -> None:
    """Subscribe `broker` to certification's topics, the handlers calling `candidates` (and `contacts`,
    fed by intake's requests and the erasures, when given)."""
    broker.context.set_global(USE_CASE, candidates)
    if contacts is not None:
        broker.context.set_global(CONTACTS_USE_CASE, contacts)
    broker.include_router(router(priority_from_routing=priority_from_routing, contacts=contacts is not None))
