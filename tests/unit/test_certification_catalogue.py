"""The certifications as the 2020 answer describes them: eight job-skills certifications on office and
graphics software, each a private certification paired with Bruxelles Formation's own and recognised
by the other French-speaking public training bodies; two announced (technical drawing, web design);
one transversal digital-skills certificate; each tied to the online paths that prepare for it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from certification import __all__ as public_names
from certification.certifications import DEFAULT_PATH, load_certifications
from certification.settings import CertificationSettings
from services.catalogue import load_catalogue

pytestmark = pytest.mark.unit

CERTS = load_certifications()


def test_eight_open_job_skills_certifications_each_paired_with_a_private_one() -> None:
    paired = [c for c in CERTS.all() if c.open and c.private is not None]
    assert len(paired) == 8
    assert {c.family for c in paired} == {"office", "graphics"}
    assert {c.private.programme.name for c in paired if c.private} == {
        "Microsoft Office Specialist",
        "Adobe Certified Professional",
    }
    for cert in paired:
        assert cert.bf_title.startswith("Certification Bruxelles Formation")


def test_technical_drawing_and_web_design_are_announced_but_not_open() -> None:
    announced = {c.code: c for c in CERTS.all() if not c.open}
    assert set(announced) == {"ACU-AUTOCAD", "ACP-WEBDESIGN"}
    assert {c.family for c in announced.values()} == {"technical_drawing", "web_design"}
    assert all(c.private is not None for c in announced.values())


def test_the_transversal_digital_skills_certificate_is_bruxelles_formations_own() -> None:
    cert = CERTS.get("bf-numerique")
    assert cert is not None and cert.open and cert.private is None and cert.framework is not None
    assert cert.family == "digital_skills"


def test_every_certification_is_recognised_by_the_other_french_speaking_public_bodies() -> None:
    for cert in CERTS.all():
        assert {b.id for b in cert.recognised_by} == {"forem", "ifapme", "sfpme"}, cert.code


def test_each_certification_is_tied_to_the_paths_that_prepare_for_it() -> None:
    for cert in CERTS.all():
        assert cert.courses, cert.code
    assert CERTS.for_course("excel") is CERTS.get("MOS-EXCEL")
    assert CERTS.for_course("NUMERIQUE-TRANSVERSAL") is CERTS.get("BF-NUMERIQUE")
    assert CERTS.for_course("FR-BASE") is None  # basic skills prepare for no certification
    catalogue = load_catalogue()
    assert {c.code for c in CERTS.all()} == {c.code for c in catalogue.certifications}


def test_the_data_must_describe_exactly_the_catalogue_certifications(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    del data["certifications"]["MOS-WORD"]
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ValueError, match="MOS-WORD"):
        load_certifications(path=missing)

    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["certifications"]["MOS-EXCEL"]["recognised_by"] = ["vdab"]
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ValueError, match="vdab"):
        load_certifications(path=unknown)


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CertificationSettings()
    assert (settings.service_name, settings.http_port) == ("certification", 8004)
    assert settings.offer_window == timedelta(hours=48)
    assert settings.signing_key is None and settings.clock == "system"
    monkeypatch.setenv("CERTIFICATION_OFFER_WINDOW", "PT2H")
    monkeypatch.setenv("CERTIFICATION_PUBLIC_BASE_URL", "https://certification.example.be")
    configured = CertificationSettings()
    assert configured.offer_window == timedelta(hours=2)
    assert configured.public_base_url == "https://certification.example.be"


def test_public_surface() -> None:
    assert set(public_names) == {
        "CertificationError",
        "CertificationInfo",
        "CertificationService",
        "CertificationSettings",
        "Certifications",
        "build_credential",
        "create_app",
        "identity_hash",
        "load_certifications",
    }
