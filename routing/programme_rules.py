"""The digital-divide programme's decisions, pure: what a quota may become, what a programme-wide
fact looks like as an event, and when a self-training slot fits its space and a person's day.

The stores (`routing.programme`, `routing.spaces`) apply these inside their transactions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BRUSSELS",
    "OpeningHours",
    "QuotaBelowAdmitted",
    "SlotPlan",
    "SlotRefused",
    "SpaceKind",
    "SpaceSpec",
    "admission_event_id",
    "check_quota",
    "check_slot",
    "overlaps",
]

BRUSSELS = ZoneInfo("Europe/Brussels")


class QuotaBelowAdmitted(ValueError):
    """A year's quota cannot go below the people already admitted that year."""


def check_quota(quota: int, *, admitted: int) -> int:
    """`quota` if it may be the year's quota: not negative, not below those admitted."""
    if quota < 0:
        raise QuotaBelowAdmitted("a quota cannot be negative")
    if quota < admitted:
        raise QuotaBelowAdmitted(f"{admitted} people are admitted this year: the quota cannot go below that (asked {quota})")
    return quota


def admission_event_id(year: int, request_id: str) -> uuid.UUID:
    """One admission event per request and year, whichever replica admits it (a retried transaction too)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"formation-events:digital_divide:{year}:{request_id}:admitted")


# --- spaces: the EPN partners and the self-training room -----------------------------------


class SpaceKind(StrEnum):
    EPN = "epn"
    """A public digital space (espace public numérique) of a partner."""
    SELF_TRAINING = "self_training"
    """Bruxelles Formation's self-training room: computers and the course software, on booking."""


class OpeningHours(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weekday: int = Field(ge=0, le=6, description="0 is Monday.")
    opens: time
    closes: time

    @model_validator(mode="after")
    def _opens_before_closing(self) -> OpeningHours:
        if self.opens >= self.closes:
            raise ValueError("a space opens before it closes")
        return self


class SpaceSpec(BaseModel):
    """A space as supervisors describe it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=300)
    kind: SpaceKind = SpaceKind.EPN
    capacity: int = Field(ge=1, le=500, description="Workstations: people at once.")
    opening_hours: tuple[OpeningHours, ...] = Field(default=(), max_length=50)
    partner: str | None = Field(None, max_length=200, description="The partner running it, for an EPN.")


@dataclass(frozen=True, slots=True)
class SlotPlan:
    space_id: str
    day: date
    start: time
    end: time
    capacity: int

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.day, self.start, tzinfo=BRUSSELS)

    @property
    def ends_at(self) -> datetime:
        return datetime.combine(self.day, self.end, tzinfo=BRUSSELS)

    @property
    def slot_id(self) -> str:
        return f"{self.space_id}:{self.day.isoformat()}:{self.start.strftime('%H%M')}"


class SlotRefused(ValueError):
    """A slot that does not fit its space."""


def check_slot(plan: SlotPlan, space: SpaceSpec, *, seats_taken: int = 0) -> SlotPlan:
    """`plan` if the space is open for all of it and has the seats (`seats_taken` by the slots that
    overlap it); `SlotRefused` saying why not."""
    if plan.start >= plan.end:
        raise SlotRefused("a slot starts before it ends")
    if plan.capacity < 1:
        raise SlotRefused("a slot has at least one seat")
    if plan.capacity + seats_taken > space.capacity:
        free = max(space.capacity - seats_taken, 0)
        raise SlotRefused(f"the space has {space.capacity} seats, {free} free at that time (asked {plan.capacity})")
    weekday = plan.day.weekday()
    if not any(h.weekday == weekday and h.opens <= plan.start and plan.end <= h.closes for h in space.opening_hours):
        raise SlotRefused("the space is not open for all of the slot")
    return plan


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Whether two half-open periods share a moment."""
    return a_start < b_end and b_start < a_end
