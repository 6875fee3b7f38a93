"""The notification service's own vocabulary: what a delivery is, its states, and what we know of a person.

A *delivery* is one message about one event on one channel (`_id = f"{event_id}:{channel}"`), so
an event can never produce two messages on a channel, whatever Kafka redelivers. Its states::

    queued ──claim──> sending ──provider accepted──> sent
      ^  ^              │  └──refused for good──> failed (SMS: invalid number) / bounced (SMTP 5xx recipient)
      │  └─transient────┤  └──transient, attempts left──> queued (next_attempt_at = backoff or Retry-After)
      │                 │  └──transient, last attempt──> failed
    deferred <──────────┘  (an SMS in quiet hours: next_attempt_at = 08:00 Brussels;
                            over a daily budget: the next Brussels day, see `notification.budget`)
    skipped                (planned or found at send time: no consent, opted out, no address, erased,
                            an SMS to a country we do not text)

A `sending` delivery whose claim expired (its replica died) is claimable again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from schemas import NotificationChannel

__all__ = [
    "FINAL_STATUSES",
    "Delivery",
    "DeliveryStatus",
    "Person",
    "Reachability",
    "SkipReason",
    "delivery_id",
]


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    DEFERRED = "deferred"
    SKIPPED = "skipped"


FINAL_STATUSES = frozenset({DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.BOUNCED, DeliveryStatus.SKIPPED})


class SkipReason(StrEnum):
    """Why a delivery was not even tried."""

    NO_CONSENT = "no_consent"
    OPTED_OUT = "opted_out"
    NO_ADDRESS = "no_address"
    ERASED = "erased"
    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    """An SMS to a number outside `NOTIFICATION_SMS_ALLOWED_COUNTRIES`: never sent, the e-mail used instead."""
    ALREADY_SAID = "already_said"
    """The person was already sent this very message (same template, same facts) about another event:
    two linked requests of one person sharing one promise get one text, not two."""


def delivery_id(event_id: object, channel: NotificationChannel | str) -> str:
    """The one id a message about `event_id` on `channel` can have: the guard against sending twice."""
    return f"{event_id}:{NotificationChannel(channel).value}"


@dataclass(frozen=True, slots=True)
class Reachability:
    """What the channel policy may know about a person: booleans, never the addresses themselves."""

    has_email: bool
    has_mobile: bool
    consent: bool
    opted_out: frozenset[NotificationChannel] = frozenset()
    sms_country_allowed: bool = True
    """Whether the mobile number is in a country we text (a number elsewhere gets no SMS)."""


def _any_country(_: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Person:
    """The contact projection of one person (`notification_people`), built from TrainingRequestReceived."""

    person_id: str
    known: bool
    """Whether a TrainingRequestReceived was seen (a stub exists before: opt-outs, early events)."""
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    language: str | None = None
    consent: bool = False
    opted_out: frozenset[NotificationChannel] = frozenset()
    erased: bool = False
    status_links: Mapping[str, str] = field(default_factory=dict)
    """Request id -> the signed link to that request's status page (from its TrainingRequestReceived)."""

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Person:
        contact = doc.get("contact") or {}
        return cls(
            person_id=doc["_id"],
            known=doc.get("contact_as_of") is not None,
            name=contact.get("name"),
            phone=contact.get("phone"),
            email=contact.get("email"),
            language=doc.get("language"),
            consent=bool(doc.get("consent")),
            opted_out=frozenset(NotificationChannel(c) for c in doc.get("opted_out") or ()),
            erased=doc.get("erased_at") is not None,
            status_links=dict(doc.get("status_links") or {}),
        )

    def status_url(self, request_id: str | None) -> str | None:
        """The link to the status page of `request_id`, if intake sent one (never after an erasure)."""
        if request_id is None or self.erased:
            return None
        return self.status_links.get(request_id)

    @classmethod
    def unknown(cls, person_id: str) -> Person:
        return cls(person_id=person_id, known=False)

    def reachability(
        self, *, is_mobile: Callable[[str], bool], sms_country_allowed: Callable[[str], bool] = _any_country
    ) -> Reachability:
        """`is_mobile(phone) -> bool` decides whether the phone can take an SMS (see `policy.is_mobile`),
        `sms_country_allowed(phone) -> bool` whether we text its country (see `policy.SmsCountries`)."""
        return Reachability(
            has_email=bool(self.email),
            has_mobile=self.phone is not None and is_mobile(self.phone),
            consent=self.consent and not self.erased,
            opted_out=self.opted_out,
            sms_country_allowed=self.phone is None or sms_country_allowed(self.phone),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery as the sender loop sees it (read from `deliveries`)."""

    id: str
    about_event_id: str
    about_event_type: str
    correlation_id: str
    person_id: str
    request_id: str | None
    channel: NotificationChannel
    template: str
    facts: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = None
    claimed_by: str | None = None
    fallback_of: str | None = None
    trace: Mapping[str, str] = field(default_factory=dict)
    """The W3C trace context it was planned in: sending it continues the trace of what it is about."""

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Delivery:
        return cls(
            id=doc["_id"],
            about_event_id=doc["about_event_id"],
            about_event_type=doc.get("about_event_type", ""),
            correlation_id=doc.get("correlation_id") or doc["about_event_id"],
            person_id=doc["person_id"],
            request_id=doc.get("request_id"),
            channel=NotificationChannel(doc["channel"]),
            template=doc["template"],
            facts=dict(doc.get("facts") or {}),
            status=DeliveryStatus(doc["status"]),
            attempts=int(doc.get("attempts", 0)),
            next_attempt_at=doc.get("next_attempt_at"),
            claimed_by=doc.get("claimed_by"),
            fallback_of=doc.get("fallback_of"),
            trace=dict(doc.get("trace") or {}),
        )
