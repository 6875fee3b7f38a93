"""An exam result and the credential a pass issues, as typed records (written once, never changed here).

Revoking a credential is a change of its own (`certification.awards`), made on the stored document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from certification.candidate import ExamOutcome, utc

__all__ = ["ExamResult", "IssuedCredential"]


@dataclass(frozen=True, slots=True)
class ExamResult:
    result_id: str
    """``f"{session_id}:{person_id}"``: one result per person and session."""
    session_id: str
    person_id: str
    candidate_id: str
    certification_code: str
    passed: bool
    score: float | None
    recorded_at: datetime
    credential_id: str | None = None
    version: int = 0
    exam: ExamOutcome | None = None
    """The exam sat: Bruxelles Formation's certification and the vendor's exam paired with it
    (None on results recorded before it was kept)."""

    def as_document(self) -> dict[str, Any]:
        return {
            "_id": self.result_id,
            "session_id": self.session_id,
            "person_id": self.person_id,
            "candidate_id": self.candidate_id,
            "certification_code": self.certification_code,
            "passed": self.passed,
            "score": self.score,
            "recorded_at": self.recorded_at,
            "credential_id": self.credential_id,
            "version": self.version,
            **(_paired(self.exam) if self.exam else {}),
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ExamResult:
        return cls(
            result_id=doc["_id"],
            session_id=doc["session_id"],
            person_id=doc["person_id"],
            candidate_id=doc["candidate_id"],
            certification_code=doc["certification_code"],
            passed=doc["passed"],
            score=doc.get("score"),
            recorded_at=utc(doc["recorded_at"]) or doc["recorded_at"],
            credential_id=doc.get("credential_id"),
            version=int(doc.get("version", 0)),
            # A result document holds its exam's fields itself (see `_paired`).
            exam=ExamOutcome.from_document(doc if doc.get("bf_certification") else None),
        )


def _paired(exam: ExamOutcome) -> dict[str, Any]:
    """What a result document adds of its exam (session, score and passed are the result's own)."""
    return {k: v for k, v in exam.as_document().items() if k in ("bf_certification", "vendor_exam", "vendor_programme", "vendor")}


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    credential_id: str
    person_id: str
    certification_code: str
    session_id: str
    issued_at: datetime
    document: Mapping[str, Any] = field(repr=False)
    """The Open Badges credential as issued (and signed)."""
    version: int = 0
    status_index: int | None = None
    """Its bit in the revocation status list (unique among credentials; none for those issued before status lists)."""

    def as_document(self) -> dict[str, Any]:
        doc = {
            "_id": self.credential_id,
            "person_id": self.person_id,
            "certification_code": self.certification_code,
            "session_id": self.session_id,
            "issued_at": self.issued_at,
            "status": "active",
            "document": dict(self.document),
            "version": self.version,
        }
        if self.status_index is not None:
            doc["status_index"] = self.status_index
        return doc
