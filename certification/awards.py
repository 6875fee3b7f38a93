"""Awards: exam results, and the Open Badges 3.0 credentials a pass issues, serves and revokes.

A pass stores the result, the credential and `CertificateIssued`'s outbox record in one
transaction; recording the same result again answers the same. The documents themselves are
built by `certification.credentials` (pure) and signed by `certification.signing`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from certification.certifications import Certifications
from certification.credentials import (
    CredentialLinks,
    IssuerProfile,
    achievement,
    build_credential,
    new_salt,
    revocation_list,
    revoked_view,
)
from certification.seating import CandidateStatus
from certification.seats import Seats
from certification.signing import CredentialSigner
from certification.store import SOURCE, CertificationError, CertificationStore, catalogued, correlation_of, utc
from schemas import CertificateIssued
from services.clock import Clock
from services.outbox import Outbox

__all__ = ["Awards"]

log = structlog.get_logger(__name__)


class Awards:
    """Results and credentials; what an employer checking a credential reads comes from here."""

    def __init__(
        self,
        store: CertificationStore,
        seats: Seats,
        *,
        certifications: Certifications,
        clock: Clock,
        outbox: Outbox,
        links: CredentialLinks,
        issuer: IssuerProfile,
        signer: CredentialSigner | None = None,
    ) -> None:
        self._store = store
        self._seats = seats
        self.certifications = certifications
        self.clock = clock
        self.outbox = outbox
        self.links = links
        self.issuer = issuer
        self.signer = signer

    # --- results -------------------------------------------------------------------------

    async def record_result(self, session_id: str, *, person_id: str, passed: bool, score: float | None) -> dict[str, Any]:
        """Record an exam result; a pass issues the credential and publishes `CertificateIssued`.

        Recording the same result again answers the same; a different one is refused.
        """
        await self._seats.session(session_id)  # a CertificationError (404) if there is no such session
        result_id = f"{session_id}:{person_id}"
        if (existing := await self._store.results.find_one({"_id": result_id})) is not None:
            return self._same_result(existing, passed=passed, score=score)
        candidate = await self._store.candidates.find_one(
            {"person_id": person_id, "session_id": session_id, "status": CandidateStatus.SCHEDULED.value}
        )
        if candidate is None:
            raise CertificationError(f"{person_id} has no seat booked in session {session_id}", status=404)
        cert = catalogued(self.certifications, candidate["certification_code"])
        now = self.clock.now()
        credential_id = uuid.uuid4().hex if passed else None
        document: dict[str, Any] | None = None
        event: CertificateIssued | None = None
        if credential_id is not None:
            document = build_credential(
                credential_id=credential_id,
                certification=cert,
                person_id=person_id,
                salt=new_salt(),
                issued_at=now,
                links=self.links,
                issuer=self.issuer,
            )
            if self.signer is not None:
                document = self.signer.sign(document, created=now)
            follows = correlation_of(candidate.get("requested_by"))
            if candidate.get("scheduled_event_id") and follows:
                follows["causation_id"] = uuid.UUID(candidate["scheduled_event_id"])
            event = CertificateIssued(
                source=SOURCE,
                subject=person_id,
                person_id=person_id,
                certification_code=cert.code,
                credential_id=credential_id,
                issued_at=now,
                credential_url=self.links.credential(credential_id),
                **follows,
            )
        result = {
            "_id": result_id,
            "session_id": session_id,
            "person_id": person_id,
            "candidate_id": candidate["_id"],
            "certification_code": cert.code,
            "passed": passed,
            "score": score,
            "recorded_at": now,
            "credential_id": credential_id,
        }

        async def work(s: AsyncClientSession) -> None:
            await self._store.results.insert_one(result, session=s)
            status = CandidateStatus.PASSED if passed else CandidateStatus.FAILED
            await self._store.candidates.update_one(
                {"_id": candidate["_id"], "status": CandidateStatus.SCHEDULED.value},
                {
                    "$set": {"status": status.value, "result_id": result_id, "credential_id": credential_id, "updated_at": now},
                    # A new version, so a candidate loaded before this result cannot be saved over it.
                    "$inc": {"version": 1},
                    "$push": {"history": {"at": now, "what": status.value, "session_id": session_id}},
                },
                session=s,
            )
            if document is not None and event is not None:
                await self._store.credentials.insert_one(
                    {
                        "_id": credential_id,
                        "person_id": person_id,
                        "certification_code": cert.code,
                        "session_id": session_id,
                        "issued_at": now,
                        "status": "active",
                        "document": document,
                    },
                    session=s,
                )
                await self.outbox.add([event], session=s)

        try:
            await self._store.transaction(work)
        except DuplicateKeyError:
            # The same result recorded twice at once: the other request stored it.
            return self._same_result(await self._store.results.find_one({"_id": result_id}) or {}, passed=passed, score=score)
        log.info("result.recorded", session_id=session_id, person_id=person_id, passed=passed, credential_id=credential_id)
        return self._result_view(result)

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
        }

    # --- credentials -----------------------------------------------------------------------

    async def _credential(self, credential_id: str) -> dict[str, Any]:
        doc = await self._store.credentials.find_one({"_id": credential_id})
        if doc is None:
            raise CertificationError(f"credential {credential_id} is unknown", status=404)
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

    def achievement(self, code: str) -> dict[str, Any]:
        """The Open Badges achievement of a certification of the catalogue."""
        return achievement(catalogued(self.certifications, code), self.links, self.issuer)

    def issuer_profile(self) -> dict[str, Any]:
        """The issuer's profile, with the key that signs credentials (if any) for verifiers to check proofs."""
        profile = self.issuer.as_json()
        if self.signer is not None:
            profile["verificationMethod"] = [
                {
                    "id": self.signer.verification_method,
                    "type": "Multikey",
                    "controller": self.issuer.id,
                    "publicKeyMultibase": self.signer.public_key_multibase,
                }
            ]
        return profile
