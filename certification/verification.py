"""The public page that tells anyone shown a credential whether it holds: signed by Bruxelles Formation
and unaltered, or revoked, what it certifies and since when, in French, Dutch or English.

Plain HTML, no JavaScript: a `lang` attribute, headings in order, the verdict in words (never
colour alone), and the page's own address to share. `assess` (pure) decides what the page says;
`render` writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from certification.signing import verify_proof
from schemas import Language
from services.helpline import reach_us

__all__ = ["PAGE_HEADERS", "Assessment", "Verdict", "assess", "render"]

PAGE_HEADERS = {
    # A revocation must show at once: revalidate every time.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
}


class Verdict:
    VALID = "valid"
    REVOKED = "revoked"
    UNVERIFIED = "unverified"
    """No proof that checks: no signing key configured, or the document changed since it was signed."""


@dataclass(frozen=True, slots=True)
class Assessment:
    verdict: str
    credential_id: str
    credential_url: str
    page_url: str
    title: str
    description: str
    issuer: str
    issued_at: str
    revoked_at: datetime | None
    revocation_reason: str | None
    evidence: tuple[str, ...]


def assess(
    record: Mapping[str, Any],
    *,
    public_key: Ed25519PublicKey | None,
    verification_method: str | None,
    credential_url: str,
    page_url: str,
) -> Assessment:
    """What the page says about a stored credential `record` (its status and its document as issued)."""
    document: Mapping[str, Any] = record["document"]
    signed = public_key is not None and verify_proof(document, public_key, verification_method=verification_method)
    revoked = record.get("status") == "revoked"
    verdict = Verdict.REVOKED if revoked else Verdict.VALID if signed else Verdict.UNVERIFIED
    subject = document.get("credentialSubject", {})
    achievement = subject.get("achievement", {}) if isinstance(subject, Mapping) else {}
    issuer = document.get("issuer", {})
    return Assessment(
        verdict=verdict,
        credential_id=str(record["_id"]),
        credential_url=credential_url,
        page_url=page_url,
        title=str(achievement.get("name") or document.get("name") or ""),
        description=str(achievement.get("description") or ""),
        issuer=str(issuer.get("name") if isinstance(issuer, Mapping) else issuer),
        issued_at=str(document.get("validFrom") or ""),
        revoked_at=record.get("revoked_at") if revoked else None,
        revocation_reason=record.get("revocation_reason") if revoked else None,
        evidence=tuple(str(e.get("name")) for e in document.get("evidence", []) if isinstance(e, Mapping) and e.get("name")),
    )


_TEXTS: dict[Language, dict[str, str]] = {
    Language.FR: {
        "title": "Vérification d'un certificat — Bruxelles Formation",
        "heading": "Vérification d'un certificat",
        Verdict.VALID: "Ce certificat est authentique et valide : il a été délivré et signé par {issuer} et n'a pas été modifié.",
        Verdict.REVOKED: "Ce certificat a été révoqué par {issuer}. Il n'est plus valide.",
        Verdict.UNVERIFIED: "La signature de ce certificat n'a pas pu être vérifiée : "
        "nous ne pouvons pas dire s'il est authentique. Appelez-nous pour le vérifier.",
        "verdict": "Résultat",
        "what": "Ce qu'il certifie",
        "issued": "Délivré le",
        "revoked_at": "Révoqué le",
        "reason": "Motif",
        "evidence": "Preuve",
        "share": "Partager",
        "share_text": "Adresse de cette page, à partager :",
        "data": "Le certificat au format Open Badges 3.0 (JSON)",
        "languages": "Langues",
        "help": reach_us("fr"),
    },
    Language.NL: {
        "title": "Verificatie van een certificaat — Bruxelles Formation",
        "heading": "Verificatie van een certificaat",
        Verdict.VALID: (
            "Dit certificaat is echt en geldig: het werd uitgereikt en ondertekend door {issuer} en is niet gewijzigd."
        ),
        Verdict.REVOKED: "Dit certificaat werd ingetrokken door {issuer}. Het is niet meer geldig.",
        Verdict.UNVERIFIED: "De handtekening van dit certificaat kon niet worden geverifieerd: "
        "we kunnen niet zeggen of het echt is. Bel ons om het na te gaan.",
        "verdict": "Resultaat",
        "what": "Wat het certificeert",
        "issued": "Uitgereikt op",
        "revoked_at": "Ingetrokken op",
        "reason": "Reden",
        "evidence": "Bewijs",
        "share": "Delen",
        "share_text": "Adres van deze pagina, om te delen:",
        "data": "Het certificaat in Open Badges 3.0-formaat (JSON)",
        "languages": "Talen",
        "help": reach_us("nl"),
    },
    Language.EN: {
        "title": "Certificate verification — Bruxelles Formation",
        "heading": "Certificate verification",
        Verdict.VALID: "This certificate is genuine and valid: it was issued and signed by {issuer} and has not been altered.",
        Verdict.REVOKED: "This certificate was revoked by {issuer}. It is no longer valid.",
        Verdict.UNVERIFIED: "The signature of this certificate could not be verified: "
        "we cannot say whether it is genuine. Call us to check it.",
        "verdict": "Result",
        "what": "What it certifies",
        "issued": "Issued on",
        "revoked_at": "Revoked on",
        "reason": "Reason",
        "evidence": "Evidence",
        "share": "Share",
        "share_text": "Address of this page, to share:",
        "data": "The certificate in Open Badges 3.0 format (JSON)",
        "languages": "Languages",
        "help": reach_us("en"),
    },
}

_LANGUAGE_NAMES = {Language.FR: "Français", Language.NL: "Nederlands", Language.EN: "English"}


def _date(value: str | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d")
    return value[:10]


def render(assessment: Assessment, language: Language) -> str:
    """The page, in `language` (fr, nl or en)."""
    t = _TEXTS[language]
    a = assessment
    e = escape
    links = " · ".join(
        f'<a href="{e(a.page_url)}?lang={lang.value}" hreflang="{lang.value}" lang="{lang.value}"'
        + (' aria-current="page"' if lang is language else "")
        + f">{_LANGUAGE_NAMES[lang]}</a>"
        for lang in _TEXTS
    )
    revoked = ""
    if a.verdict == Verdict.REVOKED:
        revoked = f"<dt>{t['revoked_at']}</dt><dd>{e(_date(a.revoked_at))}</dd>"
        if a.revocation_reason:
            revoked += f"<dt>{t['reason']}</dt><dd>{e(a.revocation_reason)}</dd>"
    evidence = "".join(f"<dt>{t['evidence']}</dt><dd>{e(item)}</dd>" for item in a.evidence)
    return f"""<!doctype html>
