"""The personal-data filter of the analysts' read model: contact details, names and free text
never leave the event, whatever way the event is read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from analytics import readmodel
from analytics.readmodel import KEPT_FIELDS, document_from_record, to_document
from schemas import (
    EVENT_CLASSES,
    CallbackDue,
    CallbackSlaBreached,
    CallbackSlotChosen,
    CampaignAttribution,
    CertificateIssued,
    Channel,
    ConfigurationChanged,
    Contact,
    ContactAttempted,
    ContactDetailsConfirmed,
    ContactOutcome,
    DigitalDivideAdmitted,
    DigitalDivideMemberReleased,
    DigitalDivideProgrammeResumed,
    DigitalDivideProgrammeSuspended,
    DigitalDivideQuotaChanged,
    DigitalDivideSpaceAssigned,
    DigitalSpaceChanged,
    Disposition,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamRequestReason,
    ExamScheduled,
    ExamSchedulingRequested,
    ExamSeatOfferAccepted,
    ExamSeatOfferDeclined,
    ExamSeatOffered,
    ExamSeatOfferExpired,
    FactSource,
    Language,
    NotificationChannel,
    NotificationFailed,
    NotificationSent,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    PartnerInformationRequested,
    PersonDataErased,
    RequestDetailsCorrected,
    RequestFactsRecorded,
    SelfTrainingSlotBooked,
    SelfTrainingSlotCancelled,
    SelfTrainingSlotOpened,
    Target,
    TrainingAbandoned,
    TrainingCompleted,
    TrainingRequestClosed,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
    codec,
)
from schemas.errors import ContractError, MalformedEvent, UnknownEventType
from schemas.events import SpaceOpeningHours
from tests.factories import make_request

pytestmark = pytest.mark.unit

NAME = "Amina El Idrissi"
PHONE = "+32470123456"
EMAIL = "amina.elidrissi@example.be"
NEED = "Je voudrais apprendre Excel, appelez-moi au 0470 12 34 56"
PERSONAL = (NAME, "Amina", PHONE, "470123456", EMAIL, "elidrissi", "appelez-moi", "0470 12 34 56")
T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)


def one_of_each() -> list[Event]:
    """An event of every class, each carrying as much personal data as its contract allows."""
    request = make_request(
        contact={"name": NAME, "phone": PHONE, "email": EMAIL},
        need=NEED,
        channel=Channel.WEB,
        received_at=T0,
        time=T0,
        requested_course="EXCEL",
        unemployed_since=date(2024, 1, 15),
        triage_reason=f"voicemail from {PHONE}",
        channel_details={"agent_notes": f"{NAME} rappeler {PHONE}", "call_sid": "CA1"},
        campaign=CampaignAttribution(
            utm_source="facebook",
            utm_campaign="confine-mais-connecte",
            utm_term=NAME,
            referrer=f"https://example.org/?email={EMAIL}",
        ),
    )
    person, rid = request.person_id, request.request_id
    later = T0 + timedelta(hours=3)
    return [
        request,
        TrainingRequestRouted.following(
            request,
            source="/routing",
            request_id=rid,
            person_id=person,
            target=Target.ESPACES_NUMERIQUES,
            rule_id="named-online-course",
            rule_set_version="2026.1",
            explanation=f"Demande de {NAME}",
            priority=25,
            priority_parts={"qualification": 15, "phone": 10},
            callback_deadline=T0 + timedelta(hours=48),
            assignee_id="en-1",
        ),
        CallbackDue(source="/routing", request_id=rid, person_id=person, deadline=later),
        CallbackSlaBreached(source="/routing", request_id=rid, person_id=person, deadline=later, escalated_to="supervisor"),
        ContactAttempted(
            source="/routing",
            request_id=rid,
            person_id=person,
            worker_id="en-1",
            outcome=ContactOutcome.ENROLLED,
            attempt=1,
            notes=f"{NAME} joignable au {PHONE}, {EMAIL}",
            time=later,
        ),
        RequestFactsRecorded(
            source="/routing/desk",
            request_id=rid,
            person_id=person,
            recorded_by="adv-1",
            has_computer=False,
            fact_sources={"has_computer": FactSource.DESK},
            priority=60,
            priority_parts={"no_computer": 15},
        ),
        PartnerInformationRequested(
            source="/routing/desk",
            request_id=rid,
            person_id=person,
            partner="cite-des-metiers",
            worker_id="en-1",
            asked_at=later,
            remind_at=later + timedelta(days=1),
            callback_deadline=T0 + timedelta(hours=48),
            question=f"{NAME} ({PHONE}) parle-t-il néerlandais ?",
        ),
        PartnerInformationOverdue(
            source="/routing", request_id=rid, person_id=person, partner="cite-des-metiers", assignee_id="en-1", asked_at=later
        ),
        PartnerInformationReceived(
            source="/routing/desk",
            request_id=rid,
            person_id=person,
            partner="cite-des-metiers",
            recorded_by="en-1",
            asked_at=later,
            answered_at=later + timedelta(hours=2),
            callback_deadline=T0 + timedelta(hours=50),
            answer=f"Oui; écrire à {EMAIL}",
        ),
        TrainingRequestClosed(
            source="/routing/desk",
            request_id=rid,
            person_id=person,
            disposition=Disposition.REACHED,
            attempts=1,
            worker_id="en-1",
            time=later,
        ),
        CallbackSlotChosen(
            source="/intake/status",
            request_id=rid,
            person_id=person,
            slot_start=later,
            slot_end=later + timedelta(hours=3),
            chosen_through="status_page",
            time=later,
        ),
        ContactDetailsConfirmed(
            source="/routing/desk",
            request_id=rid,
            person_id=person,
            confirmed_by="adv-1",
            contact=Contact(name=NAME, phone=PHONE, email=EMAIL),
            time=later,
        ),
        TrainingRequestWithdrawn(
            source="/intake/status", request_id=rid, person_id=person, withdrawn_through="status_page", time=later
        ),
        RequestDetailsCorrected(
            source="/intake/status",
            request_id=rid,
            person_id=person,
            corrected_through="status_page",
            need=NEED,
            contact=Contact(name=NAME, phone=PHONE, email=EMAIL),
            requested_course="WORD",
            time=later,
        ),
        EnrolmentConfirmed(
            source="/routing",
            request_id=rid,
            person_id=person,
            course_code="EXCEL",
            course_title="Excel",
            language=Language.FR,
            login_instructions=f"login {EMAIL}",
            starts_on=date(2026, 4, 1),
            session_id="EXCEL-2026-04-FR",
        ),
        EnrolmentWaitlisted(
            source="/routing",
            request_id=rid,
            person_id=person,
            course_code="EXCEL",
            course_title="Excel",
            language=Language.FR,
            session_id="EXCEL-2026-04-FR",
        ),
        TrainingCompleted(
            source="/routing", request_id=rid, person_id=person, course_code="EXCEL", session_id="EXCEL-2026-04-FR", at=later
        ),
        TrainingAbandoned(
            source="/routing",
            request_id=rid,
            person_id=person,
            course_code="EXCEL",
            session_id="EXCEL-2026-04-FR",
            at=later,
            reason="found_work",
        ),
        ExamSchedulingRequested(
            source="/routing", request_id=rid, person_id=person, certification_code="MOS-EXCEL", reason=ExamRequestReason.DESK
        ),
        ExamScheduled(
            source="/certification",
            person_id=person,
            certification_code="MOS-EXCEL",
            session_id="s1",
            centre_id="c1",
            centre_name="Anderlecht",
            exam_at=later,
            what_to_bring=[f"convocation {NAME}"],
        ),
        ExamSeatOffered(
            source="/certification",
            person_id=person,
            offer_id="o1",
            certification_code="MOS-EXCEL",
            session_id="s1",
            centre_id="c1",
            centre_name="Anderlecht",
            exam_at=later,
            respond_by=later,
            accept_url=f"https://x.example/accept?{NAME}",
            decline_url=f"https://x.example/decline?{NAME}",
        ),
        ExamSeatOfferAccepted(
            source="/certification",
            person_id=person,
            offer_id="o1",
            certification_code="MOS-EXCEL",
            session_id="s1",
            closed_at=later,
        ),
        ExamSeatOfferDeclined(
            source="/certification",
            person_id=person,
            offer_id="o1",
            certification_code="MOS-EXCEL",
            session_id="s1",
            closed_at=later,
        ),
        ExamSeatOfferExpired(
            source="/certification",
            person_id=person,
            offer_id="o1",
            certification_code="MOS-EXCEL",
            session_id="s1",
            closed_at=later,
        ),
        CertificateIssued(
            source="/certification",
            person_id=person,
            certification_code="MOS-EXCEL",
            credential_id="ICDL-BE-1",
            issued_at=later,
            credential_url=f"https://x.example/{NAME}",
        ),
        NotificationSent(
            source="/notification",
            person_id=person,
            about_event_id=uuid.uuid4(),
            channel=NotificationChannel.EMAIL,
            template="t",
            attempts=1,
        ),
        NotificationFailed(
            source="/notification",
            person_id=person,
            about_event_id=uuid.uuid4(),
            channel=NotificationChannel.SMS,
            template="t",
            attempts=3,
            final=True,
            reason=f"550 {EMAIL} unknown",
        ),
        PersonDataErased(source="/privacy", person_id=person, erased_at=later, requested_by="data_subject"),
        ConfigurationChanged(
            source="/routing/configuration",
            setting="roster",
            value={"workers": [{"worker_id": "adv-9", "display_name": NAME, "team": "advisors", "languages": ["fr"]}]},
            version=2,
            changed_by="sup-1",
            changed_at=later,
        ),
        DigitalDivideAdmitted(source="/routing", request_id=rid, person_id=person, year=2026, priority=40, waiting_since=T0),
        DigitalDivideMemberReleased(
            source="/routing/desk", request_id=rid, person_id=person, year=2026, reason="moved", released_by="sup-1"
        ),
        DigitalDivideProgrammeSuspended(source="/routing/desk", changed_by="sup-1"),
        DigitalDivideProgrammeResumed(source="/routing/desk", changed_by="sup-1"),
        DigitalDivideQuotaChanged(source="/routing/desk", year=2026, previous_quota=350, quota=360, changed_by="sup-1"),
        SelfTrainingSlotBooked(
            source="/routing/desk",
            person_id=person,
            slot_id="s1",
            space_id="epn-1",
            starts_at=later,
            ends_at=later + timedelta(hours=2),
            booked_by="adv-1",
        ),
        SelfTrainingSlotCancelled(
            source="/routing/desk", person_id=person, slot_id="s1", space_id="epn-1", starts_at=later, cancelled_by="adv-1"
        ),
        DigitalSpaceChanged(
            source="/routing/programme",
            space_id="epn-1",
            change="added",
            kind="epn",
            name="EPN Ixelles",
            capacity=8,
            opening_hours=(SpaceOpeningHours(weekday=0, opens=time(9), closes=time(17)),),
            changed_by="sup-1",
        ),
        SelfTrainingSlotOpened(
            source="/routing/programme",
            slot_id="s1",
            space_id="epn-1",
            starts_at=later,
            ends_at=later + timedelta(hours=2),
            capacity=4,
            opened_by="sup-1",
        ),
        DigitalDivideSpaceAssigned(
            source="/routing/programme", request_id=rid, person_id=person, year=2026, space_id="epn-1", assigned_by="sup-1"
        ),
    ]


def strings(value: Any) -> list[str]:
    """Every string anywhere in a document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *strings(v)]]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def record(event: Event) -> tuple[bytes, list[tuple[str, bytes]]]:
    return codec.encode(event), list(codec.headers(event).items())


