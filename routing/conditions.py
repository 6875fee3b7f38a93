"""The condition language of the rule set's `when`, and the facts about a request it tests.

A condition is a small tree (`all`, `any`, `not` and field tests on the request); each test
says what of it matched, so that the advisor reads why. Grammar, one key per mapping::

    all: [<condition>, ...]          any: [<condition>, ...]        not: <condition>
    channel: [phone, email, web]     language: [fr, nl, en]
    qualification_level: [none, primary, lower_secondary, upper_secondary, higher, unknown]
    has_computer: false              has_internet: false             needs_triage: true
    requested_course: present|absent requested_course_kind: [basic_skills, software_path, ...]
    partner: [cite-des-metiers]      need_mentions_any: ["reconversion", "quel métier", ...]
    unemployed_for_months_at_least: 12                               digital_divide_open: true
    kind: [training_request, learner_question]

A fact the request does not give (`has_computer` unset, no `unemployed_since`…) never matches a
test: unknown is not "false", and the rule falls through to the next one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, NonNegativeInt, PrivateAttr, StrictBool, Tag

from routing.text import NonBlank, compile_phrases, fold_text, months_between
from schemas import KnownChannel, Language, QualificationLevel, RequestKind, Target, TrainingRequestReceived
from services.catalogue import CourseKind

__all__ = ["Condition", "Facts", "Matched", "RoutingState"]


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
class Facts:
    """The request's facts as conditions test them, computed once per evaluation."""

    request: TrainingRequestReceived
    digital_divide_open: bool
    course_kind: CourseKind | None
    need: str
    partner: str | None
    unemployed_months: int | None

    @classmethod
    def of(cls, request: TrainingRequestReceived, state: RoutingState, now: datetime, *, course_kind: CourseKind | None) -> Self:
        """`course_kind` is the requested course's, looked up in the rule set's catalogue (None if unknown)."""
        partner = request.channel_details.get("partner")
        return cls(
            request=request,
            digital_divide_open=state.digital_divide_open,
            course_kind=course_kind,
            need=fold_text(request.need),
            partner=partner.strip().casefold() if isinstance(partner, str) and partner.strip() else None,
            unemployed_months=(months_between(request.unemployed_since, now) if request.unemployed_since is not None else None),
        )


# --- The condition language ----------------------------------------------------------

Matched = tuple[str, ...] | None
"""What a test returns: None when it does not hold, else descriptions of what matched."""


