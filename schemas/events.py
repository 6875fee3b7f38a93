"""The events the services exchange: frozen, past-tense facts on top of the `Event` envelope.

Within a topic version a contract may only gain optional fields; anything else is a
new `.v2` topic (see `schemas.topics`). `EVENT_TYPES` is the registry the codec decodes with.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from types import MappingProxyType
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.envelope import Event, type_field
from schemas.values import (
    CampaignAttribution,
    Channel,
    Contact,
    ContactOutcome,
    Disposition,
    ExamRequestReason,
    Language,
    NonEmptyStr,
    NotificationChannel,
    ProgrammePlace,
    QualificationLevel,
    RequestKind,
    SealedPersonalData,
    Target,
)

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "CallbackDue",
    "CallbackSlaBreached",
    "CallbackSlotChosen",
    "CertificateIssued",
    "ConfigurationChanged",
    "ContactAttempted",
    "ContactDetailsConfirmed",
    "DigitalDivideAdmitted",
    "DigitalDivideMemberReleased",
    "DigitalDivideProgrammeResumed",
    "DigitalDivideProgrammeSuspended",
    "DigitalDivideQuotaChanged",
    "DigitalDivideSpaceAssigned",
    "DigitalSpaceChanged",
    "EnrolmentConfirmed",
    "EnrolmentWaitlisted",
    "ExamScheduled",
    "ExamSchedulingRequested",
    "ExamSeatOfferAccepted",
    "ExamSeatOfferDeclined",
    "ExamSeatOfferExpired",
    "ExamSeatOffered",
    "NotificationFailed",
    "NotificationSent",
    "PartnerInformationOverdue",
    "PartnerInformationReceived",
    "PartnerInformationRequested",
    "PersonDataErased",
    "ReleaseReason",
    "RequestDetailsCorrected",
    "RequestFactsRecorded",
    "SelfTrainingSlotBooked",
    "SelfTrainingSlotCancelled",
    "SelfTrainingSlotOpened",
    "SpaceOpeningHours",
    "TrainingAbandoned",
    "TrainingCompleted",
    "TrainingRequestClosed",
    "TrainingRequestReceived",
    "TrainingRequestRouted",
    "TrainingRequestWithdrawn",
]

RequestId = Annotated[
    NonEmptyStr,
    Field(
        description="Id of the training request (a UUID string), the thread of its events.",
        examples=["3f2b1c9e-7d4a-4e55-b1a2-0c9d8e7f6a54"],
    ),
]
PersonId = Annotated[
    NonEmptyStr,
    Field(
        # Opaque so that topics can be read and logged without exposing who it is;
        # erasing the person erases the mapping, not every message.
        description="Pseudonymous, opaque id of the person; never a national number or e-mail.",
        examples=["prs_7f3a9c2e41d8"],
    ),
]
CertificationCode = Annotated[
    NonEmptyStr,
    Field(description="Code of the certification in the catalogue.", examples=["MOS-EXCEL"]),
]
AssigneeId = Annotated[
    NonEmptyStr | None,
    Field(description="Id of the advisor or team member in charge, if any.", examples=["adv_042"]),
]

ChannelDetailValue = str | int | bool | None


# --- Intake -------------------------------------------------------------------------


class TrainingRequestReceived(Event):
    """A job seeker asked for (online) training by phone, e-mail or the web form."""

    type: Literal["be.bruxellesformation.training.request.received"] = type_field(
        "be.bruxellesformation.training.request.received"
    )

    request_id: RequestId
    person_id: PersonId
    channel: Channel = Field(description="Channel the request came in through.")
    received_at: AwareDatetime = Field(
        description="When the request reached us (the 48-hour callback runs from here).",
        examples=["2025-03-10T09:14:52+01:00"],
    )
    contact: Contact = Field(description="How to reach the person back.")
    language: Language = Field(description="Language the person wants to be served in.")
    need: str = Field(
        default="",
        description="The person's own words about what they want; may be empty.",
        examples=["Je voudrais apprendre à utiliser Excel pour trouver un emploi."],
    )
    requested_course: str | None = Field(
        default=None,
        description="Catalogue code of the course asked for, if one was named.",
        examples=["EXCEL"],
    )
    qualification_level: QualificationLevel | None = Field(default=None, description="Highest school qualification, if known.")
    has_computer: bool | None = Field(default=None, description="Whether the person has a computer at home, if known.")
    has_internet: bool | None = Field(default=None, description="Whether the person has internet access at home, if known.")
    unemployed_since: date | None = Field(
        default=None,
        description="Date since which the person is a job seeker, if known.",
        examples=["2024-11-01"],
    )
    fact_sources: dict[str, str] = Field(
        default_factory=dict,
        description="Where each of the facts above that is known came from, by field name: `web_form` (answered "
        "in the web form or the request API), `phone_ivr` (keyed in the phone menu), `email_text` (read in the "
        "words of the e-mail). A fact that is not known has no entry; readers tolerate values they do not know.",
        examples=[{"has_computer": "phone_ivr", "unemployed_since": "email_text"}],
    )
    campaign: CampaignAttribution | None = Field(default=None, description="Marketing attribution of a web request.")
    consent_to_contact: bool = Field(
        description="Whether the person agreed to be called or written back.",
    )
    linked_request_ids: list[NonEmptyStr] = Field(
        default_factory=list,
        description="Earlier requests of the same person, oldest first.",
        examples=[["9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"]],
    )
    needs_triage: bool = Field(
        default=False,
        description="Whether a person must look at the request before it can be routed.",
    )
    triage_reason: str | None = Field(
        default=None,
        description="Why the request needs triage.",
        examples=["voicemail without a callback number"],
    )
    kind: RequestKind = Field(
        default=RequestKind.TRAINING_REQUEST,
        description="`learner_question`: a learner already enrolled asks about their course (remote coaching by "
        "BF espaces numériques, with its own shorter promise); else a training request. Absent in older events.",
    )
    channel_details: dict[str, ChannelDetailValue] = Field(
        default_factory=dict,
        description="Channel-specific facts: call_sid, call_status, agent_notes, attachment names…",
        examples=[{"call_sid": "CA1234", "call_status": "completed", "attachments": 0}],
    )
    status_url: str | None = Field(
        default=None,
        description="The person's signed, expiring link to their request's status page (a bearer capability: "
        "sealed on Kafka, blank in clear); notification sends it in the acknowledgement. Absent in older events.",
    )
    sealed: SealedPersonalData | None = Field(
        default=None,
        description="The personal fields (contact, need, personal channel details), encrypted with the "
        "person's key; the clear fields are then blank.",
    )


# --- Routing and the 48-hour callback -----------------------------------------------


class TrainingRequestRouted(Event):
    """A request was handed to a team (and possibly a person) by the routing rules."""

    type: Literal["be.bruxellesformation.training.request.routed"] = type_field("be.bruxellesformation.training.request.routed")

    request_id: RequestId
    person_id: PersonId
    target: Target = Field(description="Team that takes the request over.")
    rule_id: NonEmptyStr = Field(description="Id of the routing rule that matched.", examples=["no-cess-no-computer"])
    rule_set_version: NonEmptyStr = Field(
        description="Version of the rule set that was applied, to replay decisions.",
        examples=["2025-03-01"],
    )
    explanation: str = Field(
        description="Human-readable reason for the decision, shown to the advisor.",
        examples=["No CESS and no computer at home: digital-divide programme."],
    )
    priority: int = Field(description="Priority score; higher is called back first.", examples=[70])
    priority_parts: dict[str, int] = Field(
        default_factory=dict,
        description="How the priority score adds up, part by part.",
        examples=[{"base": 50, "long_term_unemployed": 20}],
    )
    callback_deadline: AwareDatetime | None = Field(
        default=None,
        description="When the person must have been called back (48 hours, working time).",
        examples=["2025-03-12T09:14:52+01:00"],
    )
    assignee_id: AssigneeId = None
    programme: ProgrammePlace | None = Field(
        default=None,
        description=(
            "For a request routed to the digital-divide programme: admitted, or on its waitlist because it is full "
            "or suspended. A person on the waitlist stays in an advisor's queue meanwhile: the place is on top of "
            "the callback, never instead of it."
        ),
    )
    kind: RequestKind = Field(
        default=RequestKind.TRAINING_REQUEST,
        description="The request's kind, copied from `TrainingRequestReceived.kind`: a learner question is "
        "answered under its own promise (`callback_deadline`) and acknowledged as such.",
    )


class CallbackDue(Event):
    """A routed request's callback deadline is near and nobody has reached the person yet."""

    type: Literal["be.bruxellesformation.training.callback.due"] = type_field("be.bruxellesformation.training.callback.due")

    request_id: RequestId
    person_id: PersonId
    assignee_id: AssigneeId = None
    deadline: AwareDatetime = Field(
        description="When the callback must have happened.",
        examples=["2025-03-12T09:14:52+01:00"],
    )


