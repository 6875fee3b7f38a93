"""Notification's Kafka handlers: each translates one event into one call on the notification use case.

One subscriber reads the five topics: a replica is one member of the group, so starting or
stopping it costs one rebalance, not five in a row; order is still kept per partition. Its
handlers split the events by type (`carrying`). The use case reaches them through the broker's
context (`include`), not a closure, so the same handlers run in `TestKafkaBroker` around a fake.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from faststream import Context
from faststream.kafka import KafkaBroker, KafkaRouter

from schemas import (
    CallbackDue,
    CallbackSlaBreached,
    CallbackSlotChosen,
    CertificateIssued,
    ContactAttempted,
    ContactDetailsConfirmed,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamScheduled,
    ExamSchedulingRequested,
    ExamSeatOfferAccepted,
    ExamSeatOfferDeclined,
    ExamSeatOffered,
    ExamSeatOfferExpired,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    PersonDataErased,
    TrainingAbandoned,
    TrainingCompleted,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from schemas.topics import CERTIFICATION_EXAMS, PRIVACY, TRAINING_ENROLMENTS, TRAINING_REQUESTS, TRAINING_ROUTING
from services import carrying, subscriber_options
from services.kafka import topic_name

GROUP = "notification"
CONSUMED = (TRAINING_REQUESTS, TRAINING_ROUTING, TRAINING_ENROLMENTS, CERTIFICATION_EXAMS, PRIVACY)
NOTIFIED = (
    TrainingRequestRouted,
    ContactAttempted,
    TrainingRequestClosed,
    CallbackSlotChosen,
    PartnerInformationReceived,
    CallbackDue,
    CallbackSlaBreached,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    TrainingCompleted,
    TrainingAbandoned,
    ExamSchedulingRequested,
    ExamSeatOffered,
    ExamSeatOfferAccepted,
    ExamSeatOfferDeclined,
    ExamSeatOfferExpired,
    ExamScheduled,
    CertificateIssued,
)
"""The events the service decides on, one by one, whether they tell the person something (an offer's
answer or lapse tells nothing: `ExamScheduled` or the next offer does; carried so they are not dead letters)."""
Notified = (
    TrainingRequestRouted
    | ContactAttempted
    | TrainingRequestClosed
    | CallbackSlotChosen
    | PartnerInformationReceived
    | CallbackDue
    | CallbackSlaBreached
    | EnrolmentConfirmed
    | EnrolmentWaitlisted
    | TrainingCompleted
    | TrainingAbandoned
    | ExamSchedulingRequested
    | ExamSeatOffered
    | ExamSeatOfferAccepted
    | ExamSeatOfferDeclined
    | ExamSeatOfferExpired
    | ExamScheduled
    | CertificateIssued
)
"""`NOTIFIED` as an annotation: the schema FastStream validates and documents."""

USE_CASE = "notification"
"""The broker context key the notification use case is set under."""
STAFF_USE_CASE = "staff_alerts"
"""The broker context key the staff alerts are set under (absent: staff are not alerted)."""


class NotificationUseCase(Protocol):
    """What the handlers call: `notification.service.NotificationService` in the service, a fake in tests."""

    async def record_contact(self, event: TrainingRequestReceived, /) -> object: ...

    async def erase(self, event: PersonDataErased, /) -> object: ...

    async def confirm_contact(self, event: ContactDetailsConfirmed, /) -> object: ...

    async def notify(self, event: Event, /) -> object: ...


class StaffAlertsUseCase(Protocol):
    """What the handlers call for staff: `notification.staff_alerts.StaffAlerts`, or a fake."""

    async def alert(self, event: Event, /) -> object: ...


Notifications = Annotated[NotificationUseCase, Context(USE_CASE)]
StaffAlerts = Annotated[StaffAlertsUseCase | None, Context(STAFF_USE_CASE, default=None)]


def router() -> KafkaRouter:
    """The one subscriber, with the group and options it has always had. A new router each
    call: a router belongs to one broker, and tests build many."""
    router = KafkaRouter()
    events = router.subscriber(
        *(topic_name(t) for t in CONSUMED),
        **subscriber_options(GROUP),
        title=GROUP,
        description="Requests feed the contact projection, erasures empty it, the other events may tell the person something.",
    )

    @events(filter=carrying(TrainingRequestReceived))
    async def on_training_request_received(event: TrainingRequestReceived, notifications: Notifications) -> None:
        await notifications.record_contact(event)

    @events(filter=carrying(ContactDetailsConfirmed))
    async def on_contact_details_confirmed(event: ContactDetailsConfirmed, notifications: Notifications) -> None:
        await notifications.confirm_contact(event)

    @events(filter=carrying(PersonDataErased))
    async def on_person_data_erased(event: PersonDataErased, notifications: Notifications) -> None:
        await notifications.erase(event)

    @events(filter=carrying(*NOTIFIED))
    async def on_event(event: Notified, notifications: Notifications, staff: StaffAlerts) -> None:
        # Routed, a contact attempt nobody answered, a request closed as unreachable or withdrawn by
        # the person, a callback slot the person chose, enrolment, exam, certificate; the others
        # (a callback due, an exam merely requested...) tell the person nothing.
        await notifications.notify(event)
        if staff is not None and isinstance(event, CallbackDue | CallbackSlaBreached):
            # A callback due warns the worker holding it; a breach tells the team's supervisor.
            await staff.alert(event)

    @events(filter=carrying(PartnerInformationOverdue))
    async def on_partner_information_overdue(event: PartnerInformationOverdue, staff: StaffAlerts) -> None:
        # The partner has not answered the desk's question: the worker holding the request is reminded.
        if staff is not None:
            await staff.alert(event)

    @events
    async def on_other_event(event: Event) -> None:
        """What tells nobody anything (facts recorded at the desk, a question to a partner, the programme's places
        and slots): committed, not a dead letter."""

    return router


def include(broker: KafkaBroker, notifications: NotificationUseCase, staff: StaffAlertsUseCase | None = None) -> None:
    """Subscribe `broker` to the topics notification reads, the handlers calling `notifications`
    (and `staff` for the alerts to staff, when given)."""
    broker.context.set_global(USE_CASE, notifications)
    if staff is not None:
        broker.context.set_global(STAFF_USE_CASE, staff)
    broker.include_router(router())
