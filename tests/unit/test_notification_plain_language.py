"""Plain language in every message to a job seeker: each one says how to reach a person (the free
line and its hours, in the message's language), leaves no placeholder and no internal word behind,
fits the SMS length, carries the status link in the acknowledgement when there is one, and names no
deadline when the event it is about promises none."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, date, datetime

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from certification.offer_links import OfferLinks, OfferTokens
from notification.gsm import GSM7_BASIC, GSM7_EXTENSION, septets
from notification.messages import LANGUAGES, MessageRenderer, RenderedMessage, format_date, format_datetime
from notification.model import Reachability
from notification.notices import NoticeKind, notice_for
from notification.policy import plan_channels
from schemas import (
    CallbackSlotChosen,
    CertificateIssued,
    ContactAttempted,
    ContactOutcome,
    Disposition,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamScheduled,
    ExamSeatOffered,
    Language,
    NotificationChannel,
    PartnerInformationReceived,
    ProgrammePlace,
    RequestKind,
    Target,
    TrainingRequestClosed,
    TrainingRequestRouted,
)
from services.helpline import HELPLINE_NUMBER
from services.privacy import seal, unseal
from tests.factories import make_request

pytestmark = pytest.mark.unit

PERSON = "prs_7f3a9c2e41d8"
REQUEST = str(uuid.uuid4())
DEADLINE = datetime(2026, 6, 9, 7, 30, tzinfo=UTC)  # Tuesday 09:30 in Brussels
STATUS_URL = "https://formation.bruxellesformation.brussels/fr/status/s2.86nC5B2LS26Vwo1-Gis8TWon50ChssPU5fbQ1PnIyqkVg4yqWK9tLsYx"
"""A link as intake mints it (`intake.status.links`, the compact s2 form): a request's UUID, an expiry
and a link id, signed; 115 characters."""

HOURS = {"fr": ("8h30", "17h15"), "nl": ("8.30", "17.15"), "en": ("8:30 am", "5:15 pm")}
INTERNAL_WORDS = ("SLA", "rule", "routing", "priority", "assignee", "person_id", "worker")
SMS_MAX = 320
"""Two concatenated text segments, as the template tests have always allowed."""
SMS_MAX_WITH_LINK = 459
"""Three concatenated segments (of 153 GSM characters) for a text carrying a link to a page of ours (a
status page, a seat offer). The status link is some 115 characters now (it was 160), yet the longest
acknowledgements still run to some 375 characters (a waitlisted digital-divide request in French)
and a seat offer to some 365, past two segments (306), and cutting the promise, the waitlist or the
line's hours out of the text to save one would hide what happens next. (A text with a letter outside
the GSM alphabet, such as French "ê" or "ç", goes as UCS-2 at 67 characters a segment: this bound
counts characters, not what the operator bills.)"""


def routed(
    target: Target,
    deadline: datetime | None = DEADLINE,
    programme: ProgrammePlace | None = None,
    kind: RequestKind = RequestKind.TRAINING_REQUEST,
) -> TrainingRequestRouted:
    return TrainingRequestRouted(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        target=target,
        rule_id="rule_no_cess",
        rule_set_version="v1",
        explanation="staff only: no CESS",
        priority=50,
        callback_deadline=deadline,
        programme=programme,
        kind=kind,
    )


SEAT_LINKS = OfferLinks(
    "https://certification.bruxellesformation.brussels", OfferTokens("a test key for seat offer links, 32 bytes")
)


def seat_offer() -> ExamSeatOffered:
    offer_id = "5b0c8e2f4a7d4c1e9f3a2b6c7d8e9f01"
    respond_by = datetime(2026, 4, 1, 7, 0, tzinfo=UTC)
    urls = SEAT_LINKS.both(offer_id, respond_by)
    return ExamSeatOffered(
        source="/tests",
        person_id=PERSON,
        offer_id=offer_id,
        certification_code="ICDL-BASE",
        session_id="ses_1",
        centre_id="ctr_anderlecht",
        centre_name="Bruxelles Formation Bureautique – Anderlecht",
        exam_at=datetime(2026, 4, 3, 7, 0, tzinfo=UTC),
        respond_by=respond_by,
        accept_url=urls["accept_url"],
        decline_url=urls["decline_url"],
    )


def partner_answered(deadline: datetime | None = DEADLINE) -> PartnerInformationReceived:
    return PartnerInformationReceived(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        partner="cite-des-metiers",
        recorded_by="en-1",
        asked_at=datetime(2026, 6, 4, 14, 0, tzinfo=UTC),
        answered_at=datetime(2026, 6, 5, 8, 0, tzinfo=UTC),
        callback_deadline=deadline,
        answer="staff only: the partner's answer",
    )


def slot_chosen() -> CallbackSlotChosen:
    return CallbackSlotChosen(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        slot_start=datetime(2026, 3, 10, 8, 0, tzinfo=UTC),  # Tuesday 09:00 in Brussels (CET)
        slot_end=datetime(2026, 3, 10, 11, 30, tzinfo=UTC),  # 12:30
        chosen_through="status_page",
    )


def closed(disposition: Disposition, worker_id: str | None = None, attempts: int = 3) -> TrainingRequestClosed:
    return TrainingRequestClosed(
        source="/tests", request_id=REQUEST, person_id=PERSON, disposition=disposition, attempts=attempts, worker_id=worker_id
    )


ROUTED: dict[str, TrainingRequestRouted] = {
    **{f"routed_{t.value}": routed(t) for t in Target},
    **{f"routed_{t.value}_no_deadline": routed(t, None) for t in Target},
    **{
        f"routed_digital_divide_{p.value}{suffix}": routed(Target.DIGITAL_DIVIDE, deadline, p)
        for p in ProgrammePlace
        for suffix, deadline in (("", DEADLINE), ("_no_deadline", None))
    },
    "routed_learner_question": routed(Target.ESPACES_NUMERIQUES, kind=RequestKind.LEARNER_QUESTION),
    "routed_learner_question_no_deadline": routed(Target.ESPACES_NUMERIQUES, None, kind=RequestKind.LEARNER_QUESTION),
}

EVENTS: dict[str, Event] = {
    **ROUTED,
    "no_answer": ContactAttempted(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        worker_id="adv_042",
        outcome=ContactOutcome.NO_ANSWER,
        attempt=1,
        next_attempt_at=datetime(2026, 1, 13, 8, 30, tzinfo=UTC),
        notes="staff only: left a voicemail",
    ),
    "closed_unreachable": closed(Disposition.UNREACHABLE, "adv_042"),
    "closed_unreachable_after_one_call": closed(Disposition.UNREACHABLE, "adv_042", attempts=1),
    "withdrawn": closed(Disposition.WITHDRAWN, attempts=0),
    "slot_chosen": slot_chosen(),
    "deadline_moved": partner_answered(),
    "enrolment": EnrolmentConfirmed(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        course_code="BUR-EXCEL-01",
        course_title="Excel : les bases",
        starts_on=date(2026, 4, 1),
        language=Language.FR,
        login_instructions="https://learn.example.org\nIdentifiant : votre e-mail",
    ),
    "enrolment_self_paced": EnrolmentConfirmed(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        course_code="BUR-EXCEL-01",
        course_title="Excel : les bases",
        language=Language.FR,
    ),
    "enrolment_waitlisted": EnrolmentWaitlisted(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        course_code="BUR-EXCEL-01",
        course_title="Excel : les bases",
        language=Language.FR,
    ),
    "seat_offer": seat_offer(),
    "exam": ExamScheduled(
        source="/tests",
        person_id=PERSON,
        certification_code="ICDL-BASE",
        session_id="ses_1",
        centre_id="ctr_anderlecht",
        centre_name="Bruxelles Formation Bureautique – Anderlecht",
        exam_at=datetime(2026, 4, 3, 7, 0, tzinfo=UTC),
        what_to_bring=["Carte d'identité"],
    ),
    "certificate": CertificateIssued(
        source="/tests",
        person_id=PERSON,
        certification_code="ICDL-BASE",
        credential_id="ICDL-BE-0012345",
        issued_at=datetime(2026, 4, 10, 14, 0, tzinfo=UTC),
        credential_url="https://credentials.example.org/ICDL-BE-0012345",
    ),
    "certificate_no_url": CertificateIssued(
        source="/tests",
        person_id=PERSON,
        certification_code="ICDL-BASE",
        credential_id="ICDL-BE-0012345",
        issued_at=datetime(2026, 4, 10, 14, 0, tzinfo=UTC),
    ),
}


@pytest.fixture(scope="module")
def renderer() -> MessageRenderer:
    return MessageRenderer()


def render(
    renderer: MessageRenderer, event: Event, language: str, *, status_url: str | None = None, with_email: bool = True
) -> RenderedMessage:
    notice = notice_for(event)
    assert notice is not None
    return renderer.render(notice.kind.value, language, notice.facts, name="Amina", with_email=with_email, status_url=status_url)


def test_every_notice_kind_is_covered() -> None:
    kinds = {notice.kind for event in EVENTS.values() if (notice := notice_for(event)) is not None}
    assert kinds == set(NoticeKind)


@pytest.mark.parametrize("status_url", [None, STATUS_URL], ids=["no_link", "link"])
@pytest.mark.parametrize(("name", "language"), list(itertools.product(sorted(EVENTS), LANGUAGES)))
def test_every_message_says_how_to_reach_a_person_in_plain_words(
    renderer: MessageRenderer, name: str, language: str, status_url: str | None
) -> None:
    for with_email in (True, False):
        message = render(renderer, EVENTS[name], language, status_url=status_url, with_email=with_email)
        # The e-mail (both parts) names the free line and its hours, as the language writes them.
        for part in (message.text, message.html):
            assert HELPLINE_NUMBER in part, (name, language)
            assert all(hour in part for hour in HOURS[language]), (name, language, part)
        assert HELPLINE_NUMBER in message.sms, (name, language, message.sms)
        assert all(hour in message.sms for hour in HOURS[language]), (name, language, message.sms)
        limit = SMS_MAX_WITH_LINK if "https://" in message.sms else SMS_MAX
        assert message.sms.startswith("Bruxelles Formation") and septets(message.sms) <= limit, (len(message.sms), message.sms)
        # In the GSM alphabet: one character outside it would send the text in UCS-2, at 67 a segment.
        assert set(message.sms) <= GSM7_BASIC | GSM7_EXTENSION, (name, language, set(message.sms) - GSM7_BASIC)
        for part in (message.subject, message.text, message.html, message.sms):
            assert "{{" not in part and "{%" not in part and "}}" not in part, (name, language)
            assert not re.search(r"\bNone\b|\bTrue\b|\bFalse\b|\bundefined\b", part), (name, language, part)
            for word in INTERNAL_WORDS:
                assert not re.search(rf"\b{word}\b", re.sub(r"https?://\S+", "", part), re.IGNORECASE), (name, word, part)
            assert "staff only" not in part and PERSON not in part


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(ROUTED))
def test_the_acknowledgement_carries_the_status_link_when_known(renderer: MessageRenderer, name: str, language: str) -> None:
    follow = {"fr": "Suivez votre demande", "nl": "Volg uw aanvraag", "en": "Follow your request"}[language]
    notice = notice_for(ROUTED[name])
    assert notice is not None and notice.kind.is_acknowledgement
    with_link = render(renderer, ROUTED[name], language, status_url=STATUS_URL)
    assert f"{follow}: {STATUS_URL}" in with_link.text.replace(" :", ":")
    assert f"{follow}: {STATUS_URL}" in with_link.sms.replace(" :", ":")
    assert f'href="{STATUS_URL}"' in with_link.html and follow in with_link.html
    without = render(renderer, ROUTED[name], language, status_url=None)
    for part in (without.text, without.html, without.sms):
        assert follow not in part and "/status/" not in part and 'href="https://formation' not in part


def test_only_a_web_link_becomes_the_status_link(renderer: MessageRenderer) -> None:
    message = render(renderer, ROUTED["routed_advisors"], "fr", status_url="javascript:alert(1)")
    assert "javascript" not in message.html + message.text + message.sms and "Suivez votre demande" not in message.text


DEADLINE_WORDS = {
    "fr": ("avant le", "dans un jour ouvrable", "48", "prochains jours", "2026"),
    "nl": ("vóór", "binnen één werkdag", "48", "komende werkdagen", "2026"),
    "en": ("before", "within one working day", "48", "next few working days", "2026"),
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(n for n in ROUTED if n.endswith("_no_deadline")))
def test_a_request_with_no_deadline_is_promised_no_time(renderer: MessageRenderer, name: str, language: str) -> None:
    # Routing promises a time only to callers of the 0800 line and to learners' questions
    # (routing/data/rules.yaml `sla`): a request without `callback_deadline` must not be told one.
    event = ROUTED[name]
    assert event.callback_deadline is None
    notice = notice_for(event)
    assert notice is not None and notice.facts["deadline"] is None
    for status_url in (None, STATUS_URL):
        message = render(renderer, event, language, status_url=status_url)
        for part in (message.subject, message.text, message.html, message.sms):
            said = part.replace(STATUS_URL, "")
            for words in DEADLINE_WORDS[language]:
                assert words not in said, (name, language, words, said)
            assert format_date(DEADLINE, language) not in said
    # The same request with a deadline names it, in Brussels time.
    promised = render(renderer, routed(event.target, DEADLINE, event.programme, event.kind), language)
    assert format_datetime(DEADLINE, language) in promised.sms and format_datetime(DEADLINE, language) in promised.text


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("fr", "le mardi 10 mars 2026 entre 9h00 et 12h30"),
        ("nl", "op dinsdag 10 maart 2026 tussen 09.00 uur en 12.30 uur"),
        ("en", "on Tuesday 10 March 2026 between 09:00 and 12:30"),
    ],
)
def test_a_chosen_callback_slot_is_confirmed_in_brussels_time(renderer: MessageRenderer, language: str, said: str) -> None:
    notice = notice_for(slot_chosen())
    assert notice is not None and notice.kind is NoticeKind.CALLBACK_SLOT_CHOSEN and notice.request_id == REQUEST
    message = render(renderer, slot_chosen(), language)
    for part in (message.text, message.html, message.sms):
        assert said in part.replace("<strong>", "").replace("</strong>", "")


@pytest.mark.parametrize(("language", "withdrawn"), [("fr", "annul"), ("nl", "geannuleerd"), ("en", "cancelled")])
def test_a_withdrawal_by_the_person_is_confirmed_with_how_to_ask_again(
    renderer: MessageRenderer, language: str, withdrawn: str
) -> None:
    notice = notice_for(closed(Disposition.WITHDRAWN))
    assert notice is not None and notice.kind is NoticeKind.REQUEST_WITHDRAWN
    message = render(renderer, closed(Disposition.WITHDRAWN), language)
    new_request = {"fr": "nouvelle demande", "nl": "nieuwe aanvraag", "en": "new request"}[language]
    for part in (message.text, message.html, message.sms):
        assert withdrawn in part and new_request in part and HELPLINE_NUMBER in part
    # Withdrawn during a call with an advisor: the person heard it on the phone.
    assert notice_for(closed(Disposition.WITHDRAWN, worker_id="adv_042")) is None


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_person_is_told_the_later_deadline_once_the_partner_answered(renderer: MessageRenderer, language: str) -> None:
    # They were told "before <deadline>"; the wait for the partner moved it: the new one is said.
    message = render(renderer, partner_answered(), language)
    for part in (message.text, message.sms):
        assert format_datetime(DEADLINE, language) in part and "staff only" not in part
    assert notice_for(partner_answered(deadline=None)) is None, "no promise ran: nothing to correct"


def test_confirmations_go_by_text_first_like_the_other_updates_on_a_request() -> None:
    who = Reachability(has_email=True, has_mobile=True, consent=True)
    for kind in (NoticeKind.REQUEST_WITHDRAWN, NoticeKind.CALLBACK_SLOT_CHOSEN):
        assert kind.is_request_update and not kind.is_acknowledgement
        assert [p.channel for p in plan_channels(kind, who)] == [NotificationChannel.SMS]


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_the_languages_say_the_same_facts(renderer: MessageRenderer, name: str) -> None:
    # The numbers (dates, hours, counts, the phone line) are the facts: the same in every language.
    def numbers(text: str) -> list[str]:
        text = text.replace("1er", "1")  # French writes the first of the month "1er"
        text = re.sub(r"https?://\S+", "", text)
        text = re.sub(r"\b(\d{1,2})[h.:](\d{2})\b", r"\1 \2", text)  # 9h30, 09.30, 09:30
        return sorted(str(int(n)) for n in re.findall(r"\d+", text))

    said = {lang: render(renderer, EVENTS[name], lang) for lang in LANGUAGES}
    # English writes the line's hours 8:30 am-5:15 pm; French and Dutch 8h30-17h15.
    normalise = {"en": lambda t: t.replace("5:15 pm", "17:15").replace("8:30 am", "8:30")}
    for part in ("text", "sms"):
        seen = {lang: numbers(normalise.get(lang, lambda t: t)(getattr(said[lang], part))) for lang in LANGUAGES}
        assert seen["fr"] == seen["nl"] == seen["en"], (name, part, seen)


def test_the_status_link_travels_sealed_with_the_contact_and_opens_with_the_persons_key() -> None:
    key = AESGCM.generate_key(bit_length=256)
    request = make_request(status_url=STATUS_URL)
    sealed = seal(request, key)
    assert sealed.status_url is None and sealed.sealed is not None and "status_url" in sealed.sealed.fields
    assert STATUS_URL not in sealed.model_dump_json()
    assert unseal(sealed, key).status_url == STATUS_URL
    assert unseal(sealed, None).status_url is None  # the key erased: no link left to send
    # A request sealed before links existed opens without one.
    assert unseal(seal(make_request(), key), key).status_url is None
