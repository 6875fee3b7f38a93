"""Every notice in every language renders completely: each event type x fr/nl/en, optional facts
absent or present, unknown languages in French, a missing variable an error, dates in Brussels."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError

from certification.offer_links import OfferLinks, OfferTokens
from notification.gsm import to_gsm7
from notification.messages import BLOCKS, LANGUAGES, TEMPLATES_DIR, MessageRenderer, format_date, format_datetime
from notification.notices import Notice, NoticeKind, notice_for
from notification.staff import STAFF_TEMPLATES
from schemas import (
    CallbackDue,
    CertificateIssued,
    ContactAttempted,
    ContactOutcome,
    Disposition,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamRequestReason,
    ExamScheduled,
    ExamSchedulingRequested,
    ExamSeatOffered,
    Language,
    RequestKind,
    Target,
    TrainingRequestClosed,
    TrainingRequestRouted,
)

pytestmark = pytest.mark.unit

PERSON = "prs_7f3a9c2e41d8"
REQUEST = str(uuid.uuid4())
SUMMER_MORNING = datetime(2026, 6, 9, 7, 30, tzinfo=UTC)  # 09:30 in Brussels (CEST)
WINTER_MORNING = datetime(2026, 1, 13, 8, 30, tzinfo=UTC)  # 09:30 in Brussels (CET)


def routed(target: Target, deadline: datetime | None = SUMMER_MORNING) -> TrainingRequestRouted:
    return TrainingRequestRouted(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        target=target,
        rule_id="r",
        rule_set_version="v1",
        explanation="staff only: no CESS",
        priority=50,
        callback_deadline=deadline,
    )


def no_answer(next_attempt_at: datetime | None = WINTER_MORNING) -> ContactAttempted:
    return ContactAttempted(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        worker_id="adv_042",
        outcome=ContactOutcome.NO_ANSWER,
        attempt=1,
        next_attempt_at=next_attempt_at,
        notes="staff only: left a voicemail",
    )


def closed(disposition: Disposition = Disposition.UNREACHABLE, attempts: int = 3) -> TrainingRequestClosed:
    return TrainingRequestClosed(
        source="/tests", request_id=REQUEST, person_id=PERSON, disposition=disposition, attempts=attempts, worker_id="adv_042"
    )


def enrolment(
    starts_on: date | None = date(2026, 4, 1), login: str | None = "https://learn.example.org\nIdentifiant : votre e-mail"
) -> EnrolmentConfirmed:
    return EnrolmentConfirmed(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        course_code="BUR-EXCEL-01",
        course_title="Excel : les bases",
        starts_on=starts_on,
        language=Language.FR,
        login_instructions=login,
    )


def exam(bring: list[str] | None = None) -> ExamScheduled:
    return ExamScheduled(
        source="/tests",
        person_id=PERSON,
        certification_code="ICDL-BASE",
        session_id="ses_1",
        centre_id="ctr_anderlecht",
        centre_name="Bruxelles Formation Bureautique – Anderlecht",
        exam_at=datetime(2026, 4, 3, 7, 0, tzinfo=UTC),
        what_to_bring=["Carte d'identité", "Convocation"] if bring is None else bring,
    )


SEAT_LINKS = OfferLinks(
    "https://certification.bruxellesformation.brussels", OfferTokens("a test key for seat offer links, 32 bytes")
)


def seat_offer(*, links: bool = True) -> ExamSeatOffered:
    offer_id = "5b0c8e2f4a7d4c1e9f3a2b6c7d8e9f01"
    respond_by = datetime(2026, 4, 1, 7, 0, tzinfo=UTC)
    urls = SEAT_LINKS.both(offer_id, respond_by) if links else {}
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
        accept_url=urls.get("accept_url"),
        decline_url=urls.get("decline_url"),
    )


def certificate(url: str | None = "https://credentials.example.org/ICDL-BE-0012345") -> CertificateIssued:
    return CertificateIssued(
        source="/tests",
        person_id=PERSON,
        certification_code="ICDL-BASE",
        credential_id="ICDL-BE-0012345",
        issued_at=datetime(2026, 4, 10, 14, 0, tzinfo=UTC),
        credential_url=url,
    )


EVENTS: dict[str, Event] = {
    **{f"routed_{t.value}": routed(t) for t in Target},
    **{f"routed_{t.value}_no_deadline": routed(t, None) for t in Target},
    "no_answer": no_answer(),
    "closed_unreachable": closed(),
    "closed_unreachable_after_one_call": closed(attempts=1),
    "enrolment": enrolment(),
    "enrolment_self_paced": enrolment(None, None),
    "enrolment_waitlisted": EnrolmentWaitlisted(
        source="/tests",
        request_id=REQUEST,
        person_id=PERSON,
        course_code="BUR-EXCEL-01",
        course_title="Excel : les bases",
        language=Language.FR,
    ),
    "seat_offer": seat_offer(),
    "exam": exam(),
    "exam_nothing_to_bring": exam([]),
    "certificate": certificate(),
    "certificate_no_url": certificate(None),
}


@pytest.fixture(scope="module")
def renderer() -> MessageRenderer:
    return MessageRenderer()


def test_every_kind_has_a_template_in_every_language_with_every_block() -> None:
    for kind, lang in itertools.product(NoticeKind, LANGUAGES):
        path = TEMPLATES_DIR / lang / f"{kind.value}.j2"
        assert path.is_file(), path
        source = path.read_text()
        for block in BLOCKS:
            assert f"{{% block {block} %}}" in source, (path, block)
    on_disk = {p.stem for p in TEMPLATES_DIR.glob("*/*.j2")}
    assert on_disk == {k.value for k in NoticeKind} | STAFF_TEMPLATES, "a template without a notice kind"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_event_renders_in_every_language(renderer: MessageRenderer, name: str, language: str) -> None:
    notice = notice_for(EVENTS[name])
    assert notice is not None
    message = renderer.render(notice.kind.value, language, notice.facts, name="Amina", with_email=True)
    assert message.language == language and message.template == f"{notice.kind.value}.{language}"
    assert message.subject and "\n" not in message.subject
    assert "Amina" in message.text and "Amina" in message.html
    assert message.html.startswith("<!DOCTYPE html>") and f'<html lang="{language}">' in message.html
    # Two text segments; three for a text carrying a link to a page of ours (the signed link is a segment).
    assert message.sms.startswith("Bruxelles Formation") and len(message.sms) <= (459 if "https://" in message.sms else 320)
    for text in (message.subject, message.text, message.html, message.sms):
        assert "None" not in text and "{{" not in text and "{%" not in text
    assert "staff only" not in message.text + message.html + message.sms


@pytest.mark.parametrize("language", LANGUAGES)
def test_facts_reach_the_message(renderer: MessageRenderer, language: str) -> None:
    def render(event: Event) -> Any:
        notice = notice_for(event)
        assert notice is not None
        return renderer.render(notice.kind.value, language, notice.facts, name=None, with_email=True)

    enrolled = render(enrolment())
    assert "Excel : les bases" in enrolled.subject and "BUR-EXCEL-01" in enrolled.text
    assert "https://learn.example.org" in enrolled.text and "https://learn.example.org" in enrolled.html
    booked = render(exam())
    assert "Bruxelles Formation Bureautique – Anderlecht" in booked.text and "Carte d'identité" in booked.text
    assert "Carte d&#39;identité" in booked.html  # escaped in HTML, as it should be
    certified = render(certificate())
    assert "https://credentials.example.org/ICDL-BE-0012345" in certified.text
    assert 'href="https://credentials.example.org/ICDL-BE-0012345"' in certified.html
    assert "https://credentials.example.org/ICDL-BE-0012345" in certified.sms


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_seat_offer_gives_both_links_by_email_and_one_by_text_in_the_persons_language(
    renderer: MessageRenderer, language: str
) -> None:
    event = seat_offer()
    notice = notice_for(event)
    assert notice is not None and notice.kind is NoticeKind.EXAM_SEAT_OFFERED
    message = renderer.render(notice.kind.value, language, notice.facts, name=None, with_email=True)
    assert event.accept_url and event.decline_url
    for url in (event.accept_url, event.decline_url):
        assert f"{url}&lang={language}" in message.text
        assert f'href="{url}&amp;lang={language}"' in message.html
    # A text has room for one link: its page offers both answers.
    assert f"{event.accept_url}&lang={language}" in message.sms and event.decline_url not in message.sms
    assert "Bruxelles Formation Bureautique – Anderlecht" in message.text
    assert format_datetime(event.respond_by, language) in message.text  # the deadline's hour, in Brussels time
    assert format_datetime(event.respond_by, language) in message.sms


def test_a_seat_offer_still_sealed_or_without_links_tells_nothing() -> None:
    assert notice_for(seat_offer(links=False)) is None
    javascript = seat_offer().model_copy(update={"accept_url": "javascript:alert(1)"})
    assert notice_for(javascript) is None


@pytest.mark.parametrize(
    ("language", "promise"),
    [("fr", "dans un jour ouvrable"), ("nl", "binnen één werkdag"), ("en", "within one working day")],
)
def test_a_learner_question_is_acknowledged_with_its_one_working_day_promise(
    renderer: MessageRenderer, language: str, promise: str
) -> None:
    question = routed(Target.ESPACES_NUMERIQUES).model_copy(update={"kind": RequestKind.LEARNER_QUESTION})
    notice = notice_for(question)
    assert notice is not None and notice.facts["learner_question"] is True
    message = renderer.render(notice.kind.value, language, notice.facts, name=None, with_email=True)
    for part in (message.text, message.html, message.sms):
        assert promise in part
        assert "9" in part  # the deadline itself, in Brussels time
    assert message.text.count("\n\n") == 3  # greeting, answer, phone line, signature: paragraphs kept apart
    # A training request routed to the same team keeps its own wording, and its facts no new key.
    plain = notice_for(routed(Target.ESPACES_NUMERIQUES))
    assert plain is not None and "learner_question" not in plain.facts
    assert promise not in renderer.render(plain.kind.value, language, plain.facts, name=None, with_email=True).text


def test_dates_are_in_brussels_time_and_in_the_language(renderer: MessageRenderer) -> None:
    deadline = routed(Target.ADVISORS, SUMMER_MORNING)  # 07:30 UTC = 09:30 CEST
    notice = notice_for(deadline)
    assert notice is not None
    texts = {lang: renderer.render(notice.kind.value, lang, notice.facts).sms for lang in LANGUAGES}
    assert "mardi 9 juin 2026 à 9h30" in texts["fr"]
    assert "dinsdag 9 juni 2026 om 09.30 uur" in texts["nl"]
    assert "Tuesday 9 June 2026 at 09:30" in texts["en"]
    winter = notice_for(no_answer(WINTER_MORNING))  # 08:30 UTC = 09:30 CET
    assert winter is not None
    assert "mardi 13 janvier 2026 à 9h30" in renderer.render(winter.kind.value, "fr", winter.facts).text


def test_date_formats() -> None:
    assert format_date(date(2026, 4, 1), "fr") == "mercredi 1er avril 2026"
    assert format_date("2026-04-01", "nl") == "woensdag 1 april 2026"
    assert format_date("2026-04-01", "en") == "Wednesday 1 April 2026"
    # 23:30 UTC on 31 March is already 1 April in Brussels.
    assert format_date(datetime(2026, 3, 31, 23, 30, tzinfo=UTC), "fr") == "mercredi 1er avril 2026"
    assert format_datetime("2026-10-25T01:30:00+00:00", "en") == "Sunday 25 October 2026 at 02:30"  # after the switch back
    assert format_datetime("2026-03-29T01:30:00+00:00", "fr") == "dimanche 29 mars 2026 à 3h30"  # after the switch forward
    with pytest.raises(ValueError):
        format_datetime("2026-03-29T01:30:00", "fr")


@pytest.mark.parametrize("language", ["de", "", None, "xx"])
def test_an_unknown_language_falls_back_to_french(renderer: MessageRenderer, language: str | None) -> None:
    notice = notice_for(enrolment())
    assert notice is not None
    message = renderer.render(notice.kind.value, language, notice.facts, name="Jan")
    assert message.language == "fr" and message.template == "enrolment_confirmed.fr"
    assert message.subject.startswith("Inscription confirmée")


def test_a_language_without_a_template_for_the_kind_falls_back_to_french(tmp_path: Path) -> None:
    for lang in ("fr", "nl"):
        (tmp_path / lang).mkdir()
    (tmp_path / "_layout.html").write_text("{{ content }}")
    blocks = "".join(f"{{% block {b} %}}{b} {{{{ lang }}}}{{% endblock %}}" for b in BLOCKS)
    (tmp_path / "fr" / "exam_scheduled.j2").write_text(blocks)
    message = MessageRenderer(tmp_path).render("exam_scheduled", "nl", {})
    assert (message.language, message.subject) == ("fr", "subject fr")


def test_strict_undefined_catches_a_missing_variable(renderer: MessageRenderer) -> None:
    notice = notice_for(exam())
    assert notice is not None
    incomplete = {k: v for k, v in notice.facts.items() if k != "centre_name"}
    for language in LANGUAGES:
        with pytest.raises(UndefinedError, match="centre_name"):
            renderer.render(notice.kind.value, language, incomplete)


def test_a_template_missing_a_block_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "exam_scheduled.j2").write_text("{% block subject %}s{% endblock %}")
    with pytest.raises(LookupError, match="text"):
        MessageRenderer(tmp_path).render("exam_scheduled", "fr", {})


def test_html_is_escaped_but_text_is_not(renderer: MessageRenderer) -> None:
    notice = notice_for(enrolment())
    assert notice is not None
    facts = {**notice.facts, "course_title": "Excel <script>alert(1)</script> & co"}
    message = renderer.render(notice.kind.value, "en", facts)
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html
    assert "Excel <script>alert(1)</script> & co" in message.text


def test_the_sms_says_details_by_email_only_when_one_is_sent(renderer: MessageRenderer) -> None:
    notice = notice_for(enrolment())
    assert notice is not None
    assert "Détails par e-mail" in renderer.render(notice.kind.value, "fr", notice.facts, with_email=True).sms
    assert "Détails par e-mail" not in renderer.render(notice.kind.value, "fr", notice.facts, with_email=False).sms


def test_which_events_give_a_notice() -> None:
    kinds = {name: notice.kind for name, event in EVENTS.items() if (notice := notice_for(event))}
    assert kinds["routed_espaces_numeriques"] is NoticeKind.REQUEST_ROUTED_ESPACES_NUMERIQUES
    assert kinds["routed_cite_des_metiers"] is NoticeKind.REQUEST_ROUTED_CITE_DES_METIERS
    assert len(kinds) == len(EVENTS)
    reached = ContactAttempted(
        source="/t", request_id=REQUEST, person_id=PERSON, worker_id="adv", outcome=ContactOutcome.ADVICE_GIVEN, attempt=1
    )
    due = CallbackDue(source="/t", request_id=REQUEST, person_id=PERSON, deadline=SUMMER_MORNING)
    asked = ExamSchedulingRequested(source="/t", person_id=PERSON, certification_code="ICDL", reason=ExamRequestReason.DESK)
    assert notice_for(reached) is None and notice_for(due) is None and notice_for(asked) is None
    # The last unanswered call plans no other: the closing event tells the person, not the attempt.
    assert notice_for(no_answer(None)) is None
    assert [notice_for(closed(d)) for d in Disposition if d is not Disposition.UNREACHABLE] == [None, None, None]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_unreachable_message_says_how_often_we_called_how_to_reach_us_and_that_the_request_is_closed(
    renderer: MessageRenderer, language: str
) -> None:
    notice = notice_for(closed(attempts=3))
    assert notice is not None and notice.kind is NoticeKind.REQUEST_CLOSED_UNREACHABLE and notice.facts == {"attempts": 3}
    message = renderer.render(notice.kind.value, language, notice.facts, name=None)
    calls = {"fr": "3 fois", "nl": "3 keer", "en": "3 times"}[language]
    hours = {"fr": ("8h30", "17h15"), "nl": ("8.30", "17.15"), "en": ("8:30 am", "5:15 pm")}[language]
    closed_words = {"fr": "clôturé", "nl": "afgesloten", "en": "closed"}[language]
    for text in (message.text, message.html):
        assert calls in text and "0800 555 66" in text and all(h in text for h in hours) and closed_words in text
    # The text message is in the GSM alphabet: "clôturé" is sent as "cloturé".
    assert "0800 555 66" in message.sms and "3 " in message.sms and to_gsm7(closed_words)[:6] in message.sms
    one = renderer.render(notice.kind.value, language, {"attempts": 1}, name=None)
    assert "1 times" not in one.text and "1 calls" not in one.sms and "1 appels" not in one.sms


def test_a_notice_keeps_ids_and_json_safe_facts_but_no_staff_notes() -> None:
    event = no_answer()
    notice = notice_for(event)
    assert notice is not None
    assert (notice.about_event_id, notice.person_id, notice.request_id) == (str(event.id), PERSON, REQUEST)
    assert notice.correlation_id == str(event.correlation_id)
    assert notice.facts == {"attempt": 1, "next_attempt_at": WINTER_MORNING.isoformat()}
    assert Notice.from_document(notice.to_document()) == notice


def test_only_a_web_link_becomes_the_credential_url() -> None:
    notice = notice_for(certificate("javascript:alert(1)"))
    assert notice is not None and notice.facts["credential_url"] is None


def test_subjects_are_single_lines(renderer: MessageRenderer) -> None:
    for kind, lang in itertools.product(NoticeKind, LANGUAGES):
        source = (TEMPLATES_DIR / lang / f"{kind.value}.j2").read_text()
        subject = re.search(r"{% block subject %}(.*?){% endblock %}", source, re.S)
        assert subject is not None and "\n" not in subject.group(1), (kind, lang)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_name_with_a_link_or_control_characters_never_reaches_a_message(renderer: MessageRenderer, language: str) -> None:
    notice = notice_for(EVENTS["no_answer"])
    assert notice is not None
    lure = renderer.render(notice.kind.value, language, notice.facts, name="URGENT: confirm at https://evil.example")
    broken = renderer.render(notice.kind.value, language, notice.facts, name="Jan\r\nPeeters\u202e")
    anonymous = renderer.render(notice.kind.value, language, notice.facts, name=None)

    for text in (lure.subject, lure.text, lure.html, lure.sms):
        assert "evil" not in text and "URGENT" not in text
    assert (lure.text, lure.html) == (anonymous.text, anonymous.html)  # the neutral greeting
    assert "Jan Peeters" in broken.text and "\r" not in broken.text and "\u202e" not in broken.html