class CallbackSlaBreached(Event):
    """The 48-hour callback deadline passed without the person being reached."""

    type: Literal["be.bruxellesformation.training.callback.sla_breached"] = type_field(
        "be.bruxellesformation.training.callback.sla_breached"
    )

    request_id: RequestId
    person_id: PersonId
    assignee_id: AssigneeId = None
    deadline: AwareDatetime = Field(description="The deadline that was missed.", examples=["2025-03-12T09:14:52+01:00"])
    escalated_to: str | None = Field(
        default=None,
        description="Id of the supervisor (from the roster) or team the request was escalated to, if any.",
        examples=["adv-sup"],
    )


class ContactAttempted(Event):
    """Someone tried to reach the person about a request, with the given outcome."""

    type: Literal["be.bruxellesformation.training.contact.attempted"] = type_field(
        "be.bruxellesformation.training.contact.attempted"
    )

    request_id: RequestId
    person_id: PersonId
    worker_id: NonEmptyStr = Field(description="Id of the advisor or team member who made the attempt.", examples=["adv_042"])
    outcome: ContactOutcome = Field(description="What came of the attempt.")
    attempt: int = Field(ge=1, description="Number of this attempt, from 1.", examples=[1])
    next_attempt_at: AwareDatetime | None = Field(
        default=None,
        description="When to try again, if the person was not reached.",
        examples=["2025-03-11T14:00:00+01:00"],
    )
    notes: str | None = Field(default=None, description="Free-text notes of the worker; may hold personal data.")
    sealed: SealedPersonalData | None = Field(
        default=None, description="The notes, encrypted with the person's key; `notes` is then blank."
    )
    # Facts the person told the worker on the call (optional, added within v1): None means not asked or not learned.
    qualification_level: QualificationLevel | None = Field(
        default=None, description="Highest school qualification, when learned on the call."
    )
    has_computer: bool | None = Field(
        default=None, description="Whether the person has a computer at home, when learned on the call."
    )
    has_internet: bool | None = Field(
        default=None, description="Whether the person has internet at home, when learned on the call."
    )
    unemployed_since: date | None = Field(
        default=None,
        description="Date since which the person is a job seeker, when learned on the call.",
        examples=["2024-11-01"],
    )


