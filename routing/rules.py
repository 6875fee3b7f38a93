"""Routing's declarative rule set: which team takes a request, as versioned data, not code branches.

`data/rules.yaml` lists rules evaluated top to bottom, the first whose `when` holds wins, and a
mandatory `default` (no `when`) applies when none does, like a TaskRouter workflow. A `when` is a
condition of `routing.conditions` (its grammar is there); each evaluation says which tests
matched, so that the advisor reads why. The same file holds the priority weights (`priority:`,
`routing.weights`) so that one version number pins every input of a routing decision. This
module is the rule set and its loader; it scores nothing (`routing.priority` does).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from routing.conditions import Condition, Facts, RoutingState
from routing.sla import SlaPolicy
from routing.text import NonBlank
from routing.weights import PriorityWeights
from schemas import Channel, Language, Target, TrainingRequestReceived
from services.catalogue import Catalogue, load_catalogue

__all__ = [
    "DEFAULT_PATH",
    "PLACEHOLDERS",
    "DefaultRule",
    "DeskPolicy",
    "Explanation",
    "Quotas",
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


class RuleSetError(ValueError):
    """The rule-set file cannot be used; the message names the file, the rule and the fault."""


# --- Rules and the rule set ----------------------------------------------------------


class Explanation(BaseModel):
    """What the advisor reads about a decision, in each language; may use `PLACEHOLDERS`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fr: NonBlank
    nl: NonBlank
    en: NonBlank

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


class DeskPolicy(BaseModel):
    """How offers and calls are paced: the `desk:` section of the policy document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reservation_timeout: timedelta = Field(default=timedelta(minutes=2), gt=timedelta(0))
    """How long a worker has to accept an offer before it goes to someone else."""
    escalate_after: timedelta | None = timedelta(minutes=30)
    """Queued this long with no eligible worker: the pool widens (backups, then supervisors)."""
    retry_after_no_answer: timedelta = Field(default=timedelta(hours=2), gt=timedelta(0))
    """When to call again after a call nobody answered, in opening time of the calendar (`routing.attempts`)."""
    partner_reminder_after: timedelta = Field(default=timedelta(days=1), gt=timedelta(0))
    """How long the desk waits for a referring partner's answer before it is reminded (counted as the
    promise is: in `working_days` mode each 24 h is one working day, see `routing.sla.later_by`)."""
    max_attempts: PositiveInt = 3
    """Unanswered calls in a row after which the request is closed as unreachable and the person told in writing."""


class Quotas(BaseModel):
    """Places per year: the `quotas:` section of the policy document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digital_divide_per_year: NonNegativeInt = 350
    """Job seekers the digital-divide programme takes each year (the seed's figure)."""


class RuleSet(BaseModel):
    """Routing's one versioned policy document: the ordered rules and their default, the priority
    weights and ageing, the callback promise (`sla`), the desk's pacing and the quotas.

    Routing and the analysts' what-if read the same document, and every decision records its
    `version` (`rule_set_version`), so a decision can be replayed under the policy that made it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: NonBlank
    rules: tuple[Rule, ...] = ()
    default: DefaultRule
    priority: PriorityWeights = PriorityWeights()
    sla: SlaPolicy = SlaPolicy(mode="working_days")
    desk: DeskPolicy = DeskPolicy()
    quotas: Quotas = Quotas()

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
        course = self.catalogue.course(request.requested_course) if request.requested_course else None
        facts = Facts.of(request, state, now, course_kind=course.kind if course is not None else None)
        for rule in self.rules:
            matched = rule.when.test(facts)
            if matched is not None:
                return self._match(rule, matched, request)
        return self._match(self.default, (), request)

    def _match(self, rule: Rule | DefaultRule, matched: tuple[str, ...], request: TrainingRequestReceived) -> RuleMatch:
        course = self.catalogue.course(request.requested_course) if request.requested_course else None
        explanations = {}
        for language in Language:
            values = {
                # A channel newer than this code (see `Channel`) is named as it came.
                "channel": _CHANNEL_NAMES[language].get(request.channel, request.channel.value),
                "requested_course": (course.title_in(language) if course is not None else (request.requested_course or "-")),
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
