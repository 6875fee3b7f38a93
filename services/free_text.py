"""Free text that we echo back to people: what a person's name may contain before it is greeted in a message.

A name lands in official texts and e-mails ("Bonjour {name},"), so whoever controls it controls
part of a message signed Bruxelles Formation. A name with a link ("URGENT: confirm at
https://...") turns our notification into a phishing lure; control characters break headers
(CR/LF) or, with bidirectional overrides, show a different text from the one stored. The web form
refuses such names (`name_problem`); channels where the name comes from someone else's data (an
e-mail's From header, a caller's record) clean it instead (`clean_name`), because a request that
reached us is never dropped for its name; notification cleans again before rendering.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

__all__ = ["NAME_MAX_LENGTH", "NameProblem", "clean_name", "has_control_characters", "looks_like_url", "name_problem"]

NAME_MAX_LENGTH = 200
"""Longer than any real name (the longest in Belgian registers are well under 100 characters)."""

NameProblem = Literal["name_control_characters", "name_url"]

# Bidirectional embeddings, overrides and isolates: they reorder what a reader sees ("Trojan
# Source"). Line and paragraph separators end a header line as CR/LF would in some readers.
_INVISIBLE_FORMATTING = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\u200e\u200f")

# A scheme ("https://", "ftp://", "hxxp://") or a scheme-relative "//host", "www.", or a bare host with a path ("evil.example/x")
# or ending in a TLD that link shorteners and lures use. Not any "a.b": "J.P. Dupont" and
# "St.Pierre" are names.
_SCHEME = r"[a-z][a-z0-9+.\-]*://|//[a-z0-9]"
_WWW = r"\bwww\d{0,3}\."
_HOST_WITH_PATH = r"\b[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9\-]+)*\.[a-z]{2,63}/"
_TLDS = (
    "com|net|org|info|biz|be|eu|fr|nl|de|uk|io|co|me|ly|gl|to|app|link|click|top|xyz|site|online|shop|"
    "live|ru|cn|tk|ml|ga|cf|gq|icu|vip|club|page|dev|ai|gg|cc|ws|us"
)
_HOST_WITH_TLD = rf"\b[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9\-]+)*\.(?:{_TLDS})\b"
_URL = re.compile("|".join((_SCHEME, _WWW, _HOST_WITH_PATH, _HOST_WITH_TLD)), re.IGNORECASE)


def has_control_characters(text: str) -> bool:
    """C0 and C1 controls (CR, LF, TAB, NUL, DEL, U+0080-U+009F), bidi overrides and isolates, line separators."""
    return any(unicodedata.category(ch) == "Cc" or ch in _INVISIBLE_FORMATTING for ch in text)


def looks_like_url(text: str) -> bool:
    """Whether `text` holds something a mail or SMS reader would show as a link."""
    # NFKC first: fullwidth letters, colons and slashes (U+FF01-U+FF5E) and similar compatibility forms are links to a reader too.
    return _URL.search(unicodedata.normalize("NFKC", text)) is not None


def name_problem(name: str) -> NameProblem | None:
    """Why a name given on the web form is refused, or None if it may be greeted as it is."""
    if has_control_characters(name):
        return "name_control_characters"
    if looks_like_url(name):
        return "name_url"
    return None


def clean_name(name: str | None) -> str | None:
    """A name safe to greet, from one we did not choose: controls become spaces, a link drops the name.

    None when nothing usable is left, the name looks like a link, or it is absurdly long (a
    sentence, not a name): a message then greets nobody in particular ("Bonjour,").
    """
    if not name:
        return None
    visible = "".join(" " if unicodedata.category(ch) == "Cc" or ch in _INVISIBLE_FORMATTING else ch for ch in name)
    collapsed = re.sub(r"\s+", " ", visible).strip()
    if not collapsed or len(collapsed) > NAME_MAX_LENGTH or looks_like_url(collapsed):
        return None
    return collapsed
