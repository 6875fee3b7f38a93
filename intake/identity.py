"""Contact details as one person's identity: Belgian phone numbers and e-mail addresses in one form.

Pure functions. A job seeker who calls, then writes, then fills the form is recognised by the
same normalised number or address.
"""

from __future__ import annotations

import re

import phonenumbers

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_phone(raw: str | None, *, region: str = "BE") -> str | None:
    """E.164 (`+32470123456`) for a valid number in any common Belgian or international
    notation (0470 12 34 56, 0470/12.34.56, 0032 470..., +32 (0)470...), else None."""
    if not raw or not raw.strip():
        return None
    text = raw.strip().replace("(0)", "")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str | None) -> str | None:
    """Lowercased, trimmed address, or None if it is not one. Plus-tags are kept: they are the
    person's choice and some providers treat them as distinct mailboxes."""
    if not raw:
        return None
    address = raw.strip().strip("<>").strip().lower()
    if not _EMAIL.match(address) or len(address) > 254:
        return None
    return address


def identity_keys(phone: str | None, email: str | None) -> list[str]:
    """The keys under which a person is found again: `phone:+32...`, `email:...`."""
    keys = []
    if phone:
        keys.append(f"phone:{phone}")
    if email:
        keys.append(f"email:{email}")
    return keys
