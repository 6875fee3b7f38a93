"""The web form: served in French, Dutch and English, re-rendered with the person's input and
messages in the page's language, and turned into the same drafts as the API's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from html import unescape
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.i18n import TEXTS, negotiate
from intake.web import FORM_SOURCE, InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from schemas import CampaignAttribution, Channel, Language, QualificationLevel, RequestKind
from services.catalogue import load_catalogue
from services.ratelimits import InMemoryRateLimits
from tests.fakes import RecordingPipeline

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 10, 9, 14, tzinfo=UTC)


class Page(HTMLParser):
    """What a browser would submit from a page: its form controls and their current values."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html_lang: str | None = None
        self.values: dict[str, str] = {}
        self.ids: set[str] = set()
        self.test_ids: dict[str, dict[str, str | None]] = {}
        self.options: dict[str, list[tuple[str, str]]] = {}
        self._select: str | None = None
        self._option: str | None = None
        self._textarea: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if a.get("data-testid"):
            self.test_ids[a["data-testid"] or ""] = a
        name = a.get("name") or ""
        if tag == "html":
            self.html_lang = a.get("lang")
        elif tag == "input" and a.get("type") in ("radio", "checkbox"):
            if "checked" in a:
                self.values[name] = a.get("value") or "on"
        elif tag == "input":
            self.values[name] = a.get("value") or ""
        elif tag == "textarea":
            self._textarea, self.values[name] = name, ""
        elif tag == "select":
            self._select = name
            self.options[name] = []
        elif tag == "option" and self._select:
            self._option = a.get("value") or ""
            if "selected" in a:
                self.values[self._select] = self._option

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data
        elif self._select and self._option is not None:
            self.options[self._select].append((self._option, data.strip()))
            self._option = None


@pytest.fixture
def pipeline() -> RecordingPipeline:
    return RecordingPipeline()


