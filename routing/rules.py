"""Routing's declarative rule set: which team takes a request, as versioned data, not code branches.

`data/rules.yaml` lists rules evaluated top to bottom, the first whose `when` holds wins, and a
mandatory `default` (no `when`) applies when none does, like a TaskRouter workflow. A `when` is a
small condition language (`all`, `any`, `not` and field tests on the request); each evaluation
says which tests matched, so that the advisor reads why. The same file holds the priority
weights (`priority:`) so that one version number pins every input of a routing decision.

Grammar of a condition, one key per mapping::

    all: [<condition>, ...]          any: [<condition>, ...]        not: <condition>
    channel: [phone, email, web]     language: [fr, nl, en]
    qualification_level: [none, primary, lower_secondary, upper_secondary, higher, unknown]
    has_computer: false              has_internet: false             needs_triage: true
    requested_course: present|absent requested_course_kind: [basic_skills, software_path, ...]
    partner: [cite-des-metiers]      need_mentions_any: ["reconversion", "quel métier", ...]
    unemployed_for_months_at_least: 12                               digital_divide_open: true

A fact the request does not give (`has_computer` unset, no `unemployed_since`…) never matches a
test: unknown is not "false", and the rule falls through to the next one.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, Self, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    PrivateAttr,
    StrictBool,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas import Channel, KnownChannel, Language, QualificationLevel, Target, TrainingRequestReceived
from services.catalogue import Catalogue, CourseKind, load_catalogue

__all__ = [
    "DEFAULT_PATH",
    "PLACEHOLDERS",
    "DefaultRule",
    "Explanation",
    "PriorityWeights",
    "QualificationWeights",
    "RoutingState",
    "Rule",
    "RuleMatch",
    "RuleSet",
    "RuleSetError",
    "load_rules",
    "parse_rules",
]

DEFAULT_PATH = Path(__file__).with_name("data") / "rules.yaml"

PLACEHOLDERS: tuple[str, ...] = ("channel", "requested_course")
"""Placeholders an explanation may use, filled from the request in the explanation's language."""

_CHANNEL_NAMES: Mapping[Language, Mapping[Channel, str]] = MappingProxyType(
    {
        Language.FR: {Channel.PHONE: "téléphone", Channel.EMAIL: "e-mail", Channel.WEB: "formulaire web"},
        Language.NL: {Channel.PHONE: "telefoon", Channel.EMAIL: "e-mail", Channel.WEB: "webformulier"},
        Language.EN: {Channel.PHONE: "phone", Channel.EMAIL: "e-mail", Channel.WEB: "web form"},
    }
)

_RuleId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9-]*$")]
_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class RuleSetError(ValueError):
    """The rule-set file cannot be used; the message names the file, the rule and the fault."""


# --- Text and dates, shared with routing.priority ------------------------------------


def fold_text(text: str) -> str:
    """Lowercase without accents, typographic apostrophes made plain: 'Métier' ~ 'metier'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("\u2019", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def compile_phrases(phrases: Sequence[str]) -> re.Pattern[str]:
    """One pattern matching any phrase as whole words in folded text.

    Words of a phrase may be separated by any run of non-word characters, so "e-learning"
    also finds "e learning" and "quel métier" finds "quel-métier", but "orientation" does
    not find "désorientation".
    """
    alternatives = []
    for phrase in phrases:
        words = re.findall(r"\w+", fold_text(phrase))
        if words:
            alternatives.append(r"[\W_]+".join(map(re.escape, words)))
    if not alternatives:
        return re.compile(r"(?!)")  # matches nothing
    # Longest first, so the reported match is the most specific phrase.
    alternatives.sort(key=len, reverse=True)
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)")


def months_between(since: date, now: datetime) -> int:
    """Whole calendar months from `since` to `now`'s date; 0 if `since` is in the future."""
    today = now.date()
    months = (today.year - since.year) * 12 + (today.month - since.month)
    if today.day < since.day:
        months -= 1
    return max(months, 0)


# --- Priority weights (scored by routing.priority) ----------------------------------


