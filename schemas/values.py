"""Enumerations and small value objects shared by several event contracts.

Enum members are lowercase strings because they travel as-is in JSON; renaming a
member's value is a breaking change (a new `.v2` topic), renaming the Python name is not.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "E164_PATTERN",
    "EMAIL_PATTERN",
    "CampaignAttribution",
    "Channel",
    "Contact",
    "ContactOutcome",
    "Disposition",
    "ExamRequestReason",
    "FactSource",
    "KnownChannel",
    "Language",
    "NonEmptyStr",
    "NotificationChannel",
    "ProgrammePlace",
    "QualificationLevel",
    "RequestKind",
    "Target",
]

# Loose on purpose: intake normalises numbers with `phonenumbers` before publishing;
# the contract only guards against something that is clearly not an E.164 number.
# [0-9], not \d: \d also matches Arabic-Indic and other Unicode digits.
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
# `EmailStr` would need the `email-validator` package; deliverability is checked by
# sending mail, not by the schema, so "something@domain.tld" is enough here.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
"""A string that is not empty once surrounding whitespace is removed (used for ids)."""


_OPEN_VALUE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class Channel(StrEnum):
    """How the job seeker reached Bruxelles Formation.

    Readers are tolerant: a well-formed value they do not know yet (say `whatsapp`) is read
    as is, routed like any other request and labelled with its raw value, never rejected.
    """

    # A channel added by intake before its readers know it must not send requests to the
    # dead letters: `_missing_` makes it a pseudo-member of that value (as `enum.Flag` does),
    # which round-trips unchanged. Code that names channels (`is Channel.PHONE`, a rule's
    # list) treats it as none of them; `known` tells it apart. Configuration stays strict
    # with `KnownChannel`, where an unknown value is a typo rather than news.

    PHONE = "phone"
    EMAIL = "email"
    WEB = "web"

    @classmethod
    def _missing_(cls, value: object) -> Channel | None:
        # Called by `Channel(value)` and by pydantic alike when no member has the value; the
        # pseudo-member is not listed by `Channel` nor reachable as an attribute.
        if not (isinstance(value, str) and _OPEN_VALUE.match(value)):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member

    @property
    def known(self) -> bool:
        """Whether this code knows the channel (it is one of the members)."""
        return any(self is member for member in type(self))


def _known_channel(channel: Channel) -> Channel:
    if not channel.known:
        raise ValueError(f"unknown channel {channel.value!r}; expected one of {', '.join(c.value for c in Channel)}")
    return channel


KnownChannel = Annotated[Channel, AfterValidator(_known_channel)]
"""A channel this code knows: for configuration, where an unknown value is a typo, not news."""


class Language(StrEnum):
    """Language the person wants to be served in."""

    FR = "fr"
    NL = "nl"
    EN = "en"


class QualificationLevel(StrEnum):
    """Highest school qualification obtained (Belgian French-speaking system)."""

    NONE = "none"
    PRIMARY = "primary"
    LOWER_SECONDARY = "lower_secondary"
    UPPER_SECONDARY = "upper_secondary"
    """CESS: certificat d'enseignement secondaire supérieur."""
    HIGHER = "higher"

    @property
    def has_secondary_certificate(self) -> bool:
        """Whether the person holds the CESS (or more); routing treats the others alike."""
        return self in (QualificationLevel.UPPER_SECONDARY, QualificationLevel.HIGHER)


class RequestKind(StrEnum):
    """What a person writes or calls about: a training to find, or a question on a course they follow."""

    TRAINING_REQUEST = "training_request"
    """Someone looking for a training (advice, orientation, enrolment): the 48-hour callback."""
    LEARNER_QUESTION = "learner_question"
    """A learner already enrolled in an (online) course asks a question: BF espaces numériques
    coaches them remotely, with its own shorter promise (`sla.kinds` in routing's rules)."""


class Target(StrEnum):
    """Who takes a training request over."""

    ADVISORS = "advisors"
    ESPACES_NUMERIQUES = "espaces_numeriques"
    DIGITAL_DIVIDE = "digital_divide"
    CITE_DES_METIERS = "cite_des_metiers"


