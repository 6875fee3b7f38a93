"""What every staff console says, in French, Dutch and English; each console adds its own words.

A missing key is a programming error (`KeyError`, and a unit test checks every language has every key),
never a silently empty label.
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas import Language

__all__ = ["COMMON", "LANGUAGE_NAMES", "ConsoleTexts"]

LANGUAGE_NAMES: dict[Language, str] = {Language.FR: "Français", Language.NL: "Nederlands", Language.EN: "English"}

COMMON: dict[Language, dict[str, str]] = {
    Language.FR: {
        "language_switch": "Langue de la page",
        "signed_in_as": "Connecté·e : {name}",
        "sign_out": "Se déconnecter",
        "sections": "Pages de la console",
        "none": "—",
        "back": "Retour",
        "refused": "Action impossible : {reason}",
        "forbidden": "Votre rôle ne permet pas d'ouvrir cette page.",
        "form_expired": "Le formulaire a expiré. Rechargez la page et recommencez.",
        "sign_in_failed": "La connexion a échoué. Réessayez.",
        "sign_in_again": "Se reconnecter",
    },
    Language.NL: {
        "language_switch": "Taal van de pagina",
        "signed_in_as": "Aangemeld: {name}",
        "sign_out": "Afmelden",
        "sections": "Pagina's van de console",
        "none": "—",
        "back": "Terug",
        "refused": "Niet mogelijk: {reason}",
        "forbidden": "Met uw rol kunt u deze pagina niet openen.",
        "form_expired": "Het formulier is verlopen. Laad de pagina opnieuw en probeer nog eens.",
        "sign_in_failed": "Aanmelden is mislukt. Probeer opnieuw.",
        "sign_in_again": "Opnieuw aanmelden",
    },
    Language.EN: {
        "language_switch": "Page language",
        "signed_in_as": "Signed in: {name}",
        "sign_out": "Sign out",
        "sections": "Console pages",
        "none": "—",
        "back": "Back",
        "refused": "Not possible: {reason}",
        "forbidden": "Your role does not let you open this page.",
        "form_expired": "The form has expired. Reload the page and try again.",
        "sign_in_failed": "Signing in failed. Please try again.",
        "sign_in_again": "Sign in again",
    },
}


class ConsoleTexts:
    """The common words plus one console's own (`title` among them), by language."""

    def __init__(self, own: Mapping[Language, Mapping[str, str]]) -> None:
        self.words: dict[Language, dict[str, str]] = {language: COMMON[language] | dict(own[language]) for language in Language}

    def text(self, language: Language, key: str, **params: object) -> str:
        words = self.words[language][key]
        return words.format(**params) if params else words

    def keys(self, language: Language) -> frozenset[str]:
        return frozenset(self.words[language])
