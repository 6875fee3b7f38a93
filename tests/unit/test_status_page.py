"""The job seeker's status page, without a broker: its links, its projection's reducers, the windows
it offers, the page's content and the plain words it uses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest
import yaml

from intake.status.handlers import SHOWN, Shown
from intake.status.links import BadStatusToken, StatusLinkExpired, StatusLinks, StatusTokens
from intake.status.page import _render
from intake.status.projection import PERSON_EVENTS, REQUEST_EVENTS, apply_to_person, apply_to_request, is_closed
from intake.status.slots import find_window, offered_windows
from intake.status.texts import RULE_REASONS, TEAM_NAMES, TEXTS, rule_reason
from intake.status.view import build_view, format_moment, history_lines
from schemas import (
    CallbackSlotChosen,
    Contact,
    ContactAttempted,
    ContactDetailsConfirmed,
    ContactOutcome,
    Disposition,
    ExamScheduled,
    Language,
    PersonDataErased,
    RequestDetailsCorrected,
    Target,
    TrainingRequestClosed,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
)
from services.calendar import BRUSSELS, BrusselsCalendar
from services.local_time import format_datetime
from services.privacy import seal, sealed_fields, unseal
from tests.factories import make_request

pytestmark = pytest.mark.unit

KEY = "a-test-status-link-key-of-at-least-32-bytes"
REQUEST_ID = "3f2b8c1e-7a4d-4e9b-9c2f-5d6e7f8a9b0c"
"""Intake's request ids are UUIDs: their links take the compact form."""
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Brussels
RULES = Path(__file__).resolve().parents[2] / "routing" / "data" / "rules.yaml"


# --- links ----------------------------------------------------------------------------------


def test_a_signed_token_names_its_request_until_it_expires() -> None:
    tokens = StatusTokens(KEY)
    token = tokens.sign("req-1", NOW + timedelta(days=90), "link-a")

    found = tokens.verify(token, now=NOW)

    assert (found.request_id, found.link_id) == ("req-1", "link-a")
    assert found.expires_at == NOW + timedelta(days=90)
    with pytest.raises(StatusLinkExpired):
        tokens.verify(token, now=NOW + timedelta(days=90))


@pytest.mark.parametrize("tamper", ["payload", "signature", "version", "garbage"])
def test_an_altered_token_is_refused(tamper: str) -> None:
    token = StatusTokens(KEY).sign("req-1", NOW + timedelta(days=1), "link-a")
    version, payload, signature = token.split(".")
    forged = {
        "payload": f"{version}.{StatusTokens(KEY).sign('req-2', NOW + timedelta(days=1), 'link-a').split('.')[1]}.{signature}",
        "signature": f"{version}.{payload}.{signature[:-2]}AA",
        "version": f"s0.{payload}.{signature}",
        "garbage": "not-a-token",
    }[tamper]

    with pytest.raises(BadStatusToken):
        StatusTokens(KEY).verify(forged, now=NOW)


def test_a_token_signed_with_another_key_is_refused_and_short_keys_are_not_keys() -> None:
    token = StatusTokens("another-key-that-is-also-32-bytes-long!").sign("req-1", NOW + timedelta(days=1))
    with pytest.raises(BadStatusToken):
        StatusTokens(KEY).verify(token, now=NOW)
    with pytest.raises(ValueError, match="32 bytes"):
        StatusTokens("short")


