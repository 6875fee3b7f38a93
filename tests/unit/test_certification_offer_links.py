"""A seat offer's answer links and the page they open, without a database: tokens signed, checked,
expiring; answers given once (a second use says 'already answered'); the page in three languages,
usable without script; the links leave only sealed."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from certification.offer_links import RESPOND_PATH, BadToken, OfferAction, OfferLinks, OfferTokens, TokenExpired
from certification.offer_page import TEXTS, page_language, render
from certification.offer_responses import OfferResponses, Outcome
from certification.seating import CentreState, OfferStatus
from schemas import ExamSeatOffered
from services.clock import FixedClock
from tests.certification_fakes import OFFER_LINKS, TOKEN_KEY, FakeCertification, fake_certification, fake_unseal
from tests.factories import exam_requested

pytestmark = pytest.mark.unit

T0 = datetime(2020, 5, 18, 9, 0, tzinfo=UTC)
EXAM_DAY = datetime(2020, 6, 2, 7, 0, tzinfo=UTC)
TOKENS = OfferTokens(TOKEN_KEY)


# --- tokens ----------------------------------------------------------------------------


def test_a_token_says_which_offer_which_answer_and_until_when() -> None:
    token = TOKENS.sign("o1", OfferAction.ACCEPT, T0 + timedelta(hours=48))
    found = TOKENS.verify(token, now=T0)
    assert (found.offer_id, found.action, found.expires_at) == ("o1", OfferAction.ACCEPT, T0 + timedelta(hours=48))
    assert TOKENS.sign("o1", OfferAction.DECLINE, T0 + timedelta(hours=48)) != token


def test_a_token_expires_at_its_offers_deadline() -> None:
    token = TOKENS.sign("o1", OfferAction.DECLINE, T0 + timedelta(hours=1))
    assert TOKENS.verify(token, now=T0 + timedelta(minutes=59)).offer_id == "o1"
    with pytest.raises(TokenExpired) as expired:
        TOKENS.verify(token, now=T0 + timedelta(hours=1))
    assert expired.value.token.action is OfferAction.DECLINE


def flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_an_altered_or_foreign_token_is_refused() -> None:
    token = TOKENS.sign("o1", OfferAction.ACCEPT, T0 + timedelta(hours=48))
    version, payload, signature = token.split(".")
    # Turning an accept into a decline, or moving the expiry, breaks the signature.
    forged_payload = TOKENS.sign("o1", OfferAction.DECLINE, T0 + timedelta(hours=48)).split(".")[1]
    for bad in (
        f"{version}.{forged_payload}.{signature}",
        f"{version}.{payload}.{flip(signature, 3)}",
        f"v2.{payload}.{signature}",
        OfferTokens("another key of at least thirty-two bytes!").sign("o1", OfferAction.ACCEPT, T0 + timedelta(hours=48)),
        "",
        "v1..",
        "not a token",
        "v1.%%%.###",
    ):
        with pytest.raises(BadToken):
            TOKENS.verify(bad, now=T0)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        OfferTokens("short")


def test_links_open_the_public_page_with_the_token() -> None:
    links = OfferLinks("https://certification.example.org/", TOKENS).both("o1", T0 + timedelta(hours=48))
    for action, url in (("accept", links["accept_url"]), ("decline", links["decline_url"])):
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "certification.example.org", RESPOND_PATH)
        [token] = parse_qs(parts.query)["token"]
        assert TOKENS.verify(token, now=T0).action.value == action


# --- answering through the links -----------------------------------------------------------


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def cert(clock: FixedClock) -> FakeCertification:
    return fake_certification(clock)


async def offered(cert: FakeCertification, *people: str, seats: int = 1) -> list[ExamSeatOffered]:
    for person in people:
        await cert.candidates.on_exam_requested(exam_requested(person))
    await cert.seats.put_centre("ctr-1", state=CentreState.CLOSED, name="Centre d'Anderlecht", address="Rue Exemple 1")
    await cert.seats.add_session(
        session_id="ses-june", centre_id="ctr-1", certifications=["MOS-EXCEL"], starts_at=EXAM_DAY, seats=seats
    )
    await cert.seats.put_centre("ctr-1", state=CentreState.OPEN)
    return [e for e in cert.storage.outbox if isinstance(e, ExamSeatOffered)]


def token_of(url: str | None) -> str:
    assert url is not None
    [token] = parse_qs(urlsplit(url).query)["token"]
    return token


async def test_an_offer_goes_out_with_its_links_sealed_and_they_open_it(cert: FakeCertification) -> None:
    [event] = await offered(cert, "p1")
    assert (event.accept_url, event.decline_url) == (None, None), "never a bearer link in clear on the topic"
    assert event.sealed is not None and set(event.sealed.fields) == {"accept_url", "decline_url"}
    opened = fake_unseal(event)
    assert isinstance(opened, ExamSeatOffered)
    offer = await cert.seats.offer(event.offer_id)
    assert (event.respond_by, event.exam_at, event.centre_name) == (offer.expires_at, EXAM_DAY, "Centre d'Anderlecht")
    found = TOKENS.verify(token_of(opened.accept_url), now=T0)
    assert (found.offer_id, found.action, found.expires_at) == (offer.offer_id, OfferAction.ACCEPT, offer.expires_at)


async def test_viewing_an_offer_changes_nothing_and_offers_both_answers(cert: FakeCertification) -> None:
    [event] = await offered(cert, "p1")
    responses = OfferResponses(cert.seats, TOKENS)
    token = token_of(fake_unseal(event).decline_url)  # type: ignore[attr-defined]
    for _ in range(3):  # a mail scanner opening the link
        shown = await responses.view(token)
        assert (shown.outcome, shown.action) == (Outcome.OPEN, OfferAction.DECLINE)
    assert shown.tokens is not None and set(shown.tokens) == set(OfferAction)
    assert (await cert.seats.offer(event.offer_id)).status is OfferStatus.OFFERED


async def test_an_accept_link_answers_once(cert: FakeCertification) -> None:
    [event] = await offered(cert, "p1")
    responses = OfferResponses(cert.seats, TOKENS)
    accept = token_of(fake_unseal(event).accept_url)  # type: ignore[attr-defined]
    decline = token_of(fake_unseal(event).decline_url)  # type: ignore[attr-defined]
    assert (await responses.answer(accept)).outcome is Outcome.ACCEPTED
    again = await responses.answer(accept)
    assert again.outcome is Outcome.ALREADY_ANSWERED and again.offer is not None
    assert again.offer.status is OfferStatus.ACCEPTED
    assert (await responses.answer(decline)).outcome is Outcome.ALREADY_ANSWERED
    assert (await responses.view(accept)).outcome is Outcome.ALREADY_ANSWERED
    session = await cert.seats.session("ses-june")
    assert (session.held, session.booked) == (0, 1)


async def test_a_decline_link_passes_the_seat_to_the_next_candidate(cert: FakeCertification, clock: FixedClock) -> None:
    [first] = await offered(cert, "first", "second")
    responses = OfferResponses(cert.seats, TOKENS)
    assert (await responses.answer(token_of(fake_unseal(first).decline_url))).outcome is Outcome.DECLINED  # type: ignore[attr-defined]
    offers = [e for e in cert.storage.outbox if isinstance(e, ExamSeatOffered)]
    assert [e.person_id for e in offers] == ["first", "second"]
    assert (await responses.answer(token_of(fake_unseal(first).decline_url))).outcome is Outcome.ALREADY_ANSWERED  # type: ignore[attr-defined]


async def test_an_expired_or_forged_link_answers_plainly(cert: FakeCertification, clock: FixedClock) -> None:
    [event] = await offered(cert, "p1")
    responses = OfferResponses(cert.seats, TOKENS)
    accept = token_of(fake_unseal(event).accept_url)  # type: ignore[attr-defined]
    assert (await responses.answer(flip(accept, len(accept) - 5))).outcome is Outcome.INVALID
    assert (await responses.answer(TOKENS.sign("unknown", OfferAction.ACCEPT, T0 + timedelta(days=1)))).outcome is (
        Outcome.INVALID
    )
    clock.advance(event.respond_by - T0)
    assert (await responses.view(accept)).outcome is Outcome.EXPIRED
    assert (await responses.answer(accept)).outcome is Outcome.EXPIRED
    assert (await cert.seats.offer(event.offer_id)).status is OfferStatus.OFFERED  # until its timer fires


# --- the page ----------------------------------------------------------------------------


class Page(HTMLParser):
    """What a screen reader or a browser without script gets from the page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.lang: str | None = None
        self.h1 = 0
        self.forms: list[dict[str, str]] = []
        self.buttons: list[str] = []
        self.scripts = 0
        self._in_button = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "h1":
            self.h1 += 1
        elif tag == "form":
            self.forms.append({"method": a["method"], "action": a["action"]})
        elif tag == "input" and a.get("name") and self.forms:
            self.forms[-1][a["name"]] = a.get("value", "")
        elif tag == "button":
            self._in_button = True
            self.buttons.append("")
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.buttons[-1] += data.strip()


