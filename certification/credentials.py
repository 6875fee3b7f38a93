"""The certificate as a verifiable credential: an Open Badges 3.0 `OpenBadgeCredential` (a W3C
Verifiable Credential, data model 2.0), built by pure functions, with what a verifier fetches
beside it: the issuer's controller document (the key that signs) and the revocation status list.

The holder is named by an `IdentityObject` with `hashed: true`: when the e-mail address the
candidate gave is known at issue, `identityType: emailAddress` and `identityHash` = ``sha256$`` +
hex SHA-256 of the address (trimmed, lower-cased) followed by the salt, so a verifier who is told
the address can check it; otherwise (no address known) `identityType: identifier` over the
pseudonymous person id, as before, which only this service can check.

Revocation is a W3C Bitstring Status List: each credential's `credentialStatus` is a
`BitstringStatusListEntry` at a random index (herd privacy) of one revocation list of 131,072 bits,
published as a signed `BitstringStatusListCredential` whose `encodedList` is the GZIP-compressed
bitstring, multibase base64url. A revoked credential fetched from the service also says so
(`revoked`, `revocationReason`) and comes without its proof.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from certification.certifications import CertificationInfo
from certification.jsonld import CREDENTIALS_V2, DID_V1, MULTIKEY_V1, OB3_CONTEXT

__all__ = [
    "OB3_CONTEXT",
    "VC2_CONTEXT",
    "CredentialLinks",
    "IssuerProfile",
    "STATUS_LIST_BITS",
    "achievement",
    "build_credential",
    "controller_document",
    "decode_status_list",
    "encode_status_list",
    "holder_identity",
    "identity_hash",
    "new_status_index",
    "normalise_email",
    "status_bit",
    "status_list_credential",
    "new_salt",
    "revocation_list",
    "revoked_view",
]

VC2_CONTEXT = CREDENTIALS_V2
STATUS_LIST_BITS = 131_072
"""Bits of the revocation list: the spec's minimum (16 KiB), for herd privacy."""


def new_salt() -> str:
    return secrets.token_hex(16)


def identity_hash(identifier: str, salt: str) -> str:
    """Open Badges `IdentityHash`: ``sha256$`` + hex SHA-256 of the identifier with the salt appended."""
    return "sha256$" + hashlib.sha256((identifier + salt).encode("utf-8")).hexdigest()


def normalise_email(email: str) -> str:
    """The form of an address that is hashed: trimmed and lower-cased (what a verifier hashes too)."""
    return email.strip().lower()


def holder_identity(*, person_id: str, email: str | None, salt: str) -> dict[str, Any]:
    """The `IdentityObject` naming the holder: their e-mail address if known, else the person id, hashed with `salt`."""
    if not salt:
        raise ValueError("the identity hash needs a salt: an unsalted hash of a short id is easy to reverse")
    if email:
        return {
            "type": "IdentityObject",
            "identityHash": identity_hash(normalise_email(email), salt),
            "identityType": "emailAddress",
            "hashed": True,
            "salt": salt,
        }
    return {
        "type": "IdentityObject",
        "identityHash": identity_hash(person_id, salt),
        "identityType": "identifier",
        "hashed": True,
        "salt": salt,
    }


def new_status_index() -> int:
    """A random position in the revocation list (the spec advises random over sequential)."""
    return secrets.randbelow(STATUS_LIST_BITS)


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
    def status_list(self) -> str:
        """The revocation `BitstringStatusListCredential`."""
        return f"{self.base_url}/status-lists/revocation"

    def status_entry(self, index: int) -> str:
        return f"{self.status_list}#{index}"

    def verification_page(self, credential_id: str) -> str:
        """The public HTML page that says whether a credential verifies (for sharing)."""
        return f"{self.base_url}/verify/{credential_id}"

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
    status_index: int,
    email: str | None = None,
    evidence: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The unsigned `OpenBadgeCredential` for a person who passed `certification`."""
    if not 0 <= status_index < STATUS_LIST_BITS:
        raise ValueError(f"a status list index is within 0..{STATUS_LIST_BITS - 1}")
    issued = _timestamp(issued_at)
    document: dict[str, Any] = {
        "@context": [VC2_CONTEXT, OB3_CONTEXT],
        "id": links.credential(credential_id),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": issuer.as_json(),
        "validFrom": issued,
        "awardedDate": issued,
        "name": certification.bf_title,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [holder_identity(person_id=person_id, email=email, salt=salt)],
            "achievement": achievement(certification, links, issuer),
        },
        "credentialStatus": {
            "id": links.status_entry(status_index),
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(status_index),
            "statusListCredential": links.status_list,
        },
    }
    if evidence:
        document["evidence"] = evidence
    return document


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


# --- what verifiers fetch beside the credential ---------------------------------------------------


def controller_document(issuer_id: str, keys: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The issuer's controller document (DID Core / Controlled Identifiers shape), served at the issuer's id:
    each (verification method id, Ed25519 public key multibase) as a `Multikey` the issuer asserts with."""
    methods = [
        {"id": method_id, "type": "Multikey", "controller": issuer_id, "publicKeyMultibase": public_key}
        for method_id, public_key in keys
    ]
    return {
        "@context": [DID_V1, MULTIKEY_V1],
        "id": issuer_id,
        "verificationMethod": methods,
        "assertionMethod": [m["id"] for m in methods],
    }


def encode_status_list(revoked: Iterable[int], *, bits: int = STATUS_LIST_BITS) -> str:
    """A Bitstring Status List `encodedList`: bit i (left to right, most significant bit of the first byte
    first) set for each index in `revoked`, GZIP-compressed, multibase base64url without padding."""
    if bits < STATUS_LIST_BITS or bits % 8:
        raise ValueError(f"a status list has a multiple of 8 bits, at least {STATUS_LIST_BITS}")
    bitstring = bytearray(bits // 8)
    for index in revoked:
        if not 0 <= index < bits:
            raise ValueError(f"status index {index} is outside the list")
        bitstring[index // 8] |= 0x80 >> (index % 8)
    compressed = gzip.compress(bytes(bitstring), mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")


def decode_status_list(encoded: str) -> bytes:
    """The bitstring of an `encodedList`."""
    if not encoded.startswith("u"):
        raise ValueError("an encodedList is multibase base64url (starting with 'u')")
    body = encoded[1:]
    return gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def status_bit(encoded: str, index: int) -> bool:
    """Whether bit `index` of an `encodedList` is set (for revocation: the credential is revoked)."""
    bitstring = decode_status_list(encoded)
    return bool(bitstring[index // 8] & (0x80 >> (index % 8)))


def status_list_credential(
    links: CredentialLinks, issuer: IssuerProfile, revoked: Iterable[int], *, valid_from: datetime
) -> dict[str, Any]:
    """The unsigned revocation `BitstringStatusListCredential` the credentials' `credentialStatus` points at."""
    return {
        "@context": [VC2_CONTEXT],
        "id": links.status_list,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer.id,
        "validFrom": _timestamp(valid_from),
        "credentialSubject": {
            "id": f"{links.status_list}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encode_status_list(revoked),
        },
    }
