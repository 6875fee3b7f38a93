"""Course sessions, decided without a database: what a valid session is, when it takes people, and
which one a person gets (`routing.sessions`)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from routing.case import DeskError
from routing.sessions import CourseSession, SessionPlan, place_in_session, session_problems
from schemas import Language
from services.catalogue import load_catalogue

pytestmark = pytest.mark.unit

FR, NL, EN = Language.FR, Language.NL, Language.EN
TODAY = date(2026, 3, 3)
EXCEL = load_catalogue().course("EXCEL")
OUTLOOK = load_catalogue().course("OUTLOOK")


def plan(**fields: Any) -> SessionPlan:
    values: dict[str, Any] = {
        "starts_on": date(2026, 4, 1),
        "ends_on": date(2026, 5, 27),
        "capacity": 12,
        "mode": "online",
        "centre_id": None,
        "language": FR,
    }
    return SessionPlan(**(values | fields))


def session(session_id: str, starts_on: date, *, enrolled: int = 0, capacity: int = 2, **fields: Any) -> CourseSession:
    ends_on = fields.pop("ends_on", date(starts_on.year, starts_on.month, 28))
    return CourseSession(
        **plan(starts_on=starts_on, ends_on=ends_on, capacity=capacity, **fields).model_dump(),
        session_id=session_id,
        course_code="EXCEL",
        enrolled=enrolled,
    )


def test_a_well_formed_session_has_no_problem() -> None:
    assert session_problems(plan(), EXCEL, course_code="EXCEL") == []
    assert session_problems(plan(mode="centre", centre_id="ctr-anderlecht"), EXCEL, course_code="EXCEL") == []


@pytest.mark.parametrize(
    ("changes", "enrolled", "problem"),
    [
        ({"ends_on": date(2026, 3, 31)}, 0, "ends_on 2026-03-31 is before starts_on 2026-04-01"),
        ({"capacity": 0}, 0, "capacity must be at least 1"),
        ({"capacity": 5}, 6, "capacity 5 is below the 6 people enrolled"),
        ({"mode": "centre"}, 0, "a session in a centre needs centre_id"),
        ({"centre_id": "ctr-anderlecht"}, 0, "an online session has no centre_id"),
    ],
)
def test_a_session_that_cannot_be_says_why(changes: dict[str, Any], enrolled: int, problem: str) -> None:
    assert session_problems(plan(**changes), EXCEL, course_code="EXCEL", enrolled=enrolled) == [problem]


def test_a_session_is_of_a_catalogue_course_in_one_of_its_languages() -> None:
    assert session_problems(plan(), None, course_code="COBOL") == ["course 'COBOL' is not in the catalogue"]
    assert session_problems(plan(language=EN), OUTLOOK, course_code="OUTLOOK") == [
        "OUTLOOK is not given in en (offered in: fr, nl)"
    ]


def test_a_centre_session_takes_people_until_its_first_day_an_online_one_until_its_last() -> None:
    centre = session("c", date(2026, 4, 1), mode="centre", centre_id="ctr-1", ends_on=date(2026, 4, 30))
    online = session("o", date(2026, 4, 1), ends_on=date(2026, 4, 30))
    assert centre.admits_on(date(2026, 4, 1)) and not centre.admits_on(date(2026, 4, 2))
    assert online.admits_on(date(2026, 4, 30)) and not online.admits_on(date(2026, 5, 1))


def test_the_next_session_in_the_persons_language_with_room_starting_after_today() -> None:
    sessions = [
        session("started", date(2026, 3, 1)),  # running: not chosen by itself
        session("full", date(2026, 4, 1), enrolled=2),
        session("dutch", date(2026, 4, 2), language=NL),
        session("may", date(2026, 5, 4)),
        session("april", date(2026, 4, 20)),
    ]
    placement = place_in_session(sessions, language=FR, today=TODAY)
    assert placement.session is not None and placement.session.session_id == "april" and not placement.waitlisted
    assert place_in_session(sessions, language=NL, today=TODAY).session == sessions[2]


def test_no_session_with_room_puts_the_person_on_the_courses_waitlist() -> None:
    sessions = [session("full", date(2026, 4, 1), enrolled=2), session("english", date(2026, 4, 1), language=EN)]
    placement = place_in_session(sessions, language=FR, today=TODAY)
    assert (placement.session, placement.waitlisted) == (None, True)
    assert place_in_session([], language=FR, today=TODAY).waitlisted


def test_a_named_session_that_is_full_puts_the_person_on_its_own_waitlist() -> None:
    full = session("full", date(2026, 4, 1), enrolled=2)
    placement = place_in_session([full, session("may", date(2026, 5, 4))], language=FR, today=TODAY, wanted="full")
    assert (placement.session, placement.waitlisted) == (full, True)


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ("nope", "session 'nope' is not a session of this course"),
        ("dutch", "session dutch is given in nl, not fr"),
        ("gone", "session gone takes nobody any more"),
    ],
)
def test_a_named_session_must_be_one_the_person_can_join(wanted: str, message: str) -> None:
    sessions = [
        session("dutch", date(2026, 4, 1), language=NL),
        session("gone", date(2026, 2, 1), mode="centre", centre_id="ctr-1"),
    ]
    with pytest.raises(DeskError, match=message):
        place_in_session(sessions, language=FR, today=TODAY, wanted=wanted)


def test_a_session_is_stored_and_read_back_as_it_was() -> None:
    planned = session("EXCEL-1", date(2026, 4, 1), enrolled=1, mode="centre", centre_id="ctr-1")
    doc = planned.to_document()
    assert (doc["_id"], doc["starts_on"], doc["language"]) == ("EXCEL-1", "2026-04-01", "fr")
    assert CourseSession.from_document(doc) == planned
    assert planned.room == 1