@pytest.mark.parametrize("lang", ["fr", "nl", "en"])
async def test_the_page_shows_the_offer_and_two_posting_buttons_in_the_candidates_language(
    cert: FakeCertification, lang: str
) -> None:
    [event] = await offered(cert, "p1")
    accept = token_of(fake_unseal(event).accept_url)  # type: ignore[attr-defined]
    response = render(await OfferResponses(cert.seats, TOKENS).view(accept), page_language(lang, None), token=accept)
    assert response.status_code == 200
    assert response.headers["referrer-policy"] == "no-referrer" and response.headers["cache-control"] == "no-store"
    page = Page(bytes(response.body).decode())
    assert (page.lang, page.h1, page.scripts) == (lang, 1, 0)
    assert page.buttons == [TEXTS[lang]["accept"], TEXTS[lang]["decline"]]  # type: ignore[index]
    assert all(f["method"] == "post" and f["action"] == RESPOND_PATH for f in page.forms)
    assert [TOKENS.verify(f["token"], now=T0).action for f in page.forms] == [OfferAction.ACCEPT, OfferAction.DECLINE]
    assert "Centre d'Anderlecht" in html.unescape(bytes(response.body).decode())


async def test_the_page_says_plainly_when_a_link_is_used_up_expired_or_wrong(cert: FakeCertification) -> None:
    [event] = await offered(cert, "p1")
    responses = OfferResponses(cert.seats, TOKENS)
    accept = token_of(fake_unseal(event).accept_url)  # type: ignore[attr-defined]
    await responses.answer(accept)
    used = render(await responses.answer(accept), "en", token=None)
    assert used.status_code == 409 and TEXTS["en"]["already_answered"] in bytes(used.body).decode()
    assert Page(bytes(used.body).decode()).forms == []
    wrong = render(await responses.view("v1.x.y"), "nl", token="v1.x.y")
    assert wrong.status_code == 404 and TEXTS["nl"]["invalid"] in bytes(wrong.body).decode()


def test_the_page_language_follows_the_link_then_the_browser_then_french() -> None:
    assert page_language("nl", "en-GB,en;q=0.9") == "nl"
    assert page_language(None, "en-GB,en;q=0.9") == "en"
    assert page_language("de", "de-DE") == "fr"
    assert OFFER_LINKS.public_base_url.startswith("https://")
