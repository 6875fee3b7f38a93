"""The public verification page: what it says of a valid, a revoked and an unverifiable credential,
in French, Dutch and English, as plain accessible HTML without JavaScript."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from html import escape
from html.parser import HTMLParser
from typing import Any

import pytest

from certification.certifications import load_certifications
from certification.credentials import CredentialLinks, IssuerProfile, build_credential, new_salt
from certification.signing import CredentialSigner, new_signing_key
from certification.verification import Verdict, assess, render
from schemas import Language

pytestmark = pytest.mark.unit

ISSUED = datetime(2020, 6, 2, 14, 30, tzinfo=UTC)
LINKS = CredentialLinks("https://certification.bruxellesformation.test")
ISSUER = IssuerProfile(id=LINKS.issuer, name="Bruxelles Formation", url="https://www.bruxellesformation.brussels")
SIGNER = CredentialSigner.from_seed(new_signing_key(), verification_method=LINKS.signing_key)


def record(**changes: Any) -> dict[str, Any]:
    cert = load_certifications().get("MOS-EXCEL")
    assert cert is not None
    document = build_credential(
        credential_id="c0ffee",
        certification=cert,
        person_id="prs_1",
        salt=new_salt(),
        issued_at=ISSUED,
        links=LINKS,
        issuer=ISSUER,
        status_index=5,
        evidence=[{"type": ["Evidence"], "name": "Examen « Microsoft Office Specialist: Excel » (Microsoft)"}],
    )
    return {"_id": "c0ffee", "status": "active", "document": SIGNER.sign(document, created=ISSUED), **changes}


def page(rec: dict[str, Any], language: Language = Language.FR, *, key: bool = True) -> tuple[str, str]:
    assessment = assess(
        rec,
        public_key=SIGNER.public_key if key else None,
        verification_method=SIGNER.verification_method if key else None,
        credential_url=LINKS.credential("c0ffee"),
        page_url=LINKS.verification_page("c0ffee"),
    )
    return assessment.verdict, render(assessment, language)


class Outline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "html":
            self.lang = dict(attrs).get("lang")


def test_a_valid_credential_says_so_with_what_it_certifies_when_and_a_link_to_share() -> None:
    verdict, html = page(record())
    assert verdict == Verdict.VALID
    assert "authentique et valide" in html and "Bruxelles Formation" in html
    assert "Certification Bruxelles Formation : tableur (Excel)" in html
    assert '<time datetime="2020-06-02T14:30:00Z">2020-06-02</time>' in html
    assert "Microsoft Office Specialist: Excel" in html  # the exam passed, from the evidence
    assert f'<a href="{LINKS.verification_page("c0ffee")}">' in html
    assert f'href="{LINKS.credential("c0ffee")}"' in html


def test_a_revoked_credential_says_revoked_when_and_why() -> None:
    verdict, html = page(record(status="revoked", revoked_at=datetime(2020, 7, 1, tzinfo=UTC), revocation_reason="Erreur"))
    assert verdict == Verdict.REVOKED
    assert "révoqué" in html and "2020-07-01" in html and "Erreur" in html
    assert "authentique et valide" not in html


def test_an_altered_or_unsigned_credential_is_not_called_valid() -> None:
    altered = record()
    altered["document"] = copy.deepcopy(altered["document"])
    altered["document"]["name"] = "Autre chose"
    assert page(altered)[0] == Verdict.UNVERIFIED
    assert page(record(), key=False)[0] == Verdict.UNVERIFIED


@pytest.mark.parametrize(
    ("language", "words"),
    [
        (Language.FR, "Vérification d'un certificat"),
        (Language.NL, "Verificatie van een certificaat"),
        (Language.EN, "Certificate verification"),
    ],
)
def test_the_page_speaks_french_dutch_and_english_plainly(language: Language, words: str) -> None:
    _, html = page(record(), language)
    outline = Outline()
    outline.feed(html)
    assert outline.lang == language.value
    assert f"<h1>{escape(words)}</h1>" in html
    headings = [t for t in outline.tags if re.fullmatch(r"h[1-6]", t)]
    assert headings[0] == "h1" and headings.count("h1") == 1
    assert "script" not in outline.tags and "<script" not in html.lower()
    for other in Language:
        assert f'?lang={other.value}"' in html  # the page in the other languages


def test_text_from_the_credential_is_escaped() -> None:
    rec = record(status="revoked", revoked_at=ISSUED, revocation_reason="<script>alert(1)</script>")
    _, html = page(rec)
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("language", "hours"),
    [
        (Language.FR, "les jours ouvrables de 8h30 à 17h15"),
        (Language.NL, "werkdagen van 8.30 tot 17.15 uur"),
        (Language.EN, "working days 8:30 am–5:15 pm"),
    ],
)
def test_the_page_says_how_to_reach_a_person_and_what_to_do_when_the_signature_does_not_check(
    language: Language, hours: str
) -> None:
    for key in (True, False):
        verdict, html = page(record(), language, key=key)
        assert "0800 555 66" in html and hours in html
    assert verdict is Verdict.UNVERIFIED
    call = {Language.FR: "Appelez-nous", Language.NL: "Bel ons", Language.EN: "Call us"}[language]
    assert call in html
