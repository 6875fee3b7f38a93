"""Phone numbers and e-mail addresses normalised so one person is recognised across channels."""

import pytest

from intake.identity import identity_keys, normalise_email, normalise_phone

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "raw",
    [
        "0470 12 34 56",
        "0470/12.34.56",
        "+32 470 12 34 56",
        "0032 470 12 34 56",
        "+32 (0)470 123456",
        "32470123456",
        " 0470123456 ",
    ],
)
def test_belgian_mobile_formats_are_one_number(raw: str) -> None:
    assert normalise_phone(raw) == "+32470123456"


@pytest.mark.parametrize(("raw", "expected"), [("02 555 66 77", "+3225556677"), ("+33 6 12 34 56 78", "+33612345678")])
def test_landlines_and_foreign_numbers(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", None, "not a number", "123", "+32 12"])
def test_what_is_not_a_number_is_none(raw: str | None) -> None:
    assert normalise_phone(raw) is None


def test_email_addresses_are_trimmed_and_lowercased() -> None:
    assert normalise_email("  <Amina.TEST@Example.ORG> ") == "amina.test@example.org"
    assert normalise_email("jan+opleiding@voorbeeld.be") == "jan+opleiding@voorbeeld.be"
    assert normalise_email("no-at-sign") is None
    assert normalise_email("a@b") is None


def test_identity_keys() -> None:
    assert identity_keys("+32470123456", "a@b.be") == ["phone:+32470123456", "email:a@b.be"]
    assert identity_keys(None, None) == []
