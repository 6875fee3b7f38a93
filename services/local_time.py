"""Dates and times as people in Brussels read them, in French, Dutch and English: what job seekers'
messages and public pages print (`mardi 3 mars 2026 à 14h30`). Pure, no locale of the machine."""

from __future__ import annotations

from datetime import date, datetime

from services.calendar import BRUSSELS

__all__ = ["MONTHS", "WEEKDAYS", "format_date", "format_datetime", "format_time"]

_DEFAULT = "fr"

WEEKDAYS = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "nl": (
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.astimezone(BRUSSELS).date()
    if isinstance(value, date):
        return value
    if len(value) == len("2026-03-03"):
        return date.fromisoformat(value)
    return _as_datetime(value).date()


def _as_datetime(value: datetime | str) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a message shows only timezone-aware instants")
    return at.astimezone(BRUSSELS)


def format_date(value: date | str, language: str) -> str:
    """`mardi 3 mars 2026`, `dinsdag 3 maart 2026`, `Tuesday 3 March 2026` (1er in French)."""
    lang = language if language in MONTHS else _DEFAULT
    day = _as_date(value)
    number = "1er" if lang == "fr" and day.day == 1 else str(day.day)
    return f"{WEEKDAYS[lang][day.weekday()]} {number} {MONTHS[lang][day.month - 1]} {day.year}"


def format_time(value: datetime | str, language: str) -> str:
    """`14h30`, `14.30 uur`, `14:30`, in Brussels time."""
    at = _as_datetime(value)
    if language == "nl":
        return f"{at.hour:02d}.{at.minute:02d} uur"
    if language == "en":
        return f"{at.hour:02d}:{at.minute:02d}"
    return f"{at.hour}h{at.minute:02d}"


def format_datetime(value: datetime | str, language: str) -> str:
    """`mardi 3 mars 2026 à 14h30`, `dinsdag 3 maart 2026 om 14.30 uur`, `Tuesday 3 March 2026 at 14:30`."""
    lang = language if language in MONTHS else _DEFAULT
    at = _as_datetime(value)
    joiner = {"fr": "à", "nl": "om", "en": "at"}[lang]
    return f"{format_date(at.date(), lang)} {joiner} {format_time(at, lang)}"