def test_each_link_has_its_own_id_and_opens_the_page_in_the_persons_language() -> None:
    links = StatusLinks("https://intake.example.org/", StatusTokens(KEY), ttl=timedelta(days=30))

    first, second = links.mint(REQUEST_ID, Language.NL, now=NOW), links.mint(REQUEST_ID, Language.NL, now=NOW)

    assert re.fullmatch(r"https://intake\.example\.org/nl/status/s2\.[\w-]{56}", first)
    tokens = [StatusTokens(KEY).verify(url.rsplit("/", 1)[1], now=NOW) for url in (first, second)]
    assert tokens[0].link_id != tokens[1].link_id
    assert tokens[0].expires_at == NOW + timedelta(days=30)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_uuid_request_gets_a_compact_token_that_names_it_until_it_expires() -> None:
    tokens = StatusTokens(KEY)
    token = tokens.sign(REQUEST_ID, NOW + timedelta(days=90), "0a1b2c3d4e5f")

    found = tokens.verify(token, now=NOW)

    assert token.startswith("s2.") and "." not in token[3:] and "=" not in token
    assert (found.request_id, found.link_id) == (REQUEST_ID, "0a1b2c3d4e5f")
    assert found.expires_at == NOW + timedelta(days=90)
    assert tokens.verify(token, now=NOW + timedelta(days=90) - timedelta(seconds=1)) == found
    with pytest.raises(StatusLinkExpired) as expired:
        tokens.verify(token, now=NOW + timedelta(days=90))
    assert expired.value.token == found  # the page still knows which request a dead link named


def test_a_fresh_compact_token_has_a_fresh_link_id_of_the_s1_kind() -> None:
    tokens = StatusTokens(KEY)
    found = [tokens.verify(tokens.sign(REQUEST_ID, NOW + timedelta(days=1)), now=NOW) for _ in range(2)]
    assert found[0].link_id != found[1].link_id
    assert all(re.fullmatch(r"[0-9a-f]{12}", token.link_id) for token in found)


def test_changing_any_byte_or_character_of_a_compact_token_is_refused() -> None:
    tokens = StatusTokens(KEY)
    token = tokens.sign(REQUEST_ID, NOW + timedelta(days=1), "0a1b2c3d4e5f")
    raw = _unb64(token[3:])
    assert len(raw) == 42
    forged = [f"s2.{_b64(raw[:i] + bytes([raw[i] ^ bit]) + raw[i + 1 :])}" for i in range(len(raw)) for bit in (0x01, 0x80)]
    forged += [token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :] for i in range(3, len(token))]
    forged += [token[:-1], token + "A", f"s2.{_b64(raw + b'x')}", f"s2.{_b64(raw[:-1])}", f"s1.{token[3:]}", "s2.", "s2"]
    forged += [token[:10] + "!" + token[11:], token[:10] + "=" + token[11:], f"{token}.{token[3:]}"]

    for bad in forged:
        assert bad != token
        with pytest.raises(BadStatusToken):
            tokens.verify(bad, now=NOW)


def test_a_compact_token_signed_with_another_key_is_refused() -> None:
    token = StatusTokens("another-key-that-is-also-32-bytes-long!").sign(REQUEST_ID, NOW + timedelta(days=1))
    assert token.startswith("s2.")
    with pytest.raises(BadStatusToken):
        StatusTokens(KEY).verify(token, now=NOW)


@pytest.mark.parametrize(
    ("request_id", "link_id", "expires_at"),
    [
        ("req-1", None, NOW + timedelta(days=90)),  # not a UUID
        (REQUEST_ID.upper(), None, NOW + timedelta(days=90)),  # a UUID, but read back it would be another string
        (REQUEST_ID.replace("-", ""), None, NOW + timedelta(days=90)),
        (REQUEST_ID, "link-a", NOW + timedelta(days=90)),  # a link id that is not 6 bytes of hex
        (REQUEST_ID, None, datetime(2107, 1, 1, tzinfo=UTC)),  # past what 4 bytes of seconds hold
    ],
    ids=["not_uuid", "upper_case", "no_hyphens", "named_link", "far_expiry"],
)
def test_what_the_compact_form_cannot_hold_gets_an_s1_token_that_still_works(
    request_id: str, link_id: str | None, expires_at: datetime
) -> None:
    tokens = StatusTokens(KEY)
    token = tokens.sign(request_id, expires_at, link_id)

    found = tokens.verify(token, now=NOW)

    assert token.startswith("s1.")
    assert (found.request_id, found.expires_at) == (request_id, expires_at)
    assert link_id is None or found.link_id == link_id


