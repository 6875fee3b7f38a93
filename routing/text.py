"""How routing reads a request's free text and dates, the same way for the rules and the priority score.

`fold_text` and `compile_phrases` find phrases in a person's own words whatever their accents,
case or punctuation; `months_between` counts the whole months of unemployment both of them test.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated

from pydantic import StringConstraints

__all__ = ["NonBlank", "compile_phrases", "fold_text", "months_between"]

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
"""Text in the rule-set file that must say something once stripped."""


def fold_text(text: str) -> str:
    """Lowercase without accents, typographic apostrophes made plain: 'Métier' ~ 'metier'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("\u2019", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def compile_phrases(phrases: Sequence[str]) -> re.Pattern[str]:
    """One pattern matching any phrase as whole words in folded text.

    Words of a phrase may be separated by any run of non-word characters, so "e-learning"
    also finds "e learning" and "quel métier" finds "quel-métier", but "orientation" does
    not find "désorientation".
    """
    alternatives = []
    for phrase in phrases:
        words = re.findall(r"\w+", fold_text(phrase))
        if words:
            alternatives.append(r"[\W_]+".join(map(re.escape, words)))
    if not alternatives:
        return re.compile(r"(?!)")  # matches nothing
    # Longest first, so the reported match is the most specific phrase.
    alternatives.sort(key=len, reverse=True)
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)")


def months_between(since: date, now: datetime) -> int:
    """Whole calendar months from `since` to `now`'s date; 0 if `since` is in the future."""
    today = now.date()
    months = (today.year - since.year) * 12 + (today.month - since.month)
    if today.day < since.day:
        months -= 1
    return max(months, 0)