class RequestFactsRecorded(Event):
    """A worker recorded or corrected facts about the person's situation; the request is scored again.

    Facts given with the request (web form, phone menu, e-mail text) come with
    `TrainingRequestReceived`; this event carries what the desk learned later, and the score and
    parts that follow from all the facts known now. A fact left None was not changed.
    """

    type: Literal["be.bruxellesformation.training.request.facts_recorded"] = type_field(
        "be.bruxellesformation.training.request.facts_recorded"
    )

    request_id: RequestId
    person_id: PersonId
    recorded_by: NonEmptyStr = Field(description="Id of the worker who recorded the facts.", examples=["adv-1"])
    qualification_level: QualificationLevel | None = Field(default=None, description="Highest school qualification.")
    has_computer: bool | None = Field(default=None, description="Whether the person has a computer at home.")
    has_internet: bool | None = Field(default=None, description="Whether the person has internet at home.")
    unemployed_since: date | None = Field(
        default=None, description="Date since which the person is a job seeker.", examples=["2024-11-01"]
    )
    fact_sources: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Where each fact known now came from, by fact name: `web_form`, `phone_ivr`, `email_text` or `desk` "
            "(the desk's override the others); readers tolerate values they do not know."
        ),
        examples=[{"qualification_level": "desk", "has_computer": "phone_ivr"}],
    )
    priority: int = Field(description="The request's priority score with the facts known now.", examples=[60])
    priority_parts: dict[str, int] = Field(
        default_factory=dict, description="How the new score adds up.", examples=[{"qualification": 40, "phone": 5}]
    )


# --- Questions to a referring partner ------------------------------------------------

PartnerId = Annotated[
    NonEmptyStr,
    Field(description="Id of the partner that handed the request over.", examples=["cite-des-metiers"]),
]


class PartnerInformationRequested(Event):
    """The worker holding a handed-over request asked the referring partner for more information.

    The request waits for the partner: its callback clock stops until the answer
    (`PartnerInformationReceived`), and the desk is reminded if none comes
    (`PartnerInformationOverdue`).
    """

    type: Literal["be.bruxellesformation.training.partner.information_requested"] = type_field(
        "be.bruxellesformation.training.partner.information_requested"
    )

    request_id: RequestId
    person_id: PersonId
    partner: PartnerId
    worker_id: NonEmptyStr = Field(description="Id of the worker who asked.", examples=["en-fr-1"])
    asked_at: AwareDatetime = Field(description="When the question was asked.", examples=["2025-03-14T16:00:00+01:00"])
    remind_at: AwareDatetime = Field(
        description="When the desk is reminded if the partner has not answered.", examples=["2025-03-17T16:00:00+01:00"]
    )
    callback_deadline: AwareDatetime | None = Field(
        default=None,
        description="The callback deadline that stopped running (None: no promise, or already missed).",
        examples=["2025-03-18T16:00:00+01:00"],
    )
    question: str | None = Field(default=None, description="The question as asked; may hold personal data.")
    sealed: SealedPersonalData | None = Field(
        default=None, description="The question, encrypted with the person's key; `question` is then blank."
    )


class PartnerInformationOverdue(Event):
    """The referring partner has not answered the desk's question within the policy's delay (sent once per question)."""

    type: Literal["be.bruxellesformation.training.partner.information_overdue"] = type_field(
        "be.bruxellesformation.training.partner.information_overdue"
    )

    request_id: RequestId
    person_id: PersonId
    partner: PartnerId
    assignee_id: AssigneeId = None
    asked_at: AwareDatetime = Field(description="When the unanswered question was asked.", examples=["2025-03-14T16:00:00+01:00"])


class PartnerInformationReceived(Event):
    """The referring partner answered the desk's question; the callback clock runs again."""

    type: Literal["be.bruxellesformation.training.partner.information_received"] = type_field(
        "be.bruxellesformation.training.partner.information_received"
    )

    request_id: RequestId
    person_id: PersonId
    partner: PartnerId
    recorded_by: NonEmptyStr = Field(description="Id of the worker who recorded the answer.", examples=["en-fr-1"])
    asked_at: AwareDatetime = Field(description="When the question was asked.", examples=["2025-03-14T16:00:00+01:00"])
    answered_at: AwareDatetime = Field(description="When the answer was recorded.", examples=["2025-03-17T10:00:00+01:00"])
    callback_deadline: AwareDatetime | None = Field(
        default=None,
        description="The callback deadline, moved later by the working time the wait lasted (None: no running promise).",
        examples=["2025-03-19T10:00:00+01:00"],
    )
    answer: str | None = Field(default=None, description="The partner's answer; may hold personal data.")
    sealed: SealedPersonalData | None = Field(
        default=None, description="The answer, encrypted with the person's key; `answer` is then blank."
    )


