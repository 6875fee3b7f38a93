"""Signing credentials: a W3C Data Integrity proof with the `eddsa-rdfc-2022` cryptosuite (Ed25519 over
RDF Dataset Canonicalization, RDFC-1.0), one that 1EdTech's Open Badges 3.0 conformance suite and
standard Data Integrity verifiers accept, so that anyone holding the issuer's public key can check
that a credential was issued by Bruxelles Formation and not altered.

The algorithm is that of W3C "Data Integrity EdDSA Cryptosuites v1.0" (eddsa-rdfc-2022):
transform the document without its proof to canonical N-Quads; canonicalise the proof configuration
(the proof options with the document's `@context`); hash data = SHA-256(canonical proof
configuration) || SHA-256(canonical document); sign it with Ed25519; `proofValue` is the signature
as multibase base58btc (`z...`). `proof` is an array (a proof set), and each proof carries the
document's `@context`. Canonicalisation is `certification.jsonld` (pyld, bundled contexts only).

The key comes from the settings (`CERTIFICATION_SIGNING_KEY`, a base64 32-byte Ed25519 seed); with
none, credentials are issued without a proof. `new_signing_key()` makes one::

    uv run python -c "from certification.signing import new_signing_key; print(new_signing_key())"
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from certification.jsonld import canonicalize

__all__ = [
    "CRYPTOSUITE",
    "CredentialSigner",
    "b58decode",
    "b58encode",
    "new_signing_key",
    "public_key_from_multibase",
    "proofs_of",
    "public_key_multibase",
    "verify_proof",
]

CRYPTOSUITE = "eddsa-rdfc-2022"
_ED25519_PUB_MULTICODEC = b"\xed\x01"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    encoded = ""
    while number:
        number, remainder = divmod(number, 58)
        encoded = _B58[remainder] + encoded
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + encoded


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise ValueError(f"not base58btc: {char!r}")
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading_ones = len(text) - len(text.lstrip("1"))
    return b"\0" * leading_ones + body


def public_key_multibase(key: Ed25519PublicKey) -> str:
    """The Multikey form of an Ed25519 public key: base58btc multibase of the multicodec-prefixed key."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "z" + b58encode(_ED25519_PUB_MULTICODEC + raw)


def public_key_from_multibase(text: str) -> Ed25519PublicKey:
    if not text.startswith("z"):
        raise ValueError("expected a base58btc multibase value (starting with 'z')")
    decoded = b58decode(text[1:])
    if not decoded.startswith(_ED25519_PUB_MULTICODEC) or len(decoded) != 34:
        raise ValueError("not an Ed25519 Multikey")
    return Ed25519PublicKey.from_public_bytes(decoded[2:])


def new_signing_key() -> str:
    """A fresh Ed25519 seed, base64, for `CERTIFICATION_SIGNING_KEY`."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return base64.b64encode(seed).decode("ascii")


def _hash_data(document: Mapping[str, Any], proof_options: Mapping[str, Any]) -> bytes:
    """eddsa-rdfc-2022's hash data: SHA-256(RDFC(proof configuration)) || SHA-256(RDFC(document without proof))."""
    if proof_options.get("type") != "DataIntegrityProof" or proof_options.get("cryptosuite") != CRYPTOSUITE:
        raise ValueError(f"not a DataIntegrityProof with the {CRYPTOSUITE} cryptosuite")
    if "@context" not in document:
        raise ValueError("the document has no @context")
    config = {k: v for k, v in proof_options.items() if k != "proofValue"}
    config["@context"] = document["@context"]
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    return (
        hashlib.sha256(canonicalize(config).encode("utf-8")).digest()
        + hashlib.sha256(canonicalize(unsecured).encode("utf-8")).digest()
    )


class CredentialSigner:
    """Adds a `DataIntegrityProof` to credentials with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey, *, verification_method: str) -> None:
        self._key = private_key
        self.verification_method = verification_method

    @classmethod
    def from_seed(cls, seed_b64: str, *, verification_method: str) -> CredentialSigner:
        try:
            seed = base64.b64decode(seed_b64.strip(), validate=True)
        except ValueError as error:
            raise ValueError("the signing key must be base64") from error
        if len(seed) != 32:
            raise ValueError("the signing key must be a 32-byte Ed25519 seed")
        return cls(Ed25519PrivateKey.from_private_bytes(seed), verification_method=verification_method)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    @property
    def public_key_multibase(self) -> str:
        return public_key_multibase(self.public_key)

    def sign(self, document: Mapping[str, Any], *, created: datetime) -> dict[str, Any]:
        """A copy of `document` with its proof (`proof` is a list; a proof already there is kept)."""
        options = {
            "@context": copy.deepcopy(document["@context"]),
            "type": "DataIntegrityProof",
            "cryptosuite": CRYPTOSUITE,
            "created": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "verificationMethod": self.verification_method,
            "proofPurpose": "assertionMethod",
        }
        signature = self._key.sign(_hash_data(document, options))
        signed = copy.deepcopy(dict(document))
        existing = signed.pop("proof", [])
        proofs = list(existing) if isinstance(existing, list) else [existing]
        signed["proof"] = [*proofs, {**options, "proofValue": "z" + b58encode(signature)}]
        return signed


def proofs_of(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The document's proofs (`proof` may be one object or a list)."""
    proof = document.get("proof")
    if isinstance(proof, Mapping):
        return [proof]
    if isinstance(proof, list):
        return [p for p in proof if isinstance(p, Mapping)]
    return []


def verify_proof(document: Mapping[str, Any], public_key: Ed25519PublicKey, *, verification_method: str | None = None) -> bool:
    """True if `document` carries an eddsa-rdfc-2022 proof made with `public_key` over its current content
    (and naming `verification_method`, when given)."""
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    for proof in proofs_of(document):
        if proof.get("cryptosuite") != CRYPTOSUITE or proof.get("proofPurpose") != "assertionMethod":
            continue
        if verification_method is not None and proof.get("verificationMethod") != verification_method:
            continue
        value = proof.get("proofValue")
        if not isinstance(value, str) or not value.startswith("z"):
            continue
        try:
            public_key.verify(b58decode(value[1:]), _hash_data(unsecured, proof))
        except (InvalidSignature, ValueError):
            continue
        return True
    return False