class ContactOutcome(StrEnum):
    """Result of one attempt to call or write back a job seeker."""

    NO_ANSWER = "no_answer"
    ADVICE_GIVEN = "advice_given"
    REDIRECTED = "redirected"
    ENROLLED = "enrolled"
    EXAM_WANTED = "exam_wanted"
    # Added within v1: the two ways a call ends a request without reaching or helping the person.
    WRONG_NUMBER = "wrong_number"
    """The number is not the person's (or no longer in service): the request is closed."""
    WITHDRAWN = "withdrawn"
    """The person no longer wants to be called about this request: it is closed."""


class Disposition(StrEnum):
    """How the desk's attempts to reach a person about a request ended."""

    REACHED = "reached"
    """Someone spoke with the person (advice, an enrolment, an exam request)."""
    UNREACHABLE = "unreachable"
    """The last allowed attempt went unanswered; the person is told so in writing."""
    WRONG_NUMBER = "wrong_number"
    WITHDRAWN = "withdrawn"


class NotificationChannel(StrEnum):
    """Medium a notification was sent through."""

    EMAIL = "email"
    SMS = "sms"


class ProgrammePlace(StrEnum):
    """Where a person stands in the digital-divide programme when their request is routed there."""

    ADMITTED = "admitted"
    WAITLISTED_FULL = "waitlisted_full"
    """The year's places are taken: the person waits, in priority order, for one to free."""
    WAITLISTED_SUSPENDED = "waitlisted_suspended"
    """The programme is suspended (as during the 2020 lockdown): the person keeps a waitlist place."""

    @property
    def admitted(self) -> bool:
        return self is ProgrammePlace.ADMITTED


class FactSource(StrEnum):
    """Where a fact about the person's situation (qualification, equipment, unemployment) came from."""

    WEB_FORM = "web_form"
    PHONE_IVR = "phone_ivr"
    EMAIL_TEXT = "email_text"
    DESK = "desk"
    """Said to a worker on a call and recorded at the desk: it overrides the others."""


class ExamRequestReason(StrEnum):
    """Why a certification exam is asked for."""

    DESK = "desk"
    """Asked for directly (at the desk, on the phone, by an advisor)."""
    PATH_COMPLETED = "path_completed"
    """The person finished the online learning path leading to the exam."""


class Contact(BaseModel):
    """How to reach the person back; every part is optional, but what is given is well-formed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str | None = Field(
        default=None,
        description="Name as given by the person; free text, never logged.",
        examples=["Amina El Idrissi"],
    )
    phone: Annotated[str, StringConstraints(strip_whitespace=True, pattern=E164_PATTERN)] | None = Field(
        default=None,
        description="Phone number in E.164 form.",
        examples=["+32470123456"],
    )
    email: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=EMAIL_PATTERN)] | None = Field(
        default=None,
        description="E-mail address, lowercased so that one person is one address.",
        examples=["amina.elidrissi@example.be"],
    )


class CampaignAttribution(BaseModel):
    """Marketing attribution of a web request (UTM parameters and HTTP referrer)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    utm_source: str | None = Field(default=None, description="`utm_source` query parameter.", examples=["facebook"])
    utm_medium: str | None = Field(default=None, description="`utm_medium` query parameter.", examples=["cpc"])
    utm_campaign: str | None = Field(
        default=None,
        description="`utm_campaign` query parameter.",
        examples=["formations-numeriques-2025"],
    )
    utm_term: str | None = Field(default=None, description="`utm_term` query parameter.")
    utm_content: str | None = Field(default=None, description="`utm_content` query parameter.")
    referrer: str | None = Field(
        default=None,
        description="HTTP referrer of the form page.",
        examples=["https://www.bruxellesformation.brussels/"],
    )


class SealedPersonalData(BaseModel):
    """Personal fields of an event, encrypted with the person's own key (crypto-shredding).

    The clear fields of the event are blanked; services holding the key read them back.
    Erasing the person deletes the key, after which every copy of this event - on Kafka, in a
    replay, in a backup - keeps its facts but can no longer say who it was about.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    alg: str = Field(default="A256GCM", description="AES-256-GCM with a 96-bit nonce.", examples=["A256GCM"])
    key_id: str = Field(min_length=1, description="The key's id: the person's pseudonymous id.", examples=["per_7f3a"])
    nonce: str = Field(min_length=1, description="Base64 nonce.")
    ciphertext: str = Field(min_length=1, description="Base64 AES-GCM ciphertext (with tag) of the JSON of the fields.")
    fields: tuple[str, ...] = Field(description="Which fields were sealed.", examples=[["contact", "need"]])