def test_an_s1_link_sent_before_s2_still_opens_until_it_expires_and_can_be_revoked_by_its_id() -> None:
    # Built by hand as the s1 code built it, so that a change to how s1 is checked shows here.
    payload = f"{REQUEST_ID}|{int((NOW + timedelta(days=90)).timestamp())}|a1b2c3d4e5f6".encode()
    mac = hmac.new(KEY.encode(), b"formation-events/request-status/v1\x00" + payload, hashlib.sha256).digest()[:16]
    token = f"s1.{_b64(payload)}.{_b64(mac)}"

    found = StatusTokens(KEY).verify(token, now=NOW)

    assert (found.request_id, found.link_id, found.expires_at) == (REQUEST_ID, "a1b2c3d4e5f6", NOW + timedelta(days=90))
    with pytest.raises(StatusLinkExpired):
        StatusTokens(KEY).verify(token, now=NOW + timedelta(days=90))
    with pytest.raises(BadStatusToken):
        StatusTokens("another-key-that-is-also-32-bytes-long!").verify(token, now=NOW)


def test_the_status_link_of_a_request_fits_in_some_120_characters() -> None:
    base = "https://formation.bruxellesformation.brussels"
    links = StatusLinks(base, StatusTokens(KEY))
    link = links.mint(str(uuid.uuid4()), Language.NL, now=NOW)
    old = f"{base}/nl/status/{StatusTokens(KEY).sign('x' * 35 + '-', NOW + timedelta(days=90))}"

    assert len(link.rsplit("/", 1)[1]) == 59
    assert len(link) <= 120, link
    assert len(old) > 150  # what an s1 link of the same request id length was


# --- sealing --------------------------------------------------------------------------------


def test_the_status_link_and_corrected_details_travel_sealed() -> None:
    key = os.urandom(32)
    request = make_request(status_url="https://intake.example.org/fr/status/s1.x.y")
    sealed = seal(request, key)
    assert sealed.status_url is None and "status_url" in sealed.model_dump_json() and "s1.x.y" not in sealed.model_dump_json()
    assert unseal(sealed, key).status_url == request.status_url

    corrected = RequestDetailsCorrected(
        source="/tests",
        request_id=request.request_id,
        person_id=request.person_id,
        corrected_through="status_page",
        need="Plutôt Word",
        contact=Contact(phone="+32470999999"),
    )
    closed = seal(corrected, key)
    assert closed.need is None and closed.contact is None and closed.sealed is not None
    assert "+32470999999" not in closed.model_dump_json()
    assert sealed_fields(closed.sealed, key)["need"] == "Plutôt Word"
    assert unseal(closed, key).contact == Contact(phone="+32470999999")
    assert sealed_fields(closed.sealed, None) == {}


# --- the projection's reducers --------------------------------------------------------------


def routed(request_id: str, person_id: str, **overrides: object) -> TrainingRequestRouted:
    fields: dict[str, object] = {
        "source": "/tests",
        "request_id": request_id,
        "person_id": person_id,
        "target": Target.ESPACES_NUMERIQUES,
        "rule_id": "named-online-course",
        "rule_set_version": "2026.6",
        "explanation": "internal explanation for advisors",
        "priority": 70,
        "callback_deadline": datetime(2026, 12, 9, 16, 15, tzinfo=UTC),
        "assignee_id": "adv-secret-7",
    }
    fields.update(overrides)
    return TrainingRequestRouted(**fields)  # type: ignore[arg-type]


def attempt(request_id: str, person_id: str, outcome: ContactOutcome = ContactOutcome.NO_ANSWER) -> ContactAttempted:
    return ContactAttempted(
        source="/tests",
        request_id=request_id,
        person_id=person_id,
        worker_id="adv-secret-7",
        outcome=outcome,
        attempt=1,
        notes="private note about the person",
    )