def test_every_event_class_is_covered() -> None:
    assert set(KEPT_FIELDS) == set(EVENT_CLASSES)
    assert {type(e) for e in one_of_each()} == set(EVENT_CLASSES)


def test_kept_fields_exist_on_their_class() -> None:
    # A renamed field would silently disappear from the read model.
    for cls, names in KEPT_FIELDS.items():
        assert set(names) <= set(cls.model_fields), cls.__name__


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: type(e).__name__)
def test_no_contact_detail_name_or_free_text_is_copied(event: Event) -> None:
    for document in (to_document(event), document_from_record(*record(event))):
        found = [s for s in strings(document) for secret in PERSONAL if secret.lower() in s.lower()]
        assert found == [], f"{type(event).__name__}: {found}"
        assert not {
            "contact",
            "need",
            "notes",
            "triage_reason",
            "channel_details",
            "explanation",
            "login_instructions",
            "credential_id",
            "credential_url",
            "what_to_bring",
            "centre_name",
            "course_title",
            "sealed",
        } & set(document)
        if isinstance(event, NotificationFailed):
            assert "reason" not in document  # the provider's message may quote the address


def test_what_analysts_need_is_kept() -> None:
    request, routed, *_ = one_of_each()
    document = document_from_record(*record(request))
    assert document["_id"] == str(request.id)
    assert document["event"] == "TrainingRequestReceived"
    assert document["channel"] == "web" and document["language"] == "fr"
    assert document["received_at"] == T0 and document["time"] == T0
    assert document["campaign"] == {"utm_source": "facebook", "utm_campaign": "confine-mais-connecte"}
    assert document["requested_course"] == "EXCEL"
    assert set(document) == {
        "_id",
        "event",
        "time",
        "source",
        "correlation_id",
        "request_id",
        "person_id",
        "channel",
        "received_at",
        "language",
        "requested_course",
        "unemployed_since",
        "campaign",
        "consent_to_contact",
        "linked_request_ids",
        "needs_triage",
        "kind",
    }
    assert document["kind"] == "training_request"
    routed_doc = document_from_record(*record(routed))
    assert routed_doc["target"] == "espaces_numeriques" and routed_doc["rule_id"] == "named-online-course"
    assert routed_doc["priority"] == 25 and routed_doc["priority_parts"] == {"qualification": 15, "phone": 10}
    assert routed_doc["causation_id"] == str(request.id)


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: type(e).__name__)
def test_the_fast_path_and_the_codec_give_the_same_document(event: Event) -> None:
    assert document_from_record(*record(event)) == to_document(event)


