"""What a person's own words say about their situation: equipment, internet, qualification, and
how long they have been looking for a job, in French, Dutch and English.

Pure: text in, facts out. `situation_from_text` reads the words of an e-mail and returns only the
facts it is sure of. It is conservative on purpose: a false "no computer" sends a person to the
wrong team, while a fact left unknown only means the advisor asks on the phone. So a statement
counts only when it is the writer's own, plain and unconditional:

- the text is cut into clauses (sentences, and their parts around commas and "mais", "maar",
  "but", "et", "and"...); a question, a condition ("si", "als", "if") or another person ("mon
  fils", "hij", "my wife") makes a clause say nothing;
- "I have ..." counts only in a clause without any negation ("je n'ai pas", "niet", "don't"), so
  "mon ordinateur est lent" or "I have a laptop that doesn't work" give nothing rather than no;
- a bare "pas d'ordinateur", "geen internet", "no diploma" counts unless the clause is about what
  a training needs or offers ("une formation sans ordinateur", "geen diploma nodig", "I want a
  course without a computer");
- statements that contradict each other leave the fact unknown;
- "no laptop" says nothing about a desktop, "no wifi" nothing about mobile data, "pas de
  connexion stable" nothing about having none: only plain words count.

`unemployed_since` is the latest date the words allow ("depuis 2 ans": two years before `today`;
"sinds 2023": 31 December 2023), so the length of unemployment is never overstated. "Pas le CESS"
and "I left school at 15" give the highest level consistent with them (lower secondary), for the
same reason.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import TypedDict

from intake.ivr import months_before
from schemas import Language, QualificationLevel

__all__ = ["SituationFacts", "situation_from_text"]

MAX_CHARS = 20_000


class SituationFacts(TypedDict, total=False):
    """The facts the text is sure of; a fact it says nothing (or nothing clear) about is absent."""

    qualification_level: QualificationLevel
    has_computer: bool
    has_internet: bool
    unemployed_since: date


# --- normalised text and clauses ------------------------------------------------------------


def _normalise(text: str) -> str:
    """Lowercase, no accents, apostrophes and hyphens as spaces: "Je n’ai pas d'ordi" -> "je n ai pas d ordi"."""
    text = unicodedata.normalize("NFKD", text[:MAX_CHARS])
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = re.sub(r"[\u2019'`\u00b4\u2018\u02bc\-\u2010\u2011]", " ", text)
    text = re.sub(r"[^\w\s?.!;:,]", " ", text)
    return re.sub(r"[^\S\n]+", " ", text)


_SENTENCE = re.compile(r"([^.!?;:,\n]*)([.!?;:,\n]|$)")
_CONJUNCTION = re.compile(
    r"\b(?:mais|maar|but|et|and|donc|alors|so|dus|car|because|omdat|parce que|puisque|however|toutefois|cependant)\b"
)


@dataclass(frozen=True, slots=True)
class _Clause:
    text: str
    question: bool


def _clauses(text: str) -> Iterator[_Clause]:
    for match in _SENTENCE.finditer(text):
        sentence, end = match.group(1), match.group(2)
        if not sentence.strip():
            continue
        for part in _CONJUNCTION.split(sentence):
            if part.strip():
                yield _Clause(f" {part.strip()} ", question=end == "?")


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


# A clause with one of these says nothing about the writer, whatever else it says.
_NOT_A_STATEMENT = _words(
    # questions and conditions
    r"si",
    r"s il",
    r"if",
    r"unless",
    r"whether",
    r"als",
    r"indien",
    r"wanneer",
    r"est ce",
    r"faut il",
    r"do you",
    r"can i",
    r"could i",
    r"kan ik",
    r"mag ik",
    r"is het",
    # other people
    r"mon (?:fils|mari|epoux|compagnon|frere|pere|ami|voisin)",
    r"ma (?:fille|femme|epouse|compagne|soeur|mere|amie|voisine)",
    r"mes (?:enfants|parents)",
    r"il",
    r"elle",
    r"ils",
    r"elles",
    r"mijn (?:zoon|dochter|man|vrouw|partner|broer|zus|vader|moeder|vriend|vriendin|kinderen|ouders)",
    r"hij",
    r"zij",
    r"ze",
    r"my (?:son|daughter|husband|wife|partner|brother|sister|father|mother|friend|kids|children|parents)",
    r"he",
    r"she",
    r"they",
    r"his",
    r"her",
)
# A bare "pas d'ordinateur" / "geen diploma" / "no computer" in a clause with one of these may be
# about what a training needs, offers or uses, or what the writer wants: it says nothing then.
_ABOUT_SOMETHING_ELSE = _words(
    r"besoin",
    r"faut",
    r"faudrait",
    r"necessaires?",
    r"obligatoires?",
    r"requise?s?",
    r"exigee?s?",
    r"imposee?s?",
    r"demande",
    r"demandee?s?",
    r"fournie?s?",
    r"pretee?s?",
    r"pretez",
    r"formations?",
    r"cours",
    r"veux",
    r"voudrais",
    r"souhaite",
    r"aimerais",
    r"prefere",
    r"utiliser",
    r"apprendre",
    r"acheter",
    r"nodig",
    r"vereist",
    r"verplicht",
    r"voorzien",
    r"lenen",
    r"opleidingen?",
    r"cursus(?:sen)?",
    r"wil",
    r"wilt",
    r"liever",
    r"gebruiken",
    r"leren",
    r"kopen",
    r"need",
    r"needs",
    r"needed",
    r"require",
    r"required",
    r"requires",
    r"necessary",
    r"mandatory",
    r"provide",
    r"provided",
    r"lend",
    r"borrow",
    r"loan",
    r"courses?",
    r"training",
    r"classe?s?",
    r"want",
    r"wants",
    r"prefer",
    r"use",
    r"learn",
    r"buy",
)
_NEGATION = _words(
    r"ne", r"n", r"pas", r"plus(?! de)", r"jamais", r"niet", r"geen", r"nooit", r"not", r"never", r"no", r"t", r"nor"
)


# --- the statements ---------------------------------------------------------------------------

_COMPUTER = r"(?:ordinateurs?|ordis?|pcs?|computers?)"
"""A computer, in a negative statement: not "laptop" or "portable" (the person may have a desktop)."""
_ANY_COMPUTER = r"(?:ordinateurs?(?: portables?)?|ordis?|pcs?|computers?|laptops?|desktops?|notebooks?|macbook)"
_INTERNET = (
    r"(?:internet|connexion internet|connexion|acces (?:a )?internet|internetverbinding|internetaansluiting"
    r"|internettoegang|toegang tot (?:het )?internet|internet connection|internet access|access to (?:the )?internet)"
)
_ANY_INTERNET = r"(?:" + _INTERNET + r"|wifi|wi fi)"
# Words after the noun that make it something else: "pas de connexion stable", "no computer skills".
_QUALIFIERS = frozenset(
    "portable portables skills skill experience knowledge literacy science course courses class classes training "
    "lessons basics kennis ervaring vaardigheden les lessen cursus cours formation stable fiable rapide suffisante "
    "assez bonne correcte avec stabiele snelle goede reliable fast good decent proper".split()
)
_ADJECTIVE = (
    r"(?:(?:old|own|small|new|used|second hand|secondhand|personal|vieil|vieux|petit|nouveau|propre"
    r"|oude?|eigen|kleine?|nieuwe?|tweedehands)\s+)?"
)

# French "je n'ai pas", "j'ai pas", "je n'ai plus", "je n'ai jamais eu", "je n'ai aucun".
_FR_I_HAVE_NO = (
    r"(?:\bj ?|\bje n |\bn )ai (?:toujours |encore )?(?:pas|plus|aucune?|jamais eu|point)"
    r"(?: (?:encore|vraiment|non plus|du tout))? (?:d un |d une |d |de |du |un |une |aucune? )?"
)
_FR_I_OWN_NO = r"\bje ne (?:possede|dispose) (?:pas|plus|d aucune?) (?:d un |d une |d |de )?"
_FR_BARE_NO = r"\b(?:pas|aucune?|sans|ni) (?:d un |d une |d |de |un |une )?"
_NL_I_HAVE_NO = r"\b(?:ik heb|heb ik) (?:(?:thuis|nog|ook|helaas|momenteel|nu|zelf) )*geen (?:eigen )?"
_NL_BARE_NO = r"\b(?:geen|zonder|noch) (?:eigen |een )?"
_EN_I_HAVE_NO = (
    r"\bi (?:(?:do not|don t|dont|did not|didn t) (?:have|own)|(?:have not|haven t|havent) got"
    r"|(?:have|ve got|ve) no|am without|m without)"
    r" (?:a |an |any |my own )?"
)
_EN_BARE_NO = r"\b(?:no|without|nor|neither) (?:a |an |any )?"
# "I don't have a computer or internet", "ik heb geen computer of internet", "je n'ai pas d'ordi ou d'internet".
_AND_NO_OTHER = (
    _EN_I_HAVE_NO + r"(?:\w+ ){1,2}(?:or|nor) (?:a |an |any )?",
    _NL_I_HAVE_NO + r"(?:\w+ ){1,2}(?:of|noch) (?:een )?",
    _FR_I_HAVE_NO + r"(?:\w+ ){1,2}(?:ni|ou) (?:d un |d une |d |de |un |une )?",
)


Value = bool | QualificationLevel | date


@dataclass(frozen=True, slots=True)
class _Statement:
    fact: str
    regex: re.Pattern[str]
    value: Callable[[re.Match[str], date], Value | None]
    affirmative: bool = False
    """Says "I have / I am": counts only in a clause without any negation."""
    bare: bool = False
    """A bare "pas d'ordinateur" without "I": says nothing in a clause about a training or a wish."""
    bound: bool = False
    """A qualification the person says they do not have more than ("no CESS", "no diploma")."""


def _is(value: Value) -> Callable[[re.Match[str], date], Value | None]:
    return lambda match, today: value


def _statements(fact: str, value: Value, noun: str, *, mine: tuple[str, ...], bare: tuple[str, ...]) -> list[_Statement]:
    found = [_Statement(fact, re.compile(prefix + noun + r"\b"), _is(value)) for prefix in mine]
    found += [_Statement(fact, re.compile(prefix + noun + r"\b"), _is(value), bare=True) for prefix in bare]
    return found


def _have(fact: str, value: Value, pattern: str) -> _Statement:
    return _Statement(fact, re.compile(pattern + r"\b"), _is(value), affirmative=True)


_EQUIPMENT: list[_Statement] = [
    *_statements(
        "has_computer",
        False,
        _COMPUTER,
        mine=(_FR_I_HAVE_NO, _FR_I_OWN_NO, _NL_I_HAVE_NO, _EN_I_HAVE_NO, r"\bje suis sans (?:un )?", *_AND_NO_OTHER),
        bare=(_FR_BARE_NO, _NL_BARE_NO, _EN_BARE_NO),
    ),
    *_statements(
        "has_internet",
        False,
        _INTERNET,
        mine=(_FR_I_HAVE_NO, _FR_I_OWN_NO, _NL_I_HAVE_NO, _EN_I_HAVE_NO, r"\bje suis sans (?:une )?", *_AND_NO_OTHER),
        bare=(_FR_BARE_NO, _NL_BARE_NO, _EN_BARE_NO),
    ),
    _have(
        "has_computer",
        True,
        r"\b(?:j ?ai (?:aussi |deja |bien )?(?:un|mon propre|mon) |je (?:possede|dispose d) (?:un|mon) "
        r"|(?:ik heb|heb ik) (?:(?:thuis|wel|al|ook|zelf) )*(?:een|mijn eigen|een eigen) |ik beschik over een "
        r"|i (?:have|ve got|have got|own|do have|also have|already have) (?:a|an|my own|my) )" + _ADJECTIVE + _ANY_COMPUTER,
    ),
    _have(
        "has_internet",
        True,
        r"\b(?:j ?ai (?:aussi |deja |bien )?(?:une |l |le |la |un )?|(?:ik heb|heb ik) (?:(?:thuis|wel|al|ook) )*(?:een |het )?"
        r"|i (?:have|ve got|have got|do have|also have|already have) (?:an |the )?)" + _ANY_INTERNET,
    ),
]

# --- qualifications ---------------------------------------------------------------------------

_L = QualificationLevel
_DIPLOMA = r"(?:diplomes?|diploma(?: s)?|qualifications?)"
# "pas de diplôme du secondaire": no CESS, rather than no diploma at all.
_OF_SECONDARY = (
    r" (?:du |de l |d |van het |van )?(?:secondaire|secundair|middelbaar|enseignement secondaire|high school|secondary school)"
)


def _left_school_at(match: re.Match[str], today: date) -> Value | None:
    """Leaving school at an age: the highest level reachable by then in Belgium (CEB at 12, CESS at 18)."""
    age = int(match.group("age"))
    if age < 6 or age >= 18:
        return None
    return _L.NONE if age < 12 else _L.PRIMARY if age < 14 else _L.LOWER_SECONDARY


def _q(
    value: QualificationLevel, pattern: str, *, bare: bool = False, bound: bool = False, affirmative: bool = False
) -> _Statement:
    return _Statement("qualification_level", re.compile(pattern), _is(value), affirmative=affirmative, bare=bare, bound=bound)


_QUALIFICATIONS: list[_Statement] = [
    # No diploma at all (not when a kind of diploma is named: "pas de diplôme belge" is unknown).
    _q(
        _L.NONE,
        _FR_I_HAVE_NO + _DIPLOMA + r"\b(?! (?:du|de|d|des|en|belge|reconnu|equivalent|universitaire|superieur))",
        bound=True,
    ),
    _q(
        _L.NONE,
        _NL_I_HAVE_NO + r"(?:enkel )?" + _DIPLOMA + r"\b(?! (?:van|secundair|middelbaar|hoger|in|belgisch|erkend))",
        bound=True,
    ),
    _q(_L.NONE, _EN_I_HAVE_NO + r"(?:formal )?" + _DIPLOMA + r"\b(?! (?:from|in|of))", bound=True),
    _q(
        _L.NONE,
        r"\b(?:sans|aucun|pas de) (?:aucun )?diplomes?\b"
        r"(?! (?:du|de|d|des|en|belge|reconnu|equivalent|universitaire|superieur|requis|exige|necessaire))",
        bare=True,
        bound=True,
    ),
    _q(
        _L.NONE,
        r"\b(?:geen|zonder) (?:enkel )?diploma(?: s)?\b(?! (?:van|secundair|middelbaar|hoger|in|belgisch|erkend|nodig|vereist))",
        bare=True,
        bound=True,
    ),
    _q(
        _L.NONE,
        r"\b(?:no|without any|without a|without) (?:formal )?(?:diploma|qualifications?)\b(?! (?:from|in|of|needed|required))",
        bare=True,
        bound=True,
    ),
    # No CESS, no secondary diploma, secondary school not finished: at most lower secondary.
    _q(_L.LOWER_SECONDARY, r"\b(?:pas|sans|jamais eu|pas obtenu|rate) (?:le |mon |de |d )?cess\b", bare=True, bound=True),
    _q(
        _L.LOWER_SECONDARY,
        r"\b(?:pas|aucun|sans|jamais eu) (?:de |d )?diplomes?" + _OF_SECONDARY + r"\b(?! superieur)",
        bare=True,
        bound=True,
    ),
    _q(
        _L.LOWER_SECONDARY,
        r"\b(?:pas|jamais) (?:termine|fini|acheve|eu) (?:mes |mon |le |l |les )?(?:ecole |etudes |enseignement )?secondaires?\b",
        bound=True,
    ),
    _q(_L.LOWER_SECONDARY, r"\bgeen (?:enkel )?diploma" + _OF_SECONDARY + r"\b", bare=True, bound=True),
    _q(
        _L.LOWER_SECONDARY,
        r"\b(?:middelbare? (?:school )?|secundair (?:onderwijs )?)(?:nooit |niet )"
        r"(?:afgemaakt|afgewerkt|afgerond|gehaald|beeindigd)\b",
        bound=True,
    ),
    _q(
        _L.LOWER_SECONDARY,
        r"\b(?:no|without a|without) (?:high school|secondary school) (?:diploma|qualification)\b",
        bare=True,
        bound=True,
    ),
    _q(
        _L.LOWER_SECONDARY,
        r"\bi (?:didn t|did not|never) (?:finish|complete|graduate from) (?:high|secondary) school\b",
        bound=True,
    ),
    _q(_L.LOWER_SECONDARY, r"\bi dropped out of (?:high |secondary )?school\b", bound=True),
    # Only a primary certificate ("je n'ai que le CEB", "alleen lager onderwijs", "only primary school").
    _q(
        _L.PRIMARY,
        r"\b(?:n ai que|j ?ai (?:juste|seulement|uniquement)) (?:le |mon )?(?:ceb|certificat d etudes de base|primaire)\b",
        bound=True,
    ),
    _q(_L.PRIMARY, r"\b(?:juste|seulement|uniquement) (?:le |mon )?(?:ceb|certificat d etudes de base)\b", bound=True),
    _q(
        _L.PRIMARY,
        r"\bik heb (?:alleen|enkel|maar|alleen maar|enkel maar) (?:het |mijn )?(?:getuigschrift )?"
        r"(?:basisonderwijs|lager onderwijs|lagere school)\b",
        bound=True,
    ),
    _q(
        _L.PRIMARY,
        r"\bi (?:only|just) (?:have|finished|completed) (?:a |my |the )?(?:primary school|primary education|elementary school)\b",
        bound=True,
    ),
    # Positive statements.
    _q(_L.LOWER_SECONDARY, r"\bj ?ai (?:obtenu |eu )?(?:le |mon )?(?:ce1d|ce2d)\b", affirmative=True),
    _q(
        _L.UPPER_SECONDARY,
        r"\b(?:j ?ai (?:obtenu |eu |reussi )?(?:le |mon )?|titulaire du |detent(?:eur|rice) du )cess\b",
        affirmative=True,
    ),
    _q(
        _L.UPPER_SECONDARY,
        r"\bj ?ai (?:un|mon|le) diplome (?:de fin )?(?:d etudes |de l enseignement |du )?secondaires?(?: superieur)?\b",
        affirmative=True,
    ),
    _q(
        _L.UPPER_SECONDARY,
        r"\bik heb (?:mijn|een|het) diploma (?:van het )?(?:hoger secundair|secundair|middelbaar)(?: onderwijs)?\b",
        affirmative=True,
    ),
    _q(_L.UPPER_SECONDARY, r"\bi (?:have|ve got|hold) (?:a|my) (?:high school|secondary school) diploma\b", affirmative=True),
    _q(_L.UPPER_SECONDARY, r"\bi (?:finished|completed|graduated from) (?:high|secondary) school\b", affirmative=True),
    _q(
        _L.HIGHER,
        r"\bj ?ai (?:un|une|mon|ma) (?:bachelier|bachelor|master|licence|graduat|diplome (?:universitaire"
        r"|de l universite|d etudes superieures|de l enseignement superieur|du superieur|de bachelier|de master))\b",
        affirmative=True,
    ),
    _q(
        _L.HIGHER,
        r"\bik heb (?:een|mijn) (?:bachelor|master|bachelordiploma|masterdiploma|universitair diploma"
        r"|diploma (?:hoger onderwijs|van de universiteit))\b",
        affirmative=True,
    ),
    _q(
        _L.HIGHER,
        r"\bi (?:have|ve got|hold) (?:a|an|my) (?:(?:bachelor s?|master s?|university|college) )?degree\b",
        affirmative=True,
    ),
    _q(_L.HIGHER, r"\bi (?:have|ve got|hold) (?:a|an|my) (?:bachelor s?|master s?)\b", affirmative=True),
    # Leaving school at an age.
    _Statement(
        "qualification_level",
        re.compile(r"\bi (?:left|quit) school (?:at|when i was) (?:the age of )?(?P<age>\d{1,2})\b"),
        _left_school_at,
        bound=True,
    ),
    _Statement(
        "qualification_level",
        re.compile(r"\b(?:quitte|arrete) (?:l ecole|les etudes|l enseignement) (?:a|a l age de) (?P<age>\d{1,2}) ans\b"),
        _left_school_at,
        bound=True,
    ),
    _Statement(
        "qualification_level",
        re.compile(r"\bop (?:mijn )?(?P<age>\d{1,2})(?:de|e| jaar)? (?:ben ik )?(?:gestopt met school|van school gegaan)\b"),
        _left_school_at,
        bound=True,
    ),
    _Statement(
        "qualification_level",
        re.compile(r"\b(?:gestopt met school|van school gegaan) (?:op|toen ik) (?:mijn )?(?P<age>\d{1,2})\b"),
        _left_school_at,
        bound=True,
    ),
]

# --- how long looking for a job ---------------------------------------------------------------

_NUMBERS = {
    "un": 1, "une": 1, "a": 1, "an": 1, "one": 1, "een": 1,
    "deux": 2, "two": 2, "twee": 2, "trois": 3, "three": 3, "drie": 3, "quatre": 4, "four": 4, "vier": 4,
    "cinq": 5, "five": 5, "vijf": 5, "six": 6, "zes": 6, "sept": 7, "seven": 7, "zeven": 7,
    "huit": 8, "eight": 8, "acht": 8, "neuf": 9, "nine": 9, "negen": 9, "dix": 10, "ten": 10, "tien": 10,
    "onze": 11, "eleven": 11, "elf": 11, "douze": 12, "twelve": 12, "twaalf": 12,
    "dix huit": 18, "eighteen": 18, "achttien": 18,
}  # fmt: skip
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            "janvier januari january jan", "fevrier februari february feb", "mars maart march mar",
            "avril april apr", "mai mei may", "juin juni june jun", "juillet juli july jul",
            "aout augustus august aug", "septembre september sep sept", "octobre oktober october oct",
            "novembre november nov", "decembre december dec",
        ),
        start=1,
    )
    for name in names.split()
}  # fmt: skip
_N = r"(?P<n>\d{1,3}|" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) + r")"
_UNIT = r"(?P<unit>ans?|annees?|mois|jaar|jaren|maand|maanden|years?|months?)"
_MORE_THAN = r"(?:plus de |au moins |meer dan |ruim |minstens |over |more than |at least )?"
_SINCE_DATE = (
    r"(?:(?:le |the )?(?:\d{1,2}(?:er|e|ste|de|st|nd|rd|th)? |debut |fin |begin |eind |early |late )?(?P<month>"
    + "|".join(_MONTHS)
    + r") )?(?P<year>(?:19|20)\d\d)"
)
_FR_JOBLESS = (
    r"(?:au chomage|demandeu(?:r|se) d emploi|chomeu(?:r|se)|sans (?:emploi|travail|boulot)"
    r"|inscrite? (?:chez|a|aupres d) (?:actiris|l onem|le forem|forem|vdab)|en recherche d emploi"
    r"|a la recherche d (?:un )?(?:emploi|travail))"
)
_NL_JOBLESS = (
    r"(?:werkloos|werkzoekende?|zonder (?:werk|job)|ingeschreven (?:bij|als) (?:actiris|vdab|de rva|werkzoekende)"
    r"|op zoek naar (?:werk|een job|een baan))"
)
_EN_JOBLESS = (
    r"(?:unemployed|out of work|jobless|(?:a )?job ?seeker|job hunting|job seeking|looking for (?:a )?(?:job|work)"
    r"|registered (?:with|at) actiris|without (?:a )?job)"
)


def _for_a_while(match: re.Match[str], today: date) -> Value | None:
    raw = match.group("n")
    count = int(raw) if raw.isdigit() else _NUMBERS[raw]
    unit = match.group("unit")
    months = count if unit.startswith(("mois", "maand", "month")) else count * 12
    return months_before(today, months) if 0 < months <= 600 else None


def _since(match: re.Match[str], today: date) -> Value | None:
    year = int(match.group("year"))
    month = _MONTHS[match.group("month")] if match.group("month") else 12
    if year < today.year - 60 or date(year, month if match.group("month") else 1, 1) > today:
        return None
    # The latest day the words allow: the end of the month, or of the year.
    return min(date(year, month, calendar.monthrange(year, month)[1]), today)


def _job(pattern: str, value: Callable[[re.Match[str], date], Value | None]) -> _Statement:
    return _Statement("unemployed_since", re.compile(pattern + r"\b"), value, affirmative=True)


_DURATIONS: list[_Statement] = [
    _job(_FR_JOBLESS + r" depuis " + _MORE_THAN + _N + " " + _UNIT, _for_a_while),
    _job(_FR_JOBLESS + r" depuis " + _SINCE_DATE, _since),
    _job(
        r"\b(?:ca|cela) fait "
        + _MORE_THAN
        + _N
        + " "
        + _UNIT
        + r" que je (?:suis "
        + _FR_JOBLESS
        + r"|cherche (?:du|un) (?:travail|emploi|boulot))",
        _for_a_while,
    ),
    _job(_NL_JOBLESS + r" (?:sinds|vanaf|sedert) " + _SINCE_DATE, _since),
    _job(_NL_JOBLESS + r" (?:sinds|al|voor|gedurende|sedert) " + _MORE_THAN + _N + " " + _UNIT, _for_a_while),
    _job(
        r"\b(?:ben|zijn|was) (?:nu )?(?:al |reeds )?" + _MORE_THAN + _N + " " + _UNIT + r" (?:lang )?" + _NL_JOBLESS, _for_a_while
    ),
    _job(r"\b(?:ben|zijn) (?:al )?(?:sinds|vanaf) " + _SINCE_DATE + " " + _NL_JOBLESS, _since),
    _job(r"\b(?:sinds|vanaf) " + _SINCE_DATE + r" (?:ben ik )?" + _NL_JOBLESS, _since),
    _job(_EN_JOBLESS + r" (?:for|for the past|for the last) " + _MORE_THAN + _N + " " + _UNIT, _for_a_while),
    _job(_EN_JOBLESS + r" since " + _SINCE_DATE, _since),
]

_STATEMENTS: tuple[_Statement, ...] = (*_EQUIPMENT, *_QUALIFICATIONS, *_DURATIONS)


# --- reading a text -------------------------------------------------------------------------


# Internet on a phone is not internet at home: "j'ai internet sur mon téléphone", "geen internet op mijn gsm".
_ON_A_PHONE = frozenset("gsm telephone smartphone phone mobile portable telefoon 4g 5g data".split())


def _qualifier_follows(fact: str, clause: str, end: int) -> bool:
    following = clause[end:].split()
    return any(word in _QUALIFIERS for word in following[:2]) or (
        fact == "has_internet" and any(word in _ON_A_PHONE for word in following[:3])
    )


def situation_from_text(text: str, language: Language | None = None, *, today: date) -> SituationFacts:
    """The situation facts `text` states plainly; `today` is the day it was written (for durations).

    Every language's statements are looked for whatever `language` says: Brussels e-mails mix them,
    and a short one is easily taken for French. `language` is accepted for callers that know it and
    kept for statements that would need it."""
    del language
    seen: dict[str, list[tuple[Value, _Statement]]] = {}
    for clause in _clauses(_normalise(text)):
        if clause.question or _NOT_A_STATEMENT.search(clause.text):
            continue
        about_something_else = _ABOUT_SOMETHING_ELSE.search(clause.text) is not None
        negated = _NEGATION.search(clause.text) is not None
        for statement in _STATEMENTS:
            if (statement.bare and about_something_else) or (statement.affirmative and negated):
                continue
            for match in statement.regex.finditer(clause.text):
                if statement.fact in ("has_computer", "has_internet") and _qualifier_follows(
                    statement.fact, clause.text, match.end()
                ):
                    continue
                value = statement.value(match, today)
                if value is not None:
                    seen.setdefault(statement.fact, []).append((value, statement))
    return _decide(seen)


def _decide(seen: dict[str, list[tuple[Value, _Statement]]]) -> SituationFacts:
    facts = SituationFacts()
    for name in ("has_computer", "has_internet"):
        values = {value for value, _ in seen.get(name, [])}
        if len(values) == 1:
            facts[name] = bool(values.pop())
    levels = [(value, s) for value, s in seen.get("qualification_level", []) if isinstance(value, QualificationLevel)]
    if levels:
        order = list(QualificationLevel)
        highest = max((value for value, _ in levels), key=order.index)
        says_less = any(s.bound for _, s in levels)
        # "No diploma, just the CEB" is the CEB; "no CESS" with "I have a degree" is a contradiction.
        if not (says_less and highest.has_secondary_certificate):
            facts["qualification_level"] = highest
    dates = [value for value, _ in seen.get("unemployed_since", []) if isinstance(value, date)]
    if dates:
        facts["unemployed_since"] = max(dates)  # the shortest length stated: never overstated
    return facts
