"""The certificate as an Open Badges 3.0 credential: required fields, the salted identity hash that
does not reveal the person, revocation, and the optional Ed25519 Data Integrity proof."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from certification.certifications import load_certifications
from certification.credentials import (
    OB3_CONTEXT,
    VC2_CONTEXT,
    CredentialLinks,
    IssuerProfile,
    build_credential,
    identity_hash,
    new_salt,
    revocation_list,
    revoked_view,
)
from certification.signing import (
    CredentialSigner,
    b58decode,
    b58encode,
    canonical_json,
    new_signing_key,
    public_key_from_multibase,
    verify_proof,
)

pytestmark = pytest.mark.unit

PERSON = "prs_7f3a9c2e41d8"
ISSUED = datetime(2020, 6, 2, 14, 30, tzinfo=UTC)
LINKS = CredentialLinks("https://certification.bruxellesformation.test")
ISSUER = IssuerProfile(id=LINKS.issuer, name="Bruxelles Formation", url="https://www.bruxellesformation.brussels")
CERTS = load_certifications()


def credential(
    code: str = "MOS-EXCEL", *, salt: str = "9c1f2e3d4b5a69788796a5b4c3d2e1f0", credential_id: str = "c0ffee"
) -> dict[str, Any]:
    cert = CERTS.get(code)
    assert cert is not None
    return build_credential(
        credential_id=credential_id, certification=cert, person_id=PERSON, salt=salt, issued_at=ISSUED, links=LINKS, issuer=ISSUER
    )


def test_the_credential_is_an_open_badge_3_verifiable_credential() -> None:
    doc = credential()
    assert doc["@context"] == [VC2_CONTEXT, OB3_CONTEXT]
    assert doc["@context"] == [
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
    ]
    assert doc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert doc["id"] == "https://certification.bruxellesformation.test/credentials/c0ffee"
    assert doc["issuer"] == {
        "id": "https://certification.bruxellesformation.test/issuer",
        "type": ["Profile"],
        "name": "Bruxelles Formation",
        "url": "https://www.bruxellesformation.brussels",
    }
    assert doc["validFrom"] == "2020-06-02T14:30:00Z"
    assert doc["name"] == "Certification Bruxelles Formation : tableur (Excel)"
    subject = doc["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"]
    achievement = subject["achievement"]
    assert achievement["id"] == "https://certification.bruxellesformation.test/achievements/MOS-EXCEL"
    assert achievement["type"] == ["Achievement"]
    assert achievement["achievementType"] == "Certificate"
    assert achievement["name"] and achievement["description"] and achievement["criteria"]["narrative"]
    assert "EXCEL" in achievement["criteria"]["narrative"]  # the learning path that prepares for it
    assert doc["credentialStatus"] == {
        "id": "https://certification.bruxellesformation.test/revocations",
        "type": "1EdTechRevocationList",
    }
    assert "proof" not in doc  # signing is the signer's job


def test_the_private_pairing_and_the_recognising_bodies_are_in_the_achievement() -> None:
    achievement = credential()["credentialSubject"]["achievement"]
    [alignment] = achievement["alignment"]
    assert alignment["type"] == ["Alignment"]
    assert alignment["targetName"] == "Microsoft Office Specialist: Excel"
    assert alignment["targetFramework"] == "Microsoft Office Specialist"
    assert alignment["targetUrl"].startswith("https://")
    assert "Microsoft Office Specialist: Excel" in achievement["description"]
    for body in ("Le Forem", "IFAPME", "SFPME"):
        assert body in achievement["description"]
    # The transversal certificate is Bruxelles Formation's own, aligned with a competence framework.
    own = credential("BF-NUMERIQUE")["credentialSubject"]["achievement"]
    assert [a["targetName"] for a in own["alignment"]] == [
        "DigComp 2.2 : le cadre européen des compétences numériques des citoyens"
    ]
    assert "propre à Bruxelles Formation" in own["description"]


def test_the_holder_is_a_salted_hash_that_does_not_reveal_the_person() -> None:
    salt = "9c1f2e3d4b5a69788796a5b4c3d2e1f0"
    doc = credential(salt=salt)
    [identity] = doc["credentialSubject"]["identifier"]
    assert identity["type"] == "IdentityObject"
    assert identity["identityType"] == "identifier"
    assert identity["hashed"] is True
    assert identity["salt"] == salt
    assert re.fullmatch(r"sha256\$[0-9a-f]{64}", identity["identityHash"])
    # Open Badges IdentityHash: SHA-256 over the identifier with the salt appended.
    assert identity["identityHash"] == "sha256$" + hashlib.sha256((PERSON + salt).encode()).hexdigest()
    # Nowhere in clear, and not an unsalted hash either (a short id is easy to hash and look up).
    text = json.dumps(doc)
    assert PERSON not in text
    assert hashlib.sha256(PERSON.encode()).hexdigest() not in text
    assert "id" not in doc["credentialSubject"]


def test_each_credential_has_its_own_salt_so_two_credentials_of_one_person_are_not_linkable() -> None:
    salts = {new_salt() for _ in range(50)}
    assert len(salts) == 50 and all(len(s) == 32 for s in salts)
    a, b = credential(salt=new_salt()), credential("MOS-WORD", salt=new_salt())
    assert a["credentialSubject"]["identifier"][0]["identityHash"] != b["credentialSubject"]["identifier"][0]["identityHash"]
    with pytest.raises(ValueError, match="salt"):
        credential(salt="")


def test_a_verifier_given_the_person_id_can_check_the_hash() -> None:
    [identity] = credential()["credentialSubject"]["identifier"]
    assert identity_hash(PERSON, identity["salt"]) == identity["identityHash"]
    assert identity_hash("prs_someone_else", identity["salt"]) != identity["identityHash"]


def test_a_revoked_credential_says_so_and_loses_its_proof() -> None:
    signer = CredentialSigner(Ed25519PrivateKey.generate(), verification_method=LINKS.signing_key)
    signed = signer.sign(credential(), created=ISSUED)
    view = revoked_view(signed, revoked_at=ISSUED + timedelta(days=3), reason="Issued in error")
    assert view["revoked"] is True and view["revocationReason"] == "Issued in error"
    assert view["revokedAt"] == "2020-06-05T14:30:00Z"
    assert "proof" not in view and "proof" in signed  # the stored document is untouched
    assert view["id"] == signed["id"] and view["credentialSubject"] == signed["credentialSubject"]
    listing = revocation_list(LINKS, ISSUER, [("c0ffee", "Issued in error")])
    assert listing == {
        "id": LINKS.revocations,
        "issuer": ISSUER.id,
        "revokedCredentials": [{"id": LINKS.credential("c0ffee"), "revocationReason": "Issued in error"}],
    }


def test_a_signed_credential_verifies_and_any_change_breaks_it() -> None:
    signer = CredentialSigner.from_seed(new_signing_key(), verification_method=LINKS.signing_key)
    signed = signer.sign(credential(), created=ISSUED)
    proof = signed["proof"]
    assert proof["type"] == "DataIntegrityProof"
    assert proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["proofPurpose"] == "assertionMethod"
    assert proof["verificationMethod"] == "https://certification.bruxellesformation.test/issuer#key-1"
    assert proof["created"] == "2020-06-02T14:30:00Z"
    assert proof["proofValue"].startswith("z") and len(b58decode(proof["proofValue"][1:])) == 64

    public = public_key_from_multibase(signer.public_key_multibase)
    assert signer.public_key_multibase.startswith("z6Mk")  # an Ed25519 Multikey
    assert verify_proof(signed, public)

    tampered = json.loads(json.dumps(signed))
    tampered["credentialSubject"]["achievement"]["name"] = "Certification Bruxelles Formation : pilote de ligne"
    assert not verify_proof(tampered, public)
    redated = {**signed, "proof": {**proof, "created": "2021-01-01T00:00:00Z"}}
    assert not verify_proof(redated, public)
    other_key = CredentialSigner(Ed25519PrivateKey.generate(), verification_method="x").public_key
    assert not verify_proof(signed, other_key)
    assert not verify_proof(credential(), public)


def test_the_signing_key_comes_as_a_base64_seed() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        CredentialSigner.from_seed("c2hvcnQ=", verification_method="x")
    with pytest.raises(ValueError, match="base64"):
        CredentialSigner.from_seed("not base64!", verification_method="x")
    seed = new_signing_key()
    a = CredentialSigner.from_seed(seed, verification_method="x")
    b = CredentialSigner.from_seed(seed, verification_method="x")
    assert a.public_key_multibase == b.public_key_multibase  # two replicas with one key sign alike


def test_canonical_json_is_jcs_for_what_credentials_hold() -> None:
    assert (
        canonical_json({"b": [1, True, None], "a": "é", "@context": "x"}) == '{"@context":"x","a":"é","b":[1,true,null]}'.encode()
    )
    with pytest.raises(ValueError, match="floating"):
        canonical_json({"score": 81.5})
    for raw in (b"", b"\0\0abc", bytes(range(40))):
        assert b58decode(b58encode(raw)) == raw
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
