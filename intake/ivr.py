"""The free line's voice menu (IVR): which key means what, and what a caller's keys tell us.

`MENU` is the one table the telephony team builds the menu from: each question, its prompt in
French, Dutch and English, and the key (one digit) of each answer. docs/phone-ivr.md is written
from it (a unit test checks that every prompt and key there is the table's). Both webhooks read
answers through it: the generic JSON's `ivr` object gives each answer as the key the caller
pressed or as the answer's name, a Twilio-style form as one `ivr_<question>` parameter per question.

Pure: answers and the day of the call in, facts out. A key the table does not know, or no key at
all, leaves its fact unknown; it never costs the caller the request. Unknown facts add nothing to
the priority, so a caller who skipped the menu is called back like before it existed.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from schemas import Language, QualificationLevel
from services.calendar import BRUSSELS, BrusselsCalendar

__all__ = [
    "CALLBACK_WINDOWS",
    "MENU",
    "Answer",
    "CallbackPart",
    "IvrFacts",
    "Question",
    "callback_window",
    "facts_from_ivr",
    "months_before",
]

CallbackPart = Literal["morning", "afternoon"]
"""When the caller asked to be called back: the next working day's morning or afternoon."""

CALLBACK_WINDOWS: Mapping[str, tuple[time, time]] = {
    "morning": (time(9, 0), time(12, 30)),
    "afternoon": (time(13, 0), time(17, 15)),
}
"""The windows the phone menu offers, in Brussels time, within the line's opening hours."""

AnswerValue = Language | QualificationLevel | bool | int | str | None
"""What an answer means: a language, a qualification, yes/no, a job-seeking band's lower bound in months,
or a part of the day to be called back in (`CALLBACK_WINDOWS`)."""


@dataclass(frozen=True, slots=True)
class Answer:
    key: str
    """The digit the caller presses."""
    name: str
    """The answer's name in the generic JSON (`ivr.qualification: "upper_secondary"`)."""
    value: AnswerValue
    """What it means; None for "I don't know", which leaves the fact unknown."""
    label: str
    """The answer in a few English words, for the documentation."""


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    """The key of the generic JSON's `ivr` object; the Twilio parameter is `ivr_<name>`."""
    fact: str | None
    """The `TrainingRequestReceived` field the answer sets (None: the language, not a situation fact)."""
    prompts: Mapping[Language, str]
    answers: tuple[Answer, ...]

    @property
    def parameter(self) -> str:
        return f"ivr_{self.name}"

    def answer(self, given: object) -> Answer | None:
        """The answer `given` as a key ("4", 4) or a name ("upper_secondary"; for yes/no also true/false)."""
        if isinstance(given, bool):
            given = "yes" if given else "no"
        if not isinstance(given, str | int) or (isinstance(given, str) and len(given) > 40):
            return None
        wanted = str(given).strip().lower()
        return next((a for a in self.answers if wanted in (a.key, a.name)), None)


_DONT_KNOW_FR = "Vous ne savez pas : tapez 0."
_DONT_KNOW_NL = "Weet u het niet: druk 0."
_DONT_KNOW_EN = "If you don't know, press 0."

