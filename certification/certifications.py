"""The certifications as certification sees them: the catalogue's codes, titles, openness and the
courses that prepare for each, joined with certification's own data (`data/certifications.yaml`):
the private certification each one is paired with and the public training bodies that recognise it.

As in the catalogue, every entry, body, programme and framework states its provenance: the passage
of the seed it rests on and the fields that are example data, not in the seed (`CertificationInfo.example`).

Pure data, loaded once; no I/O beyond reading the two files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, HttpUrl

from services.catalogue import Catalogue, Provenance, load_catalogue

__all__ = [
    "DEFAULT_PATH",
    "CertificationInfo",
    "Certifications",
    "Framework",
    "PrivateCertification",
    "Programme",
    "RecognisingBody",
    "load_certifications",
]

DEFAULT_PATH = Path(__file__).with_name("data") / "certifications.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecognisingBody(_Frozen):
    """A French-speaking public training body that shares (recognises) Bruxelles Formation's certification."""

    id: str
    name: str
    url: HttpUrl
    region: str
    provenance: Provenance


class Programme(_Frozen):
    """A vendor's certification programme (Microsoft Office Specialist, Adobe Certified Professional…)."""

    name: str
    owner: str
    url: HttpUrl
    provenance: Provenance


class PrivateCertification(_Frozen):
    programme: Programme
    title: str


class Framework(_Frozen):
    """A competence framework a certification is aligned with when it has no private pair."""

    name: str
    url: HttpUrl
    owner: str
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class CertificationInfo:
    code: str
    title: str
    """The catalogue's title (the private certification's name for the paired ones)."""
    bf_title: str
    """Bruxelles Formation's own certification, which the credential is for."""
    family: str
    open: bool
    """False for the certifications announced but not yet offered: their candidates wait."""
    private: PrivateCertification | None
    recognised_by: tuple[RecognisingBody, ...]
    courses: tuple[str, ...]
    """Codes of the online learning paths that prepare for it."""
    skills: str
    framework: Framework | None = None
    example: tuple[str, ...] = ()
    """The fields whose values are example data, not in the seed (vendor names, the bodies' names...)."""


_ENTRY_FACTS = frozenset({"bf_title", "private", "skills", "recognised_by", "framework"})


class _Entry(_Frozen):
    bf_title: str
    private: dict[str, str] | None
    skills: str
    recognised_by: tuple[str, ...] | None = None
    framework: Framework | None = None
    provenance: Provenance


class _Issuer(_Frozen):
    name: str
    url: str
    provenance: Provenance


class _File(_Frozen):
    version: str
    quotes: dict[str, str] = {}
    issuer: _Issuer
    bodies: tuple[RecognisingBody, ...]
    programmes: dict[str, Programme]
    defaults: dict[str, Any]
    certifications: dict[str, _Entry]


@dataclass(frozen=True, slots=True)
class Certifications:
    version: str
    issuer_name: str
    issuer_url: str
    by_code: Mapping[str, CertificationInfo]

    def get(self, code: str) -> CertificationInfo | None:
        return self.by_code.get(code.upper())

    def open_only(self, codes: frozenset[str]) -> None:
        """Open for exams exactly `codes` (staff's configuration); the others wait as announced ones do.

        In place, one code at a time but without awaiting: every reader of this object (seats,
        candidates, the API) sees the new set from its next call, never half of it."""
        assert isinstance(self.by_code, dict), "open_only needs the mutable mapping load_certifications builds"
        for code, info in list(self.by_code.items()):
            if info.open != (code in codes):
                self.by_code[code] = replace(info, open=code in codes)

    def all(self) -> tuple[CertificationInfo, ...]:
        return tuple(self.by_code.values())

    def for_course(self, course_code: str) -> CertificationInfo | None:
        """The certification a course prepares for, if any."""
        folded = course_code.upper()
        return next((c for c in self.by_code.values() if folded in c.courses), None)


def load_certifications(catalogue: Catalogue | None = None, path: Path | None = None) -> Certifications:
    """Join the catalogue and certification's data; every catalogue certification must be described."""
    catalogue = catalogue or load_catalogue()
    data = _File.model_validate(yaml.safe_load((path or DEFAULT_PATH).read_text(encoding="utf-8")))
    bodies = {body.id: body for body in data.bodies}
    default_bodies = tuple(data.defaults.get("recognised_by", ()))
    known = {c.code for c in catalogue.certifications}
    if unknown := sorted(set(data.certifications) - known):
        raise ValueError(f"certifications not in the catalogue: {', '.join(unknown)}")
    if missing := sorted(known - set(data.certifications)):
        raise ValueError(f"catalogue certifications without certification data: {', '.join(missing)}")

    by_code: dict[str, CertificationInfo] = {}
    for cert in catalogue.certifications:
        entry = data.certifications[cert.code]
        private = None
        if entry.private is not None:
            programme = data.programmes.get(entry.private["programme"])
            if programme is None:
                raise ValueError(f"{cert.code}: unknown programme {entry.private['programme']!r}")
            private = PrivateCertification(programme=programme, title=entry.private["title"])
        body_ids = entry.recognised_by if entry.recognised_by is not None else default_bodies
        if unknown_bodies := [b for b in body_ids if b not in bodies]:
            raise ValueError(f"{cert.code}: unknown recognising bodies {unknown_bodies}")
        if unknown_fields := sorted(set(entry.provenance.example) - _ENTRY_FACTS):
            raise ValueError(f"{cert.code}: example names no field: {', '.join(unknown_fields)}")
        example = {*cert.provenance.example, *entry.provenance.example}
        if private is not None and private.programme.provenance.example:
            example.add("private")
        if entry.framework is not None and entry.framework.provenance.example:
            example.add("framework")
        if any(bodies[b].provenance.example for b in body_ids):
            example.add("recognised_by")
        by_code[cert.code] = CertificationInfo(
            code=cert.code,
            title=cert.title,
            bf_title=entry.bf_title,
            family=cert.family,
            open=cert.open,
            private=private,
            recognised_by=tuple(bodies[b] for b in body_ids),
            courses=tuple(course.code for course in catalogue.courses if course.certification == cert.code),
            skills=entry.skills,
            framework=entry.framework,
            example=tuple(sorted(example)),
        )
    return Certifications(version=data.version, issuer_name=data.issuer.name, issuer_url=data.issuer.url, by_code=by_code)