def test_events_land_in_any_order_and_twice_is_once() -> None:
    request = seal(make_request(), os.urandom(32))
    route, call = routed(request.request_id, request.person_id), attempt(request.request_id, request.person_id)

    in_order = apply_to_request(apply_to_request(apply_to_request(None, request), route), call)
    reversed_ = apply_to_request(apply_to_request(apply_to_request(None, call), route), request)
    twice = apply_to_request(in_order, call)

    for entry in (in_order, reversed_, twice):
        assert entry["target"] == "espaces_numeriques"
        assert entry["rule_id"] == "named-online-course"
        assert entry["need_sealed"]["ciphertext"]
        # In the order things happened, whatever order they arrived in.
        assert [line["what"] for line in entry["history"]] == ["received", "routed", "attempt"]
    stored = repr(in_order)
    assert "adv-secret-7" not in stored and "private note" not in stored and "priority" not in stored


def test_withdrawal_and_closure_close_the_request_and_a_slot_choice_is_replaced_by_a_later_one() -> None:
    request = make_request()
    entry = apply_to_request(None, request)
    start = datetime(2026, 12, 8, 8, 30, tzinfo=BRUSSELS)
    earlier = CallbackSlotChosen(
        source="/t",
        request_id=request.request_id,
        person_id=request.person_id,
        slot_start=start,
        slot_end=start + timedelta(hours=4),
        chosen_through="status_page",
        time=NOW,
    )
    later = earlier.model_copy(
        update={
            "id": earlier.id.__class__(int=earlier.id.int + 1),
            "time": NOW + timedelta(minutes=5),
            "slot_start": start + timedelta(days=1),
            "slot_end": start + timedelta(days=1, hours=4),
        }
    )
    chosen = apply_to_request(apply_to_request(entry, later), earlier)
    assert chosen["slot"]["start"] == start + timedelta(days=1)
    assert not is_closed(chosen)

    withdrawn = TrainingRequestWithdrawn(
        source="/t", request_id=request.request_id, person_id=request.person_id, withdrawn_through="status_page"
    )
    assert is_closed(apply_to_request(chosen, withdrawn))
    closed = TrainingRequestClosed(
        source="/t", request_id=request.request_id, person_id=request.person_id, disposition=Disposition.UNREACHABLE, attempts=3
    )
    assert is_closed(apply_to_request(chosen, closed))


def test_a_corrected_contact_is_marked_unverified_and_the_newest_words_win() -> None:
    key = os.urandom(32)
    request = make_request()
    corrected = seal(
        RequestDetailsCorrected(
            source="/t",
            request_id=request.request_id,
            person_id=request.person_id,
            corrected_through="status_page",
            need="Plutôt Word",
            requested_course="WORD",
            contact=Contact(email="new@example.org"),
        ),
        key,
    )
    entry = apply_to_request(apply_to_request(None, seal(request, key)), corrected)

    assert entry["contact_unverified"] is True
    assert entry["requested_course"] == "WORD"
    assert entry["need_corrected"]["ciphertext"] != entry["need_sealed"]["ciphertext"]

    # The advisor checks the new address with the person: the page says so, and no longer "unverified".
    confirmed = ContactDetailsConfirmed.following(
        corrected, source="/routing/desk", request_id=request.request_id, person_id=request.person_id, confirmed_by="adv-1"
    )
    entry = apply_to_request(entry, seal(confirmed, key))
    assert entry["contact_unverified"] is False and entry["history"][-1]["what"] == "contact_confirmed"
    assert "adv-1" not in repr(entry), "who confirmed is internal"


# --- the page's content ---------------------------------------------------------------------


