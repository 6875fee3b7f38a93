"""The certificate as an Open Badges 3.0 credential: required fields, the salted identity hash that
does not reveal the person, the revocation status list, the issuer's controller document, and the
optional eddsa-rdfc-2022 Data Integrity proof."""

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
    STATUS_LIST_BITS,
    VC2_CONTEXT,
    CredentialLinks,
    IssuerProfile,
    build_credential,
    controller_document,
    decode_status_list,
    encode_status_list,
    identity_hash,
    new_salt,
    new_status_index,
    revocation_list,
    revoked_view,
    status_bit,
    status_list_credential,
)
from certification.jsonld import UnknownContext, canonicalize
from certification.signing import (
    CredentialSigner,
    b58decode,
    b58encode,
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
    code: str = "MOS-EXCEL",
    *,
    salt: str = "9c1f2e3d4b5a69788796a5b4c3d2e1f0",
    credential_id: str = "c0ffee",
    email: str | None = None,
    status_index: int = 4242,
) -> dict[str, Any]:
    cert = CERTS.get(code)
    assert cert is not None
    return build_credential(
        credential_id=credential_id,
        certification=cert,
        person_id=PERSON,
        salt=salt,
        issued_at=ISSUED,
        links=LINKS,
        issuer=ISSUER,
        status_index=status_index,
        email=email,
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
        "id": "https://certification.bruxellesformation.test/status-lists/revocation#4242",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "4242",
        "statusListCredential": "https://certification.bruxellesformation.test/status-lists/revocation",
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


def test_the_holder_known_by_e_mail_is_a_salted_hash_of_the_address_a_verifier_can_check() -> None:
    doc = credential(email="  Amina.Diallo@Example.org ")
    [identity] = doc["credentialSubject"]["identifier"]
    assert identity["type"] == "IdentityObject"
    assert identity["identityType"] == "emailAddress"
    assert identity["hashed"] is True
    # What a verifier told the address computes: sha256$ + hex SHA-256(address + salt), address trimmed and lower-cased.
    expected = hashlib.sha256(("amina.diallo@example.org" + identity["salt"]).encode()).hexdigest()
    assert identity["identityHash"] == "sha256$" + expected
    assert identity_hash("someone.else@example.org", identity["salt"]) != identity["identityHash"]
    text = json.dumps(doc).lower()
    assert "amina" not in text and PERSON not in text


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
    listing = revocation_list(LINKS, ISSUER, [("c0ffee", "Issued in error")])  # the earlier list, still served
    assert listing == {
        "id": LINKS.revocations,
        "issuer": ISSUER.id,
        "revokedCredentials": [{"id": LINKS.credential("c0ffee"), "revocationReason": "Issued in error"}],
    }


def test_a_signed_credential_verifies_and_any_change_breaks_it() -> None:
    signer = CredentialSigner.from_seed(new_signing_key(), verification_method=LINKS.signing_key)
    signed = signer.sign(credential(), created=ISSUED)
    [proof] = signed["proof"]  # a proof set: 1EdTech's schema wants an array
    assert proof["@context"] == signed["@context"]
    assert proof["type"] == "DataIntegrityProof"
    assert proof["cryptosuite"] == "eddsa-rdfc-2022"
    assert proof["proofPurpose"] == "assertionMethod"
    assert proof["verificationMethod"] == "https://certification.bruxellesformation.test/issuer#key-1"
    assert proof["created"] == "2020-06-02T14:30:00Z"
    assert proof["proofValue"].startswith("z") and len(b58decode(proof["proofValue"][1:])) == 64

    public = public_key_from_multibase(signer.public_key_multibase)
    assert signer.public_key_multibase.startswith("z6Mk")  # an Ed25519 Multikey
    assert verify_proof(signed, public)
    assert verify_proof(signed, public, verification_method=LINKS.signing_key)
    assert not verify_proof(signed, public, verification_method="https://elsewhere.test/issuer#key-1")

    tampered = json.loads(json.dumps(signed))
    tampered["credentialSubject"]["achievement"]["name"] = "Certification Bruxelles Formation : pilote de ligne"
    assert not verify_proof(tampered, public)
    redated = {**signed, "proof": [{**proof, "created": "2021-01-01T00:00:00Z"}]}
    assert not verify_proof(redated, public)
    other_key = CredentialSigner(Ed25519PrivateKey.generate(), verification_method="x").public_key
    assert not verify_proof(signed, other_key)
    assert not verify_proof(credential(), public)


def test_signing_covers_the_linked_data_so_reordering_keys_changes_nothing() -> None:
    signer = CredentialSigner.from_seed(new_signing_key(), verification_method=LINKS.signing_key)
    signed = signer.sign(credential(), created=ISSUED)
    reordered = {key: signed[key] for key in reversed(list(signed))}
    assert verify_proof(reordered, public_key_from_multibase(signer.public_key_multibase))


def test_canonical_form_is_rdfc_n_quads_from_bundled_contexts_only() -> None:
    nquads = canonicalize(credential())
    assert nquads.endswith(" .\n") and "_:c14n0" in nquads
    assert "<https://purl.imsglobal.org/spec/vc/ob/vocab.html#OpenBadgeCredential>" in nquads
    assert canonicalize(credential()) == nquads  # deterministic
    with pytest.raises(UnknownContext, match="not bundled"):
        canonicalize({"@context": "https://example.org/not-bundled", "name": "x"})


def test_the_revocation_status_list_is_a_gzipped_bitstring_of_at_least_131072_bits() -> None:
    assert STATUS_LIST_BITS == 131_072
    encoded = encode_status_list([0, 7, 4242, STATUS_LIST_BITS - 1])
    assert encoded.startswith("u") and "=" not in encoded  # multibase base64url, no padding
    bitstring = decode_status_list(encoded)
    assert len(bitstring) == STATUS_LIST_BITS // 8
    assert bitstring[0] == 0b1000_0001  # index 0 is the left-most bit
    assert [i for i in (0, 1, 7, 8, 4241, 4242, 4243, STATUS_LIST_BITS - 1) if status_bit(encoded, i)] == [
        0,
        7,
        4242,
        STATUS_LIST_BITS - 1,
    ]
    assert encode_status_list([4242]) == encode_status_list([4242])  # no timestamp in the gzip header
    with pytest.raises(ValueError):
        encode_status_list([STATUS_LIST_BITS])
    assert all(0 <= new_status_index() < STATUS_LIST_BITS for _ in range(100))


def test_the_status_list_credential_is_signed_with_the_same_suite() -> None:
    signer = CredentialSigner.from_seed(new_signing_key(), verification_method=LINKS.signing_key)
    listing = signer.sign(status_list_credential(LINKS, ISSUER, [4242], valid_from=ISSUED), created=ISSUED)
    assert listing["id"] == LINKS.status_list
    assert listing["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert listing["issuer"] == ISSUER.id
    subject = listing["credentialSubject"]
    assert subject["type"] == "BitstringStatusList" and subject["statusPurpose"] == "revocation"
    assert status_bit(subject["encodedList"], 4242) and not status_bit(subject["encodedList"], 4243)
    assert listing["proof"][0]["cryptosuite"] == "eddsa-rdfc-2022"
    assert verify_proof(listing, public_key_from_multibase(signer.public_key_multibase))


def test_the_issuer_is_a_controller_document_whose_key_dereferences_to_a_multikey() -> None:
    signer = CredentialSigner.from_seed(new_signing_key(), verification_method=LINKS.signing_key)
    doc = controller_document(ISSUER.id, [(signer.verification_method, signer.public_key_multibase)])
    assert doc["@context"] == ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
    assert doc["id"] == LINKS.issuer
    assert doc["assertionMethod"] == [LINKS.issuer + "#key-1"]
    [method] = [m for m in doc["verificationMethod"] if m["id"] == doc["assertionMethod"][0]]
    assert method == {
        "id": LINKS.issuer + "#key-1",
        "type": "Multikey",
        "controller": LINKS.issuer,
        "publicKeyMultibase": signer.public_key_multibase,
    }
    canonicalize(doc)  # valid linked data with the bundled contexts


def test_the_signing_key_comes_as_a_base64_seed() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        CredentialSigner.from_seed("c2hvcnQ=", verification_method="x")
    with pytest.raises(ValueError, match="base64"):
        CredentialSigner.from_seed("not base64!", verification_method="x")
    seed = new_signing_key()
    a = CredentialSigner.from_seed(seed, verification_method="x")
    b = CredentialSigner.from_seed(seed, verification_method="x")
    assert a.public_key_multibase == b.public_key_multibase  # two replicas with one key sign alike


def test_base58btc_round_trips() -> None:
    for raw in (b"", b"\0\0abc", bytes(range(40))):
        assert b58decode(b58encode(raw)) == raw
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