def make_app(pipeline: RecordingPipeline, **settings: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(web_router)
    channel = WebChannel(
        pipeline,
        WebSettings(**settings),
        load_catalogue(),
        clock=lambda: NOW,
        rate_limits=InMemoryRateLimits(),
        idempotency_keys=InMemoryIdempotencyKeys(),
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    return app


@pytest.fixture
def make_client(pipeline: RecordingPipeline) -> Callable[..., httpx.AsyncClient]:
    def make(**settings: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=make_app(pipeline, **settings))
        return httpx.AsyncClient(transport=transport, base_url="http://intake.test")

    return make


@pytest.fixture
async def client(make_client: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as http:
        yield http


async def fill(client: httpx.AsyncClient, lang: str, query: str = "", **typed: str) -> dict[str, str]:
    """The form of /{lang}/ as a person leaves it after typing `typed` (hidden fields included)."""
    page = Page((await client.get(f"/{lang}/{query}")).text)
    return {**page.values, **typed}


async def test_the_root_redirects_to_the_french_form_keeping_the_campaign(client: httpx.AsyncClient) -> None:
    response = await client.get("/?utm_source=facebook&utm_campaign=cmc")

    assert response.status_code == 302
    assert response.headers["location"] == "fr/?utm_source=facebook&utm_campaign=cmc"


@pytest.mark.parametrize(
    ("lang", "heading", "consent", "course", "qualification"),
    [
        (
            "fr",
            "Demander une formation",
            "J'accepte d'être contacté·e par Bruxelles Formation",
            "Excel (tableur)",
            "Secondaire supérieur (CESS)",
        ),
        (
            "nl",
            "Een opleiding aanvragen",
            "Ik ga ermee akkoord dat Bruxelles Formation contact met mij opneemt",
            "Excel (rekenblad)",
            "Hoger secundair onderwijs (CESS)",
        ),
        (
            "en",
            "Ask for a training course",
            "I agree to be contacted by Bruxelles Formation about my request",
            "Excel (spreadsheets)",
            "Upper secondary (CESS)",
        ),
    ],
)
async def test_the_form_is_served_in_each_language(
    client: httpx.AsyncClient, lang: str, heading: str, consent: str, course: str, qualification: str
) -> None:
    response = await client.get(f"/{lang}/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    page = Page(html)
    assert page.html_lang == lang
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert heading in unescape(html) and consent in unescape(html)
    assert {
        "name",
        "phone",
        "email",
        "language",
        "need",
        "requested_course",
        "qualification_level",
        "has_computer-yes",
        "has_computer-no",
        "has_internet-yes",
        "has_internet-no",
        "unemployed_since",
        "consent_to_contact",
        "submit",
    } <= page.ids
    assert page.values["language"] == lang  # contact language defaults to the page's
    courses = dict(page.options["requested_course"])
    assert courses[""] == TEXTS[Language(lang)]["course_unsure"] and courses["EXCEL"] == course
    assert len(courses) == len(load_catalogue().courses) + 1
    assert dict(page.options["qualification_level"])["upper_secondary"] == qualification
    for other in {"fr", "nl", "en"} - {lang}:
        assert f'href="../{other}/"' in html  # the language switcher
    assert "<script" not in html


async def test_an_unknown_language_is_a_404_pointing_to_the_form(client: httpx.AsyncClient) -> None:
    response = await client.get("/de/")
    assert response.status_code == 404 and 'href="../fr/"' in response.text
    assert (await client.post("/de/", data={"phone": "0470123456"})).status_code == 404


async def test_pages_answer_head_requests(client: httpx.AsyncClient) -> None:
    assert (await client.head("/nl/")).status_code == 200
    assert (await client.head("/")).status_code == 302


def test_every_language_has_every_text() -> None:
    keys = set(TEXTS[Language.FR])
    assert all(set(texts) == keys for texts in TEXTS.values())
    assert all(f"qualification_{level.value}" in keys for level in QualificationLevel)
    assert all(f"kind_{course.kind}" in keys for course in load_catalogue().courses)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("nl-BE,nl;q=0.9,fr;q=0.8", Language.NL),
        ("fr;q=0.2, nl;q=0.5", Language.NL),
        ("de, *;q=0.1", Language.EN),
        ("nl;q=0, fr", Language.FR),
        ("", Language.EN),
        ("fr;q=abc, en", Language.EN),
    ],
)
def test_accept_language_negotiation(header: str, expected: Language) -> None:
    assert negotiate(header, default=Language.EN) is expected


async def test_errors_are_shown_next_to_the_fields_in_dutch_and_the_input_is_kept(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    typed = await fill(
        client,
        "nl",
        name="Jan <Peeters>",
        phone="12",
        need="Ik wil Excel leren\nen Word",
        requested_course="WORD",
        qualification_level="lower_secondary",
        has_computer="no",
        unemployed_since="01/02/2030",
    )
    response = await client.post("/nl/", data=typed)

    assert response.status_code == 422
    assert pipeline.drafts == []
    html = response.text
    page = Page(html)
    assert page.html_lang == "nl"
    assert page.values["name"] == "Jan <Peeters>" and "Jan &lt;Peeters&gt;" in html  # kept, and escaped
    assert page.values["phone"] == "12"
    assert page.values["need"] == "Ik wil Excel leren\nen Word"
    assert page.values["requested_course"] == "WORD"
    assert page.values["qualification_level"] == "lower_secondary"
    assert page.values["has_computer"] == "no"
    assert page.values["unemployed_since"] == "01/02/2030"
    assert page.values["submission_id"] == typed["submission_id"]
    assert "Uw aanvraag is niet verstuurd" in html
    assert 'id="phone-error"' in html and "Dit telefoonnummer is ongeldig" in html
    assert 'id="unemployed_since-error"' in html and "Deze datum ligt in de toekomst." in html
    assert 'id="consent_to_contact-error"' in html and "Vink het vakje aan" in html
    assert 'aria-invalid="true"' in html
    assert "is not valid" not in html  # nothing in English


async def test_without_phone_nor_email_the_form_says_so_in_french(client: httpx.AsyncClient) -> None:
    response = await client.post("/fr/", data=await fill(client, "fr", consent_to_contact="yes"))

    assert response.status_code == 422
    assert 'id="phone-error"' in response.text and 'id="email-error"' in response.text
    assert "Indiquez un numéro de téléphone ou une adresse e-mail" in response.text


async def test_a_valid_submission_shows_the_confirmation_with_its_reference(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    typed = await fill(
        client,
        "nl",
        name="Jan Peeters",
        phone="0470 12 34 56",
        email="",
        language="fr",
        need="Excel leren",
        requested_course="EXCEL",
        qualification_level="upper_secondary",
        has_computer="yes",
        has_internet="no",
        unemployed_since="2024-11-01",
        consent_to_contact="yes",
    )
    response = await client.post("/nl/", data=typed, headers={"User-Agent": "Mozilla/5.0 (Android)"})

    assert response.status_code == 200
    [draft] = pipeline.drafts
    page = Page(response.text)
    confirmation = page.test_ids["confirmation"]
    request_id = confirmation["data-request-id"]
    assert request_id and len(request_id) > 8
    assert f'<strong id="reference" data-testid="reference">{request_id[:8]}</strong>' in response.text
    assert "Een adviseur neemt contact met u op om over uw aanvraag te praten." in response.text
    # A request from the web is promised no delay (routing promises one to phone callers only),
    # and the page says how to reach a person.
    section = response.text.split('data-testid="confirmation"')[1].split("</section>")[0]
    said = section.replace(request_id, "").replace(request_id[:8], "")  # a random id may hold the digits 48
    assert "48" not in said and "uur (werkdagen)" not in said
    assert "0800 555 66" in response.text and "werkdagen van 8.30 tot 17.15 uur" in response.text
    assert page.html_lang == "nl"
    assert draft.channel is Channel.WEB and draft.source == FORM_SOURCE == "/intake/web/form"
    assert draft.received_at == NOW
    assert (draft.name, draft.phone, draft.email) == ("Jan Peeters", "0470 12 34 56", None)
    assert draft.language is Language.FR  # the contact language chosen, not the page's
    assert draft.need == "Excel leren" and draft.requested_course == "EXCEL"
    assert draft.qualification_level is QualificationLevel.UPPER_SECONDARY
    assert (draft.has_computer, draft.has_internet) == (True, False)
    assert draft.unemployed_since == date(2024, 11, 1)
    assert draft.consent_to_contact is True and draft.campaign is None
    assert draft.channel_details["page_language"] == "nl"
    assert draft.channel_details["user_agent"] == "Mozilla/5.0 (Android)"
    assert draft.dedup_key == f"web-form:{typed['submission_id']}:{draft.channel_details['body_sha256']}"


async def test_unanswered_questions_stay_unknown(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    typed = await fill(client, "en", email="x@example.org", consent_to_contact="yes")
    assert (await client.post("/en/", data=typed)).status_code == 200

    [draft] = pipeline.drafts
    assert (draft.requested_course, draft.qualification_level, draft.has_computer, draft.has_internet) == (None,) * 4
    assert draft.unemployed_since is None and draft.language is Language.EN and draft.need == ""


async def test_a_learner_ticks_that_they_are_already_enrolled(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    page = await client.get("/nl/")
    assert 'name="kind" type="checkbox" value="learner_question"' in page.text and "binnen één werkdag" in page.text
    typed = await fill(client, "nl", email="x@example.org", need="Vraag over module 3", kind="learner_question")
    confirmed = await client.post("/nl/", data={**typed, "consent_to_contact": "yes"})
    assert confirmed.status_code == 200 and "beantwoordt uw vraag binnen één werkdag" in confirmed.text
    untouched = await fill(client, "nl", email="y@example.org", consent_to_contact="yes")
    plain = await client.post("/nl/", data=untouched)
    assert plain.status_code == 200 and "binnen één werkdag" not in plain.text and "binnen 48 uur" not in plain.text
    assert [d.kind for d in pipeline.drafts] == [RequestKind.LEARNER_QUESTION, RequestKind.TRAINING_REQUEST]


async def test_a_day_month_year_date_is_understood(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    typed = await fill(client, "fr", phone="02 555 12 12", unemployed_since="5/1/2024", consent_to_contact="yes")
    assert (await client.post("/fr/", data=typed)).status_code == 200
    assert pipeline.drafts[0].unemployed_since == date(2024, 1, 5)


async def test_sending_the_same_form_twice_is_one_request(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    typed = await fill(client, "fr", phone="0470 12 34 56", consent_to_contact="yes")
    first = Page((await client.post("/fr/", data=typed)).text)
    again = Page((await client.post("/fr/", data=typed)).text)

    assert len(pipeline.drafts) == 1
    assert first.test_ids["confirmation"]["data-request-id"] == again.test_ids["confirmation"]["data-request-id"]


async def test_campaign_parameters_travel_from_the_landing_url_into_the_draft(
    client: httpx.AsyncClient, pipeline: RecordingPipeline
) -> None:
    query = "?utm_source=facebook&utm_medium=social&utm_campaign=confine-mais-connecte&utm_content=video"
    page = await client.get(f"/nl/{query}", headers={"Referer": "https://www.facebook.com/"})
    hidden = Page(page.text).values
    assert hidden["utm_campaign"] == "confine-mais-connecte" and hidden["referrer"] == "https://www.facebook.com/"
    # The language switcher keeps the attribution.
    assert 'href="../fr/?utm_source=facebook&amp;utm_medium=social&amp;utm_campaign=confine-mais-connecte' in page.text

    typed = {**hidden, "phone": "0470 12 34 56", "consent_to_contact": "yes"}
    assert (await client.post("/nl/", data=typed)).status_code == 200
    assert pipeline.drafts[0].campaign == CampaignAttribution(
        utm_source="facebook",
        utm_medium="social",
        utm_campaign="confine-mais-connecte",
        utm_content="video",
        referrer="https://www.facebook.com/",
    )


async def test_our_own_pages_are_not_a_referrer(client: httpx.AsyncClient) -> None:
    page = await client.get("/fr/", headers={"Referer": "http://intake.test/nl/"})
    assert Page(page.text).values["referrer"] == ""


async def test_an_oversized_campaign_value_is_cut_not_refused(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    typed = await fill(client, "fr", f"?utm_campaign={'c' * 500}", phone="0470123456", consent_to_contact="yes")
    assert (await client.post("/fr/", data=typed)).status_code == 200
    assert pipeline.drafts[0].campaign == CampaignAttribution(utm_campaign="c" * 200)


async def test_the_form_has_the_api_limits(make_client: Callable[..., httpx.AsyncClient]) -> None:
    async with make_client(max_body_bytes=2048, burst=4) as http:
        too_large = await http.post("/fr/", data={"need": "x" * 5000, "phone": "0470123456"})
        assert too_large.status_code == 413 and "trop longue" in too_large.text
        wrong_type = await http.post("/nl/", json={"phone": "0470123456"})
        assert wrong_type.status_code == 415
        assert (await http.post("/fr/", data={"phone": "1"})).status_code == 422
        assert (await http.post("/fr/", data={"phone": "1"})).status_code == 422
        limited = await http.post("/en/", data={"phone": "1"})
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert "Too many requests" in limited.text


async def test_the_form_limits_requests_to_one_destination(
    make_client: Callable[..., httpx.AsyncClient], pipeline: RecordingPipeline
) -> None:
    async with make_client(destination_per_day=1) as http:
        for phone in ("0470 12 34 56", "+32470123456"):
            typed = await fill(http, "fr", phone=phone, consent_to_contact="yes")
            last = await http.post("/fr/", data=typed)

    assert last.status_code == 429 and "Retry-After" in last.headers
    assert len(pipeline.drafts) == 1


async def test_a_multipart_form_is_read_but_files_are_refused(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    fields = {"phone": "0470123456", "consent_to_contact": "yes"}
    multipart = await client.post("/fr/", data=fields, files={"cv": ("cv.pdf", b"%PDF", "application/pdf")})
    assert multipart.status_code == 400
    assert pipeline.drafts == []


async def test_a_pipeline_failure_keeps_what_was_typed(client: httpx.AsyncClient, pipeline: RecordingPipeline) -> None:
    pipeline.fail_with = ConnectionError("mongod is down")
    typed = await fill(client, "fr", phone="0470 12 34 56", need="Excel", consent_to_contact="yes")
    response = await client.post("/fr/", data=typed)

    assert response.status_code == 503
    assert "momentanément indisponible" in response.text
    assert Page(response.text).values["need"] == "Excel"


form_text = st.text(max_size=300)
form_fields = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        (
            "name",
            "phone",
            "email",
            "language",
            "need",
            "requested_course",
            "qualification_level",
            "has_computer",
            "has_internet",
            "unemployed_since",
            "consent_to_contact",
            "utm_source",
            "referrer",
            "submission_id",
            "other",
        ),
        form_text,
    ),
)


@settings(max_examples=60, deadline=None)
@given(fields=form_fields, lang=st.sampled_from(["fr", "nl", "en"]))
def test_any_form_input_is_answered_without_a_server_error(fields: dict[str, str], lang: str) -> None:
    # Synchronous, for hypothesis: each example runs the app in a loop of its own.
    pipeline = RecordingPipeline()

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=make_app(pipeline, rate_per_minute=10**9, burst=10**9, destination_per_day=10**9))
        async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
            return await http.post(f"/{lang}/", data=fields)

    response = asyncio.run(post())
    assert response.status_code in ((200, 422) if fields else (415,)), response.text
    assert len(pipeline.drafts) == (1 if response.status_code == 200 else 0)
