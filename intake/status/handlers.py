"""The status projection's Kafka subscriber: one group (`intake.status`) reading the five topics whose
events a person's status page shows; each event is applied once (`StatusService.record`).

One subscriber for the five topics, like notification's: a replica is one member of one group. The
use case is reached through the broker's context, so the same handlers run around a fake in tests.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from faststream import Context
from faststream.kafka import KafkaBroker, KafkaRouter

from intake.status.projection import PERSON_EVENTS, REQUEST_EVENTS
from schemas import (
    CallbackSlotChosen,
    CertificateIssued,
    ContactAttempted,
    ContactDetailsConfirmed,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamScheduled,
    ExamSeatOffered,
    PartnerInformationReceived,
    PartnerInformationRequested,
    PersonDataErased,
    RequestDetailsCorrected,
    TrainingAbandoned,
    TrainingCompleted,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
)
from schemas.topics import CERTIFICATION_EXAMS, PRIVACY, TRAINING_ENROLMENTS, TRAINING_REQUESTS, TRAINING_ROUTING
from services import carrying, subscriber_options
from services.kafka import topic_name

__all__ = ["CONSUMED", "GROUP", "SHOWN", "include", "router"]

GROUP = "intake.status"
CONSUMED = (TRAINING_REQUESTS, TRAINING_ROUTING, TRAINING_ENROLMENTS, CERTIFICATION_EXAMS, PRIVACY)
SHOWN: tuple[type[Event], ...] = (*REQUEST_EVENTS, *PERSON_EVENTS, PersonDataErased)
"""What the projection applies (`intake.status.projection`), and the erasures that empty it."""
Shown = (
    TrainingRequestReceived
    | TrainingRequestRouted
    | ContactAttempted
    | PartnerInformationRequested
    | PartnerInformationReceived
    | TrainingRequestClosed
    | CallbackSlotChosen
    | TrainingRequestWithdrawn
    | RequestDetailsCorrected
    | ContactDetailsConfirmed
    | EnrolmentConfirmed
    | EnrolmentWaitlisted
    | TrainingCompleted
    | TrainingAbandoned
    | ExamSeatOffered
    | ExamScheduled
    | CertificateIssued
    | PersonDataErased
)
"""`SHOWN` as an annotation: the schema FastStream validates and documents."""

USE_CASE = "status"


class StatusUpdates(Protocol):
    """What the handlers call: `intake.status.service.StatusService`, or a fake."""

    async def record(self, event: Event, /) -> object: ...


Updates = Annotated[StatusUpdates, Context(USE_CASE)]


def router() -> KafkaRouter:
    router = KafkaRouter()
    events = router.subscriber(
        *(topic_name(t) for t in CONSUMED),
        **subscriber_options(GROUP),
        title=GROUP,
        description="Feeds the job seekers' status pages: their requests, what routing, enrolment and "
        "certification did about them, and erasures.",
    )

    @events(filter=carrying(*SHOWN))
    async def on_status_event(event: Shown, status: Updates) -> None:
        await status.record(event)

    @events
    async def on_other_event(event: Event) -> None:
        """What a status page does not show (desk facts, reminders, notifications): committed, not a dead letter."""

    return router


def include(broker: KafkaBroker, status: StatusUpdates) -> None:
    broker.context.set_global(USE_CASE, status)
    broker.include_router(router())