def test_the_view_says_team_why_and_by_when_in_brussels_time_and_nothing_internal() -> None:
    request = make_request()
    entry = apply_to_request(
        apply_to_request(apply_to_request(None, request), routed(request.request_id, request.person_id)),
        attempt(request.request_id, request.person_id),
    )
    exam = ExamScheduled(
        source="/t",
        person_id=request.person_id,
        certification_code="MOS-EXCEL",
        session_id="ses_1",
        centre_id="ctr_1",
        centre_name="Bruxelles Formation Anderlecht",
        exam_at=datetime(2027, 1, 12, 8, 0, tzinfo=UTC),
    )
    person = apply_to_person(None, exam)

    view = build_view(entry, person, need="Je voudrais apprendre Excel", language=Language.FR)

    assert view.team == "Votre demande est suivie par l'équipe BF espaces numériques."
    assert view.reason == RULE_REASONS["named-online-course"][Language.FR]
    # 16:15 UTC on 9 December is 17:15 in Brussels.
    assert view.promise == "L'équipe BF espaces numériques vous contacte au plus tard le mercredi 9 décembre 2026 à 17h15."
    texts = [line.text for line in view.history]
    assert "Nous avons essayé de vous appeler, sans réponse." in texts
    assert any("Bruxelles Formation Anderlecht" in line and "mardi 12 janvier 2027 à 9h00" in line for line in texts)
    assert "0800 555 66" in view.helpline and "8h30" in view.helpline and "17h15" in view.helpline
    everything = repr(view)
    for internal in (
        "named-online-course",
        request.person_id,
        "adv-secret-7",
        "priority",
        "internal explanation",
        "private note",
    ):
        assert internal not in everything


@pytest.mark.parametrize("language", list(Language))
def test_every_history_line_reads_in_every_language(language: Language) -> None:
    request = make_request()
    entry = apply_to_request(None, request)
    for outcome in ContactOutcome:
        entry = apply_to_request(entry, attempt(request.request_id, request.person_id, outcome))
    for disposition in Disposition:
        closed = TrainingRequestClosed(
            source="/t", request_id=request.request_id, person_id=request.person_id, disposition=disposition, attempts=1
        )
        entry = apply_to_request(entry, closed)

    lines = history_lines(entry["history"], language)

    assert len(lines) == 1 + len(ContactOutcome) + len(Disposition)
    assert all(line.text and "{" not in line.text for line in lines)


def test_moments_are_written_as_the_messages_write_them() -> None:
    # The page and the SMS that brought its link say a time the same way.
    at = datetime(2026, 12, 8, 7, 30, tzinfo=UTC)
    assert format_moment(at, Language.FR) == "mardi 8 décembre 2026 à 8h30" == format_datetime(at, "fr")
    assert format_moment(at, Language.NL) == "dinsdag 8 december 2026 om 08.30 uur" == format_datetime(at, "nl")
    assert format_moment(at, Language.EN) == "Tuesday 8 December 2026 at 08:30" == format_datetime(at, "en")


# --- the windows offered --------------------------------------------------------------------


def test_windows_are_mornings_and_afternoons_of_working_days_and_late_ones_are_marked() -> None:
    calendar = BrusselsCalendar(extra_closures={date(2026, 12, 8): "Staff day"})
    deadline = datetime(2026, 12, 9, 17, 15, tzinfo=BRUSSELS)

    windows = offered_windows(calendar, NOW, deadline)

    # Monday 10:00: the morning has started, so Monday afternoon first; Tuesday is closed.
    starts = [window.start.astimezone(BRUSSELS) for window in windows]
    assert starts[0] == datetime(2026, 12, 7, 13, 0, tzinfo=BRUSSELS)
    assert all(start.date() != date(2026, 12, 8) for start in starts)
    assert all(start.weekday() < 5 for start in starts)
    assert {(w.start.astimezone(BRUSSELS).time(), w.end.astimezone(BRUSSELS).time()) for w in windows} == {
        (datetime(2000, 1, 1, 8, 30).time(), datetime(2000, 1, 1, 12, 30).time()),
        (datetime(2000, 1, 1, 13, 0).time(), datetime(2000, 1, 1, 17, 15).time()),
    }
    assert [w.late for w in windows[:3]] == [False, False, False]  # Mon pm, Wed am, Wed pm
    assert windows[3].late and all(w.late for w in windows[3:])
    assert find_window(windows, windows[2].key) == windows[2]
    assert find_window(windows, "2026-12-08T08:30") is None


