"""What a web submission is: the model partners post and the form is checked against, the answers and
problems the API returns, and validation errors as our own stable codes in the client's language.

Both the JSON API and the HTML form validate with `TrainingRequestSubmission`, so the rules are
the same whichever way a request comes in; `draft` turns a valid submission into the pipeline's
`RequestDraft`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from intake.domain import SITUATION_FACTS, ChannelDetail, FactSource, RequestDraft
from intake.i18n import text
from schemas import CampaignAttribution, Channel, Language, QualificationLevel, RequestKind
from schemas.values import EMAIL_PATTERN
from services.catalogue import Catalogue
from services.free_text import NAME_MAX_LENGTH, name_problem

__all__ = [
    "CITE_DES_METIERS",
    "EXAMPLE_CITE",
    "EXAMPLE_WEB",
    "CampaignSubmission",
    "FieldError",
    "FieldProblem",
    "Problem",
    "SubmissionAccepted",
    "TrainingRequestSubmission",
    "ValidationProblem",
    "draft",
    "field_errors",
]

CITE_DES_METIERS = "cite-des-metiers"
"""A request from this partner is a hand-over: a Cité des métiers advisor already saw the person."""

OLDEST_UNEMPLOYMENT = date(1900, 1, 1)
PARTNER_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


class CampaignSubmission(BaseModel):
    """Where the person came from: UTM parameters of the landing page and its HTTP referrer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    utm_source: str | None = Field(None, max_length=200, description="`utm_source` of the landing page.", examples=["facebook"])
    utm_medium: str | None = Field(None, max_length=200, description="`utm_medium` of the landing page.", examples=["cpc"])
    utm_campaign: str | None = Field(
        None, max_length=200, description="`utm_campaign` of the landing page.", examples=["confine-mais-connecte"]
    )
    utm_term: str | None = Field(None, max_length=200, description="`utm_term` of the landing page.", examples=["excel"])
    utm_content: str | None = Field(None, max_length=200, description="`utm_content` of the landing page.", examples=["banner-a"])
    referrer: str | None = Field(
        None,
        max_length=2000,
        description="Page the person came from (HTTP Referer of the landing page).",
        examples=["https://www.bruxellesformation.brussels/"],
    )

    def attribution(self) -> CampaignAttribution | None:
        values = {k: v for k, v in self.model_dump().items() if v}
        return CampaignAttribution(**values) if values else None


EXAMPLE_WEB: JsonDict = {
    "name": "Amina El Idrissi",
    "phone": "0470 12 34 56",
    "email": "amina.elidrissi@example.be",
    "language": "fr",
    "need": "Je voudrais apprendre Excel pour trouver un emploi de bureau.",
    "requested_course": "EXCEL",
    "qualification_level": "upper_secondary",
    "has_computer": True,
    "has_internet": True,
    "unemployed_since": "2024-11-01",
    "consent_to_contact": True,
    "campaign": {"utm_source": "facebook", "utm_medium": "cpc", "utm_campaign": "confine-mais-connecte"},
}
EXAMPLE_CITE: JsonDict = {
    "name": "Jan Peeters",
    "phone": "+32 2 555 12 12",
    "language": "nl",
    "need": "Wil leren werken met een computer; heeft geen computer thuis.",
    "qualification_level": "lower_secondary",
    "has_computer": False,
    "has_internet": False,
    "consent_to_contact": True,
    "partner": CITE_DES_METIERS,
}


