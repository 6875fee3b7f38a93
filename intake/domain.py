"""What a channel hands to the intake pipeline, and what it gets back.

Each channel adapter (phone webhook, SMTP inbox, web form and API) turns its input into a
`RequestDraft` and calls `AcceptRequests.accept(draft)`. The pipeline normalises contact
details, links the request to earlier ones of the same person, builds the
`TrainingRequestReceived` event and stores it in the outbox before returning: a channel
acknowledges its client (HTTP 202, SMTP 250) only after `accept` returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from schemas import (
    CallbackSlotChosen,
    CampaignAttribution,
    Channel,
    Event,
    Language,
    QualificationLevel,
    RequestKind,
    TrainingRequestReceived,
)

ChannelDetail = str | int | bool | None

SITUATION_FACTS = ("qualification_level", "has_computer", "has_internet", "unemployed_since")
"""The facts about a person's situation that routing weighs; `RequestDraft.fact_sources` says where each came from."""


class FactSource(StrEnum):
    """How intake learned a situation fact (`TrainingRequestReceived.fact_sources`)."""

    WEB_FORM = "web_form"
    """The person answered the question in the web form or through the request API."""
    PHONE_IVR = "phone_ivr"
    """The caller keyed the answer in the phone menu (see docs/phone-ivr.md)."""
    EMAIL_TEXT = "email_text"
    """Read in the words of an e-mail (`intake.situation`)."""


@dataclass(frozen=True, slots=True)
class RequestDraft:
    """A request as one channel understood it, before normalisation and identity linking."""

    channel: Channel
    source: str
    """CloudEvents source of the adapter, e.g. `/intake/phone/twilio`, `/intake/email`, `/intake/web/form`."""
    received_at: datetime
    language: Language
    consent_to_contact: bool
    name: str | None = None
    phone: str | None = None
    """As given (any Belgian or international format); the pipeline normalises it to E.164."""
    email: str | None = None
    need: str = ""
    requested_course: str | None = None
    """A catalogue code (`services.catalogue`), when the person named a course."""
    qualification_level: QualificationLevel | None = None
    has_computer: bool | None = None
    has_internet: bool | None = None
    unemployed_since: date | None = None
    campaign: CampaignAttribution | None = None
    needs_triage: bool = False
    triage_reason: str | None = None
    channel_details: dict[str, ChannelDetail] = field(default_factory=dict)
    fact_sources: dict[str, FactSource] = field(default_factory=dict)
    """Where each situation fact came from; see `known_fact_sources`."""
    kind: RequestKind = RequestKind.TRAINING_REQUEST
    """`learner_question` when a learner already enrolled asks about their course."""
    dedup_key: str | None = None
    """Same key, same request: a retried webhook (CallSid + status), a re-sent e-mail (Message-ID),
    or a retried POST (Idempotency-Key) is accepted once and answered with the first result."""
    callback_slot: tuple[datetime, datetime] | None = None
    """The window the caller chose in the phone menu (`intake.ivr.callback_window`): published as
    `CallbackSlotChosen` right after the request, in the same transaction (`callback_slot_chosen`)."""

    def known_fact_sources(self) -> dict[str, str]:
        """The source of each situation fact the draft knows: a source named for an unknown fact is dropped."""
        return {
            name: str(self.fact_sources[name])
            for name in SITUATION_FACTS
            if name in self.fact_sources and getattr(self, name) is not None
        }


@dataclass(frozen=True, slots=True)
class AcceptedRequest:
    request_id: str
    person_id: str
    duplicate: bool = False
    """True when `dedup_key` matched an earlier request: nothing new was stored."""
    linked_request_ids: tuple[str, ...] = ()


class AcceptRequests(Protocol):
    """The intake pipeline as the channels see it."""

    async def accept(self, draft: RequestDraft) -> AcceptedRequest: ...


def callback_slot_chosen(draft: RequestDraft, received: TrainingRequestReceived) -> list[Event]:
    """What follows the request `received` in the same transaction: the window its caller chose in
    the phone menu, caused by it and keyed by the same request (one partition, after it)."""
    if draft.callback_slot is None:
        return []
    start, end = draft.callback_slot
    chosen = CallbackSlotChosen.following(
        received,
        source=draft.source,
        request_id=received.request_id,
        person_id=received.person_id,
        slot_start=start,
        slot_end=end,
        chosen_through="phone_ivr",
    )
    return [chosen]
