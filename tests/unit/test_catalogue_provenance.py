"""Issue 14, item 6: every course and certification states its provenance. It quotes the passage of
the seed (the 2020 answer to parliamentary question n°229, `docs/seed/`) it rests on, word for word,
and marks as example data each fact the seed does not state: vendor names and programmes, the bodies
that recognise Bruxelles Formation's certifications, course languages and capacities."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from certification.certifications import DEFAULT_PATH as CERTIFICATIONS_PATH
from certification.certifications import load_certifications
from services.catalogue import DEFAULT_PATH as CATALOGUE_PATH
from services.catalogue import Catalogue, Certification, Course, load_catalogue

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "docs" / "seed" / "question-229-2020.fr.txt"
VENDORS = ("Microsoft", "Adobe", "Autodesk", "Certiport", "ICDL")


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def in_seed(quote: str) -> bool:
    return _words(quote) in _words(SEED.read_text(encoding="utf-8"))


CATALOGUE = load_catalogue()
RAW_DETAILS = yaml.safe_load(CERTIFICATIONS_PATH.read_text(encoding="utf-8"))


def test_every_course_and_certification_quotes_the_seed_word_for_word() -> None:
    entries: list[Course | Certification] = [*CATALOGUE.courses, *CATALOGUE.certifications]
    assert len(entries) == 14 + 11
    for entry in entries:
        assert entry.provenance.seed.strip(), entry.code
        assert in_seed(entry.provenance.seed), (entry.code, entry.provenance.seed)
    for name, quote in CATALOGUE.quotes.items():
        assert in_seed(quote), name


def test_certifications_own_data_states_its_provenance_too() -> None:
    quoted = [
        RAW_DETAILS["issuer"],
        *RAW_DETAILS["bodies"],
        *RAW_DETAILS["programmes"].values(),
        *RAW_DETAILS["certifications"].values(),
        RAW_DETAILS["certifications"]["BF-NUMERIQUE"]["framework"],
    ]
    for entry in quoted:
        assert "provenance" in entry, entry
        assert in_seed(entry["provenance"]["seed"]), entry["provenance"]["seed"]
    assert {c.code for c in load_certifications().all()} == set(RAW_DETAILS["certifications"])


def test_no_course_capacity_nor_language_comes_from_the_seed() -> None:
    # The seed gives no capacity (its 350 a year is the digital-divide programme's) and no language.
    for course in CATALOGUE.courses:
        assert course.is_example("capacity") and course.is_example("languages"), course.code


def test_vendor_names_are_example_data_wherever_they_appear() -> None:
    for cert in CATALOGUE.certifications:
        if any(vendor in cert.title for vendor in VENDORS):
            assert cert.is_example("title"), cert.code
    for course in CATALOGUE.courses:
        if course.certification is not None and CATALOGUE.certification(course.certification).is_example("title"):  # type: ignore[union-attr]
            assert course.is_example("certification"), course.code
    for programme in RAW_DETAILS["programmes"].values():
        assert set(programme["provenance"]["example"]) == {"name", "owner", "url"}
    for info in load_certifications().all():
        if info.private is not None:
            assert "private" in info.example and "title" in info.example, info.code


def test_the_recognising_bodies_are_example_data_the_sharing_is_the_seeds() -> None:
    for body in RAW_DETAILS["bodies"]:
        assert "name" in body["provenance"]["example"], body["id"]
        assert "autres organismes publics francophones" in body["provenance"]["seed"]
    assert all("recognised_by" in cert.example for cert in load_certifications().all())


def test_what_the_seed_does_state_is_not_marked_as_example() -> None:
    # Eight open certifications on office and graphics software, two announced, one transversal.
    families = {c.code: c.family for c in CATALOGUE.certifications}
    assert sorted(families.values()).count("office") + sorted(families.values()).count("graphics") == 8
    for cert in CATALOGUE.certifications:
        assert not cert.is_example("family") and not cert.is_example("open"), cert.code
    transversal = CATALOGUE.certification("BF-NUMERIQUE")
    assert transversal is not None and transversal.provenance.example == ()
    for code in ("FR-BASE", "CALCUL-BASE", "BUREAUTIQUE-INIT"):
        course = CATALOGUE.course(code)
        assert course is not None and not course.is_example("title") and not course.is_example("kind")


def _catalogue_data() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_the_loader_refuses_an_entry_without_provenance() -> None:
    data = _catalogue_data()
    del data["certifications"][0]["provenance"]
    with pytest.raises(ValidationError, match="provenance"):
        Catalogue.model_validate(data)
    data = _catalogue_data()
    del data["courses"][3]["provenance"]
    with pytest.raises(ValidationError, match="provenance"):
        Catalogue.model_validate(data)


def test_the_loader_refuses_an_example_field_that_is_no_fact() -> None:
    data = _catalogue_data()
    data["courses"][0]["provenance"]["example"] = ["capacity", "colour"]
    with pytest.raises(ValidationError, match="colour"):
        Catalogue.model_validate(data)
    data = _catalogue_data()
    data["courses"][0]["provenance"]["example"] = ["keywords"]  # matching aids, not facts
    with pytest.raises(ValidationError, match="keywords"):
        Catalogue.model_validate(data)


def test_certifications_loader_refuses_missing_provenance(tmp_path: Path) -> None:
    data = dict(RAW_DETAILS)
    data["certifications"] = {code: dict(entry) for code, entry in RAW_DETAILS["certifications"].items()}
    del data["certifications"]["MOS-WORD"]["provenance"]
    broken = tmp_path / "certifications.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ValidationError, match="provenance"):
        load_certifications(path=broken)