class TrainingRequestClosed(Event):
    """The desk's attempts to reach the person about a request ended, with a disposition.

    Published once per request (a redirection to another team is not an end). Closed as
    `unreachable` when the last attempt the policy allows (`desk.max_attempts`) went unanswered.
    """

    type: Literal["be.bruxellesformation.training.request.closed"] = type_field("be.bruxellesformation.training.request.closed")

    request_id: RequestId
    person_id: PersonId
    disposition: Disposition = Field(description="How the attempts ended.", examples=["unreachable"])
    attempts: int = Field(ge=0, description="Calls made about the request, the last one included.", examples=[3])
    worker_id: NonEmptyStr | None = Field(
        default=None,
        description="Who recorded the call that closed it; none when routing closed it by itself.",
        examples=["adv_042"],
    )


# --- What the person does from their status page (or the phone menu) ---------------------

PersonAction = Literal["status_page", "phone_ivr"]


class CallbackSlotChosen(Event):
    """The person chose when to be called back: a window within the opening hours.

    Routing schedules the call for the window. A window ending after the promise
    (`TrainingRequestRouted.callback_deadline`) is allowed: it is the person's choice, recorded
    and reported apart from breaches. A later choice replaces an earlier one."""

    type: Literal["be.bruxellesformation.training.callback.slot_chosen"] = type_field(
        "be.bruxellesformation.training.callback.slot_chosen"
    )

    request_id: RequestId
    person_id: PersonId
    slot_start: AwareDatetime = Field(description="Start of the chosen window.", examples=["2025-03-11T09:00:00+01:00"])
    slot_end: AwareDatetime = Field(description="End of the chosen window.", examples=["2025-03-11T12:00:00+01:00"])
    chosen_through: PersonAction = Field(description="Where the person chose it.", examples=["status_page"])


class TrainingRequestWithdrawn(Event):
    """The person withdrew their request: nobody is to call them about it any more.

    Routing takes it out of every queue and closes it (`TrainingRequestClosed`, `withdrawn`)."""

    type: Literal["be.bruxellesformation.training.request.withdrawn"] = type_field(
        "be.bruxellesformation.training.request.withdrawn"
    )

    request_id: RequestId
    person_id: PersonId
    withdrawn_through: PersonAction = Field(description="Where the person withdrew it.", examples=["status_page"])


class RequestDetailsCorrected(Event):
    """The person corrected what they asked for or how to reach them.

    New contact details are not trusted until staff confirm them (the verified-contact flow):
    they travel sealed, marked unverified, and messages keep going to the details already known.
    A field left None was not changed."""

    type: Literal["be.bruxellesformation.training.request.details_corrected"] = type_field(
        "be.bruxellesformation.training.request.details_corrected"
    )

    request_id: RequestId
    person_id: PersonId
    corrected_through: PersonAction = Field(description="Where the person corrected it.", examples=["status_page"])
    need: str | None = Field(default=None, description="The person's new words about what they want; personal data.")
    requested_course: str | None = Field(
        default=None, description="Catalogue code of the course now asked for.", examples=["EXCEL"]
    )
    contact: Contact | None = Field(
        default=None, description="New contact details, unverified until staff confirm them; personal data."
    )
    sealed: SealedPersonalData | None = Field(
        default=None, description="`need` and `contact`, encrypted with the person's key; they are then blank."
    )


class ContactDetailsConfirmed(Event):
    """An advisor checked with the person the contact details they gave on their status page
    (`RequestDetailsCorrected`, unverified until now): messages go to them from now on.

    Staff confirm, never the link alone: whoever holds a status link could otherwise send the
    person's messages - exam details, credential links - to an address of their choosing."""

    type: Literal["be.bruxellesformation.training.contact.confirmed"] = type_field(
        "be.bruxellesformation.training.contact.confirmed"
    )

    request_id: RequestId
    person_id: PersonId
    confirmed_by: NonEmptyStr = Field(description="Id of the worker who checked them with the person.", examples=["adv-1"])
    contact: Contact | None = Field(default=None, description="The confirmed contact details; personal data.")
    sealed: SealedPersonalData | None = Field(
        default=None, description="`contact`, encrypted with the person's key; it is then blank."
    )


# --- Enrolment ----------------------------------------------------------------------


class EnrolmentConfirmed(Event):
    """The person is enrolled in a course."""

    type: Literal["be.bruxellesformation.training.enrolment.confirmed"] = type_field(
        "be.bruxellesformation.training.enrolment.confirmed"
    )

    request_id: RequestId
    person_id: PersonId
    course_code: NonEmptyStr = Field(description="Catalogue code of the course.", examples=["EXCEL"])
    course_title: str = Field(
        description="Title of the course in the person's language.",
        examples=["Excel : les bases"],
    )
    starts_on: date | None = Field(
        default=None,
        description="First day of the course; none for self-paced online courses.",
        examples=["2025-04-01"],
    )
    language: Language = Field(description="Language the course is given in.")
    login_instructions: str | None = Field(
        default=None,
        description="How to log in to an online course, sent to the person as is.",
    )
    session_id: str | None = Field(
        default=None,
        description="The course session (cohort) the person has a place in; none for enrolments made before sessions.",
        examples=["EXCEL-2025-04-FR"],
    )


SessionId = Annotated[
    NonEmptyStr,
    Field(description="Id of the course session (cohort).", examples=["EXCEL-2025-04-FR"]),
]
AbandonReason = Literal["no_show", "found_work", "personal", "level_mismatch", "other"]
"""Why a person left a course before its end: a closed list, so that no free text (which may name the
person) travels with the event, and so that reports can count them."""


