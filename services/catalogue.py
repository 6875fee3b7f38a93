"""The catalogue of online courses and certifications, shared by intake (recognising a course
named in an e-mail or form), routing (enrolment) and certification.

Loaded from `data/catalogue.yaml` (or a file given by the caller); pure data, no I/O beyond reading it.

Every course and certification states its provenance (`Provenance`): a quote of the seed, the 2020
answer to parliamentary question n°229 (`docs/seed/question-229-2020.fr.txt`), that it rests on,
and the fields whose values are example data the seed does not state (vendor names, capacities...).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas import Language

DEFAULT_PATH = Path(__file__).with_name("data") / "catalogue.yaml"

CourseKind = Literal["basic_skills", "software_path", "design_path", "digital_skills"]


class Provenance(BaseModel):
    """Where an entry's facts come from: `seed`, a quote of the seed that the entry rests on, and
    `example`, the fields whose values are example data, not in the seed (every other fact field
    is what the quote says, in the catalogue's words)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: str = Field(min_length=1)
    example: tuple[str, ...] = ()


class _WithProvenance(BaseModel):
    model_config = ConfigDict(frozen=True)

    NOT_FACTS: ClassVar[frozenset[str]] = frozenset({"code", "provenance"})
    provenance: Provenance

    @classmethod
    def facts(cls) -> frozenset[str]:
        """The fields that state something about the offer (not identifiers nor matching aids)."""
        return frozenset(cls.model_fields) - cls.NOT_FACTS

    @model_validator(mode="after")
    def _example_fields_exist(self) -> _WithProvenance:
        if unknown := sorted(set(self.provenance.example) - self.facts()):
            raise ValueError(f"{getattr(self, 'code', '?')}: example names no fact field: {', '.join(unknown)}")
        return self

    def is_example(self, field: str) -> bool:
        """Whether `field`'s value is example data, not in the seed."""
        return field in self.provenance.example


class Course(_WithProvenance):
    # Keywords are matching aids that follow the title, not facts of their own.
    NOT_FACTS: ClassVar[frozenset[str]] = frozenset({"code", "provenance", "keywords"})

    code: str
    kind: CourseKind
    title: dict[Language, str]
    keywords: tuple[str, ...]
    languages: tuple[Language, ...]
    capacity: int
    certification: str | None = None

    def title_in(self, language: Language) -> str:
        return self.title.get(language) or self.title[Language.FR]


class Certification(_WithProvenance):
    code: str
    title: str
    family: str
    open: bool


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    quotes: dict[str, str] = {}
    """The passages of the seed the entries' provenance quotes (named, so that entries share them)."""
    courses: tuple[Course, ...]
    certifications: tuple[Certification, ...]

    def course(self, code: str) -> Course | None:
        return next((c for c in self.courses if c.code == code.upper()), None)

    def certification(self, code: str) -> Certification | None:
        return next((c for c in self.certifications if c.code == code.upper()), None)

    def find_courses_in(self, text: str) -> list[Course]:
        """Courses named in free text, by code, title or keyword; best (longest) match first."""
        haystack = _fold(text)
        hits: list[tuple[int, int, Course]] = []
        for course in self.courses:
            needles = [course.code, *course.title.values(), *course.keywords]
            best = 0
            for needle in needles:
                folded = _fold(needle)
                if folded and re.search(rf"(?<![a-z0-9]){re.escape(folded)}(?![a-z0-9])", haystack):
                    best = max(best, len(folded))
            if best:
                hits.append((best, -len(hits), course))
        return [course for _, _, course in sorted(hits, key=lambda h: (h[0], h[1]), reverse=True)]


def _fold(text: str) -> str:
    """Lowercase without accents, so 'Français', 'francais' and 'FRANÇAIS' match alike."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def load_catalogue(path: Path = DEFAULT_PATH) -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
