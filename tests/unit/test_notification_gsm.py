"""Text messages in the GSM 7-bit alphabet: what it has stays, what it lacks gets its plain form."""

from __future__ import annotations

import pytest

from notification.gsm import GSM7_BASIC, GSM7_EXTENSION, septets, to_gsm7
from notification.messages import MessageRenderer

pytestmark = pytest.mark.unit


def test_what_the_alphabet_has_stays_as_it_is() -> None:
    text = "Bruxelles Formation : appelé à 17h15, où ? Ça va. Müller, Ñandu. 0800 555 66 (gratuit) €5 [ok]"
    assert to_gsm7(text) == text


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("arrêtées", "arretées"),
        ("reçu", "recu"),
        ("« vous »", '" vous "'),
        ("8h30–17h15", "8h30-17h15"),
        ("l’équipe", "l'équipe"),
        ("appelé·e", "appelé.e"),
        ("Zoë Gómez", "Zoe Gomez"),
        ("cœur", "coeur"),
        ("a\u00a0b", "a b"),
        ("名前", "??"),
    ],
)
def test_what_it_lacks_gets_its_plain_form(written: str, sent: str) -> None:
    assert to_gsm7(written) == sent
    assert set(to_gsm7(written)) <= GSM7_BASIC | GSM7_EXTENSION


def test_an_extension_character_counts_two_septets() -> None:
    assert septets("abc") == 3 and septets("€") == 2 and septets("[x]") == 5


def test_the_renderer_writes_the_sms_in_the_alphabet_and_the_e_mail_as_written() -> None:
    message = MessageRenderer().render("request_withdrawn", "fr", {}, name="Zoë Français")
    assert set(message.sms) <= GSM7_BASIC | GSM7_EXTENSION
    assert "Zoë Français" in message.text or "Zoë" in message.text or "Zo" in message.text
