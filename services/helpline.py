"""How a job seeker reaches a person: the free 0800 line and its hours, said the same way everywhere.

One wording per language for every message and page a job seeker reads (notification's SMS and
e-mails, intake's and certification's pages), so the facts cannot drift apart between languages
or between services. The facts are the seed's: 0800 555 66, free, working days 8:30-17:15.
"""

from __future__ import annotations

__all__ = ["HELPLINE_HOURS", "HELPLINE_NUMBER", "reach_us", "reach_us_short"]

HELPLINE_NUMBER = "0800 555 66"

HELPLINE_HOURS = {
    "fr": "les jours ouvrables de 8h30 à 17h15",
    "nl": "werkdagen van 8.30 tot 17.15 uur",
    "en": "working days 8:30 am–5:15 pm",
}
"""The opening hours of the line, as each language writes them."""

_REACH_US = {
    "fr": f"Pour parler à quelqu'un, appelez gratuitement le {HELPLINE_NUMBER}, {HELPLINE_HOURS['fr']}.",
    "nl": f"Wilt u iemand spreken? Bel gratis naar {HELPLINE_NUMBER}, op {HELPLINE_HOURS['nl']}.",
    "en": f"To talk to someone, call {HELPLINE_NUMBER} free of charge, {HELPLINE_HOURS['en']}.",
}

_REACH_US_SHORT = {
    "fr": f"Questions : {HELPLINE_NUMBER} (gratuit), jours ouvrables 8h30-17h15.",
    "nl": f"Vragen: {HELPLINE_NUMBER} (gratis), werkdagen 8.30-17.15 uur.",
    "en": f"Questions: {HELPLINE_NUMBER} (free), working days 8:30 am-5:15 pm.",
}


def reach_us(language: str | None) -> str:
    """One sentence: call the free line, on these hours (French for a language we do not write)."""
    return _REACH_US.get(language or "fr", _REACH_US["fr"])


def reach_us_short(language: str | None) -> str:
    """The same facts in a few words, for a text message."""
    return _REACH_US_SHORT.get(language or "fr", _REACH_US_SHORT["fr"])