MENU: tuple[Question, ...] = (
    Question(
        name="language",
        fact=None,
        prompts={
            Language.FR: "Pour le français, tapez 1.",
            Language.NL: "Voor Nederlands, druk 2.",
            Language.EN: "For English, press 3.",
        },
        answers=(
            Answer("1", "fr", Language.FR, "French"),
            Answer("2", "nl", Language.NL, "Dutch"),
            Answer("3", "en", Language.EN, "English"),
        ),
    ),
    Question(
        name="qualification",
        fact="qualification_level",
        prompts={
            Language.FR: "Quel est votre diplôme le plus élevé ? Aucun diplôme : tapez 1. Le certificat d'études de "
            "base, le CEB : tapez 2. Le secondaire inférieur : tapez 3. Le secondaire supérieur, le CESS : tapez 4. "
            "Des études supérieures : tapez 5. " + _DONT_KNOW_FR,
            Language.NL: "Wat is uw hoogste diploma? Geen diploma: druk 1. Het getuigschrift basisonderwijs: druk 2. "
            "Lager secundair onderwijs: druk 3. Hoger secundair onderwijs: druk 4. Hoger onderwijs: druk 5. " + _DONT_KNOW_NL,
            Language.EN: "What is your highest school qualification? No diploma, press 1. The primary school "
            "certificate, press 2. Lower secondary, press 3. Upper secondary, the CESS, press 4. Higher education, "
            "press 5. " + _DONT_KNOW_EN,
        },
        answers=(
            Answer("1", QualificationLevel.NONE.value, QualificationLevel.NONE, "no diploma"),
            Answer("2", QualificationLevel.PRIMARY.value, QualificationLevel.PRIMARY, "primary (CEB)"),
            Answer("3", QualificationLevel.LOWER_SECONDARY.value, QualificationLevel.LOWER_SECONDARY, "lower secondary"),
            Answer("4", QualificationLevel.UPPER_SECONDARY.value, QualificationLevel.UPPER_SECONDARY, "upper secondary (CESS)"),
            Answer("5", QualificationLevel.HIGHER.value, QualificationLevel.HIGHER, "higher education"),
            Answer("0", "unknown", None, "does not know"),
        ),
    ),
    Question(
        name="computer",
        fact="has_computer",
        prompts={
            Language.FR: "Avez-vous un ordinateur à la maison ? Oui : tapez 1. Non : tapez 2. " + _DONT_KNOW_FR,
            Language.NL: "Hebt u thuis een computer? Ja: druk 1. Nee: druk 2. " + _DONT_KNOW_NL,
            Language.EN: "Do you have a computer at home? Yes, press 1. No, press 2. " + _DONT_KNOW_EN,
        },
        answers=(
            Answer("1", "yes", True, "yes"),
            Answer("2", "no", False, "no"),
            Answer("0", "unknown", None, "does not know"),
        ),
    ),
    Question(
        name="internet",
        fact="has_internet",
        prompts={
            Language.FR: "Avez-vous Internet à la maison ? Oui : tapez 1. Non : tapez 2. " + _DONT_KNOW_FR,
            Language.NL: "Hebt u thuis internet? Ja: druk 1. Nee: druk 2. " + _DONT_KNOW_NL,
            Language.EN: "Do you have internet at home? Yes, press 1. No, press 2. " + _DONT_KNOW_EN,
        },
        answers=(
            Answer("1", "yes", True, "yes"),
            Answer("2", "no", False, "no"),
            Answer("0", "unknown", None, "does not know"),
        ),
    ),
    Question(
        name="job_seeker",
        fact="unemployed_since",
        prompts={
            Language.FR: "Depuis combien de temps cherchez-vous un emploi ? Moins de six mois : tapez 1. De six mois "
            "à un an : tapez 2. De un à deux ans : tapez 3. Plus de deux ans : tapez 4. Vous ne cherchez pas "
            "d'emploi, ou vous ne savez pas : tapez 0.",
            Language.NL: "Hoe lang zoekt u al werk? Minder dan zes maanden: druk 1. Zes maanden tot een jaar: druk 2. "
            "Een tot twee jaar: druk 3. Meer dan twee jaar: druk 4. Zoekt u geen werk, of weet u het niet: druk 0.",
            Language.EN: "How long have you been looking for a job? Less than six months, press 1. Six months to a "
            "year, press 2. One to two years, press 3. More than two years, press 4. If you are not looking for a "
            "job, or don't know, press 0.",
        },
        # The value is the band's lower bound in months: `unemployed_since` is that many months before
        # the call, the latest date the answer allows, so the length is never overstated.
        answers=(
            Answer("1", "under_6_months", 0, "less than 6 months"),
            Answer("2", "6_to_12_months", 6, "6 to 12 months"),
            Answer("3", "12_to_24_months", 12, "1 to 2 years"),
            Answer("4", "over_24_months", 24, "more than 2 years"),
            Answer("0", "unknown", None, "not a job seeker, or does not know"),
        ),
    ),
    Question(
        name="callback",
        fact=None,
        prompts={
            Language.FR: "Quand voulez-vous qu'on vous rappelle ? Le prochain jour ouvrable, le matin, entre 9 heures "
            "et midi et demi : tapez 1. L'après-midi, entre 13 heures et 17 heures 15 : tapez 2. "
            "Peu importe : tapez 0.",
            Language.NL: "Wanneer mogen we u terugbellen? De volgende werkdag, 's ochtends, tussen 9 uur en half een: "
            "druk 1. 's Middags, tussen 13 uur en kwart over vijf: druk 2. Maakt niet uit: druk 0.",
            Language.EN: "When should we call you back? The next working day, in the morning, between 9 and 12:30, "
            "press 1. In the afternoon, between 1 pm and 5:15 pm, press 2. Any time, press 0.",
        },
        answers=(
            Answer("1", "morning", "morning", "next working day, 9:00-12:30"),
            Answer("2", "afternoon", "afternoon", "next working day, 13:00-17:15"),
            Answer("0", "any_time", None, "any time"),
        ),
    ),
)

