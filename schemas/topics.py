"""The Kafka topics, declared once: name, partitions, key and the events each one carries.

Keys. Kafka keeps order only within a partition, so every event is keyed by what its
consumers need in order: a request's life (received, routed, callback due, contact
attempted, breached) by `request_id`; what happens to a person afterwards (enrolment,
exams, certificates, notifications, erasure) by `person_id`, since several of those
flows start without a request (an exam asked for at the desk).

Partitions. A partition is read by at most one consumer of a group, so the count caps a
group's parallelism. Intake and routing are the hot path and run up to 6 replicas each,
hence 6; the other flows are light and get 3. Partitions can be added but not removed,
and adding them moves keys (breaking per-key order for a while), so these are chosen
upfront rather than tuned later.

Retention. Each topic says how long Kafka keeps it (`configs`, applied at creation and checked
at every start by `services.kafka.ensure_topics`; `python -m services.retention` fixes a drift).
The business streams keep `REPLAY_RETENTION_MS` so that a year can be replayed; retry topics
hold a failure for seconds and keep a week; dead letters keep a month for an operator to redrive;
`configuration.v1` is compacted and keeps the latest value of each setting for good.

Versions. Within `*.v1` a contract may only gain optional fields. A breaking change is a
new `*.v2` topic that producers write to while consumers drain `*.v1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from schemas.envelope import Event
from schemas.events import (
    CallbackDue,
    CallbackSlaBreached,
    CallbackSlotChosen,
    CertificateIssued,
    ConfigurationChanged,
    ContactAttempted,
    ContactDetailsConfirmed,
    DigitalDivideAdmitted,
    DigitalDivideMemberReleased,
    DigitalDivideProgrammeResumed,
    DigitalDivideProgrammeSuspended,
    DigitalDivideQuotaChanged,
    DigitalDivideSpaceAssigned,
    DigitalSpaceChanged,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    ExamScheduled,
    ExamSchedulingRequested,
    ExamSeatOfferAccepted,
    ExamSeatOfferDeclined,
    ExamSeatOffered,
    ExamSeatOfferExpired,
    NotificationFailed,
    NotificationSent,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    PartnerInformationRequested,
    PersonDataErased,
    RequestDetailsCorrected,
    RequestFactsRecorded,
    SelfTrainingSlotBooked,
    SelfTrainingSlotCancelled,
    SelfTrainingSlotOpened,
    TrainingAbandoned,
    TrainingCompleted,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
)

__all__ = [
    "ALL_TOPICS",
    "COMPACTED",
    "DEAD_LETTER_RETENTION_MS",
    "REPLAY_RETENTION_MS",
    "RETRY_RETENTION_MS",
    "CERTIFICATION_EXAMS",
    "CONFIGURATION",
    "NOTIFICATIONS",
    "PRIVACY",
    "TRAINING_ENROLMENTS",
    "TRAINING_REQUESTS",
    "TRAINING_ROUTING",
    "TopicSpec",
    "key_for",
    "kept_for",
    "topic_for",
]

DAY_MS = 24 * 60 * 60 * 1000

REPLAY_RETENTION_MS = 400 * DAY_MS
"""A year of replay plus five weeks: an analyst comparing a month with the same month a year
before still finds the whole of it, and a rebuilt read model covers a full year. Not infinite
(-1): request records carry sealed personal data, and a finite horizon bounds how long even
sealed data stays on disk; beyond it the analytics replay into MongoDB is the archive."""
RETRY_RETENTION_MS = 7 * DAY_MS
"""A retry waits seconds to a minute; a week covers a consumer down over a long weekend."""
DEAD_LETTER_RETENTION_MS = 30 * DAY_MS
"""Long enough for an operator to notice, fix the cause and redrive (`services.deadletters`)."""


def kept_for(retention_ms: int) -> Mapping[str, str]:
    """Topic configs that delete records older than `retention_ms`, and only those."""
    # No size cap (`retention.bytes` -1): a broker-wide cap set for other topics (1 GiB a partition
    # on the local broker) must not silently cut the year short; a year here is a few GB (README).
    return MappingProxyType({"cleanup.policy": "delete", "retention.ms": str(retention_ms), "retention.bytes": "-1"})


COMPACTED: Mapping[str, str] = MappingProxyType({"cleanup.policy": "compact"})
"""Topic configs that keep the latest record of each key for good (time retention does not apply)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic, its partition count, the event field it is keyed by and the events on it."""

    name: str
    partitions: int
    key: str
    events: tuple[type[Event], ...]
    description: str
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Kafka topic configuration set when the topic is created and checked at start-up
    (`cleanup.policy`, `retention.ms`): `kept_for(...)` or `COMPACTED`."""
    keyed_otherwise: Mapping[type[Event], str] = field(default_factory=lambda: MappingProxyType({}))
    """Events keyed by another field than `key`: facts about a whole programme, which has no request."""

    @property
    def retention_ms(self) -> int | None:
        """How long records are kept, in ms; None when compacted (or left to the broker's default)."""
        value = self.configs.get("retention.ms")
        return None if value is None else int(value)

    def key_field(self, cls: type[Event]) -> str:
        """The field events of `cls` are keyed by on this topic."""
        return self.keyed_otherwise.get(cls, self.key)

    def __post_init__(self) -> None:
        # Checked at import so that a new event on a topic cannot lack the key field
        # (and be published unkeyed, out of order) without failing every test.
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be at least 1")
        for cls in self.events:
            key = self.key_field(cls)
            field = cls.model_fields.get(key)
            # A programme-wide fact carries its programme's name as a default: never unset either.
            always_set = field is not None and (field.is_required() or (cls in self.keyed_otherwise and field.default))
            if not always_set:
                raise TypeError(f"{self.name} is keyed by {key!r}, which {cls.__qualname__} does not require")

    def key_for(self, event: Event) -> bytes:
        """The Kafka key of `event` on this topic: its key field in UTF-8."""
        if not isinstance(event, self.events):
            raise TypeError(f"{type(event).__qualname__} is not published on {self.name}")
        value = getattr(event, self.key_field(type(event)))
        return str(value).encode("utf-8")


