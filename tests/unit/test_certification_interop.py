"""Every credential the service builds, for every certification of the catalogue, passes 1EdTech's
official Open Badges 3.0 AchievementCredential JSON schema; an independent Data Integrity verifier
(Digital Bazaar's, run with node) accepts a signed one, sees its revocation in the status list, and
rejects a tampered one or one whose key the issuer does not assert."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from certification.certifications import load_certifications
from certification.credentials import (
    CredentialLinks,
    IssuerProfile,
    build_credential,
    controller_document,
    new_salt,
    status_list_credential,
)
from certification.signing import CredentialSigner, new_signing_key
from tests.credential_checks import independent_verification, schema_errors

pytestmark = pytest.mark.unit

ISSUED = datetime(2020, 6, 2, 14, 30, tzinfo=UTC)
LINKS = CredentialLinks("https://certification.bruxellesformation.test")
ISSUER = IssuerProfile(id=LINKS.issuer, name="Bruxelles Formation", url="https://www.bruxellesformation.brussels")
SIGNER = CredentialSigner.from_seed(new_signing_key(), verification_method=LINKS.signing_key)
INDEX = 70_001


def issued(code: str = "MOS-EXCEL", *, email: str | None = "amina.diallo@example.org", index: int = INDEX) -> dict[str, Any]:
    cert = load_certifications().get(code)
    assert cert is not None
    document = build_credential(
        credential_id=f"cred-{code.lower()}",
        certification=cert,
        person_id="prs_7f3a9c2e41d8",
        salt=new_salt(),
        issued_at=ISSUED,
        links=LINKS,
        issuer=ISSUER,
        status_index=index,
        email=email,
        evidence=[{"type": ["Evidence"], "name": "Examen", "description": "Réussi, score 870."}],
    )
    return SIGNER.sign(document, created=ISSUED)


def published(revoked: list[int]) -> dict[str, Any]:
    """What the verifier fetches: the controller document at the issuer's id and the status list."""
    return {
        LINKS.issuer: controller_document(ISSUER.id, [(SIGNER.verification_method, SIGNER.public_key_multibase)]),
        LINKS.status_list: SIGNER.sign(status_list_credential(LINKS, ISSUER, revoked, valid_from=ISSUED), created=ISSUED),
    }


@pytest.mark.parametrize("code", [c.code for c in load_certifications().all()])
def test_every_credential_passes_the_official_1edtech_schema(code: str) -> None:
    assert schema_errors(issued(code)) == []
    assert schema_errors(issued(code, email=None)) == []


def test_the_official_schema_is_not_a_rubber_stamp() -> None:
    unsigned_proof = issued()
    unsigned_proof["proof"] = unsigned_proof["proof"][0]  # a lone object, as before: the schema wants an array
    assert schema_errors(unsigned_proof)
    no_subject = issued()
    del no_subject["credentialSubject"]
    assert schema_errors(no_subject)


def test_an_independent_verifier_accepts_a_signed_credential_and_sees_it_active() -> None:
    verdict = independent_verification(issued(), published(revoked=[1, 2, 3]))
    assert verdict == {"verified": True, "revoked": False, "errors": []}


def test_the_independent_verifier_reads_a_revocation_in_the_status_list() -> None:
    verdict = independent_verification(issued(), published(revoked=[INDEX]))
    assert verdict["verified"] is True  # the proof still holds ...
    assert verdict["revoked"] is True  # ... and its bit says it is revoked


def test_the_independent_verifier_rejects_a_tampered_credential() -> None:
    tampered = copy.deepcopy(issued())
    tampered["credentialSubject"]["achievement"]["name"] = "Certification Bruxelles Formation : pilote de ligne"
    verdict = independent_verification(tampered, published(revoked=[]))
    assert verdict["verified"] is False and verdict["errors"]


def test_the_independent_verifier_rejects_a_key_the_issuer_does_not_assert() -> None:
    documents = published(revoked=[])
    documents[LINKS.issuer] = {**documents[LINKS.issuer], "assertionMethod": []}
    verdict = independent_verification(issued(), documents)
    assert verdict["verified"] is False and any("not authorized" in e for e in verdict["errors"])
