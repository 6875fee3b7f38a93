"""Course sessions (cohorts): what a session is, when it takes people, and which one a person gets.

Pure: no I/O. `routing.enrolment` stores sessions and places and applies these decisions under
conditional updates; `routing.sessions_api` serves them to staff.

A session takes people (`CourseSession.admits_on`) until its first day when it is given in a centre,
and until its last day when it is online (an online course is followed at one's own pace, so a place
freed by someone who finished early is worth giving). When the desk names no session, the person gets
the next session of the course in their language that starts after today and has room; when there is
none, they wait for the course in their language, and are enrolled when a place frees or a session
opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from routing.case import DeskError
from schemas import Language
from services.catalogue import Course

__all__ = [
    "CourseMode",
    "CourseSession",
    "InvalidSession",
    "Placement",
    "SessionPlan",
    "place_in_session",
    "session_problems",
]

CourseMode = Literal["online", "centre"]


class InvalidSession(DeskError):
    """A session staff asked for that cannot be: the message lists what is wrong (HTTP 422)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), status=422)
        self.problems = problems


class SessionPlan(BaseModel):
    """What staff set of a session: dates, capacity, where and in which language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    starts_on: date = Field(description="First day of the session.")
    ends_on: date = Field(description="Last day of the session.")
    capacity: int = Field(ge=0, le=10_000, description="Places in the session; never below the people enrolled in it.")
    mode: CourseMode = Field(description="`online`, or in a `centre` (then `centre_id` says which).")
    centre_id: str | None = Field(None, max_length=64, description="The centre, for a session given in one.")
    language: Language = Field(description="Language the session is given in.")


class CourseSession(SessionPlan):
    """A session of a course and the places taken in it (`enrolled`)."""

    session_id: str = Field(min_length=1, max_length=64)
    course_code: str
    enrolled: int = Field(0, ge=0, description="Places taken.")

    @property
    def room(self) -> int:
        return max(self.capacity - self.enrolled, 0)

    def admits_on(self, day: date) -> bool:
        """Whether the session still takes people on `day`: a centre's until its first day, an online
        one until its last."""
        return day <= (self.starts_on if self.mode == "centre" else self.ends_on)

    def to_document(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json", exclude={"session_id"})
        return {"_id": self.session_id, **doc}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> CourseSession:
        fields = {k: v for k, v in doc.items() if k in cls.model_fields}
        return cls(session_id=doc["_id"], **fields)


def session_problems(plan: SessionPlan, course: Course | None, *, course_code: str, enrolled: int = 0) -> list[str]:
    """What is wrong with a session of `course_code` planned as `plan` with `enrolled` people in it
    already (empty: nothing)."""
    problems: list[str] = []
    if course is None:
        problems.append(f"course {course_code!r} is not in the catalogue")
    elif plan.language not in course.languages:
        offered = ", ".join(lang.value for lang in course.languages)
        problems.append(f"{course.code} is not given in {plan.language.value} (offered in: {offered})")
    if plan.ends_on < plan.starts_on:
        problems.append(f"ends_on {plan.ends_on} is before starts_on {plan.starts_on}")
    if plan.capacity < 1:
        problems.append("capacity must be at least 1")
    if plan.capacity < enrolled:
        problems.append(f"capacity {plan.capacity} is below the {enrolled} people enrolled")
    if plan.mode == "centre" and not plan.centre_id:
        problems.append("a session in a centre needs centre_id")
    if plan.mode == "online" and plan.centre_id:
        problems.append("an online session has no centre_id")
    return problems


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a person goes: a place in `session`, or the waitlist (of `session` when named, else of the
    course in their language)."""

    session: CourseSession | None
    waitlisted: bool


def place_in_session(sessions: list[CourseSession], *, language: Language, today: date, wanted: str | None = None) -> Placement:
    """The session a person asking for a course in `language` gets on `today` (`wanted`: the one the
    desk named). Raises a `DeskError` for a named session that cannot be asked for."""
    if wanted is not None:
        session = next((s for s in sessions if s.session_id == wanted), None)
        if session is None:
            raise DeskError(f"session {wanted!r} is not a session of this course", status=422)
        if session.language is not language:
            raise DeskError(f"session {wanted} is given in {session.language.value}, not {language.value}", status=422)
        if not session.admits_on(today):
            raise DeskError(f"session {wanted} takes nobody any more (it started on {session.starts_on})")
        return Placement(session, waitlisted=session.room == 0)
    upcoming = sorted(
        (s for s in sessions if s.language is language and s.starts_on > today),
        key=lambda s: (s.starts_on, s.session_id),
    )
    session = next((s for s in upcoming if s.room > 0), None)
    return Placement(session, waitlisted=session is None)
