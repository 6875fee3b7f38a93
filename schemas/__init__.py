"""Event contracts of formation-events: the envelope, the events, their topics and wire format.

Pure data and encoding, no I/O: every service imports this package, none of it connects.
"""

from schemas.codec import (
    CONTENT_TYPE,
    UPCASTERS,
    Headers,
    Upcaster,
    decode,
    encode,
    headers,
    json_schema,
    json_schemas,
)
from schemas.envelope import EVENT_TYPE_PREFIX, Event
from schemas.errors import (
    ContractError,
    EventTooLarge,
    InvalidEvent,
    MalformedEvent,
    UnknownEventType,
    UnsupportedSchemaVersion,
)
from schemas.events import (
    EVENT_CLASSES,
    EVENT_TYPES,
    CallbackDue,
    CallbackSlaBreached,
    CertificateIssued,
    ContactAttempted,
    EnrolmentConfirmed,
    ExamScheduled,
    ExamSchedulingRequested,
    NotificationFailed,
    NotificationSent,
    PersonDataErased,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from schemas.topics import (
    ALL_TOPICS,
    CERTIFICATION_EXAMS,
    NOTIFICATIONS,
    PRIVACY,
    TRAINING_ENROLMENTS,
    TRAINING_REQUESTS,
    TRAINING_ROUTING,
    TopicSpec,
    key_for,
    topic_for,
)
from schemas.values import (
    CampaignAttribution,
    Channel,
    Contact,
    ContactOutcome,
    ExamRequestReason,
    KnownChannel,
    Language,
    NotificationChannel,
    QualificationLevel,
    SealedPersonalData,
    Target,
)

__all__ = [
    # envelope
    "EVENT_TYPE_PREFIX",
    "Event",
    # events
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "CallbackDue",
    "CallbackSlaBreached",
    "CertificateIssued",
    "ContactAttempted",
    "EnrolmentConfirmed",
    "ExamScheduled",
    "ExamSchedulingRequested",
    "NotificationFailed",
    "NotificationSent",
    "PersonDataErased",
    "TrainingRequestReceived",
    "TrainingRequestRouted",
    # values
    "CampaignAttribution",
    "Channel",
    "Contact",
    "ContactOutcome",
    "ExamRequestReason",
    "KnownChannel",
    "Language",
    "NotificationChannel",
    "QualificationLevel",
    "SealedPersonalData",
    "Target",
    # topics
    "ALL_TOPICS",
    "CERTIFICATION_EXAMS",
    "NOTIFICATIONS",
    "PRIVACY",
    "TRAINING_ENROLMENTS",
    "TRAINING_REQUESTS",
    "TRAINING_ROUTING",
    "TopicSpec",
    "key_for",
    "topic_for",
    # wire format
    "CONTENT_TYPE",
    "UPCASTERS",
    "Headers",
    "Upcaster",
    "decode",
    "encode",
    "headers",
    "json_schema",
    "json_schemas",
    # errors
    "ContractError",
    "EventTooLarge",
    "InvalidEvent",
    "MalformedEvent",
    "UnknownEventType",
    "UnsupportedSchemaVersion",
]