<html lang="{language.value}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(t["title"])}</title>
<link rel="alternate" type="application/json" href="{e(a.credential_url)}">
<style>
body {{ font-family: system-ui, sans-serif; line-height: 1.5; max-width: 44rem; margin: 1.5rem auto; padding: 0 1rem; }}
dt {{ font-weight: bold; }} dd {{ margin: 0 0 .5rem 0; }}
[role=status] {{ border: 2px solid; padding: .75rem; }}
a {{ overflow-wrap: anywhere; }}
</style>
</head>
<body>
<nav aria-label="{t["languages"]}"><p>{links}</p></nav>
<main>
<h1>{e(t["heading"])}</h1>
<section aria-labelledby="verdict">
<h2 id="verdict">{t["verdict"]}</h2>
<p role="status"><strong>{e(t[a.verdict].format(issuer=a.issuer))}</strong></p>
</section>
<section aria-labelledby="what">
<h2 id="what">{t["what"]}</h2>
<h3>{e(a.title)}</h3>
<p>{e(a.description)}</p>
<dl>
<dt>{t["issued"]}</dt><dd><time datetime="{e(a.issued_at)}">{e(_date(a.issued_at))}</time></dd>
{revoked}{evidence}
</dl>
<p><a href="{e(a.credential_url)}" type="application/json">{t["data"]}</a></p>
</section>
<section aria-labelledby="share">
<h2 id="share">{t["share"]}</h2>
<p>{t["share_text"]} <a href="{e(a.page_url)}">{e(a.page_url)}</a></p>
</section>
<p>{e(t["help"])}</p>
</main>
</body>
</html>
"""
