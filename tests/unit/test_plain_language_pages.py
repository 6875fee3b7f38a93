"""The pages a job seeker reads outside their messages - intake's confirmation and message pages,
the seat offer's answer page - say how to reach a person, and the web form's confirmation promises
no delay that routing does not keep."""

from __future__ import annotations

import pytest

from certification.offer_page import LANGUAGES, render
from certification.offer_responses import Outcome, Response
from intake.i18n import TEXTS, text
from schemas import Language

pytestmark = pytest.mark.unit

HOURS = {
    "fr": "les jours ouvrables de 8h30 à 17h15",
    "nl": "werkdagen van 8.30 tot 17.15 uur",
    "en": "working days 8:30 am–5:15 pm",
}


@pytest.mark.parametrize("language", list(Language))
def test_intake_pages_say_how_to_reach_a_person_and_promise_a_web_request_no_delay(language: Language) -> None:
    said = text(language, "reach_us")
    assert "0800 555 66" in said and HOURS[language.value] in said
    # Routing promises a delay to callers of the 0800 line only (routing/data/rules.yaml `sla.applies_to`):
    # a request from the web form is told what happens next, not by when.
    assert "48" not in text(language, "next_steps") and "48" not in TEXTS[language]["keep_reference"]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("outcome", [Outcome.INVALID, Outcome.EXPIRED, Outcome.ALREADY_ANSWERED])
def test_the_seat_offer_page_says_how_to_reach_a_person(language: str, outcome: Outcome) -> None:
    page = render(Response(outcome=outcome), language, token=None)  # type: ignore[arg-type]
    body = bytes(page.body).decode()
    assert "0800 555 66" in body and HOURS[language] in body.replace("&ndash;", "–")