def test_binary_mode_records_are_read_through_the_codec() -> None:
    request = one_of_each()[0]
    body = json.loads(codec.encode(request))
    headers = [(f"ce_{k}", str(v).encode()) for k, v in body.items() if k != "data"]
    headers.append(("content-type", b"application/json"))
    document = document_from_record(json.dumps(body["data"]).encode(), headers)
    assert document == to_document(request)


def test_a_field_a_newer_producer_adds_is_not_copied() -> None:
    request = one_of_each()[0]
    body = json.loads(codec.encode(request))
    body["data"]["mobile_phone"] = PHONE
    document = document_from_record(json.dumps(body).encode(), list(codec.headers(request).items()))
    assert "mobile_phone" not in document and PHONE not in strings(document)


def test_records_that_are_not_events_raise_contract_errors() -> None:
    request = one_of_each()[0]
    headers = list(codec.headers(request).items())
    with pytest.raises(MalformedEvent):
        document_from_record(b"{not json", headers)
    body = json.loads(codec.encode(request))
    body["type"] = "be.bruxellesformation.unheard.of"
    with pytest.raises(UnknownEventType):
        document_from_record(json.dumps(body).encode(), headers)


def test_the_fast_path_declares_no_field_it_does_not_keep() -> None:
    # The structs msgspec reads a message into are the allow-list: what they don't declare (the
    # contact, the need, `sealed`…) is skipped by the parser, never made into Python objects.
    for struct, cls in readmodel._WIRE.items():
        data = struct.__annotations__["data"]
        assert set(data.__struct_fields__) == set(KEPT_FIELDS[cls]), cls.__name__
        assert not {"contact", "need", "notes", "sealed", "explanation"} & set(data.__struct_fields__)


