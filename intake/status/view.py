"""The status page's content, built from the projection's entries: pure, so each line can be tested.

`build_view` turns a request's entry (and the person's, for exams) into what the page shows, in the
person's language: their words, the team and why, the promise in Brussels time, and the history in
plain sentences. It reads only the fields the projection keeps, none of which is internal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from intake.status.slots import Window
from intake.status.texts import HELPLINE, TEAM_NAMES, rule_reason, text
from schemas import Language
from services.calendar import BRUSSELS
from services.local_time import format_date, format_datetime, format_time

__all__ = ["HistoryLine", "StatusView", "build_view", "format_day", "format_moment", "history_lines", "window_label"]


def format_day(day: date, language: Language) -> str:
    """`mardi 8 décembre 2026`, `dinsdag 8 december 2026`, `Tuesday 8 December 2026`: as the messages say it."""
    return format_date(day, language.value)


def format_moment(at: datetime, language: Language) -> str:
    """A day and a time in Brussels, as the messages write them: `mardi 8 décembre 2026 à 17h15`."""
    return format_datetime(at, language.value)


def window_label(start: datetime, end: datetime, language: Language) -> str:
    """`mardi 8 décembre 2026, de 8h30 à 12h30`."""
    day = format_day(start.astimezone(BRUSSELS).date(), language)
    begin, until = format_time(start, language.value), format_time(end, language.value)
    if language is Language.FR:
        return f"{day}, de {begin} à {until}"
    if language is Language.NL:
        return f"{day}, van {begin.removesuffix(' uur')} tot {until}"
    return f"{day}, from {begin} to {until}"


def _team(target: str | None, language: Language) -> str:
    return TEAM_NAMES[target][language] if target in TEAM_NAMES else TEAM_NAMES["advisors"][language]


@dataclass(frozen=True, slots=True)
class HistoryLine:
    at: datetime
    when: str
    text: str


def _line_text(line: Mapping[str, Any], language: Language) -> str | None:
    what = line["what"]
    if what == "received":
        return text(language, "event_received")
    if what == "routed":
        return text(language, "event_routed", team=_team(line.get("team"), language))
    if what == "attempt":
        return text(language, f"outcome_{line['outcome']}")
    if what in ("waiting_information", "information_received", "completed", "abandoned", "certificate"):
        return text(language, what)
    if what == "closed":
        return text(language, f"closed_{line['disposition']}")
    if what == "slot":
        return text(language, "slot_event", when=window_label(line["start"], line["end"], language))
    if what == "withdrawn":
        return text(language, "withdrawn_event")
    if what == "corrected":
        return text(language, "corrected_event")
    if what == "contact_confirmed":
        return text(language, "contact_confirmed_event")
    if what == "enrolled":
        if line.get("starts_on"):
            day = format_day(date.fromisoformat(line["starts_on"]), language)
            return text(language, "enrolled_from", course=line["course"], day=day)
        return text(language, "enrolled", course=line["course"])
    if what == "waitlisted":
        return text(language, "waitlisted", course=line["course"])
    if what == "exam_offered":
        return text(
            language,
            "exam_offered",
            when=format_moment(line["exam_at"], language),
            by=format_moment(line["respond_by"], language),
        )
    if what == "exam_scheduled":
        return text(language, "exam_scheduled", when=format_moment(line["exam_at"], language), place=line["place"])
    return None  # a line of a later version this one cannot say: left out rather than shown raw


def history_lines(lines: list[Mapping[str, Any]], language: Language) -> list[HistoryLine]:
    """Each event in a plain sentence, oldest first; the same event twice is one line."""
    shown: list[HistoryLine] = []
    seen: set[str] = set()
    for line in sorted(lines, key=lambda item: item["at"]):
        if line["id"] in seen:
            continue
        seen.add(line["id"])
        sentence = _line_text(line, language)
        if sentence is not None:
            shown.append(HistoryLine(line["at"], format_moment(line["at"], language), sentence))
    return shown


@dataclass(frozen=True, slots=True)
class StatusView:
    language: Language
    received_on: str | None
    need: str | None
    requested_course: str | None
    team: str | None
    reason: str | None
    promise: str | None
    slot: str | None
    history: list[HistoryLine]
    closed: bool
    contact_unverified: bool
    helpline: str
    windows: list[tuple[str, str, bool]] = field(default_factory=list)
    """(key, label, late) of each window offered."""


def build_view(
    entry: Mapping[str, Any],
    person: Mapping[str, Any] | None,
    *,
    need: str | None,
    language: Language,
    windows: Sequence[Window] = (),
    course_title: str | None = None,
) -> StatusView:
    """What the page shows about a request's entry. `need`: the person's words, already unsealed (None
    when their key is gone); `person`: their entry (exam events), attached to each of their requests;
    `course_title`: the requested course's title in the person's language (else its code is shown)."""
    target = entry.get("target")
    team = _team(target, language) if target else None
    deadline = entry.get("callback_deadline")
    closed = bool(entry.get("closed") or entry.get("withdrawn_at"))
    promise = None
    if team and not closed:
        promise = (
            text(language, "promise", team=team[:1].upper() + team[1:], when=format_moment(deadline, language))
            if deadline
            else text(language, "promise_no_deadline", team=team[:1].upper() + team[1:])
        )
    slot = entry.get("slot")
    lines = list(entry.get("history", [])) + list((person or {}).get("history", []))
    received_at = entry.get("received_at")
    return StatusView(
        language=language,
        received_on=text(language, "received_on", when=format_moment(received_at, language)) if received_at else None,
        need=need,
        requested_course=course_title or entry.get("requested_course"),
        team=text(language, "team", team=team) if team else None,
        reason=rule_reason(entry.get("rule_id"), language) if team else None,
        promise=promise,
        slot=text(language, "slot_chosen", when=window_label(slot["start"], slot["end"], language))
        if slot and not closed
        else None,
        history=history_lines(lines, language),
        closed=closed,
        contact_unverified=bool(entry.get("contact_unverified")),
        helpline=text(language, "helpline", phone=HELPLINE),
        windows=[(window.key, window_label(window.start, window.end, language), window.late) for window in windows],
    )
