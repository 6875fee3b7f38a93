"""Realistic events for tests; each test overrides what it is about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from routing.assignment import Assignments
from routing.workers import Availability, Worker, worker_hours
from schemas import (
    Channel,
    Contact,
    EnrolmentConfirmed,
    ExamRequestReason,
    ExamSchedulingRequested,
    Language,
    Target,
    TrainingRequestReceived,
)
from services.calendar import BRUSSELS, BrusselsCalendar

FIXED_RECEIVED_AT = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
"""A Friday morning: pure tests compute deadlines and priorities from it, on any date."""


def make_request(**overrides: Any) -> TrainingRequestReceived:
    """A realistic request; tests override what they are about.

    Received at `FIXED_RECEIVED_AT` unless told otherwise, so pure code gives the same answer on
    any date. A request fed to services that run on the real clock must be stamped by that clock
    (`live_request`): from a fixed past instant it would arrive past its callback deadline on
    some days and not on others.
    """
    request_id = overrides.pop("request_id", str(uuid.uuid4()))
    fields: dict[str, Any] = {
        "source": "/tests",
        "subject": request_id,
        "request_id": request_id,
        "person_id": f"p-{request_id[:8]}",
        "channel": Channel.WEB,
        "received_at": FIXED_RECEIVED_AT,
        "contact": Contact(name="Amina Test", phone="+32470123456", email="amina@example.org"),
        "language": Language.FR,
        "need": "Je voudrais apprendre Excel en ligne.",
        "requested_course": None,
        "consent_to_contact": True,
    }
    fields.update(overrides)
    return TrainingRequestReceived(**fields)


def live_request(**overrides: Any) -> TrainingRequestReceived:
    """A request received now, for services running on the real clock."""
    return make_request(**{"received_at": datetime.now(UTC), **overrides})


def last_working_morning(now: datetime | None = None, *, at: time = time(9, 15)) -> datetime:
    """The latest working day's `at` (Brussels time) that is not after `now` (default: the real
    clock): an instant inside the phone line's hours and recent enough for every window that
    counts back from the services' clock (linking, deadlines), on any date."""
    calendar = BrusselsCalendar()
    local_now = (now or datetime.now(UTC)).astimezone(BRUSSELS)
    day = local_now.date()
    while True:
        candidate = datetime.combine(day, at, BRUSSELS)
        if calendar.is_working_day(day) and candidate <= local_now:
            return candidate
        day -= timedelta(days=1)


# --- routing's staff -------------------------------------------------------------------------

MONDAY_10H = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
"""Monday 15 June 2026, 10:00 in Brussels: inside office hours, for tests that fix their clock."""
OFFICE_HOURS = worker_hours({day: [("08:30", "17:00")] for day in range(5)})
STAFF_TEAM = Target.ESPACES_NUMERIQUES


class SteppingClock:
    """A clock the test moves by hand; called, it gives the current instant (`routing.assignment`'s clock)."""

    def __init__(self, now: datetime = MONDAY_10H) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def staff(worker_id: str, **overrides: Any) -> Worker:
    """A worker of the espaces numériques team, available in office hours, two requests at a time."""
    fields: dict[str, Any] = {
        "worker_id": worker_id,
        "display_name": f"Staff {worker_id}",
        "team": STAFF_TEAM,
        "languages": frozenset({Language.FR, Language.NL}),
        "skills": frozenset({"enrolment", "office"}),
        "working_hours": OFFICE_HOURS,
        "availability": Availability.AVAILABLE,
        "capacity": 2,
    }
    fields.update(overrides)
    return Worker(**fields)


async def add_workers(assignments: Assignments, *workers: Worker) -> None:
    for worker in workers:
        await assignments.upsert_worker(worker)


async def open_count(assignments: Assignments, worker_id: str) -> int:
    worker = await assignments.get_worker(worker_id)
    assert worker is not None
    return worker.open_count


async def status(assignments: Assignments, request_id: str) -> str:
    request = await assignments.get_request(request_id)
    assert request is not None
    return request.status


# --- certification's inputs ------------------------------------------------------------------


def enrolled(person_id: str, course: str = "EXCEL") -> EnrolmentConfirmed:
    return EnrolmentConfirmed(
        source="/tests",
        subject=person_id,
        request_id=f"req-{person_id}",
        person_id=person_id,
        course_code=course,
        course_title=course,
        language=Language.FR,
    )


def exam_requested(person_id: str, code: str = "MOS-EXCEL") -> ExamSchedulingRequested:
    return ExamSchedulingRequested(
        source="/tests", subject=person_id, person_id=person_id, certification_code=code, reason=ExamRequestReason.PATH_COMPLETED
    )