QUESTIONS: Mapping[str, Question] = {question.name: question for question in MENU}


@dataclass(frozen=True, slots=True)
class IvrFacts:
    """What a caller's keys say; None where they say nothing."""

    language: Language | None = None
    facts: Mapping[str, object] = field(default_factory=dict)
    """`TrainingRequestReceived` field -> value, for the questions answered with a known key."""
    unrecognised: tuple[str, ...] = ()
    """Questions answered with a key the menu does not have (a menu out of step with `MENU`)."""
    callback: CallbackPart | None = None
    """When the caller asked to be called back (`callback_window` makes it a window); None: any time."""


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier, or that month's last day when it is shorter."""
    total = day.year * 12 + day.month - 1 - months
    year, month = divmod(total, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def facts_from_ivr(given: Mapping[str, object], called_on: date) -> IvrFacts:
    """The facts of the answers `given` by question name (absent, None or "" = not answered).

    `called_on` is the call's day in Brussels: a job-seeking band counts back from it.
    """
    language: Language | None = None
    callback: CallbackPart | None = None
    facts: dict[str, object] = {}
    unrecognised: list[str] = []
    for question in MENU:
        raw = given.get(question.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        answer = question.answer(raw)
        if answer is None:
            unrecognised.append(question.name)
            continue
        value = answer.value
        if value is None:  # "I don't know"
            continue
        if isinstance(value, Language):
            language = value
        elif question.name == "callback" and value in CALLBACK_WINDOWS:
            callback = "morning" if value == "morning" else "afternoon"
        elif question.fact == "unemployed_since" and isinstance(value, int) and not isinstance(value, bool):
            facts[question.fact] = months_before(called_on, value)
        elif question.fact is not None:
            facts[question.fact] = value
    return IvrFacts(language=language, facts=facts, unrecognised=tuple(unrecognised), callback=callback)


def callback_window(part: CallbackPart, called_at: datetime, calendar: BrusselsCalendar) -> tuple[datetime, datetime]:
    """The window a caller chose with `part`: that part of the first working day after the call's day
    in Brussels (weekends, public holidays and the calendar's closures skipped), in Brussels time.

    The next working day, not the same day: a call at 8:00 asking for "the morning" could mean today,
    but the promise is counted from the call, and tomorrow is what the prompt says.
    """
    day = called_at.astimezone(BRUSSELS).date() + timedelta(days=1)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    start, end = CALLBACK_WINDOWS[part]
    return datetime.combine(day, start, BRUSSELS), datetime.combine(day, end, BRUSSELS)
