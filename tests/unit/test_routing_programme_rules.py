"""The digital-divide programme's pure decisions: quotas, slots in their spaces, overlaps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from routing.programme_rules import (
    BRUSSELS,
    OpeningHours,
    QuotaBelowAdmitted,
    SlotPlan,
    SlotRefused,
    SpaceKind,
    SpaceSpec,
    admission_event_id,
    check_quota,
    check_slot,
    overlaps,
)

MONDAY = date(2026, 3, 2)
ROOM = SpaceSpec(
    name="Salle d'autoformation",
    address="Rue de Stalle 67, 1180 Uccle",
    kind=SpaceKind.SELF_TRAINING,
    capacity=12,
    opening_hours=(OpeningHours(weekday=0, opens=time(9), closes=time(17)),),
)


def plan(start: int, end: int, capacity: int = 4, day: date = MONDAY) -> SlotPlan:
    return SlotPlan(space_id="room", day=day, start=time(start), end=time(end), capacity=capacity)


def test_a_quota_may_rise_or_fall_to_those_admitted_but_not_below() -> None:
    assert check_quota(380, admitted=350) == 380
    assert check_quota(350, admitted=350) == 350
    with pytest.raises(QuotaBelowAdmitted, match="350 people are admitted"):
        check_quota(349, admitted=350)
    with pytest.raises(QuotaBelowAdmitted):
        check_quota(-1, admitted=0)


def test_an_admission_has_one_event_id_per_request_and_year() -> None:
    assert admission_event_id(2026, "r1") == admission_event_id(2026, "r1")
    assert admission_event_id(2026, "r1") != admission_event_id(2027, "r1")


def test_a_slot_fits_the_opening_hours_and_the_seats_left() -> None:
    assert check_slot(plan(9, 11), ROOM) == plan(9, 11)
    assert check_slot(plan(15, 17, capacity=8), ROOM, seats_taken=4).capacity == 8
    with pytest.raises(SlotRefused, match="not open"):
        check_slot(plan(16, 18), ROOM)
    with pytest.raises(SlotRefused, match="not open"):
        check_slot(plan(9, 11, day=MONDAY + timedelta(days=1)), ROOM)  # closed on Tuesdays
    with pytest.raises(SlotRefused, match="2 free"):
        check_slot(plan(9, 11, capacity=3), ROOM, seats_taken=10)
    with pytest.raises(SlotRefused, match="starts before it ends"):
        check_slot(plan(11, 9), ROOM)


def test_a_slot_is_placed_in_brussels_time_and_named_by_space_day_and_start() -> None:
    slot = plan(9, 11)
    assert slot.starts_at.tzinfo is BRUSSELS
    assert slot.starts_at.astimezone(UTC) == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # winter time
    assert slot.slot_id == "room:2026-03-02:0900"


def test_opening_hours_open_before_they_close() -> None:
    with pytest.raises(ValidationError):
        OpeningHours(weekday=0, opens=time(17), closes=time(9))
    with pytest.raises(ValidationError):
        SpaceSpec(name="x", address="y", capacity=0)


def test_half_open_periods_that_touch_do_not_overlap() -> None:
    nine, ten, eleven = (datetime(2026, 3, 2, h, tzinfo=UTC) for h in (9, 10, 11))
    assert overlaps(nine, eleven, ten, eleven)
    assert not overlaps(nine, ten, ten, eleven)