class EnrolmentWaitlisted(Event):
    """The person asked for a course whose sessions have no place left: they wait for one, and are
    enrolled (`EnrolmentConfirmed`) when a place frees or a session opens."""

    type: Literal["be.bruxellesformation.training.enrolment.waitlisted"] = type_field(
        "be.bruxellesformation.training.enrolment.waitlisted"
    )

    request_id: RequestId
    person_id: PersonId
    course_code: NonEmptyStr = Field(description="Catalogue code of the course.", examples=["EXCEL"])
    course_title: str = Field(description="Title of the course in the person's language.", examples=["Excel (tableur)"])
    language: Language = Field(description="Language of the session waited for.")
    session_id: str | None = Field(
        default=None,
        description="The full session the person waits for; none: the next session of the course in their language.",
        examples=["EXCEL-2025-04-FR"],
    )


class TrainingCompleted(Event):
    """The person finished their course session; the place is free again."""

    type: Literal["be.bruxellesformation.training.course.completed"] = type_field(
        "be.bruxellesformation.training.course.completed"
    )

    request_id: RequestId
    person_id: PersonId
    course_code: NonEmptyStr = Field(description="Catalogue code of the course.", examples=["EXCEL"])
    session_id: SessionId
    at: AwareDatetime = Field(description="When the course was completed.", examples=["2025-05-28T16:00:00+02:00"])


class TrainingAbandoned(Event):
    """The person left their course session before its end; the place is free again."""

    type: Literal["be.bruxellesformation.training.course.abandoned"] = type_field(
        "be.bruxellesformation.training.course.abandoned"
    )

    request_id: RequestId
    person_id: PersonId
    course_code: NonEmptyStr = Field(description="Catalogue code of the course.", examples=["EXCEL"])
    session_id: SessionId
    at: AwareDatetime = Field(description="When the person left.", examples=["2025-04-20T09:00:00+02:00"])
    reason: AbandonReason = Field(description="Why the person left, from a closed list.", examples=["found_work"])


class ExamSchedulingRequested(Event):
    """Someone asked for the person to sit a certification exam."""

    type: Literal["be.bruxellesformation.training.exam_scheduling.requested"] = type_field(
        "be.bruxellesformation.training.exam_scheduling.requested"
    )

    request_id: RequestId | None = Field(default=None, description="The training request it comes from, if any.")
    person_id: PersonId
    certification_code: CertificationCode
    reason: ExamRequestReason = Field(description="Why the exam is asked for.")


# --- Certification ------------------------------------------------------------------


class ExamScheduled(Event):
    """The person has a seat in an exam session."""

    type: Literal["be.bruxellesformation.certification.exam.scheduled"] = type_field(
        "be.bruxellesformation.certification.exam.scheduled"
    )

    person_id: PersonId
    certification_code: CertificationCode
    session_id: NonEmptyStr = Field(description="Id of the exam session.", examples=["ses_2025_04_03_am"])
    centre_id: NonEmptyStr = Field(description="Id of the exam centre.", examples=["ctr_anderlecht"])
    centre_name: str = Field(
        description="Name of the exam centre, as shown to the person.",
        examples=["Bruxelles Formation Bureautique – Anderlecht"],
    )
    exam_at: AwareDatetime = Field(description="When the exam starts.", examples=["2025-04-03T09:00:00+02:00"])
    what_to_bring: list[str] = Field(
        default_factory=list,
        description="What the person must bring, one item per line of the convocation.",
        examples=[["Carte d'identité", "Convocation imprimée ou sur smartphone"]],
    )


# --- Seat offers: a seat held for a candidate until they answer ---------------------------

OfferId = Annotated[
    NonEmptyStr,
    Field(description="Id of the seat offer.", examples=["5b0c8e2f4a7d4c1e9f3a2b6c7d8e9f01"]),
]


class ExamSeatOffered(Event):
    """A seat of an exam session is held for the person until `respond_by`: they accept or decline it.

    The answer links are bearer capabilities (whoever holds one answers for the candidate): they are
    never in clear on the topic but sealed with the person's key (`sealed`), for notification to
    open and send. Published in the transaction that stores the offer."""

    type: Literal["be.bruxellesformation.certification.exam_seat.offered"] = type_field(
        "be.bruxellesformation.certification.exam_seat.offered"
    )

    person_id: PersonId
    offer_id: OfferId
    certification_code: CertificationCode
    session_id: NonEmptyStr = Field(description="Id of the exam session.", examples=["ses_2025_04_03_am"])
    centre_id: NonEmptyStr = Field(description="Id of the exam centre.", examples=["ctr_anderlecht"])
    centre_name: str = Field(
        description="Name of the exam centre, as shown to the person.",
        examples=["Bruxelles Formation Bureautique – Anderlecht"],
    )
    exam_at: AwareDatetime = Field(description="When the exam starts.", examples=["2025-04-03T09:00:00+02:00"])
    respond_by: AwareDatetime = Field(
        description="The seat is held until then; never later than the configured margin before the exam.",
        examples=["2025-04-01T09:00:00+02:00"],
    )
    accept_url: str | None = Field(
        default=None, description="The signed, single-use link that accepts the seat; blank when sealed (always on Kafka)."
    )
    decline_url: str | None = Field(
        default=None, description="The signed, single-use link that declines the seat; blank when sealed (always on Kafka)."
    )
    sealed: SealedPersonalData | None = Field(
        default=None, description="The two links, encrypted with the person's key; `accept_url` and `decline_url` are then blank."
    )