class QualificationWeights(BaseModel):
    """Points by highest school qualification; no certificate at all weighs most."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    none: NonNegativeInt = 40
    primary: NonNegativeInt = 35
    lower_secondary: NonNegativeInt = 30
    unknown: NonNegativeInt = 15
    """Between those with and without the CESS: not knowing is no reason to wait longest."""
    upper_secondary: NonNegativeInt = 0
    higher: NonNegativeInt = 0

    @model_validator(mode="after")
    def _most_vulnerable_first(self) -> Self:
        order = ("none", "primary", "lower_secondary", "unknown", "upper_secondary", "higher")
        points = [getattr(self, name) for name in order]
        if points != sorted(points, reverse=True):
            raise ValueError(
                "qualification points must not increase with the qualification: "
                + " >= ".join(order)
            )
        return self

    def points(self, level: QualificationLevel | None) -> int:
        return int(getattr(self, level.value if level is not None else "unknown"))


_LANGUAGE_NEED_TERMS = (
    # fr
    "apprendre le français",
    "apprendre le néerlandais",
    "cours de français",
    "cours de néerlandais",
    "parler français",
    "parler néerlandais",
    "français langue étrangère",
    "fle",
    "alphabétisation",
    # nl
    "frans leren",
    "nederlands leren",
    "cursus frans",
    "cursus nederlands",
    "les frans",
    "les nederlands",
    # en
    "learn french",
    "learn dutch",
    "french course",
    "french classes",
    "dutch course",
    "dutch classes",
)


class PriorityWeights(BaseModel):
    """Points of each priority part, ageing and bands; the `priority:` section of the rule set.

    Every part is a plain sum so that an advisor can read the score back from its parts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    qualification: QualificationWeights = QualificationWeights()
    no_computer: NonNegativeInt = 15
    no_internet: NonNegativeInt = 10
    unemployed_12_months: NonNegativeInt = 10
    unemployed_24_months: NonNegativeInt = 20
    """Replaces, not adds to, the 12-month points."""
    language_need: NonNegativeInt = 10
    main_language: Language = Language.FR
    """Language most advisors work in; someone served in another one needs more arranging."""
    language_need_terms: tuple[_Text, ...] = _LANGUAGE_NEED_TERMS
    """Words in the need that say the person wants to learn French or Dutch."""
    phone: NonNegativeInt = 5
    """Callers were promised a callback within 48 hours."""
    ageing_per_hour: float = Field(default=2.0, ge=0)
    ageing_cap: NonNegativeInt | None = 100
    """At least the largest possible score, so an old request overtakes any fresh one."""
    high_band_from: int = 50
    medium_band_from: int = 25

    _language_pattern: re.Pattern[str] = PrivateAttr()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.unemployed_24_months < self.unemployed_12_months:
            raise ValueError("unemployed_24_months must be at least unemployed_12_months")
        if self.medium_band_from > self.high_band_from:
            raise ValueError("medium_band_from must not exceed high_band_from")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._language_pattern = compile_phrases(self.language_need_terms)

    def mentions_language_need(self, need: str) -> bool:
        return self._language_pattern.search(fold_text(need)) is not None


# --- What a rule may look at ---------------------------------------------------------


@dataclass(frozen=True)
class RoutingState:
    """What a decision may depend on beyond the request, given by the caller.

    The decision reads nothing else (no clock, no database), so a replay passes the state of
    the time and gets the same answer; a what-if analysis passes another one.
    """

    digital_divide_open: bool = True
    """Whether the digital-divide programme takes people now (it stopped during lockdown)."""
    team_sizes: Mapping[Target, int] = field(default_factory=lambda: MappingProxyType({}))
    """People per team, for what-if analyses; empty when not modelled. Rules do not read it."""

    def __post_init__(self) -> None:
        # A read-only copy: the caller's dict changing later must not change a replay.
        object.__setattr__(self, "team_sizes", MappingProxyType(dict(self.team_sizes)))

    def __hash__(self) -> int:
        return hash((self.digital_divide_open, frozenset(self.team_sizes.items())))


