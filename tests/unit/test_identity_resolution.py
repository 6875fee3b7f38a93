"""Who a request belongs to, from the contact details it gives and who already owns them: pure."""

from __future__ import annotations

import pytest

from intake.pipeline import Resolution, combination_key, resolve_person

pytestmark = pytest.mark.unit

PHONE, EMAIL, OTHER = "phone:+32470556677", "email:jan@voorbeeld.be", "email:stranger@example.org"


@pytest.mark.parametrize(
    ("keys", "owners", "combination_owner", "expected"),
    [
        ([PHONE], {}, None, Resolution(None)),
        ([PHONE, EMAIL], {}, None, Resolution(None)),
        ([PHONE], {PHONE: "p1"}, None, Resolution("p1")),
        ([PHONE, EMAIL], {PHONE: "p1", EMAIL: "p1"}, None, Resolution("p1")),
        # A new detail with a known one: someone new, who may be p1.
        ([PHONE, OTHER], {PHONE: "p1"}, None, Resolution(None, ("p1",))),
        # Details of two different people: neither.
        ([PHONE, OTHER], {PHONE: "p1", OTHER: "p2"}, None, Resolution(None, ("p1", "p2"))),
        # The same pair seen together before: whoever gave it then.
        ([PHONE, OTHER], {PHONE: "p1", OTHER: "p2"}, "p2", Resolution("p2")),
        ([], {}, None, Resolution(None)),
    ],
)
def test_resolve_person(keys: list[str], owners: dict[str, str], combination_owner: str | None, expected: Resolution) -> None:
    assert resolve_person(keys, owners, combination_owner) == expected


def test_a_combination_is_one_key_whatever_the_order_and_only_for_two_or_more() -> None:
    assert combination_key([PHONE, EMAIL]) == combination_key([EMAIL, PHONE]) != combination_key([PHONE, OTHER])
    assert combination_key([PHONE]) is None
    assert PHONE.split(":")[1] not in (combination_key([PHONE, EMAIL]) or ""), "no contact detail in clear in the key"
