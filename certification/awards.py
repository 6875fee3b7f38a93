"""Awards: exam results, and the Open Badges 3.0 credentials a pass issues, serves and revokes.

A pass stores the result, the candidate's new state (`decide` of `certification.candidate`), the
credential and `CertificateIssued`'s outbox record in one unit of work; recording the same result
again answers the same. The documents themselves are
built by `certification.credentials` (pure) and signed by `certification.signing`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Tracer
from pymongo import ASCENDING

from certification.candidate import Candidate, ExamOutcome, RecordResult, candidate_id, correlation_ids, decide
from certification.certifications import CertificationInfo, Certifications
from certification.credentials import (
    CredentialLinks,
    IssuerProfile,
    achievement,
    build_credential,
    controller_document,
    new_salt,
    new_status_index,
    revocation_list,
    revoked_view,
    status_list_credential,
)
from certification.errors import CertificationError, Unknown
from certification.offer import SOURCE
from certification.repositories import CertificationUnitOfWork, UnitOfWorkFactory, retry_on_conflict
from certification.result import ExamResult, IssuedCredential
from certification.seating import CandidateStatus
from certification.seats import Seats
from certification.signing import CredentialSigner
from certification.store import CertificationStore, catalogued, utc
from schemas import CertificateIssued
from services.clock import Clock
from services.tracing import continued

__all__ = ["Awards"]

log = structlog.get_logger(__name__)


class Awards:
    """Results and credentials; what an employer checking a credential reads comes from here."""

    def __init__(
        self,
        store: CertificationStore,
        seats: Seats,
        *,
        uow: UnitOfWorkFactory,
        certifications: Certifications,
        clock: Clock,
        links: CredentialLinks,
        issuer: IssuerProfile,
        signer: CredentialSigner | None = None,
        holder_email: Callable[[str], Awaitable[str | None]] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._tracer = tracer or trace.get_tracer(__name__)
        self._store = store
        self._holder_email = holder_email
        """The address a person last gave intake (`certification.holders`), for when staff give none."""
        self._seats = seats
        self._uow = uow
        self.certifications = certifications
        self.clock = clock
        self.links = links
        self.issuer = issuer
        self.signer = signer

    # --- results -------------------------------------------------------------------------

    async def record_result(
        self, session_id: str, *, person_id: str, passed: bool, score: float | None, email: str | None = None
    ) -> dict[str, Any]:
        """Record an exam result; a pass issues the credential and publishes `CertificateIssued`.

        `email`, the address the candidate gave, names the holder in the credential (salted hash
        only; the address itself is neither stored in the credential nor logged); without it, the
        address the person gave intake (the `holder_email` projection); without either, the holder
        is named by a salted hash of the person id. Recording the same result again answers the
        same; a different one is refused.
        """
        session = await self._seats.session(session_id)  # a CertificationError (404) if there is no such session
        if not (email and email.strip()) and passed and self._holder_email is not None:
            email = await self._holder_email(person_id)
        result_id = f"{session_id}:{person_id}"

        async def attempt() -> tuple[ExamResult, bool]:
            async with self._uow() as uow:
                if (existing := await uow.results.get(result_id)) is not None:
                    return existing, False
                candidate = await self._scheduled(uow, session.certifications, session_id, person_id)
                if candidate is None:
                    raise Unknown(f"{person_id} has no seat booked in session {session_id}")
                cert = catalogued(self.certifications, candidate.certification_code)
                now = self.clock.now()
                credential_id = uuid.uuid4().hex if passed else None
                exam = exam_outcome(cert, session_id, passed=passed, score=score)
                result = ExamResult(
                    result_id,
                    session_id,
                    person_id,
                    candidate.candidate_id,
                    cert.code,
                    passed,
                    score,
                    now,
                    credential_id,
                    exam=exam,
                )
                recorded, _ = decide(candidate, RecordResult(passed, result_id, credential_id, now, exam))
                uow.candidates.save(recorded)
                uow.results.add(result)
                if credential_id is not None:
                    status_index = new_status_index()  # a taken one conflicts at commit, and the retry draws again
                    document = build_credential(
                        credential_id=credential_id,
                        certification=cert,
                        person_id=person_id,
                        salt=new_salt(),
                        issued_at=now,
                        links=self.links,
                        issuer=self.issuer,
                        status_index=status_index,
                        email=email,
                        evidence=_exam_evidence(cert, session_id, score),
                    )
                    if self.signer is not None:
                        document = self.signer.sign(document, created=now)
                    uow.credentials.add(
                        IssuedCredential(
                            credential_id, person_id, cert.code, session_id, now, document, status_index=status_index
                        )
                    )
                    follows = correlation_ids(candidate.requested_by)
                    if candidate.scheduled_event_id and follows:
                        follows["causation_id"] = uuid.UUID(candidate.scheduled_event_id)
                    uow.publish(
                        [
                            CertificateIssued(
                                source=SOURCE,
                                subject=person_id,
                                person_id=person_id,
                                certification_code=cert.code,
                                credential_id=credential_id,
                                issued_at=now,
                                credential_url=self.links.credential(credential_id),
                                **follows,
                            )
                        ]
                    )
                # The certificate is issued in the trace of the person's request, linked to staff's entry.
                trace_context = candidate.requested_by.context if candidate.requested_by else None
                with continued(self._tracer, "certification.record_result", trace_context, session_id=session_id):
                    await uow.commit()
                return result, True

        # A conflict is the same result recorded at once by another request (or the candidate
        # changed meanwhile): the next attempt finds what was stored and answers from it.
        result, recorded = await retry_on_conflict(attempt)
        if not recorded:
            return self._same_result(result.as_document(), passed=passed, score=score)
        log.info(
            "result.recorded",
            session_id=session_id,
            person_id=person_id,
            passed=passed,
            credential_id=result.credential_id,
            holder=None if result.credential_id is None else ("email_address" if email else "identifier"),
        )
        return self._result_view(result.as_document())

    @staticmethod
    async def _scheduled(uow: CertificationUnitOfWork, codes: Iterable[str], session_id: str, person_id: str) -> Candidate | None:
        """The person's candidacy booked in the session (one per certification the session holds)."""
        for code in codes:
            candidate = await uow.candidates.get(candidate_id(person_id, code))
            if candidate is not None and candidate.status is CandidateStatus.SCHEDULED and candidate.session_id == session_id:
                return candidate
        return None

    def _same_result(self, existing: Mapping[str, Any], *, passed: bool, score: float | None) -> dict[str, Any]:
        if existing.get("passed") != passed or existing.get("score") != score:
            raise CertificationError(
                f"a different result is recorded for {existing.get('person_id')} in {existing.get('session_id')}"
            )
        return self._result_view(existing)

    def _result_view(self, result: Mapping[str, Any]) -> dict[str, Any]:
        credential_id = result.get("credential_id")
        return {
            "session_id": result["session_id"],
            "person_id": result["person_id"],
            "certification_code": result["certification_code"],
            "passed": result["passed"],
            "score": result["score"],
            "recorded_at": result["recorded_at"],
            "credential_id": credential_id,
            "credential_url": self.links.credential(credential_id) if credential_id else None,
            "bf_certification": result.get("bf_certification"),
            "vendor_exam": result.get("vendor_exam"),
            "vendor": result.get("vendor"),
        }

    # --- credentials -----------------------------------------------------------------------

    async def _credential(self, credential_id: str) -> dict[str, Any]:
        doc = await self._store.credentials.find_one({"_id": credential_id})
        if doc is None:
            raise Unknown(f"credential {credential_id} is unknown")
        return doc

    async def credential_document(self, credential_id: str) -> dict[str, Any]:
        """The credential as issued; a revoked one is served marked revoked and without its proof."""
        doc = await self._credential(credential_id)
        if doc["status"] == "revoked":
            return revoked_view(
                doc["document"], revoked_at=utc(doc["revoked_at"]) or doc["revoked_at"], reason=doc["revocation_reason"]
            )
        return dict(doc["document"])

    async def credential_status(self, credential_id: str) -> dict[str, Any]:
        doc = await self._credential(credential_id)
        return {
            "credential_id": credential_id,
            "id": self.links.credential(credential_id),
            "status": doc["status"],
            "revoked": doc["status"] == "revoked",
            "issued_at": doc["issued_at"],
            "revoked_at": doc.get("revoked_at"),
            "revocation_reason": doc.get("revocation_reason"),
        }

    async def revoke(self, credential_id: str, reason: str) -> dict[str, Any]:
        """Revoke a credential (once: revoking it again keeps the first reason)."""
        await self._credential(credential_id)
        now = self.clock.now()
        result = await self._store.credentials.update_one(
            {"_id": credential_id, "status": "active"},
            {"$set": {"status": "revoked", "revoked_at": now, "revocation_reason": reason}},
        )
        if result.modified_count:
            log.info("credential.revoked", credential_id=credential_id)
        return await self.credential_status(credential_id)

    async def revocation_list(self) -> dict[str, Any]:
        revoked = [
            (doc["_id"], doc["revocation_reason"])
            async for doc in self._store.credentials.find({"status": "revoked"}, {"revocation_reason": 1}).sort("_id", ASCENDING)
        ]
        return revocation_list(self.links, self.issuer, revoked)

    async def status_list(self) -> dict[str, Any]:
        """The revocation `BitstringStatusListCredential` (signed when a key is configured), as of now."""
        revoked = [
            int(doc["status_index"])
            async for doc in self._store.credentials.find(
                {"status": "revoked", "status_index": {"$exists": True}}, {"status_index": 1}
            )
        ]
        now = self.clock.now()
        document = status_list_credential(self.links, self.issuer, revoked, valid_from=now)
        return self.signer.sign(document, created=now) if self.signer is not None else document

    async def stored_credential(self, credential_id: str) -> dict[str, Any]:
        """The stored record of a credential (status, dates, the document as issued)."""
        return await self._credential(credential_id)

    def achievement(self, code: str) -> dict[str, Any]:
        """The Open Badges achievement of a certification of the catalogue."""
        return achievement(catalogued(self.certifications, code), self.links, self.issuer)

    def issuer_profile(self) -> dict[str, Any]:
        """The issuer's controller document: the key that signs credentials (if any), for verifiers to check proofs."""
        keys = [] if self.signer is None else [(self.signer.verification_method, self.signer.public_key_multibase)]
        return controller_document(self.issuer.id, keys)


