"""Text messages in the GSM 7-bit alphabet (3GPP TS 23.038), the one every phone reads at 160
characters a segment (153 when concatenated).

One character outside it - a French `ê`, a `ç`, a `«` - makes the operator send the whole text in
UCS-2, 70 characters a segment (67 concatenated): an acknowledgement of 374 characters goes from 3
segments to 6, paid each time. So the SMS of every message is written in the alphabet: letters
it lacks lose their accent (`ê` -> `e`), typographic marks become their plain forms (`«` -> `"`),
and anything else without a plain form becomes `?`. E-mails keep their French as written.
"""

from __future__ import annotations

import unicodedata

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "septets", "to_gsm7"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
"""Sent as an escape and the character: two septets each."""

_PLAIN = {
    "\u00ab": '"',  # « »
    "\u00bb": '"',
    "\u201c": '"',  # “ ” „
    "\u201d": '"',
    "\u201e": '"',
    "\u2018": "'",  # single quotes: left, right, low
    "\u2019": "'",
    "\u201a": "'",
    "\u2013": "-",  # en dash, em dash, non-breaking hyphen
    "\u2014": "-",
    "\u2011": "-",
    "\u2026": "...",
    "\u00b7": ".",  # the middle dot of "appelé·e"
    "\u2022": "-",
    "\u00a0": " ",  # no-break spaces
    "\u202f": " ",
    "\u2009": " ",
    "\u0153": "oe",
    "\u0152": "OE",
    "\u00e7": "c",  # ç: the alphabet has Ç only, shown as a capital by phones
}


def _plain(char: str) -> str:
    if char in GSM7_BASIC or char in GSM7_EXTENSION:
        return char
    if char in _PLAIN:
        return _PLAIN[char]
    # A letter with an accent the alphabet lacks: the letter alone (ê -> e, ó -> o, ë -> e).
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and all(c in GSM7_BASIC for c in base):
        return base
    return "?"


def to_gsm7(text: str) -> str:
    """`text` in the GSM 7-bit alphabet (see the module's docstring)."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        return text
    return "".join(_plain(c) for c in text)


def septets(text: str) -> int:
    """The length of a GSM 7-bit text as the network counts it (an extension character is two)."""
    return sum(2 if c in GSM7_EXTENSION else 1 for c in text)