class TrainingRequestSubmission(BaseModel):
    """A job seeker's training request, as a partner site or the Cité des métiers posts it.

    Give a phone number or an e-mail address (or both), and `consent_to_contact: true`:
    Bruxelles Formation may only contact people who agreed to it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [EXAMPLE_WEB, EXAMPLE_CITE]})

    name: str | None = Field(
        None,
        max_length=NAME_MAX_LENGTH,
        description="Name as the person gave it; free text, without links (http://, www., example.com/...) or "
        "control characters: it is echoed in the messages we send (422 `name_url` / `name_control_characters`).",
        examples=["Amina El Idrissi"],
    )
    phone: str | None = Field(
        None,
        max_length=40,
        description="Phone number in any Belgian or international notation (0470 12 34 56, +32 2 555 12 12, "
        "0033 6 12 34 56 78); stored as given, normalised to E.164 by intake.",
        examples=["0470 12 34 56"],
    )
    email: str | None = Field(
        None,
        max_length=254,
        pattern=EMAIL_PATTERN,
        description="E-mail address.",
        examples=["amina.elidrissi@example.be"],
    )
    language: Language = Field(Language.FR, description="Language the person wants to be contacted in.", examples=[Language.NL])
    need: str = Field(
        "",
        max_length=5000,
        description="What the person wants, in their own words; may be empty.",
        examples=["Je voudrais apprendre Excel pour trouver un emploi de bureau."],
    )
    requested_course: str | None = Field(
        None,
        max_length=64,
        description="Catalogue code of the course asked for (case-insensitive); omit when unsure.",
        examples=["EXCEL"],
    )
    qualification_level: QualificationLevel | None = Field(
        None, description="Highest school qualification (upper_secondary is the CESS).", examples=["upper_secondary"]
    )
    has_computer: bool | None = Field(None, description="Whether the person has a computer.", examples=[True])
    has_internet: bool | None = Field(None, description="Whether the person has internet at home.", examples=[False])
    unemployed_since: date | None = Field(
        None, description="Date since which the person has been a job seeker; not in the future.", examples=["2024-11-01"]
    )
    consent_to_contact: bool = Field(
        description="The person agreed to be contacted about this request. Must be true: without consent "
        "the request is refused (422).",
        examples=[True],
    )
    campaign: CampaignSubmission | None = Field(
        None, description="Marketing attribution, when the request came from a campaign landing page."
    )
    kind: RequestKind = Field(
        RequestKind.TRAINING_REQUEST,
        description="`learner_question` when the person is already enrolled in a course and asks about it: "
        "the BF espaces numériques team answers within one working day.",
        examples=["learner_question"],
    )
    partner: str | None = Field(
        None,
        max_length=64,
        pattern=PARTNER_PATTERN,
        description=f"Partner that collected the request. `{CITE_DES_METIERS}` marks a hand-over from the Cité des métiers.",
        examples=[CITE_DES_METIERS],
    )

    @field_validator("name", "phone", "email", "requested_course", "partner", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("name")
    @classmethod
    def _greetable_name(cls, value: str | None) -> str | None:
        # The name is echoed in our texts and e-mails ("Bonjour {name}"): no links, no control characters.
        if value is not None and (problem := name_problem(value)) is not None:
            raise PydanticCustomError(problem, "name not accepted")
        return value

    @field_validator("phone")
    @classmethod
    def _possible_phone_number(cls, value: str | None) -> str | None:
        if value is not None and not _is_possible_phone_number(value):
            raise PydanticCustomError("phone_invalid", "not a possible phone number")
        return value

    @field_validator("requested_course")
    @classmethod
    def _known_course(cls, value: str | None, info: ValidationInfo) -> str | None:
        catalogue: Catalogue | None = (info.context or {}).get("catalogue")
        if value is None or catalogue is None:
            return value
        course = catalogue.course(value)
        if course is None:
            codes = ", ".join(c.code for c in catalogue.courses)
            raise PydanticCustomError("course_unknown", "unknown course {code}", {"code": value, "codes": codes})
        return course.code

    @field_validator("unemployed_since")
    @classmethod
    def _not_in_the_future(cls, value: date | None, info: ValidationInfo) -> date | None:
        today = (info.context or {}).get("today")
        if value is not None and today is not None and value > today:
            raise PydanticCustomError("date_future", "date in the future")
        if value is not None and value < OLDEST_UNEMPLOYMENT:
            raise PydanticCustomError("date_too_old", "date too far in the past")
        return value

    @field_validator("consent_to_contact")
    @classmethod
    def _consent_given(cls, value: bool) -> bool:
        if not value:
            raise PydanticCustomError("consent_required", "consent to contact is required")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> TrainingRequestSubmission:
        if not self.phone and not self.email:
            raise PydanticCustomError("contact_required", "a phone number or an e-mail address is required")
        return self

    def body_sha256(self) -> str:
        """Hash of the canonical submission: the same request hashes alike however its JSON was spelled."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _is_possible_phone_number(raw: str) -> bool:
    text_ = raw.replace("(0)", "")  # "+32 (0)470 ..." is how Belgians often write it
    if text_.startswith("00"):
        text_ = "+" + text_[2:]
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(text_, "BE"))
    except phonenumbers.NumberParseException:
        return False


class SubmissionAccepted(BaseModel):
    """The request is stored; an advisor will call or write back."""

    # Nothing about the person: whoever sends a phone number is not shown who it belongs to, nor
    # their other requests.
    request_id: str = Field(description="Id of the request (the first 8 characters are its reference).")
    status: Literal["accepted", "duplicate"] = Field(
        description="`duplicate` when an Idempotency-Key retry matched an earlier request; nothing new was stored."
    )


