"""What people write about their situation, in French, Dutch and English, read conservatively:
a statement counts when it is plainly the writer's own; anything less leaves the fact unknown."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from intake.situation import situation_from_text
from schemas import Language, QualificationLevel

pytestmark = pytest.mark.unit

TODAY = date(2026, 3, 10)
NO_COMPUTER = {"has_computer": False}
NO_INTERNET = {"has_internet": False}
NOTHING: dict[str, Any] = {}
L = QualificationLevel


def facts(text: str, language: Language = Language.FR) -> dict[str, Any]:
    return dict(situation_from_text(text, language, today=TODAY))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # French, with and without accents, apostrophes straight or curly, formal or not
        ("Je n'ai pas d'ordinateur.", NO_COMPUTER),
        ("Je n’ai pas d’ordinateur à la maison", NO_COMPUTER),
        ("je n ai pas d ordinateur", NO_COMPUTER),
        ("J'ai pas d'ordi.", NO_COMPUTER),
        ("jai pas de pc", NO_COMPUTER),
        ("Pas d'ordi", NO_COMPUTER),
        ("Je suis sans ordinateur depuis des mois.", NO_COMPUTER),
        ("Sans ordinateur, c'est difficile de postuler.", NO_COMPUTER),
        ("Je n'ai plus d'ordinateur depuis le déménagement.", NO_COMPUTER),
        ("Je ne possède pas d'ordinateur.", NO_COMPUTER),
        ("Je ne dispose pas d'un ordinateur", NO_COMPUTER),
        ("Je n'ai aucun ordinateur chez moi", NO_COMPUTER),
        ("J'ai un ordinateur.", {"has_computer": True}),
        ("J'ai un vieux PC à la maison", {"has_computer": True}),
        ("J'ai un ordinateur portable", {"has_computer": True}),
        ("Pas de connexion internet chez moi.", NO_INTERNET),
        ("Je n'ai pas internet", NO_INTERNET),
        ("je n'ai pas accès à internet", NO_INTERNET),
        ("J'ai internet à la maison", {"has_internet": True}),
        ("Je n'ai ni ordinateur ni internet.", NO_COMPUTER | NO_INTERNET),
        ("J'ai un ordinateur mais pas d'internet.", {"has_computer": True, "has_internet": False}),
        # Dutch
        ("Geen computer thuis.", NO_COMPUTER),
        ("Ik heb geen computer.", NO_COMPUTER),
        ("Ik heb thuis geen pc", NO_COMPUTER),
        ("Thuis heb ik geen computer en geen internet.", NO_COMPUTER | NO_INTERNET),
        ("Ik heb geen computer of internet", NO_COMPUTER | NO_INTERNET),
        ("Geen internet.", NO_INTERNET),
        ("Ik heb geen internetverbinding", NO_INTERNET),
        ("Ik heb een laptop maar geen internet.", {"has_computer": True, "has_internet": False}),
        ("Ik heb wel een computer", {"has_computer": True}),
        # English
        ("I don't have a computer.", NO_COMPUTER),
        ("I don’t have a computer or internet at home.", NO_COMPUTER | NO_INTERNET),
        ("I do not own a PC", NO_COMPUTER),
        ("I have no computer", NO_COMPUTER),
        ("I haven't got a computer", NO_COMPUTER),
        ("No internet at home.", NO_INTERNET),
        ("I have a laptop.", {"has_computer": True}),
        ("I've got an old laptop", {"has_computer": True}),
        ("I have a computer but no internet", {"has_computer": True, "has_internet": False}),
        ("I have internet access at home", {"has_internet": True}),
        ("J'ai internet sur mon téléphone", NOTHING),  # not at home
        ("Geen internet op mijn gsm", NOTHING),
    ],
)
def test_equipment_statements(text: str, expected: dict[str, Any]) -> None:
    assert facts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Never "no computer" for these: a computer they have, or nothing said about having one.
        "Mon ordinateur est lent.",
        "mon ordi est en panne",
        "J'ai un ordinateur qui ne marche plus",
        "I have a laptop that doesn't work",
        "Je cherche une formation sans ordinateur portable imposé.",
        "Je voudrais une formation qui ne demande pas d'ordinateur.",
        "Est-ce que je peux suivre la formation sans ordinateur ?",
        "Faut-il un ordinateur ? Je ne sais pas.",
        "Si je n'ai pas d'ordinateur, puis-je participer ?",
        "Mon fils n'a pas d'ordinateur.",
        "Il n'y a pas d'ordinateur dans la salle",
        "Je n'ai pas besoin d'un ordinateur",
        "Ik wil een cursus zonder computer.",
        "Is er geen computer nodig?",
        "Mijn zoon heeft geen computer",
        "Als ik geen computer heb, kan ik dan toch meedoen?",
        "I'm looking for a course without a computer",
        "Do you lend laptops if I have no computer?",
        "My wife doesn't have a computer",
        "I don't have a laptop",  # a desktop, perhaps
        "I have no computer skills",
        "Je n'ai pas de connaissances en ordinateur",
        "Geen computerkennis",
        "Pas de connexion stable",  # a connection, a poor one
        "pas de wifi",  # mobile data, perhaps
        "I need a computer",
        "J'aimerais avoir un ordinateur",
        "Je n'ai pas d'ordinateur. J'ai un ordinateur.",  # contradicts itself
    ],
)
def test_no_statement_or_no_plain_one_leaves_the_equipment_unknown(text: str) -> None:
    assert facts(text) == NOTHING


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Je n'ai pas de diplôme.", L.NONE),
        ("je n ai aucun diplome", L.NONE),
        ("Je suis sans diplôme.", L.NONE),
        ("Sans diplôme, je ne trouve rien.", L.NONE),
        ("Je n'ai pas le CESS.", L.LOWER_SECONDARY),
        ("pas le CESS", L.LOWER_SECONDARY),
        ("Je n'ai pas de diplôme du secondaire", L.LOWER_SECONDARY),
        ("Je n'ai pas terminé mes secondaires", L.LOWER_SECONDARY),
        ("J'ai quitté l'école à 15 ans", L.LOWER_SECONDARY),
        ("Je n'ai que le CEB", L.PRIMARY),
        ("Je n'ai pas de diplôme, juste le CEB", L.PRIMARY),
        ("J'ai le CESS", L.UPPER_SECONDARY),
        ("J'ai obtenu mon CESS en 2010", L.UPPER_SECONDARY),
        ("J'ai un bachelier en comptabilité", L.HIGHER),
        ("Ik heb geen diploma.", L.NONE),
        ("Geen diploma's", L.NONE),
        ("Ik heb geen diploma secundair onderwijs", L.LOWER_SECONDARY),
        ("Ik heb de middelbare school niet afgemaakt", L.LOWER_SECONDARY),
        ("Ik ben op mijn 16de gestopt met school", L.LOWER_SECONDARY),
        ("Ik heb een diploma hoger secundair onderwijs", L.UPPER_SECONDARY),
        ("Ik heb een bachelor", L.HIGHER),
        ("No diploma.", L.NONE),
        ("I have no qualifications", L.NONE),
        ("I don't have any diploma", L.NONE),
        ("I left school at 15", L.LOWER_SECONDARY),
        ("I left school at 12", L.PRIMARY),
        ("I didn't finish high school", L.LOWER_SECONDARY),
        ("I have a bachelor's degree", L.HIGHER),
        ("I finished high school in Morocco", L.UPPER_SECONDARY),
    ],
)
def test_qualification_statements(text: str, expected: QualificationLevel) -> None:
    assert facts(text) == {"qualification_level": expected}


@pytest.mark.parametrize(
    "text",
    [
        "La formation est-elle accessible sans diplôme ?",
        "Je cherche une formation sans diplôme requis",
        "Je n'ai pas de diplôme belge",  # one from abroad, perhaps
        "Je n'ai pas de diplôme universitaire",
        "Je n'ai pas de diplôme, mais j'ai un master.",  # contradicts itself
        "Ik wil een opleiding waarvoor geen diploma nodig is.",
        "Is er een diploma vereist?",
        "Is a diploma required?",
        "No diploma needed?",
        "My son has no diploma",
        "I left school at 18",  # with or without the CESS
        "I have a diploma in cooking",
    ],
)
def test_no_plain_qualification_statement_leaves_it_unknown(text: str) -> None:
    assert "qualification_level" not in facts(text)


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("Je suis au chômage depuis 2 ans.", date(2024, 3, 10)),
        ("je suis au chomage depuis deux ans", date(2024, 3, 10)),
        ("Je suis demandeuse d'emploi depuis 8 mois", date(2025, 7, 10)),
        ("Je suis demandeur d’emploi depuis plus de 3 ans", date(2023, 3, 10)),
        ("Ça fait 3 ans que je suis au chômage", date(2023, 3, 10)),
        ("Je suis inscrite chez Actiris depuis janvier 2025", date(2025, 1, 31)),
        ("Je suis sans emploi depuis 2023", date(2023, 12, 31)),
        ("Werkzoekend sinds 2023.", date(2023, 12, 31)),
        ("Ik ben sinds maart 2024 werkzoekend", date(2024, 3, 31)),
        ("Ik ben al twee jaar werkloos", date(2024, 3, 10)),
        ("Ik ben werkloos sinds 18 maanden", date(2024, 9, 10)),
        ("I have been unemployed for 18 months.", date(2024, 9, 10)),
        ("I've been out of work for two years", date(2024, 3, 10)),
        ("Unemployed since March 2024", date(2024, 3, 31)),
        ("I am a job seeker since 2022", date(2022, 12, 31)),
        # This year: never later than the day it was written.
        ("Werkzoekend sinds 2026", TODAY),
    ],
)
def test_how_long_looking_for_a_job_never_overstated(text: str, since: date) -> None:
    assert facts(text) == {"unemployed_since": since}


@pytest.mark.parametrize(
    "text",
    [
        "Je ne suis plus au chômage depuis 2 ans.",
        "Mon mari est au chômage depuis 2 ans",
        "Je suis demandeuse d'emploi depuis mars",  # which March?
        "Je travaille depuis 2 ans",
        "Ik ben niet meer werkloos sinds 2023",
        "I am no longer unemployed since 2024",
        "Unemployed since 2030",  # the future
        "Are you unemployed for 2 years?",
    ],
)
def test_no_plain_job_seeking_length_leaves_it_unknown(text: str) -> None:
    assert "unemployed_since" not in facts(text)


def test_the_shortest_length_stated_wins() -> None:
    text = "Je suis au chômage depuis 2 ans. Inscrite chez Actiris depuis 6 mois."
    assert facts(text) == {"unemployed_since": date(2025, 9, 10)}


def test_a_whole_mail_in_dutch_gives_every_fact_it_states() -> None:
    text = (
        "Beste,\n\nIk ben al twee jaar werkloos en ik zou graag een opleiding volgen. Ik heb geen diploma.\n"
        "Thuis heb ik geen computer, maar ik heb wel internet op mijn gsm. Kan ik toch meedoen?\n\nMet vriendelijke groeten"
    )
    assert facts(text, Language.NL) == {
        "unemployed_since": date(2024, 3, 10),
        "qualification_level": L.NONE,
        "has_computer": False,
    }


def test_every_language_is_read_whatever_the_detected_one() -> None:
    assert facts("Bonjour, ik heb geen computer.", Language.FR) == NO_COMPUTER
    assert facts("Hello, je n'ai pas d'ordinateur.", Language.EN) == NO_COMPUTER


def test_a_huge_text_is_read_quickly_and_only_in_part() -> None:
    text = "pas d'ordi " * 50_000
    assert facts(text) == NO_COMPUTER