def _values(values: Sequence[Any]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


class _Condition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    KEY: ClassVar[str]

    def test(self, facts: Facts) -> Matched:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class AllOf(_Condition):
    KEY: ClassVar[str] = "all"
    all_: tuple[Condition, ...] = Field(alias="all", min_length=1)

    def test(self, facts: Facts) -> Matched:
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

    def test(self, facts: Facts) -> Matched:
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

    def test(self, facts: Facts) -> Matched:
        return ("not " + self.not_.describe(),) if self.not_.test(facts) is None else None

    def describe(self) -> str:
        return "not " + self.not_.describe()


class ChannelIn(_Condition):
    KEY: ClassVar[str] = "channel"
    channel: tuple[KnownChannel, ...] = Field(min_length=1)

    def test(self, facts: Facts) -> Matched:
        value = facts.request.channel
        return (f"channel={value.value}",) if value in self.channel else None

    def describe(self) -> str:
        return f"channel: {_values(self.channel)}"


class KindIn(_Condition):
    KEY: ClassVar[str] = "kind"
    kind: tuple[RequestKind, ...] = Field(min_length=1)

    def test(self, facts: Facts) -> Matched:
        value = facts.request.kind
        return (f"kind={value.value}",) if value in self.kind else None

    def describe(self) -> str:
        return f"kind: {_values(self.kind)}"


class LanguageIn(_Condition):
    KEY: ClassVar[str] = "language"
    language: tuple[Language, ...] = Field(min_length=1)

    def test(self, facts: Facts) -> Matched:
        value = facts.request.language
        return (f"language={value.value}",) if value in self.language else None

    def describe(self) -> str:
        return f"language: {_values(self.language)}"


class QualificationIn(_Condition):
    KEY: ClassVar[str] = "qualification_level"
    qualification_level: tuple[QualificationLevel | Literal["unknown"], ...] = Field(min_length=1)

    def test(self, facts: Facts) -> Matched:
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

    def test(self, facts: Facts) -> Matched:
        return self._check(self.KEY, self.has_computer, facts.request.has_computer)

    def describe(self) -> str:
        return f"has_computer: {str(self.has_computer).lower()}"


class HasInternet(_BoolTest):
    KEY: ClassVar[str] = "has_internet"
    has_internet: StrictBool

    def test(self, facts: Facts) -> Matched:
        return self._check(self.KEY, self.has_internet, facts.request.has_internet)

    def describe(self) -> str:
        return f"has_internet: {str(self.has_internet).lower()}"


class NeedsTriage(_BoolTest):
    KEY: ClassVar[str] = "needs_triage"
    needs_triage: StrictBool

    def test(self, facts: Facts) -> Matched:
        return self._check(self.KEY, self.needs_triage, facts.request.needs_triage)

    def describe(self) -> str:
        return f"needs_triage: {str(self.needs_triage).lower()}"


class DigitalDivideOpen(_BoolTest):
    KEY: ClassVar[str] = "digital_divide_open"
    digital_divide_open: StrictBool

    def test(self, facts: Facts) -> Matched:
        return self._check(self.KEY, self.digital_divide_open, facts.digital_divide_open)

    def describe(self) -> str:
        return f"digital_divide_open: {str(self.digital_divide_open).lower()}"


class CourseKindIn(_Condition):
    KEY: ClassVar[str] = "requested_course_kind"
    requested_course_kind: tuple[CourseKind, ...] = Field(min_length=1)

    def test(self, facts: Facts) -> Matched:
        kind = facts.course_kind
        return (f"requested_course_kind={kind}",) if kind in self.requested_course_kind else None

    def describe(self) -> str:
        return f"requested_course_kind: {_values(self.requested_course_kind)}"


class RequestedCourse(_Condition):
    KEY: ClassVar[str] = "requested_course"
    requested_course: Literal["present", "absent"]

    def test(self, facts: Facts) -> Matched:
        present = bool(facts.request.requested_course and facts.request.requested_course.strip())
        state = "present" if present else "absent"
        return (f"requested_course={state}",) if state == self.requested_course else None

    def describe(self) -> str:
        return f"requested_course: {self.requested_course}"


class PartnerIn(_Condition):
    KEY: ClassVar[str] = "partner"
    partner: tuple[NonBlank, ...] = Field(min_length=1)

    def test(self, facts: Facts) -> Matched:
        partner = facts.partner
        wanted = {p.casefold() for p in self.partner}
        return (f"partner={partner}",) if partner is not None and partner in wanted else None

    def describe(self) -> str:
        return f"partner: {_values(self.partner)}"


class NeedMentionsAny(_Condition):
    KEY: ClassVar[str] = "need_mentions_any"
    need_mentions_any: tuple[NonBlank, ...] = Field(min_length=1)

    _pattern: re.Pattern[str] = PrivateAttr()
    _by_folded: dict[str, str] = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._pattern = compile_phrases(self.need_mentions_any)
        self._by_folded = {" ".join(re.findall(r"\w+", fold_text(p))): p for p in self.need_mentions_any}

    def test(self, facts: Facts) -> Matched:
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

    def test(self, facts: Facts) -> Matched:
        months = facts.unemployed_months
        if months is None or months < self.unemployed_for_months_at_least:
            return None
        return (f"unemployed for {months} months",)

    def describe(self) -> str:
        return f"unemployed_for_months_at_least: {self.unemployed_for_months_at_least}"


# Spelled out (not built from a tuple) so that type checkers read it as a type.
_TaggedCondition: TypeAlias = (
    Annotated[AllOf, Tag(AllOf.KEY)]
    | Annotated[AnyOf, Tag(AnyOf.KEY)]
    | Annotated[Not, Tag(Not.KEY)]
    | Annotated[ChannelIn, Tag(ChannelIn.KEY)]
    | Annotated[KindIn, Tag(KindIn.KEY)]
    | Annotated[LanguageIn, Tag(LanguageIn.KEY)]
    | Annotated[QualificationIn, Tag(QualificationIn.KEY)]
    | Annotated[HasComputer, Tag(HasComputer.KEY)]
    | Annotated[HasInternet, Tag(HasInternet.KEY)]
    | Annotated[CourseKindIn, Tag(CourseKindIn.KEY)]
    | Annotated[RequestedCourse, Tag(RequestedCourse.KEY)]
    | Annotated[PartnerIn, Tag(PartnerIn.KEY)]
    | Annotated[NeedsTriage, Tag(NeedsTriage.KEY)]
    | Annotated[NeedMentionsAny, Tag(NeedMentionsAny.KEY)]
    | Annotated[UnemployedForMonthsAtLeast, Tag(UnemployedForMonthsAtLeast.KEY)]
    | Annotated[DigitalDivideOpen, Tag(DigitalDivideOpen.KEY)]
)
_CONDITION_CLASSES: tuple[type[_Condition], ...] = tuple(get_args(tagged)[0] for tagged in get_args(_TaggedCondition))
_CONDITION_KEYS = tuple(cls.KEY for cls in _CONDITION_CLASSES)


def _check_condition(value: Any) -> Any:
    if isinstance(value, _Condition):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"a condition is a mapping such as `channel: [phone]`, not {value!r}")
    if len(value) != 1:
        raise ValueError(
            f"a condition has exactly one key, got {sorted(map(str, value)) or 'none'}; combine tests with `all:` or `any:`"
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


Condition: TypeAlias = Annotated[_TaggedCondition, Discriminator(_condition_key), BeforeValidator(_check_condition)]
"""A `when` clause: one of the condition models above, told apart by its single key."""

for _cls in (AllOf, AnyOf, Not):
    _cls.model_rebuild()
