"""The points a priority score adds up: the `priority:` section of the rule set, as data.

`routing.priority` scores a request with these weights; `routing.rules` only carries them, so
that one rule-set version pins every input of a routing decision.
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PrivateAttr, model_validator

from routing.text import NonBlank, compile_phrases, fold_text
from schemas import Language, QualificationLevel

__all__ = ["PriorityWeights", "QualificationWeights"]


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
            raise ValueError("qualification points must not increase with the qualification: " + " >= ".join(order))
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
    language_need_terms: tuple[NonBlank, ...] = _LANGUAGE_NEED_TERMS
    """Words in the need that say the person wants to learn French or Dutch."""
    phone: NonNegativeInt = 5
    """Callers were promised a callback within 48 hours."""
    vulnerable: NonNegativeInt = 30
    """The seed's particular attention to the least qualified and most vulnerable: added once when the
    person has no secondary-school certificate, or no computer or no internet at home. Large enough that
    the small parts (an unknown qualification's middle value, a language need, a phone call) never
    outweigh it: at equal waiting and unemployment, a vulnerable person is called first."""
    ageing_per_hour: float = Field(default=2.0, ge=0)
    ageing_cap: NonNegativeInt | None = 130
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
        least_vulnerable = self.vulnerable + min(self.no_computer, self.no_internet, self.qualification.lower_secondary)
        most_of_the_others = self.qualification.unknown + self.language_need + self.phone
        if least_vulnerable <= most_of_the_others:
            raise ValueError(
                f"vulnerable + its smallest fact ({least_vulnerable}) must exceed an unknown qualification + a language "
                f"need + a phone call ({most_of_the_others}): the small parts must not outrank the particular attention"
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._language_pattern = compile_phrases(self.language_need_terms)

    def mentions_language_need(self, need: str) -> bool:
        return self._language_pattern.search(fold_text(need)) is not None