class Problem(BaseModel):
    """Why the whole request was refused."""

    error: str = Field(description="Machine-readable reason.", examples=["malformed_json"])
    detail: str = Field(description="Explanation in the requested language.")


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the field, e.g. `phone` or `campaign.utm_source`.", examples=["phone"])
    code: str = Field(description="Machine-readable reason.", examples=["phone_invalid"])
    message: str = Field(
        description="Explanation in the requested language.",
        examples=["This phone number is not valid. Example: 0470 12 34 56 or +32 470 12 34 56."],
    )


class ValidationProblem(BaseModel):
    """What to correct, field by field."""

    error: Literal["validation_failed", "idempotency_key_reused"] = Field(description="Machine-readable reason.")
    detail: list[FieldProblem]


# --- Validation messages -------------------------------------------------------------------------

_OWN_CODES = frozenset(
    {"name_url", "name_control_characters", "phone_invalid", "course_unknown", "date_future", "date_too_old", "consent_required"}
)
_PATTERN_CODES = {"email": "email_invalid", "partner": "partner_invalid"}


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str
    # dataclasses.field: the `field` attribute above shadows a bare `field` in this class body.
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def message(self, language: Language) -> str:
        try:
            return text(language, f"error_{self.code}", **self.params)
        except (KeyError, IndexError):  # a pydantic error without the context our sentence needs
            return text(language, "error_invalid")


def field_errors(exc: ValidationError, data: Any) -> list[FieldError]:
    """Pydantic's errors as our codes (stable, documented) rather than its English sentences.

    `data` is the input as parsed, used to say "give a phone or an e-mail" together with the other
    problems: pydantic only runs the model-level check once every field is valid, and a person
    should not have to submit three times to learn everything that is wrong.
    """
    found = _translated(exc)
    if (
        isinstance(data, Mapping)
        and not any(p.field in ("phone", "email") for p in found)
        and not _given(data.get("phone"))
        and not _given(data.get("email"))
    ):
        found += [FieldError("phone", "contact_required"), FieldError("email", "contact_required")]
    return found


def _given(value: Any) -> bool:
    return not (value is None or (isinstance(value, str) and not value.strip()))


def _translated(exc: ValidationError) -> list[FieldError]:
    found: list[FieldError] = []
    for error in exc.errors(include_url=False, include_input=False):
        kind, ctx = error["type"], error.get("ctx") or {}
        name = ".".join(str(part) for part in error["loc"]) or "body"
        if kind == "contact_required":
            # Either field fixes it, so both say so (the form shows it next to each).
            found += [FieldError("phone", kind), FieldError("email", kind)]
        elif kind in _OWN_CODES:
            found.append(FieldError(name, kind, ctx))
        elif kind == "missing":
            found.append(FieldError(name, "required"))
        elif kind == "string_too_long":
            found.append(FieldError(name, "too_long", {"max_length": ctx.get("max_length", "?")}))
        elif kind == "string_pattern_mismatch":
            found.append(FieldError(name, _PATTERN_CODES.get(name, "invalid")))
        elif kind == "extra_forbidden":
            found.append(FieldError(name, "unknown_field"))
        elif kind in ("enum", "literal_error"):
            found.append(FieldError(name, "choice_invalid", {"choices": ctx.get("expected", "?")}))
        elif kind.startswith("bool"):
            found.append(FieldError(name, "bool_invalid"))
        elif kind.startswith("date"):
            found.append(FieldError(name, "date_invalid"))
        elif kind == "string_type":
            found.append(FieldError(name, "text_expected"))
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            found.append(FieldError(name, "object_expected"))
        else:
            found.append(FieldError(name, "invalid"))
    return found


def draft(
    submission: TrainingRequestSubmission,
    *,
    source: str,
    received_at: datetime,
    details: dict[str, ChannelDetail],
    dedup_key: str | None,
    channel: Channel = Channel.WEB,
) -> RequestDraft:
    """What the pipeline receives for a valid submission; `details` and `dedup_key` are the caller's (API or form),
    and so is `channel` (a channel adapter's request came by phone, e-mail or the web)."""
    return RequestDraft(
        channel=channel,
        source=source,
        received_at=received_at,
        language=submission.language,
        consent_to_contact=submission.consent_to_contact,
        name=submission.name,
        phone=submission.phone,
        email=submission.email,
        need=submission.need,
        requested_course=submission.requested_course,
        qualification_level=submission.qualification_level,
        has_computer=submission.has_computer,
        has_internet=submission.has_internet,
        unemployed_since=submission.unemployed_since,
        campaign=submission.campaign.attribution() if submission.campaign else None,
        channel_details=details,
        # The draft keeps the sources of the facts actually answered (`RequestDraft.known_fact_sources`).
        fact_sources=dict.fromkeys(SITUATION_FACTS, FactSource.WEB_FORM),
        kind=submission.kind,
        dedup_key=dedup_key,
    )