class _SeatOfferClosed(Event):
    # Shared fields of the three ends of an offer. Not registered: no fixed type.

    person_id: PersonId
    offer_id: OfferId
    certification_code: CertificationCode
    session_id: NonEmptyStr = Field(description="Id of the exam session.", examples=["ses_2025_04_03_am"])
    closed_at: AwareDatetime = Field(description="When the offer was answered or lapsed.", examples=["2025-03-31T18:12:00+02:00"])


class ExamSeatOfferAccepted(_SeatOfferClosed):
    """The person took the offered seat (an `ExamScheduled` follows in the same transaction)."""

    type: Literal["be.bruxellesformation.certification.exam_seat.offer_accepted"] = type_field(
        "be.bruxellesformation.certification.exam_seat.offer_accepted"
    )


class ExamSeatOfferDeclined(_SeatOfferClosed):
    """The person turned the offered seat down; it is offered to the next candidate, and they keep their place."""

    type: Literal["be.bruxellesformation.certification.exam_seat.offer_declined"] = type_field(
        "be.bruxellesformation.certification.exam_seat.offer_declined"
    )


class ExamSeatOfferExpired(_SeatOfferClosed):
    """Nobody answered the offer by its deadline; the seat is offered to the next candidate."""

    type: Literal["be.bruxellesformation.certification.exam_seat.offer_expired"] = type_field(
        "be.bruxellesformation.certification.exam_seat.offer_expired"
    )


class CertificateIssued(Event):
    """The person passed and holds the certificate."""

    type: Literal["be.bruxellesformation.certification.certificate.issued"] = type_field(
        "be.bruxellesformation.certification.certificate.issued"
    )

    person_id: PersonId
    certification_code: CertificationCode
    credential_id: NonEmptyStr = Field(description="Id of the credential at the issuing body.", examples=["ICDL-BE-0012345"])
    issued_at: AwareDatetime = Field(description="When the certificate was issued.", examples=["2025-04-10T16:00:00+02:00"])
    credential_url: str | None = Field(
        default=None,
        description="Where the person or an employer can verify the credential.",
        examples=["https://credentials.example.org/ICDL-BE-0012345"],
    )


# --- Notifications ------------------------------------------------------------------


class _NotificationOutcome(Event):
    # A shared base rather than `NotificationFailed(NotificationSent)`, so that a failed
    # notification is never `isinstance` of a sent one. Not registered: no fixed type.

    person_id: PersonId
    about_event_id: UUID = Field(
        description="Id of the event the notification was about; the deduplication key.",
        examples=["0b0e6a8c-5a43-4c1e-9d0f-8f3f2a6b7c11"],
    )
    channel: NotificationChannel = Field(description="Medium of the notification.")
    template: NonEmptyStr = Field(description="Id of the message template.", examples=["enrolment_confirmed.fr"])
    attempts: int = Field(ge=1, description="Number of sending attempts so far.", examples=[1])


class NotificationSent(_NotificationOutcome):
    """A notification reached the mail or SMS provider."""

    type: Literal["be.bruxellesformation.notification.sent"] = type_field("be.bruxellesformation.notification.sent")


class NotificationFailed(_NotificationOutcome):
    """Sending a notification failed, for now or for good."""

    type: Literal["be.bruxellesformation.notification.failed"] = type_field("be.bruxellesformation.notification.failed")

    reason: str = Field(
        description="Why it failed, as reported by the provider.",
        examples=["SMTP 550 mailbox unavailable"],
    )
    final: bool = Field(description="Whether no further attempt will be made.")


# --- Privacy ------------------------------------------------------------------------


class PersonDataErased(Event):
    """A person's personal data was erased (GDPR right to erasure); consumers erase theirs."""

    type: Literal["be.bruxellesformation.privacy.person_data.erased"] = type_field(
        "be.bruxellesformation.privacy.person_data.erased"
    )

    person_id: PersonId
    erased_at: AwareDatetime = Field(description="When the erasure took effect.", examples=["2025-05-02T11:30:00+02:00"])
    requested_by: NonEmptyStr = Field(
        description=(
            "Who asked for the erasure: the authenticated subject of the DPO's token (the realm username), "
            "or a process (an automatic retention job)."
        ),
        examples=["data_subject"],
    )


# --- Configuration run by staff ----------------------------------------------------------

ConfigurationSetting = Literal["closures", "certifications", "quotas", "rule_set", "roster"]
"""What staff configure: each setting is replaced as a whole and versioned on its own."""


class ConfigurationChanged(Event):
    """A member of staff changed one setting (closure days, open certifications, quotas, the active
    rule set, the roster); every replica of every service that uses it applies `value` as it comes.

    Keyed by `setting` on a compacted topic, so the latest value of each setting is kept for good and
    a service starting up reads the whole configuration back from the topic."""

    type: Literal["be.bruxellesformation.configuration.changed"] = type_field("be.bruxellesformation.configuration.changed")

    setting: ConfigurationSetting = Field(description="Which setting changed.", examples=["closures"])
    value: dict[str, Any] = Field(
        description=(
            "The setting's new value as a whole (JSON). Never personal data of job seekers; the roster carries "
            "staff profiles without e-mail or phone."
        ),
        examples=[{"days": [{"date": "2026-12-24", "name": "Christmas Eve"}]}],
    )
    version: int = Field(ge=1, description="This setting's version: 1 for its first change, one more each time.", examples=[3])
    changed_by: NonEmptyStr = Field(
        description="The staff member who changed it: the subject of their token at the identity provider.",
        examples=["sup-1"],
    )
    changed_at: AwareDatetime = Field(description="When the change was made.", examples=["2026-11-20T10:02:00+01:00"])
    reason: str | None = Field(default=None, max_length=500, description="Why, in the staff member's words.")