TRAINING_REQUESTS = TopicSpec(
    name="training.requests.v1",
    partitions=6,
    key="request_id",
    events=(TrainingRequestReceived, CallbackSlotChosen, TrainingRequestWithdrawn, RequestDetailsCorrected),
    configs=kept_for(REPLAY_RETENTION_MS),
    description="Training requests as they come in by phone, e-mail and the web, and what the person does "
    "about them afterwards (a callback slot chosen, a correction, a withdrawal).",
)
TRAINING_ROUTING = TopicSpec(
    name="training.routing.v1",
    partitions=6,
    key="request_id",
    events=(
        TrainingRequestRouted,
        CallbackDue,
        CallbackSlaBreached,
        ContactAttempted,
        RequestFactsRecorded,
        PartnerInformationRequested,
        PartnerInformationOverdue,
        PartnerInformationReceived,
        TrainingRequestClosed,
        ContactDetailsConfirmed,
        DigitalDivideAdmitted,
        DigitalDivideMemberReleased,
        DigitalDivideProgrammeSuspended,
        DigitalDivideProgrammeResumed,
        DigitalDivideQuotaChanged,
        DigitalSpaceChanged,
        SelfTrainingSlotOpened,
        DigitalDivideSpaceAssigned,
    ),
    configs=kept_for(REPLAY_RETENTION_MS),
    description=(
        "Where each request went, its 48-hour callback, the attempts to reach it and how they ended, "
        "the questions to the partner that handed it over, and the digital-divide programme's places "
        "(admissions, releases, a member's space) and state (suspension, quota, its spaces and self-training "
        "slots; keyed by the programme's name)."
    ),
    keyed_otherwise=MappingProxyType(
        {
            DigitalDivideProgrammeSuspended: "programme",
            DigitalDivideProgrammeResumed: "programme",
            DigitalDivideQuotaChanged: "programme",
            DigitalSpaceChanged: "programme",
            SelfTrainingSlotOpened: "programme",
        }
    ),
)
TRAINING_ENROLMENTS = TopicSpec(
    name="training.enrolments.v1",
    partitions=3,
    key="person_id",
    events=(
        EnrolmentConfirmed,
        EnrolmentWaitlisted,
        TrainingCompleted,
        TrainingAbandoned,
        ExamSchedulingRequested,
        SelfTrainingSlotBooked,
        SelfTrainingSlotCancelled,
    ),
    configs=kept_for(REPLAY_RETENTION_MS),
    description=(
        "Enrolments in course sessions (or on their waitlist), courses completed or abandoned, requests to sit "
        "a certification exam, and bookings of self-training slots by members of the digital-divide programme."
    ),
)
CERTIFICATION_EXAMS = TopicSpec(
    name="certification.exams.v1",
    partitions=3,
    key="person_id",
    events=(
        ExamSeatOffered,
        ExamSeatOfferAccepted,
        ExamSeatOfferDeclined,
        ExamSeatOfferExpired,
        ExamScheduled,
        CertificateIssued,
    ),
    configs=kept_for(REPLAY_RETENTION_MS),
    description="Exam seats offered, accepted, declined or lapsed, exam seats booked and certificates issued.",
)
NOTIFICATIONS = TopicSpec(
    name="notifications.v1",
    partitions=3,
    key="person_id",
    events=(NotificationSent, NotificationFailed),
    # Kept like the request streams: what was sent to whom is part of a request's history.
    configs=kept_for(REPLAY_RETENTION_MS),
    description="E-mails and text messages sent, or not, to job seekers.",
)
PRIVACY = TopicSpec(
    name="privacy.v1",
    partitions=3,
    key="person_id",
    events=(PersonDataErased,),
    # As long as the streams whose data it erases: a replay of any of them also replays its erasures.
    configs=kept_for(REPLAY_RETENTION_MS),
    description="Erasure of a person's data, which every service holding some must apply.",
)
CONFIGURATION = TopicSpec(
    name="configuration.v1",
    # One partition: the settings are few and rarely changed, and one partition lets a service
    # starting up know it has read everything when it reaches one end offset.
    partitions=1,
    key="setting",
    events=(ConfigurationChanged,),
    description="Settings changed by staff (closure days, open certifications, quotas, rule set, roster).",
    # Compacted: the latest change of each setting (its key) is kept for good, older ones go.
    configs=COMPACTED,
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    TRAINING_REQUESTS,
    TRAINING_ROUTING,
    TRAINING_ENROLMENTS,
    CERTIFICATION_EXAMS,
    NOTIFICATIONS,
    PRIVACY,
    CONFIGURATION,
)

_TOPIC_BY_EVENT: dict[type[Event], TopicSpec] = {}
for _topic in ALL_TOPICS:
    for _cls in _topic.events:
        if _cls in _TOPIC_BY_EVENT:
            raise TypeError(f"{_cls.__qualname__} is declared on two topics")
        _TOPIC_BY_EVENT[_cls] = _topic
del _topic, _cls


def topic_for(event_cls: type[Event]) -> TopicSpec:
    """The one topic events of `event_cls` are published on."""
    try:
        return _TOPIC_BY_EVENT[event_cls]
    except KeyError:
        raise LookupError(f"{event_cls.__qualname__} is not declared on any topic") from None


def key_for(event: Event) -> bytes:
    """The Kafka key of `event` on its topic (its request or person id, in UTF-8)."""
    return topic_for(type(event)).key_for(event)