# --- words ----------------------------------------------------------------------------------


def test_every_rule_of_routing_has_a_plain_reason_in_every_language() -> None:
    document = yaml.safe_load(RULES.read_text())
    rule_ids = {rule["id"] for rule in document["rules"]} | {document["default"]["id"]}

    assert rule_ids <= set(RULE_REASONS)
    for rule_id in rule_ids:
        for language in Language:
            reason = rule_reason(rule_id, language)
            assert reason and rule_id not in reason and "{" not in reason
    assert {rule["target"] for rule in document["rules"]} <= set(TEAM_NAMES)
    assert set(TEAM_NAMES) == {target.value for target in Target}


def test_the_team_sentences_read_right_for_every_team() -> None:
    """Found by the end-to-end test: the advisors' plural name read "confiée à les conseillers en
    formation" and "Les conseillers en formation vous contacte" ("De opleidingsadviseurs neemt")."""
    deadline = datetime(2026, 12, 9, 16, 15, tzinfo=UTC)
    for target in TEAM_NAMES:
        for language in (Language.FR, Language.NL):
            entry = {"target": target, "rule_id": "default", "callback_deadline": deadline}
            view = build_view(entry, None, need=None, language=language)
            routed = history_lines([{"id": "1", "at": deadline, "what": "routed", "team": target}], language)[0].text
            assert view.promise is not None
            assert not re.search(r"\bà les?\b", routed), routed
            assert not re.match(r"(Les|De) \S+(eurs|seurs) ", view.promise), view.promise
    advisors = build_view(
        {"target": "advisors", "rule_id": "default", "callback_deadline": deadline}, None, need=None, language=Language.FR
    )
    assert advisors.promise == (
        "L'équipe des conseillers en formation vous contacte au plus tard le mercredi 9 décembre 2026 à 17h15."
    )


def test_every_language_has_every_text() -> None:
    keys = {language: set(texts) for language, texts in TEXTS.items()}
    assert keys[Language.NL] == keys[Language.FR] == keys[Language.EN]


# --- the page's markup ----------------------------------------------------------------------


def test_the_page_has_one_heading_its_language_labels_and_errors_tied_to_their_fields() -> None:
    request = make_request()
    entry = apply_to_request(apply_to_request(None, request), routed(request.request_id, request.person_id))
    windows = offered_windows(BrusselsCalendar(), NOW, entry["callback_deadline"])
    view = build_view(entry, None, need="Excel", language=Language.NL, windows=windows)
    values = {"need": "", "requested_course": "", "phone": "12", "email": ""}

    body = _render(
        "status.html", Language.NL, 422, "s1.abc.def", view=view, base="/nl/status/s1.abc.def", notice=None,
        error="Dit telefoonnummer is niet geldig.", error_field="phone", values=values,
    ).body  # fmt: skip
    page = bytes(body).decode()

    assert '<html lang="nl">' in page
    assert page.count("<h1>") == 1
    assert "<main" in page and "<header" in page and "<nav" in page
    for field in ("need", "requested_course", "phone", "email"):
        assert f'<label for="{field}">' in page and f'id="{field}"' in page
    assert 'aria-invalid="true" aria-describedby="phone-error"' in page and 'id="phone-error"' in page
    assert '<a href="#phone">' in page  # the summary leads to the field
    assert page.count('name="slot"') == len(windows) and "<legend>" in page
    # Switching language keeps the link: the same request's page in French.
    assert 'href="/fr/status/s1.abc.def"' in page


def test_the_subscriber_documents_the_events_it_applies() -> None:
    # The annotation FastStream documents and the filter the handler uses name the same events.
    assert set(get_args(Shown)) == set(SHOWN) == {*REQUEST_EVENTS, *PERSON_EVENTS, PersonDataErased}
