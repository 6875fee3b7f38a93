"""The certificate as a verifiable credential: an Open Badges 3.0 `OpenBadgeCredential` (a W3C
Verifiable Credential, data model 2.0), built by pure functions.

The holder is named only by a salted SHA-256 of their pseudonymous person id (an `IdentityObject`
with `hashed: true`), so the document can be shown to an employer or published without saying who
it is about; the holder proves it is theirs by giving the id, which the verifier hashes with the
salt. Revocation uses a `1EdTechRevocationList` status entry pointing at this service's revocation
list; a revoked credential fetched from the service says so (`revoked`, `revocationReason`, as
Open Badges 2.0 hosted assertions did) and comes without its proof, so that copy can no longer pass
for a valid credential.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from certification.certifications import CertificationInfo

__all__ = [
    "OB3_CONTEXT",
    "VC2_CONTEXT",
    "CredentialLinks",
    "IssuerProfile",
    "achievement",
    "build_credential",
    "identity_hash",
    "new_salt",
    "revocation_list",
    "revoked_view",
]

VC2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"


def new_salt() -> str:
    return secrets.token_hex(16)


def identity_hash(identifier: str, salt: str) -> str:
    """Open Badges `IdentityHash`: ``sha256$`` + hex SHA-256 of the identifier with the salt appended."""
    return "sha256$" + hashlib.sha256((identifier + salt).encode("utf-8")).hexdigest()


def _timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("credential times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class CredentialLinks:
    """Where this service publishes what credentials point at; every id starts with `base_url`."""

    base_url: str

    def credential(self, credential_id: str) -> str:
        return f"{self.base_url}/credentials/{credential_id}"

    def achievement(self, code: str) -> str:
        return f"{self.base_url}/achievements/{code}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/issuer"

    @property
    def revocations(self) -> str:
        return f"{self.base_url}/revocations"

    @property
    def signing_key(self) -> str:
        return f"{self.issuer}#key-1"


@dataclass(frozen=True, slots=True)
class IssuerProfile:
    id: str
    name: str
    url: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": ["Profile"], "name": self.name, "url": self.url}


def _recognition(cert: CertificationInfo) -> str:
    return ", ".join(body.name for body in cert.recognised_by)


def achievement(cert: CertificationInfo, links: CredentialLinks, issuer: IssuerProfile) -> dict[str, Any]:
    """The Open Badges `Achievement` of Bruxelles Formation's certification, with its private pair as an alignment."""
    paths = ", ".join(cert.courses) or "—"
    if cert.private is not None:
        pairing = (
            f" Associée à la certification privée « {cert.private.title} » "
            f"({cert.private.programme.name}, {cert.private.programme.owner})."
        )
        narrative_exam = f"l'examen de certification « {cert.private.title} »"
    else:
        pairing = " Certificat propre à Bruxelles Formation."
        narrative_exam = "l'épreuve de certification"
    description = f"{cert.bf_title}.{pairing} Compétences : {cert.skills}"
    if cert.recognised_by:
        description += f" Reconnue par les organismes publics francophones de formation : {_recognition(cert)}."
    alignment: list[dict[str, Any]] = []
    if cert.private is not None:
        alignment.append(
            {
                "type": ["Alignment"],
                "targetName": cert.private.title,
                "targetUrl": str(cert.private.programme.url),
                "targetDescription": f"Certification privée associée ({cert.private.programme.owner}).",
                "targetFramework": cert.private.programme.name,
                "targetType": "ceterms:Credential",
            }
        )
    if cert.framework is not None:
        alignment.append(
            {
                "type": ["Alignment"],
                "targetName": cert.framework.name,
                "targetUrl": str(cert.framework.url),
                "targetFramework": cert.framework.owner,
                "targetType": "ceasn:Competency",
            }
        )
    doc: dict[str, Any] = {
        "id": links.achievement(cert.code),
        "type": ["Achievement"],
        "achievementType": "Certificate",
        "name": cert.bf_title,
        "description": description,
        "criteria": {
            "narrative": (
                f"Se préparer par le parcours d'apprentissage en ligne ({paths}) et réussir {narrative_exam} "
                "dans un centre de formation de Bruxelles Formation."
            )
        },
        "creator": issuer.as_json(),
        "humanCode": cert.code,
        "inLanguage": "fr",
    }
    if alignment:
        doc["alignment"] = alignment
    return doc


def build_credential(
    *,
    credential_id: str,
    certification: CertificationInfo,
    person_id: str,
    salt: str,
    issued_at: datetime,
    links: CredentialLinks,
    issuer: IssuerProfile,
) -> dict[str, Any]:
    """The unsigned `OpenBadgeCredential` for a person who passed `certification`."""
    if not salt:
        raise ValueError("the identity hash needs a salt: an unsalted hash of a short id is easy to reverse")
    issued = _timestamp(issued_at)
    return {
        "@context": [VC2_CONTEXT, OB3_CONTEXT],
        "id": links.credential(credential_id),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": issuer.as_json(),
        "validFrom": issued,
        "awardedDate": issued,
        "name": certification.bf_title,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityHash": identity_hash(person_id, salt),
                    "identityType": "identifier",
                    "hashed": True,
                    "salt": salt,
                }
            ],
            "achievement": achievement(certification, links, issuer),
        },
        "credentialStatus": {"id": links.revocations, "type": "1EdTechRevocationList"},
    }


def revoked_view(document: Mapping[str, Any], *, revoked_at: datetime, reason: str) -> dict[str, Any]:
    """What the service serves for a revoked credential: marked revoked, without its proof."""
    view = {k: copy.deepcopy(v) for k, v in document.items() if k != "proof"}
    view["revoked"] = True
    view["revokedAt"] = _timestamp(revoked_at)
    view["revocationReason"] = reason
    return view


def revocation_list(links: CredentialLinks, issuer: IssuerProfile, revoked: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The 1EdTech revocation list the credentials' `credentialStatus` points at: (credential id, reason) pairs."""
    return {
        "id": links.revocations,
        "issuer": issuer.id,
        "revokedCredentials": [{"id": links.credential(cid), "revocationReason": reason} for cid, reason in revoked],
    }