@dataclass(frozen=True)
class _Facts:
    """The request's facts as conditions test them, computed once per evaluation."""

    request: TrainingRequestReceived
    digital_divide_open: bool
    course_kind: CourseKind | None
    need: str
    partner: str | None
    unemployed_months: int | None


# --- The condition language ----------------------------------------------------------

Matched = tuple[str, ...] | None
"""What a test returns: None when it does not hold, else descriptions of what matched."""


def _values(values: Sequence[Any]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


class _Condition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    KEY: ClassVar[str]

    def test(self, facts: _Facts) -> Matched:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class AllOf(_Condition):
    KEY: ClassVar[str] = "all"
    all_: tuple[Condition, ...] = Field(alias="all", min_length=1)

    def test(self, facts: _Facts) -> Matched:
        matched: list[str] = []
        for condition in self.all_:
            result = condition.test(facts)
            if result is None:
                return None
            matched.extend(result)
        return tuple(matched)

    def describe(self) -> str:
        return "all(" + "; ".join(c.describe() for c in self.all_) + ")"


class AnyOf(_Condition):
    KEY: ClassVar[str] = "any"
    any_: tuple[Condition, ...] = Field(alias="any", min_length=1)

    def test(self, facts: _Facts) -> Matched:
        # Every branch is tested, not just up to the first that holds: the explanation
        # lists all the reasons (no computer *and* no internet), not an arbitrary one.
        results = [r for r in (c.test(facts) for c in self.any_) if r is not None]
        if not results:
            return None
        return tuple(m for r in results for m in r)

    def describe(self) -> str:
        return "any(" + "; ".join(c.describe() for c in self.any_) + ")"


class Not(_Condition):
    KEY: ClassVar[str] = "not"
    not_: Condition = Field(alias="not")

    def test(self, facts: _Facts) -> Matched:
        return ("not " + self.not_.describe(),) if self.not_.test(facts) is None else None

    def describe(self) -> str:
        return "not " + self.not_.describe()


class ChannelIn(_Condition):
    KEY: ClassVar[str] = "channel"
    channel: tuple[KnownChannel, ...] = Field(min_length=1)

    def test(self, facts: _Facts) -> Matched:
        value = facts.request.channel
        return (f"channel={value.value}",) if value in self.channel else None

    def describe(self) -> str:
        return f"channel: {_values(self.channel)}"


class LanguageIn(_Condition):
    KEY: ClassVar[str] = "language"
    language: tuple[Language, ...] = Field(min_length=1)

    def test(self, facts: _Facts) -> Matched:
        value = facts.request.language
        return (f"language={value.value}",) if value in self.language else None

    def describe(self) -> str:
        return f"language: {_values(self.language)}"


class QualificationIn(_Condition):
    KEY: ClassVar[str] = "qualification_level"
    qualification_level: tuple[QualificationLevel | Literal["unknown"], ...] = Field(min_length=1)

    def test(self, facts: _Facts) -> Matched:
        level = facts.request.qualification_level
        value = level.value if level is not None else "unknown"
        return (f"qualification_level={value}",) if value in self.qualification_level else None

    def describe(self) -> str:
        return f"qualification_level: {_values(self.qualification_level)}"


class _BoolTest(_Condition):
    def _check(self, name: str, expected: bool, actual: bool | None) -> Matched:
        return (f"{name}={str(actual).lower()}",) if actual is not None and actual == expected else None


class HasComputer(_BoolTest):
    KEY: ClassVar[str] = "has_computer"
    has_computer: StrictBool

    def test(self, facts: _Facts) -> Matched:
        return self._check(self.KEY, self.has_computer, facts.request.has_computer)

    def describe(self) -> str:
        return f"has_computer: {str(self.has_computer).lower()}"


class HasInternet(_BoolTest):
    KEY: ClassVar[str] = "has_internet"
    has_internet: StrictBool

    def test(self, facts: _Facts) -> Matched:
        return self._check(self.KEY, self.has_internet, facts.request.has_internet)

    def describe(self) -> str:
        return f"has_internet: {str(self.has_internet).lower()}"


class NeedsTriage(_BoolTest):
    KEY: ClassVar[str] = "needs_triage"
    needs_triage: StrictBool

    def test(self, facts: _Facts) -> Matched:
        return self._check(self.KEY, self.needs_triage, facts.request.needs_triage)

    def describe(self) -> str:
        return f"needs_triage: {str(self.needs_triage).lower()}"


class DigitalDivideOpen(_BoolTest):
    KEY: ClassVar[str] = "digital_divide_open"
    digital_divide_open: StrictBool

    def test(self, facts: _Facts) -> Matched:
        return self._check(self.KEY, self.digital_divide_open, facts.digital_divide_open)

    def describe(self) -> str:
        return f"digital_divide_open: {str(self.digital_divide_open).lower()}"


class CourseKindIn(_Condition):
    KEY: ClassVar[str] = "requested_course_kind"
    requested_course_kind: tuple[CourseKind, ...] = Field(min_length=1)

    def test(self, facts: _Facts) -> Matched:
        kind = facts.course_kind
        return (f"requested_course_kind={kind}",) if kind in self.requested_course_kind else None

    def describe(self) -> str:
        return f"requested_course_kind: {_values(self.requested_course_kind)}"


class RequestedCourse(_Condition):
    KEY: ClassVar[str] = "requested_course"
    requested_course: Literal["present", "absent"]

    def test(self, facts: _Facts) -> Matched:
        present = bool(facts.request.requested_course and facts.request.requested_course.strip())
        state = "present" if present else "absent"
        return (f"requested_course={state}",) if state == self.requested_course else None

    def describe(self) -> str:
        return f"requested_course: {self.requested_course}"


class PartnerIn(_Condition):
    KEY: ClassVar[str] = "partner"
    partner: tuple[_Text, ...] = Field(min_length=1)

    def test(self, facts: _Facts) -> Matched:
        partner = facts.partner
        wanted = {p.casefold() for p in self.partner}
        return (f"partner={partner}",) if partner is not None and partner in wanted else None

    def describe(self) -> str:
        return f"partner: {_values(self.partner)}"


class NeedMentionsAny(_Condition):
    KEY: ClassVar[str] = "need_mentions_any"
    need_mentions_any: tuple[_Text, ...] = Field(min_length=1)

    _pattern: re.Pattern[str] = PrivateAttr()
    _by_folded: dict[str, str] = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._pattern = compile_phrases(self.need_mentions_any)
        self._by_folded = {" ".join(re.findall(r"\w+", fold_text(p))): p for p in self.need_mentions_any}

    def test(self, facts: _Facts) -> Matched:
        hit = self._pattern.search(facts.need)
        if hit is None:
            return None
        # Report the rule's own phrase, never the person's words (they may be personal data).
        phrase = self._by_folded.get(" ".join(re.findall(r"\w+", hit.group())), hit.group())
        return (f"need mentions {phrase!r}",)

    def describe(self) -> str:
        return f"need_mentions_any: {_values(self.need_mentions_any)}"


class UnemployedForMonthsAtLeast(_Condition):
    KEY: ClassVar[str] = "unemployed_for_months_at_least"
    unemployed_for_months_at_least: NonNegativeInt

    def test(self, facts: _Facts) -> Matched:
        months = facts.unemployed_months
        if months is None or months < self.unemployed_for_months_at_least:
            return None
        return (f"unemployed for {months} months",)

    def describe(self) -> str:
        return f"unemployed_for_months_at_least: {self.unemployed_for_months_at_least}"


_CONDITION_CLASSES: tuple[type[_Condition], ...] = (
    AllOf,
    AnyOf,
    Not,
    ChannelIn,
    LanguageIn,
    QualificationIn,
    HasComputer,
    HasInternet,
    CourseKindIn,
    RequestedCourse,
    PartnerIn,
    NeedsTriage,
    NeedMentionsAny,
    UnemployedForMonthsAtLeast,
    DigitalDivideOpen,
)
_CONDITION_KEYS = tuple(cls.KEY for cls in _CONDITION_CLASSES)


def _check_condition(value: Any) -> Any:
    if isinstance(value, _Condition):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"a condition is a mapping such as `channel: [phone]`, not {value!r}")
    if len(value) != 1:
        raise ValueError(
            f"a condition has exactly one key, got {sorted(map(str, value)) or 'none'}; "
            "combine tests with `all:` or `any:`"
        )
    (key,) = value
    if key not in _CONDITION_KEYS:
        raise ValueError(f"unknown condition {key!r}; known conditions: {', '.join(_CONDITION_KEYS)}")
    return value


