"""Names echoed in our messages: what the web form refuses, and what other channels and notification clean."""

from __future__ import annotations

import pytest

from services.free_text import NAME_MAX_LENGTH, clean_name, looks_like_url, name_problem

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name",
    [
        "Amina El Idrissi",
        "Jan Peeters",
        "J.P. Dupont",
        "Marie-Claire St.Pierre",
        "Zoë D'Hondt",
        "Ngozi O. Adébáyọ̀",
        "王小明",
        "Dr. A. Van den Broeck",
    ],
)
def test_real_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None
    assert clean_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "URGENT: confirm at https://evil.example",
        "http://x",
        "visit WWW.evil.be now",
        "ftp://files.example",
        "hxxps://evil.example",
        "//evil.example",
        "evil.example/login",
        "pay at bit.ly",
        "paypal.com",
        "Jean mail me at jean@evil.com",
        "\uff48\uff54\uff54\uff50\uff53\uff1a\uff0f\uff0fevil",  # fullwidth https://
    ],
)
def test_links_are_refused_and_cleaned_away(name: str) -> None:
    assert looks_like_url(name)
    assert name_problem(name) == "name_url"
    assert clean_name(name) is None


@pytest.mark.parametrize(
    "name",
    ["Jan\r\nBcc: someone", "Jan\x00", "Jan\tPeeters", "Jan\x85", "Jan\x7f", "Jan \u202etxt.exe", "Jan\u2066x\u2069", "A\u2028B"],
)
def test_control_and_bidi_characters_are_refused_and_cleaned_to_spaces(name: str) -> None:
    assert name_problem(name) == "name_control_characters"
    cleaned = clean_name(name)
    assert cleaned is not None and cleaned.startswith(("Jan", "A"))
    assert name_problem(cleaned) is None


def test_cleaning_drops_empty_and_absurdly_long_names() -> None:
    assert clean_name(None) is None
    assert clean_name(" \r\n ") is None
    assert clean_name("A" * NAME_MAX_LENGTH) == "A" * NAME_MAX_LENGTH
    assert clean_name("A" * (NAME_MAX_LENGTH + 1)) is None