# --- The digital-divide programme ------------------------------------------------------

ReleaseReason = Literal["completed", "abandoned", "moved"]
"""Why a member leaves the digital-divide programme: finished it, gave up, or moved away."""

ProgrammeName = Literal["digital_divide"]


class DigitalDivideAdmitted(Event):
    """A request waiting for the digital-divide programme was given a place (a place freed, the quota
    rose, the programme resumed, or a new year began with the waitlist carried over)."""

    type: Literal["be.bruxellesformation.training.programme.admitted"] = type_field(
        "be.bruxellesformation.training.programme.admitted"
    )

    request_id: RequestId
    person_id: PersonId
    year: int = Field(ge=2000, le=2100, description="The programme year whose quota the place counts in.", examples=[2026])
    priority: int = Field(description="The priority the request waited with.", examples=[55])
    waiting_since: AwareDatetime = Field(description="When it joined the waitlist.", examples=["2026-12-18T10:00:00+01:00"])


class DigitalDivideMemberReleased(Event):
    """A member left the digital-divide programme; their place is free for the next on the waitlist."""

    type: Literal["be.bruxellesformation.training.programme.member_released"] = type_field(
        "be.bruxellesformation.training.programme.member_released"
    )

    request_id: RequestId
    person_id: PersonId
    year: int = Field(ge=2000, le=2100, description="The programme year the place was counted in.", examples=[2026])
    reason: ReleaseReason = Field(description="Why the member left.", examples=["completed"])
    released_by: NonEmptyStr = Field(description="The supervisor who recorded it (token subject).", examples=["sup-1"])


class DigitalDivideProgrammeSuspended(Event):
    """The programme stopped admitting (as during the 2020 lockdown); new requests wait. Programme-wide:
    the suspension holds across the turn of the year until resumed."""

    type: Literal["be.bruxellesformation.training.programme.suspended"] = type_field(
        "be.bruxellesformation.training.programme.suspended"
    )

    programme: ProgrammeName = Field(default="digital_divide", description="Which programme; the Kafka key.")
    changed_by: NonEmptyStr = Field(description="The supervisor (token subject).", examples=["sup-1"])


class DigitalDivideProgrammeResumed(Event):
    """The programme admits again; the waitlist is admitted in priority order up to the quota."""

    type: Literal["be.bruxellesformation.training.programme.resumed"] = type_field(
        "be.bruxellesformation.training.programme.resumed"
    )

    programme: ProgrammeName = Field(default="digital_divide", description="Which programme; the Kafka key.")
    changed_by: NonEmptyStr = Field(description="The supervisor (token subject).", examples=["sup-1"])


class DigitalDivideQuotaChanged(Event):
    """A year's quota of the programme changed (never below the people admitted that year)."""

    type: Literal["be.bruxellesformation.training.programme.quota_changed"] = type_field(
        "be.bruxellesformation.training.programme.quota_changed"
    )

    programme: ProgrammeName = Field(default="digital_divide", description="Which programme; the Kafka key.")
    year: int = Field(ge=2000, le=2100, description="The programme year.", examples=[2026])
    previous_quota: int = Field(ge=0, description="The quota before.", examples=[350])
    quota: int = Field(ge=0, description="The quota now.", examples=[380])
    changed_by: NonEmptyStr = Field(description="Who changed it: a supervisor, or `configuration`.", examples=["sup-1"])


# --- The programme's places: the EPN spaces, self-training slots, members' spaces ------------

SpaceChange = Literal["added", "changed", "removed"]