def test_sealed_personal_data_is_skipped_whatever_its_shape() -> None:
    request = one_of_each()[0]
    body = json.loads(codec.encode(request))
    expected = document_from_record(json.dumps(body).encode(), list(codec.headers(request).items()))
    body["data"]["sealed"] = {"key_id": NAME, "ciphertext": [EMAIL, {"phone": PHONE}], "nonce": 12}
    document = document_from_record(json.dumps(body).encode(), list(codec.headers(request).items()))
    assert document == expected
    assert not {NAME, EMAIL, PHONE} & set(strings(document))


@pytest.mark.parametrize("written", ["2026-03-02T10:15:00+0100", "2026-03-02 10:15:00.25+01:00", "2026-03-02T09:15:00.1234567Z"])
def test_instants_the_fast_path_does_not_read_are_read_as_before(written: str) -> None:
    request = one_of_each()[0]
    body = json.loads(codec.encode(request))
    body["time"] = body["data"]["received_at"] = written
    document = document_from_record(json.dumps(body).encode(), list(codec.headers(request).items()))
    # To the millisecond, as MongoDB stores them (msgspec rounds a seventh digit, Python drops it).
    assert stored(document["time"]) == stored(document["received_at"]) == stored(datetime.fromisoformat(written))
    assert document == {**to_document(request), "time": document["time"], "received_at": document["received_at"]}


def stored(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def test_an_instant_without_offset_or_a_campaign_of_another_shape_goes_to_the_codec() -> None:
    request = one_of_each()[0]
    headers = list(codec.headers(request).items())
    body = json.loads(codec.encode(request))
    body["data"]["received_at"] = "2026-03-02T09:15:00"
    with pytest.raises(ContractError):
        document_from_record(json.dumps(body).encode(), headers)
    body = json.loads(codec.encode(request))
    body["data"]["campaign"] = "facebook"
    with pytest.raises(ContractError):
        document_from_record(json.dumps(body).encode(), headers)


def test_another_schema_version_is_read_through_the_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    request = one_of_each()[0]
    body = json.loads(codec.encode(request))
    body["schemaversion"] = 0
    decoded: list[Event] = []
    original = codec.decode

    def decode(value: bytes | None, headers: Any = None) -> Event:
        decoded.append(event := original(value, headers))
        return event

    monkeypatch.setattr(codec, "decode", decode)
    document = document_from_record(json.dumps(body).encode(), list(codec.headers(request).items()))
    assert len(decoded) == 1 and document == to_document(decoded[0])
