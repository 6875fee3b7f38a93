"""JSON-LD for credentials, offline: the contexts they use are bundled under `certification/contexts/`
(official copies, with their licences and sources in that folder's README) and served from there to
the JSON-LD processor (pyld); any other URL is refused, so canonicalising never reaches the network
and a context that changed upstream cannot change what was signed.

`canonicalize` is RDF Dataset Canonicalization (RDFC-1.0, which pyld names by its earlier name
URDNA2015) of a JSON-LD document, as N-Quads: what the `eddsa-rdfc-2022` cryptosuite hashes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pyld import jsonld  # type: ignore[import-untyped]

__all__ = [
    "CONTEXT_FILES",
    "CREDENTIALS_V2",
    "DATA_INTEGRITY_V2",
    "DID_V1",
    "MULTIKEY_V1",
    "OB3_CONTEXT",
    "UnknownContext",
    "bundled_context",
    "canonicalize",
    "document_loader",
]

CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
OB3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
DID_V1 = "https://www.w3.org/ns/did/v1"

_FOLDER = Path(__file__).parent / "contexts"
CONTEXT_FILES: dict[str, str] = {
    CREDENTIALS_V2: "credentials-v2.jsonld",
    OB3_CONTEXT: "ob-context-3.0.3.json",
    DATA_INTEGRITY_V2: "data-integrity-v2.jsonld",
    MULTIKEY_V1: "multikey-v1.jsonld",
    DID_V1: "did-v1.jsonld",
}
"""The URL of each bundled context and its file in `certification/contexts/`."""


class UnknownContext(ValueError):
    """A document names a context that is not bundled: it is not fetched."""


@cache
def bundled_context(url: str) -> dict[str, Any]:
    name = CONTEXT_FILES.get(url)
    if name is None:
        raise UnknownContext(f"the JSON-LD context {url} is not bundled (contexts are never fetched)")
    return json.loads((_FOLDER / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def document_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """pyld's document loader: the bundled contexts, nothing else."""
    try:
        document = bundled_context(url)
    except UnknownContext as error:
        raise jsonld.JsonLdError(str(error), "jsonld.LoadDocumentError", {"url": url}, code="loading document failed") from error
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url, "document": document}


def canonicalize(document: Mapping[str, Any]) -> str:
    """RDFC-1.0 canonical N-Quads of a JSON-LD document (contexts from the bundle only)."""
    try:
        result = jsonld.normalize(
            dict(document),
            {
                "algorithm": "URDNA2015",
                "format": "application/n-quads",
                "documentLoader": document_loader,
                "base": None,
            },
        )
    except jsonld.JsonLdError as error:
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, UnknownContext):
                raise UnknownContext(str(cause)) from error
            cause = getattr(cause, "cause", None) or cause.__cause__
        raise
    if not result:
        raise ValueError("the document has no linked data to canonicalise (no @context?)")
    return str(result)