class SpaceOpeningHours(BaseModel):
    """When a space is open on one weekday (local time in Brussels)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekday: int = Field(ge=0, le=6, description="0 is Monday.", examples=[0])
    opens: time = Field(description="Opening time, Brussels.", examples=["09:00:00"])
    closes: time = Field(description="Closing time, Brussels.", examples=["17:00:00"])


class DigitalSpaceChanged(Event):
    """A supervisor added, changed or removed a place of the programme: a public digital space (EPN) of a
    partner, or the self-training room. Carries the space as it now is (as it was, when removed)."""

    type: Literal["be.bruxellesformation.training.programme.space_changed"] = type_field(
        "be.bruxellesformation.training.programme.space_changed"
    )

    programme: ProgrammeName = Field(default="digital_divide", description="Which programme; the Kafka key.")
    space_id: NonEmptyStr = Field(description="Id of the space.", examples=["epn-ixelles"])
    change: SpaceChange = Field(description="added, changed or removed.", examples=["added"])
    kind: Literal["epn", "self_training"] = Field(description="An EPN partner or the self-training room.", examples=["epn"])
    name: NonEmptyStr = Field(description="The space's name (a place, not a person).", examples=["EPN d'Ixelles"])
    capacity: int = Field(ge=1, description="Workstations: people at once.", examples=[12])
    opening_hours: tuple[SpaceOpeningHours, ...] = Field(default=(), description="When it is open, per weekday.")
    changed_by: NonEmptyStr = Field(description="The supervisor (token subject).", examples=["sup-1"])


class SelfTrainingSlotOpened(Event):
    """A supervisor opened a slot in a space that members of the programme may book."""

    type: Literal["be.bruxellesformation.training.self_training.slot_opened"] = type_field(
        "be.bruxellesformation.training.self_training.slot_opened"
    )

    programme: ProgrammeName = Field(default="digital_divide", description="Which programme; the Kafka key.")
    slot_id: NonEmptyStr = Field(description="Id of the slot.", examples=["epn-ixelles:2026-03-02:0900"])
    space_id: NonEmptyStr = Field(description="Id of the space.", examples=["epn-ixelles"])
    starts_at: AwareDatetime = Field(description="When the slot starts.", examples=["2026-03-02T09:00:00+01:00"])
    ends_at: AwareDatetime = Field(description="When the slot ends.", examples=["2026-03-02T11:00:00+01:00"])
    capacity: int = Field(ge=1, description="Seats in the slot.", examples=[4])
    opened_by: NonEmptyStr = Field(description="The supervisor (token subject).", examples=["sup-1"])


class DigitalDivideSpaceAssigned(Event):
    """A member of the programme was assigned to a space for the year (or unassigned: `space_id` null)."""

    type: Literal["be.bruxellesformation.training.programme.space_assigned"] = type_field(
        "be.bruxellesformation.training.programme.space_assigned"
    )

    request_id: RequestId
    person_id: PersonId
    year: int = Field(ge=2000, le=2100, description="The programme year of the place.", examples=[2026])
    space_id: str | None = Field(description="The space now; null when unassigned.", examples=["epn-ixelles"])
    previous_space_id: str | None = Field(default=None, description="The space before, if any.", examples=[None])
    assigned_by: NonEmptyStr = Field(description="The supervisor (token subject).", examples=["sup-1"])


class SelfTrainingSlotBooked(Event):
    """A programme member was booked a slot in a self-training space (a computer and the software, for
    people without either at home)."""

    type: Literal["be.bruxellesformation.training.self_training.slot_booked"] = type_field(
        "be.bruxellesformation.training.self_training.slot_booked"
    )

    person_id: PersonId
    slot_id: NonEmptyStr = Field(description="Id of the slot.", examples=["slot-epn-ixelles-2026-03-02-0900"])
    space_id: NonEmptyStr = Field(description="Id of the space (an EPN or the self-training room).", examples=["epn-ixelles"])
    starts_at: AwareDatetime = Field(description="When the slot starts.", examples=["2026-03-02T09:00:00+01:00"])
    ends_at: AwareDatetime = Field(description="When the slot ends.", examples=["2026-03-02T11:00:00+01:00"])
    booked_by: NonEmptyStr = Field(description="The desk worker who booked it (token subject).", examples=["adv-1"])


class SelfTrainingSlotCancelled(Event):
    """A booking of a self-training slot was cancelled; its seat is free again."""

    type: Literal["be.bruxellesformation.training.self_training.slot_cancelled"] = type_field(
        "be.bruxellesformation.training.self_training.slot_cancelled"
    )

    person_id: PersonId
    slot_id: NonEmptyStr = Field(description="Id of the slot.", examples=["slot-epn-ixelles-2026-03-02-0900"])
    space_id: NonEmptyStr = Field(description="Id of the space.", examples=["epn-ixelles"])
    starts_at: AwareDatetime = Field(description="When the slot starts.", examples=["2026-03-02T09:00:00+01:00"])
    cancelled_by: NonEmptyStr = Field(description="The desk worker who cancelled it (token subject).", examples=["adv-1"])


EVENT_CLASSES: tuple[type[Event], ...] = (
    TrainingRequestReceived,
    TrainingRequestRouted,
    CallbackDue,
    CallbackSlaBreached,
    ContactAttempted,
    RequestFactsRecorded,
    PartnerInformationRequested,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    TrainingRequestClosed,
    CallbackSlotChosen,
    TrainingRequestWithdrawn,
    RequestDetailsCorrected,
    ContactDetailsConfirmed,
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
    NotificationSent,
    NotificationFailed,
    PersonDataErased,
    ConfigurationChanged,
    DigitalDivideAdmitted,
    DigitalDivideMemberReleased,
    DigitalDivideProgrammeSuspended,
    DigitalDivideProgrammeResumed,
    DigitalDivideQuotaChanged,
    SelfTrainingSlotBooked,
    SelfTrainingSlotCancelled,
    DigitalSpaceChanged,
    SelfTrainingSlotOpened,
    DigitalDivideSpaceAssigned,
)
"""Every event class the services exchange, in the order of a request's life."""


def _registry(classes: tuple[type[Event], ...]) -> Mapping[str, type[Event]]:
    registry: dict[str, type[Event]] = {}
    for cls in classes:
        event_type = cls.event_type()
        if event_type in registry:
            raise TypeError(f"{cls.__qualname__} and {registry[event_type].__qualname__} share the type {event_type!r}")
        registry[event_type] = cls
    return MappingProxyType(registry)


EVENT_TYPES: Mapping[str, type[Event]] = _registry(EVENT_CLASSES)
"""Event class by CloudEvents `type`; what `schemas.codec.decode` looks types up in."""
