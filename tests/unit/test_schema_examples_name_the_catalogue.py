"""The examples in the event contracts name courses and certifications that exist: an adapter
author copying one from the AsyncAPI documents gets a code the catalogue knows."""

from __future__ import annotations

import pytest

from schemas import EVENT_CLASSES
from services.catalogue import load_catalogue

pytestmark = pytest.mark.unit

COURSE_FIELDS = ("requested_course", "course_code")
CERTIFICATION_FIELDS = ("certification_code",)


def examples_of(field_names: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for event_class in EVENT_CLASSES:
        for name, field in event_class.model_fields.items():
            if name in field_names:
                found.update(str(example) for example in field.examples or ())
    return found


def test_course_examples_are_catalogue_courses() -> None:
    catalogue = load_catalogue()
    examples = examples_of(COURSE_FIELDS)
    assert examples
    assert {code for code in examples if catalogue.course(code) is None} == set()


def test_certification_examples_are_catalogue_certifications() -> None:
    catalogue = load_catalogue()
    examples = examples_of(CERTIFICATION_FIELDS)
    assert examples
    assert {code for code in examples if catalogue.certification(code) is None} == set()