def _condition_key(value: Any) -> str | None:
    if isinstance(value, _Condition):
        return value.KEY
    if isinstance(value, Mapping) and len(value) == 1:
        return str(next(iter(value)))
    return None


Condition = Annotated[
    Union[tuple(Annotated[cls, Tag(cls.KEY)] for cls in _CONDITION_CLASSES)],  # type: ignore[valid-type]  # noqa: UP007
    Discriminator(_condition_key),
    BeforeValidator(_check_condition),
]
"""A `when` clause: one of the condition models above, told apart by its single key."""

for _cls in (AllOf, AnyOf, Not):
    _cls.model_rebuild()


# --- Rules and the rule set ----------------------------------------------------------


class Explanation(BaseModel):
    """What the advisor reads about a decision, in each language; may use `PLACEHOLDERS`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fr: _Text
    nl: _Text
    en: _Text

    @field_validator("fr", "nl", "en")
    @classmethod
    def _known_placeholders(cls, text: str) -> str:
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text) if name is not None]
        except ValueError as error:
            raise ValueError(f"malformed placeholder in {text!r}: {error}") from None
        known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        for name, spec, conv in fields:
            if name not in PLACEHOLDERS or spec or conv:
                shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                raise ValueError(f"unknown placeholder {shown}; known placeholders: {known}")
        return text

    def render(self, language: Language, values: Mapping[str, str]) -> str:
        return str(getattr(self, language.value)).format_map(values)


class _RuleBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    target: Target
    explanation: Explanation


class DefaultRule(_RuleBase):
    """The rule applied when no other rule matches; it has no condition."""

    id: _RuleId = "default"

    @model_validator(mode="before")
    @classmethod
    def _no_when(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "when" in data:
            raise ValueError("the default rule applies when no other rule does: it has no `when`")
        return data


class Rule(_RuleBase):
    """A rule: when its condition holds (and no rule above it did), `target` takes the request."""

    id: _RuleId
    when: Condition


@dataclass(frozen=True)
class RuleMatch:
    """The rule that decided, what of its condition matched, and its explanation filled in."""

    rule_id: str
    target: Target
    matched_conditions: tuple[str, ...]
    explanations: Mapping[Language, str]

    def explanation(self, language: Language) -> str:
        return self.explanations[language]


class RuleSet(BaseModel):
    """A versioned, ordered rule set with its default and priority weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: _Text
    rules: tuple[Rule, ...] = ()
    default: DefaultRule
    priority: PriorityWeights = PriorityWeights()

    _catalogue: Catalogue | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _has_default(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "default" not in data:
            raise ValueError("the rule set has no `default` rule (the one applied when no rule matches)")
        return data

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        seen: set[str] = set()
        for rule_id in [r.id for r in self.rules] + [self.default.id]:
            if rule_id in seen:
                raise ValueError(f"rule id {rule_id!r} is used twice; ids name decisions in events")
            seen.add(rule_id)
        return self

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue course codes are looked up in (bound by `load_rules`)."""
        return self._catalogue if self._catalogue is not None else load_catalogue()

    def with_catalogue(self, catalogue: Catalogue) -> RuleSet:
        bound = self.model_copy()
        bound._catalogue = catalogue
        return bound

    def evaluate(self, request: TrainingRequestReceived, *, state: RoutingState, now: datetime) -> RuleMatch:
        """The first rule whose condition holds, else the default; pure in its arguments."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        facts = self._facts(request, state, now)
        for rule in self.rules:
            matched = rule.when.test(facts)
            if matched is not None:
                return self._match(rule, matched, request)
        return self._match(self.default, (), request)

    def _facts(self, request: TrainingRequestReceived, state: RoutingState, now: datetime) -> _Facts:
        course = self.catalogue.course(request.requested_course) if request.requested_course else None
        partner = request.channel_details.get("partner")
        return _Facts(
            request=request,
            digital_divide_open=state.digital_divide_open,
            course_kind=course.kind if course is not None else None,
            need=fold_text(request.need),
            partner=partner.strip().casefold() if isinstance(partner, str) and partner.strip() else None,
            unemployed_months=(
                months_between(request.unemployed_since, now) if request.unemployed_since is not None else None
            ),
        )

    def _match(self, rule: Rule | DefaultRule, matched: tuple[str, ...], request: TrainingRequestReceived) -> RuleMatch:
        course = self.catalogue.course(request.requested_course) if request.requested_course else None
        explanations = {}
        for language in Language:
            values = {
                # A channel newer than this code (see `Channel`) is named as it came.
                "channel": _CHANNEL_NAMES[language].get(request.channel, request.channel.value),
                "requested_course": (
                    course.title_in(language) if course is not None else (request.requested_course or "-")
                ),
            }
            explanations[language] = rule.explanation.render(language, values)
        return RuleMatch(
            rule_id=rule.id,
            target=rule.target,
            matched_conditions=tuple(dict.fromkeys(matched)),  # without repeats, in order
            explanations=MappingProxyType(explanations),
        )


# --- Loading -------------------------------------------------------------------------


def parse_rules(data: Any, *, source: str = "<rules>", catalogue: Catalogue | None = None) -> RuleSet:
    """Validate already-parsed YAML into a `RuleSet`; `RuleSetError` names the rule at fault."""
    if not isinstance(data, Mapping):
        raise RuleSetError(f"{source}: a rule set is a mapping with `version`, `rules` and `default`")
    try:
        rule_set = RuleSet.model_validate(data)
    except ValidationError as error:
        problems = "\n".join(f"  - {_describe_error(e, data)}" for e in error.errors())
        raise RuleSetError(f"{source}: invalid rule set\n{problems}") from None
    return rule_set.with_catalogue(catalogue if catalogue is not None else load_catalogue())


def load_rules(path: Path | str | None = None, *, catalogue: Catalogue | None = None) -> RuleSet:
    """The rule set in `path` (the shipped `data/rules.yaml` by default, read once and cached)."""
    if path is None and catalogue is None:
        return _load_shipped()
    return _load(Path(path) if path is not None else DEFAULT_PATH, catalogue)


@cache
def _load_shipped() -> RuleSet:
    return _load(DEFAULT_PATH, None)


def _load(path: Path, catalogue: Catalogue | None) -> RuleSet:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise RuleSetError(f"{path}: cannot read the rule set: {error}") from None
    return parse_rules(data, source=str(path), catalogue=catalogue)


def _describe_error(error: Any, data: Mapping[str, Any]) -> str:
    loc: list[Any] = list(error["loc"])
    where = "rule set"
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        raw_rules = data.get("rules")
        raw = raw_rules[loc[1]] if isinstance(raw_rules, list) and loc[1] < len(raw_rules) else None
        rule_id = raw.get("id") if isinstance(raw, Mapping) else None
        where = f"rule {rule_id!r} (rules[{loc[1]}])" if rule_id else f"rules[{loc[1]}]"
        loc = loc[2:]
    elif loc and loc[0] == "default":
        raw = data.get("default")
        rule_id = raw.get("id", "default") if isinstance(raw, Mapping) else "default"
        where, loc = f"default rule {rule_id!r}", loc[1:]
    # The tagged union repeats the tag in the location (`when.all.all.0`): show it once.
    path: list[str] = []
    for part in map(str, loc):
        if not path or path[-1] != part:
            path.append(part)
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind == "extra_forbidden" and path:
        message, path = f"unknown key {path[-1]!r}", path[:-1]
    elif kind == "missing" and path:
        message, path = f"missing key {path[-1]!r}", path[:-1]
    elif kind in ("enum", "literal_error"):
        message = f"{message}, not {error['input']!r}"
    return f"{where}{' at ' + '.'.join(path) if path else ''}: {message}"