def exam_outcome(cert: CertificationInfo, session_id: str, *, passed: bool, score: float | None) -> ExamOutcome:
    """The exam as recorded on the result and the candidate: the BF certification and, from the
    catalogue, the vendor's exam it is paired with."""
    private = cert.private
    return ExamOutcome(
        session_id=session_id,
        passed=passed,
        score=score,
        bf_certification=cert.bf_title,
        vendor_exam=private.title if private else None,
        vendor_programme=private.programme.name if private else None,
        vendor=private.programme.owner if private else None,
    )


def _exam_evidence(cert: CertificationInfo, session_id: str, score: float | None) -> list[dict[str, Any]]:
    """The exam passed, as the credential's `evidence`: the vendor's exam when the certification is paired with one."""
    if cert.private is not None:
        name = f"Examen « {cert.private.title} » ({cert.private.programme.owner})"
        description = (
            f"Examen de la certification privée « {cert.private.title} » ({cert.private.programme.name}), "
            f"associée à « {cert.bf_title} », réussi lors de la session {session_id}."
        )
    else:
        name = f"Épreuve de certification « {cert.bf_title} »"
        description = f"Épreuve réussie lors de la session {session_id}."
    if score is not None:
        description += f" Score : {score:g}."
    return [{"type": ["Evidence"], "name": name, "description": description, "genre": "Exam result"}]
