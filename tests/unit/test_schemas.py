"""The event contracts: envelope, wire format in all three accepted forms, errors and topics."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from types import ModuleType
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

import schemas
from schemas import (
    ALL_TOPICS,
    CONTENT_TYPE,
    EVENT_CLASSES,
    EVENT_TYPE_PREFIX,
    EVENT_TYPES,
    PRIVACY,
    TRAINING_REQUESTS,
    TRAINING_ROUTING,
    UPCASTERS,
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
    ContractError,
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
    Headers,
    InvalidEvent,
    KnownChannel,
    Language,
    MalformedEvent,
    NotificationChannel,
    NotificationFailed,
    NotificationSent,
    PartnerInformationOverdue,
    PartnerInformationReceived,
    PartnerInformationRequested,
    PersonDataErased,
    QualificationLevel,
    RequestDetailsCorrected,
    RequestFactsRecorded,
    SelfTrainingSlotBooked,
    SelfTrainingSlotCancelled,
    SelfTrainingSlotOpened,
    Target,
    TopicSpec,
    TrainingAbandoned,
    TrainingCompleted,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
    UnknownEventType,
    UnsupportedSchemaVersion,
    decode,
    encode,
    headers,
    json_schemas,
    key_for,
    topic_for,
)

pytestmark = pytest.mark.unit

E = TypeVar("E", bound=Event)
MakeEvent = Callable[[type[E]], E]

BRUSSELS_WINTER = timezone(timedelta(hours=1))
RECEIVED_AT = datetime(2025, 3, 10, 9, 14, 52, 123456, tzinfo=BRUSSELS_WINTER)
REQUEST_ID = "3f2b1c9e-7d4a-4e55-b1a2-0c9d8e7f6a54"
PERSON_ID = "prs_7f3a9c2e41d8"


def _received() -> TrainingRequestReceived:
    return TrainingRequestReceived(
        source="/intake/web",
        subject=REQUEST_ID,
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        channel=Channel.WEB,
        received_at=RECEIVED_AT,
        contact=Contact(name="Amina Émilie El Idrissi", phone="+32470123456", email="Amina@Example.be"),
        language=Language.FR,
        need="Je voudrais apprendre Excel — pour trouver un emploi.",
        requested_course="BUR-EXCEL-01",
        qualification_level=QualificationLevel.LOWER_SECONDARY,
        has_computer=False,
        has_internet=True,
        unemployed_since=date(2024, 11, 1),
        campaign=CampaignAttribution(utm_source="facebook", utm_medium="cpc", utm_campaign="num-2025"),
        consent_to_contact=True,
        linked_request_ids=["9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"],
        needs_triage=False,
        channel_details={
            "form_version": 3,
            "captcha_passed": True,
            "referrer_page": "/excel",
            "x": None,
        },
    )


_PAYLOADS: dict[type[Event], Callable[[], dict[str, Any]]] = {
    TrainingRequestRouted: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        target=Target.DIGITAL_DIVIDE,
        rule_id="no-cess-no-computer",
        rule_set_version="2025-03-01",
        explanation="No CESS and no computer at home.",
        priority=70,
        priority_parts={"base": 50, "long_term_unemployed": 20},
        callback_deadline=RECEIVED_AT + timedelta(hours=48),
        assignee_id="adv_042",
    ),
    CallbackDue: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        assignee_id="adv_042",
        deadline=RECEIVED_AT + timedelta(hours=48),
    ),
    CallbackSlaBreached: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        assignee_id=None,
        deadline=RECEIVED_AT + timedelta(hours=48),
        escalated_to="team_lead_espaces_numeriques",
    ),
    ContactAttempted: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        worker_id="adv_042",
        outcome=ContactOutcome.NO_ANSWER,
        attempt=2,
        next_attempt_at=RECEIVED_AT + timedelta(days=1),
        notes="Messagerie pleine.",
    ),
    PartnerInformationRequested: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        partner="cite-des-metiers",
        worker_id="en-fr-1",
        asked_at=RECEIVED_AT,
        remind_at=RECEIVED_AT + timedelta(days=1),
        callback_deadline=RECEIVED_AT + timedelta(hours=48),
        question="Quel niveau de français ?",
    ),
    PartnerInformationOverdue: lambda: dict(
        request_id=REQUEST_ID, person_id=PERSON_ID, partner="cite-des-metiers", assignee_id="en-fr-1", asked_at=RECEIVED_AT
    ),
    PartnerInformationReceived: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        partner="cite-des-metiers",
        recorded_by="en-fr-1",
        asked_at=RECEIVED_AT,
        answered_at=RECEIVED_AT + timedelta(hours=3),
        callback_deadline=RECEIVED_AT + timedelta(hours=51),
        answer="Niveau B1.",
    ),
    RequestFactsRecorded: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        recorded_by="adv-1",
        qualification_level=QualificationLevel.NONE,
        has_computer=False,
        fact_sources={"qualification_level": FactSource.DESK, "has_computer": FactSource.PHONE_IVR},
        priority=75,
        priority_parts={"qualification": 40, "no_computer": 15, "phone": 5},
    ),
    TrainingRequestClosed: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        disposition=Disposition.UNREACHABLE,
        attempts=3,
        worker_id="adv_042",
    ),
    CallbackSlotChosen: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        slot_start=datetime(2025, 3, 11, 9, 0, tzinfo=timezone(timedelta(hours=1))),
        slot_end=datetime(2025, 3, 11, 12, 0, tzinfo=timezone(timedelta(hours=1))),
        chosen_through="status_page",
    ),
    TrainingRequestWithdrawn: lambda: dict(request_id=REQUEST_ID, person_id=PERSON_ID, withdrawn_through="status_page"),
    ContactDetailsConfirmed: lambda: dict(
        request_id=REQUEST_ID, person_id=PERSON_ID, confirmed_by="adv_042", contact=Contact(phone="+32470123456")
    ),
    RequestDetailsCorrected: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        corrected_through="status_page",
        requested_course="EXCEL",
        need="Plutôt Word que Excel.",
    ),
    EnrolmentConfirmed: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        course_code="BUR-EXCEL-01",
        course_title="Excel : les bases",
        starts_on=date(2025, 4, 1),
        language=Language.FR,
        login_instructions="Connectez-vous sur https://learn.example.be avec votre e-mail.",
        session_id="BUR-EXCEL-01-2025-04-FR",
    ),
    EnrolmentWaitlisted: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        course_code="BUR-EXCEL-01",
        course_title="Excel : les bases",
        language=Language.FR,
        session_id=None,
    ),
    TrainingCompleted: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        course_code="BUR-EXCEL-01",
        session_id="BUR-EXCEL-01-2025-04-FR",
        at=datetime(2025, 5, 28, 16, tzinfo=timezone(timedelta(hours=2))),
    ),
    TrainingAbandoned: lambda: dict(
        request_id=REQUEST_ID,
        person_id=PERSON_ID,
        course_code="BUR-EXCEL-01",
        session_id="BUR-EXCEL-01-2025-04-FR",
        at=datetime(2025, 4, 20, 9, tzinfo=timezone(timedelta(hours=2))),
        reason="found_work",
    ),
    ExamSchedulingRequested: lambda: dict(
        request_id=None,
        person_id=PERSON_ID,
        certification_code="ICDL-BASE",
        reason=ExamRequestReason.DESK,
    ),
    ExamScheduled: lambda: dict(
        person_id=PERSON_ID,
        certification_code="ICDL-BASE",
        session_id="ses_2025_04_03_am",
        centre_id="ctr_anderlecht",
        centre_name="Bruxelles Formation Bureautique – Anderlecht",
        exam_at=datetime(2025, 4, 3, 9, tzinfo=timezone(timedelta(hours=2))),
        what_to_bring=["Carte d'identité", "Convocation"],
    ),
    ExamSeatOffered: lambda: dict(
        person_id=PERSON_ID,
        offer_id="5b0c8e2f4a7d4c1e9f3a2b6c7d8e9f01",
        certification_code="ICDL-BASE",
        session_id="ses_2025_04_03_am",
        centre_id="ctr_anderlecht",
        centre_name="Bruxelles Formation Bureautique – Anderlecht",
        exam_at=datetime(2025, 4, 3, 9, tzinfo=timezone(timedelta(hours=2))),
        respond_by=datetime(2025, 4, 1, 9, tzinfo=timezone(timedelta(hours=2))),
    ),
    ExamSeatOfferAccepted: lambda: dict(
        person_id=PERSON_ID,
        offer_id="5b0c8e2f4a7d4c1e9f3a2b6c7d8e9f01",
        certification_code="ICDL-BASE",
        session_id="ses_2025_04_03_am",
        closed_at=datetime(2025, 3, 31, 16, tzinfo=UTC),
    ),
    ExamSeatOfferDeclined: lambda: dict(
        person_id=PERSON_ID,
        offer_id="5b0c8e2f4a7d4c1e9f3a2b6c7d8e9f01",
        certification_code="ICDL-BASE",
        session_id="ses_2025_04_03_am",
        closed_at=datetime(2025, 3, 31, 16, tzinfo=UTC),
    ),
    ExamSeatOfferExpired: lambda: dict(
        person_id=PERSON_ID,
        offer_id="5b0c8e2f4a7d4c1e9f3a2b6c7d8e9f01",
        certification_code="ICDL-BASE",
        session_id="ses_2025_04_03_am",
        closed_at=datetime(2025, 4, 1, 7, tzinfo=UTC),
    ),
    CertificateIssued: lambda: dict(
        person_id=PERSON_ID,
        certification_code="ICDL-BASE",
        credential_id="ICDL-BE-0012345",
        issued_at=datetime(2025, 4, 10, 14, tzinfo=UTC),
        credential_url="https://credentials.example.org/ICDL-BE-0012345",
    ),
    NotificationSent: lambda: dict(
        person_id=PERSON_ID,
        about_event_id=uuid4(),
        channel=NotificationChannel.SMS,
        template="enrolment_confirmed.fr",
        attempts=1,
    ),
    NotificationFailed: lambda: dict(
        person_id=PERSON_ID,
        about_event_id=uuid4(),
        channel=NotificationChannel.EMAIL,
        template="exam_scheduled.nl",
        attempts=3,
        reason="SMTP 550 mailbox unavailable",
        final=True,
    ),
    PersonDataErased: lambda: dict(
        person_id=PERSON_ID,
        erased_at=datetime(2025, 5, 2, 9, 30, tzinfo=UTC),
        requested_by="data_subject",
    ),
    ConfigurationChanged: lambda: dict(
        setting="closures",
        value={"days": [{"date": "2025-12-26", "name": "Boxing Day"}]},
        version=3,
        changed_by="sup-1",
        changed_at=datetime(2025, 11, 20, 9, 2, tzinfo=UTC),
        reason="the staff's day after Christmas",
    ),
    DigitalDivideAdmitted: lambda: dict(
        request_id=REQUEST_ID, person_id=PERSON_ID, year=2025, priority=55, waiting_since=RECEIVED_AT
    ),
    DigitalDivideMemberReleased: lambda: dict(
        request_id=REQUEST_ID, person_id=PERSON_ID, year=2025, reason="completed", released_by="sup-1"
    ),
    DigitalDivideProgrammeSuspended: lambda: dict(changed_by="sup-1"),
    DigitalDivideProgrammeResumed: lambda: dict(changed_by="sup-1"),
    DigitalDivideQuotaChanged: lambda: dict(year=2025, previous_quota=350, quota=380, changed_by="sup-1"),
    SelfTrainingSlotBooked: lambda: dict(
        person_id=PERSON_ID,
        slot_id="slot-1",
        space_id="epn-ixelles",
        starts_at=RECEIVED_AT + timedelta(days=3),
        ends_at=RECEIVED_AT + timedelta(days=3, hours=2),
        booked_by="adv-1",
    ),
    SelfTrainingSlotCancelled: lambda: dict(
        person_id=PERSON_ID,
        slot_id="slot-1",
        space_id="epn-ixelles",
        starts_at=RECEIVED_AT + timedelta(days=3),
        cancelled_by="adv-1",
    ),
    DigitalSpaceChanged: lambda: dict(
        space_id="epn-ixelles",
        change="changed",
        kind="epn",
        name="EPN d'Ixelles",
        capacity=12,
        opening_hours=[{"weekday": 0, "opens": "09:00", "closes": "17:00"}],
        changed_by="sup-1",
    ),
    SelfTrainingSlotOpened: lambda: dict(
        slot_id="epn-ixelles:2025-03-03:0900",
        space_id="epn-ixelles",
        starts_at=RECEIVED_AT + timedelta(days=3),
        ends_at=RECEIVED_AT + timedelta(days=3, hours=2),
        capacity=4,
        opened_by="sup-1",
    ),
    DigitalDivideSpaceAssigned: lambda: dict(
        request_id=REQUEST_ID, person_id=PERSON_ID, year=2025, space_id="epn-ixelles", assigned_by="sup-1"
    ),
}


@pytest.fixture
def make_event() -> MakeEvent[Any]:
    """A realistic instance of any event class, following a received request."""

    def make(cls: type[E]) -> E:
        received = _received()
        if cls is TrainingRequestReceived:
            return received  # type: ignore[return-value]
        return cls.following(received, source="/test", **_PAYLOADS[cls]())

    return make


def _structured(event: Event) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(encode(event))
    return parsed


def _binary_message(event: Event) -> tuple[bytes, list[tuple[str, bytes]]]:
    # What a CloudEvents SDK in binary mode writes: attributes in headers, data as value.
    attributes = _structured(event)
    data = attributes.pop("data")
    del attributes["datacontenttype"]
    message_headers = [(f"ce_{name}", str(value).encode()) for name, value in attributes.items()]
    message_headers.append(("content-type", b"application/json"))
    return json.dumps(data).encode(), message_headers


def _flat(event: Event) -> bytes:
    return json.dumps(event.model_dump(mode="json")).encode()


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_every_event_round_trips(make_event: MakeEvent[Any], cls: type[Event]) -> None:
    event = make_event(cls)

    decoded = decode(encode(event), headers(event))

    assert decoded == event
    assert type(decoded) is cls


def test_every_registered_event_has_a_factory() -> None:
    assert set(EVENT_CLASSES) == set(_PAYLOADS) | {TrainingRequestReceived}


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_structured_binary_and_flat_forms_decode_alike(make_event: MakeEvent[Any], cls: type[Event]) -> None:
    event = make_event(cls)
    binary_value, binary_headers = _binary_message(event)

    assert decode(encode(event)) == event  # structured, headers lost on the way
    assert decode(binary_value, binary_headers) == event
    assert decode(binary_value, dict(binary_headers)) == event
    assert decode(_flat(event)) == event


def test_headers_may_be_text_and_capitalised(make_event: MakeEvent[Any]) -> None:
    event = make_event(TrainingRequestReceived)
    value, binary_headers = _binary_message(event)
    text_headers = {name.upper(): raw.decode() for name, raw in binary_headers}

    assert decode(value, text_headers) == event


def test_structured_mode_wire_form(make_event: MakeEvent[Any]) -> None:
    event = make_event(TrainingRequestRouted)

    value = encode(event)
    wire = json.loads(value)

    assert b" " not in value.split(b'"data"')[0]  # compact separators
    assert wire["specversion"] == "1.0"
    assert wire["id"] == str(event.id)
    assert wire["type"] == "be.bruxellesformation.training.request.routed"
    assert wire["source"] == "/test"
    assert wire["subject"] == REQUEST_ID
    assert wire["datacontenttype"] == "application/json"
    assert wire["correlationid"] == str(event.correlation_id)
    assert wire["causationid"] == str(event.causation_id)
    assert wire["schemaversion"] == 1
    assert wire["data"]["target"] == "digital_divide"
    assert not set(wire["data"]) & set(Event.model_fields)
    # CloudEvents: attribute names are lowercase letters and digits.
    assert all(name.isalnum() and name == name.lower() for name in wire)


def test_text_is_utf8_not_escaped(make_event: MakeEvent[Any]) -> None:
    value = encode(make_event(TrainingRequestReceived))

    assert "Émilie".encode() in value
    assert b"\\u" not in value


def test_null_attributes_are_left_out() -> None:
    root = _received().model_copy(update={"subject": None})

    wire = _structured(root)

    assert "subject" not in wire
    assert "causationid" not in wire
    assert wire["correlationid"] == wire["id"]


def test_kafka_headers(make_event: MakeEvent[Any]) -> None:
    event = make_event(CallbackDue)

    assert headers(event) == {
        "ce_specversion": b"1.0",
        "ce_id": str(event.id).encode(),
        "ce_type": b"be.bruxellesformation.training.callback.due",
        "ce_source": b"/test",
        "ce_time": _structured(event)["time"].encode(),
        "content-type": b"application/cloudevents+json",
    }
    assert CONTENT_TYPE == "application/cloudevents+json"


# --- tolerant reading ---------------------------------------------------------------


def test_unknown_attributes_and_data_fields_are_ignored(make_event: MakeEvent[Any]) -> None:
    event = make_event(TrainingRequestReceived)
    wire = _structured(event)
    wire["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    wire["dataschema"] = "https://schemas.example.be/received.json"
    wire["data"]["added_in_a_later_version"] = {"anything": [1, 2]}
    wire["data"]["contact"]["preferred_hours"] = "9-12"

    assert decode(json.dumps(wire).encode(), headers(event)) == event


def test_unknown_binary_headers_and_flat_fields_are_ignored(make_event: MakeEvent[Any]) -> None:
    event = make_event(ContactAttempted)
    value, binary_headers = _binary_message(event)
    binary_headers.append(("ce_partitionkey", b"whatever"))
    binary_headers.append(("traceparent-bin", b"\xff\xfe\x00\x01"))  # not ours, not UTF-8
    flat = event.model_dump(mode="json") | {"producer_build": "2025.03.1"}

    assert decode(value, binary_headers) == event
    assert decode(json.dumps(flat).encode()) == event


def test_envelope_attributes_win_over_same_named_data(make_event: MakeEvent[Any]) -> None:
    event = make_event(CallbackDue)
    wire = _structured(event)
    wire["data"]["id"] = str(uuid4())
    wire["data"]["type"] = "be.bruxellesformation.something.else"

    assert decode(json.dumps(wire).encode()) == event


def test_missing_schema_version_means_version_1(make_event: MakeEvent[Any]) -> None:
    event = make_event(CallbackDue)
    wire = _structured(event)
    del wire["schemaversion"]

    assert decode(json.dumps(wire).encode()) == event


# --- the envelope -------------------------------------------------------------------


def test_a_root_event_correlates_with_itself() -> None:
    event = _received()

    assert event.correlation_id == event.id == event.event_id
    assert event.causation_id is None
    assert event.occurred_at is event.time
    assert event.time.tzinfo is not None


def test_following_continues_the_conversation(make_event: MakeEvent[Any]) -> None:
    received = make_event(TrainingRequestReceived)
    routed = TrainingRequestRouted.following(received, source="/routing", **_PAYLOADS[TrainingRequestRouted]())
    attempted = ContactAttempted.following(routed, source="/routing", subject="other", **_PAYLOADS[ContactAttempted]())

    assert routed.correlation_id == received.id
    assert routed.causation_id == received.id
    assert routed.subject == received.subject
    assert routed.id != received.id
    assert attempted.correlation_id == received.id
    assert attempted.causation_id == routed.id
    assert attempted.subject == "other"


@pytest.mark.parametrize("field", ["time", "received_at"])
def test_naive_datetimes_are_rejected(field: str) -> None:
    fields = _received().model_dump() | {field: datetime(2025, 3, 10, 9, 0)}

    with pytest.raises(ValidationError, match="timezone"):
        TrainingRequestReceived.model_validate(fields)


def test_naive_datetime_on_the_wire_is_an_invalid_event(make_event: MakeEvent[Any]) -> None:
    wire = _structured(make_event(CallbackDue))
    wire["time"] = "2025-03-10T09:00:00"

    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(wire).encode())

    assert caught.value.fields == ("time",)


def test_events_are_frozen(make_event: MakeEvent[Any]) -> None:
    event = make_event(TrainingRequestReceived)

    with pytest.raises(ValidationError, match="frozen"):
        event.request_id = "another"
    with pytest.raises(ValidationError, match="frozen"):
        event.contact.phone = "+32470000000"


def test_event_types_are_declared_reverse_dns_and_unique() -> None:
    types = [cls.event_type() for cls in EVENT_CLASSES]

    assert all(event_type.startswith(EVENT_TYPE_PREFIX) for event_type in types)
    assert len(set(types)) == len(types)
    assert dict(EVENT_TYPES) == dict(zip(types, EVENT_CLASSES, strict=True))
    assert TrainingRequestReceived.event_type() == "be.bruxellesformation.training.request.received"


def test_the_base_envelope_has_no_event_type() -> None:
    with pytest.raises(TypeError):
        Event.event_type()


def test_a_type_outside_our_namespace_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match=EVENT_TYPE_PREFIX):

        class Rogue(Event):
            type: Literal["com.example.rogue"] = "com.example.rogue"


def test_constructing_a_version_from_the_future_is_refused() -> None:
    with pytest.raises(ValidationError, match="schema version 2"):
        TrainingRequestReceived.model_validate(_received().model_dump() | {"schema_version": 2})


def _described_models() -> Iterator[type[BaseModel]]:
    yield from EVENT_CLASSES
    yield Contact
    yield CampaignAttribution


@pytest.mark.parametrize("model", list(_described_models()), ids=lambda model: model.__name__)
def test_every_field_is_described_for_the_asyncapi_docs(model: type[BaseModel]) -> None:
    undocumented = [name for name, field in model.model_fields.items() if not field.description]

    assert undocumented == []
    assert model.__doc__


# --- values -------------------------------------------------------------------------


def test_contact_normalises_email_and_checks_formats() -> None:
    assert Contact(email=" Amina.El@Example.BE ").email == "amina.el@example.be"
    assert Contact().phone is None
    for bad in ({"phone": "0470123456"}, {"phone": "+٣٢٤٧٠١٢٣٤٥٦"}, {"email": "amina at example"}):
        with pytest.raises(ValidationError):
            Contact.model_validate(bad)


def test_a_channel_newer_than_this_code_is_read_and_written_back_unchanged(make_event: MakeEvent[Any]) -> None:
    wire = _structured(make_event(TrainingRequestReceived))
    wire["data"]["channel"] = "whatsapp"

    decoded = decode(json.dumps(wire).encode())

    assert isinstance(decoded, TrainingRequestReceived)
    assert isinstance(decoded.channel, Channel) and decoded.channel == "whatsapp"
    assert not decoded.channel.known and Channel.PHONE.known
    # Not `not in (Channel.PHONE, …)`: type checkers take those for every possible value.
    assert list(Channel) == [Channel.PHONE, Channel.EMAIL, Channel.WEB]
    assert decoded.channel not in list(Channel)
    assert json.loads(encode(decoded))["data"]["channel"] == "whatsapp"
    assert decode(encode(decoded)) == decoded


def test_configuration_names_only_channels_this_code_knows() -> None:
    known = TypeAdapter(KnownChannel)
    assert known.validate_python("phone") is Channel.PHONE
    with pytest.raises(ValidationError, match="unknown channel 'whatsapp'"):
        known.validate_python("whatsapp")


def test_only_cess_and_higher_count_as_a_secondary_certificate() -> None:
    holders = {level for level in QualificationLevel if level.has_secondary_certificate}

    assert holders == {QualificationLevel.UPPER_SECONDARY, QualificationLevel.HIGHER}


def test_ids_must_not_be_blank() -> None:
    with pytest.raises(ValidationError, match="request_id"):
        TrainingRequestReceived.model_validate(_received().model_dump() | {"request_id": "  "})


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json at all",
        b"\xff\xfe\x00garbage",
        '{"type": "caf\xe9"}'.encode("latin-1"),
        b"[1, 2, 3]",
        b'"just a string"',
        b"null",
        b'{"specversion": "1.0", "id": "x", "source": "/x"}',
        b'{"type": 42}',
        b'{"specversion": "1.0", "type": "be.bruxellesformation.notification.sent", "data": [1]}',
    ],
    ids=[
        "empty",
        "not-json",
        "garbage-bytes",
        "invalid-utf8",
        "json-array",
        "json-string",
        "json-null",
        "no-type",
        "type-not-a-string",
        "data-not-an-object",
    ],
)
def test_malformed_messages(value: bytes) -> None:
    with pytest.raises(MalformedEvent):
        decode(value)


def test_unknown_event_type(make_event: MakeEvent[Any]) -> None:
    wire = _structured(make_event(CallbackDue))
    wire["type"] = "be.bruxellesformation.training.request.teleported"

    with pytest.raises(UnknownEventType, match="teleported") as caught:
        decode(json.dumps(wire).encode())

    assert caught.value.event_type == "be.bruxellesformation.training.request.teleported"


def _from_version_2(event: Event, form: str) -> tuple[bytes, Headers | None]:
    if form == "structured":
        return json.dumps(_structured(event) | {"schemaversion": 2}).encode(), headers(event)
    if form == "binary":
        value, binary_headers = _binary_message(event)
        return value, [(n, b"2" if n == "ce_schemaversion" else v) for n, v in binary_headers]
    return json.dumps(event.model_dump(mode="json") | {"schema_version": 2}).encode(), None


@pytest.mark.parametrize("form", ["structured", "binary", "flat"])
def test_a_newer_schema_version_is_unsupported(make_event: MakeEvent[Any], form: str) -> None:
    value, message_headers = _from_version_2(make_event(TrainingRequestReceived), form)

    with pytest.raises(UnsupportedSchemaVersion) as caught:
        decode(value, message_headers)

    assert (caught.value.version, caught.value.supported) == (2, 1)


def test_older_versions_pass_through_the_upcasters(make_event: MakeEvent[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend v2 renamed `motivation` (v1) to `need`.
    def rename_motivation(fields: dict[str, Any]) -> dict[str, Any]:
        fields["need"] = fields.pop("motivation")
        return fields

    event_type = TrainingRequestReceived.event_type()
    monkeypatch.setattr(TrainingRequestReceived, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(UPCASTERS, (event_type, 1), rename_motivation)
    wire = _structured(make_event(TrainingRequestReceived))
    wire["schemaversion"] = 1
    wire["data"]["motivation"] = wire["data"].pop("need")

    decoded = decode(json.dumps(wire).encode())

    assert isinstance(decoded, TrainingRequestReceived)
    assert decoded.need.startswith("Je voudrais")
    assert decoded.schema_version == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda w: w["data"]["contact"].update(phone="0470 12 34 56"), "contact.phone"),
        (lambda w: w["data"].update(language="tlh"), "language"),
        (lambda w: w["data"].update(channel="Carrier Pigeon!"), "channel"),
        (lambda w: w["data"].pop("person_id"), "person_id"),
        (lambda w: w.update(id="not-a-uuid"), "id"),
        (lambda w: w.update(schemaversion="two"), "schema_version"),
    ],
    ids=["bad-phone", "bad-enum", "malformed-channel", "missing-field", "bad-id", "bad-version"],
)
def test_invalid_fields(make_event: MakeEvent[Any], change: Callable[[dict[str, Any]], object], field: str) -> None:
    wire = _structured(make_event(TrainingRequestReceived))
    change(wire)

    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(wire).encode())

    error = caught.value
    assert error.fields == (field,)
    assert error.event_type == TrainingRequestReceived.event_type()
    assert field in str(error)
    json.dumps(error.errors)  # dead letters are JSON


def test_invalid_event_does_not_repeat_personal_data(make_event: MakeEvent[Any]) -> None:
    wire = _structured(make_event(TrainingRequestReceived))
    wire["data"]["contact"]["phone"] = "0470 12 34 56"

    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(wire).encode())

    assert "0470" not in str(caught.value)
    assert "0470" not in json.dumps(caught.value.errors)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_attempts_count_from_one(make_event: MakeEvent[Any]) -> None:
    wire = _structured(make_event(ContactAttempted))
    wire["data"]["attempt"] = 0

    with pytest.raises(InvalidEvent) as caught:
        decode(json.dumps(wire).encode())

    assert caught.value.fields == ("attempt",)


@pytest.mark.parametrize("error", [MalformedEvent, UnknownEventType, UnsupportedSchemaVersion, InvalidEvent])
def test_every_contract_error_is_a_value_error_and_not_a_pydantic_one(
    error: type[Exception],
) -> None:
    assert issubclass(error, ContractError)
    assert issubclass(error, ValueError)
    assert not issubclass(error, ValidationError)


# --- topics -------------------------------------------------------------------------


def test_every_event_is_on_exactly_one_topic() -> None:
    on_topics = [cls for topic in ALL_TOPICS for cls in topic.events]

    assert sorted(on_topics, key=repr) == sorted(EVENT_CLASSES, key=repr)
    for cls in EVENT_CLASSES:
        assert cls in topic_for(cls).events


def test_topics_are_versioned_and_unique() -> None:
    names = [topic.name for topic in ALL_TOPICS]

    assert len(set(names)) == len(names)
    assert all(name.rsplit(".", 1)[-1].startswith("v") for name in names)
    assert TRAINING_REQUESTS.name == "training.requests.v1"
    assert (TRAINING_REQUESTS.partitions, TRAINING_ROUTING.partitions, PRIVACY.partitions) == (
        6,
        6,
        3,
    )


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_key_is_the_request_or_person_id(make_event: MakeEvent[Any], cls: type[Event]) -> None:
    # Or, for a fact about a whole programme, the programme's name.
    event = make_event(cls)
    key = topic_for(cls).key_field(cls)
    expected = {"request_id": REQUEST_ID, "person_id": PERSON_ID}.get(key) or str(getattr(event, key))

    assert key_for(event) == expected.encode()


def test_a_topic_refuses_an_event_whose_key_may_be_unset() -> None:
    with pytest.raises(TypeError, match="keyed by 'programme'"):
        TopicSpec(name="t", partitions=1, key="programme", events=(CallbackDue,), description="")
    spec = TopicSpec(
        name="t",
        partitions=1,
        key="request_id",
        events=(DigitalDivideQuotaChanged,),
        description="",
        keyed_otherwise={DigitalDivideQuotaChanged: "programme"},
    )
    event = DigitalDivideQuotaChanged(source="/t", year=2026, previous_quota=1, quota=2, changed_by="sup-1")
    assert spec.key_for(event) == b"digital_divide"


def test_a_request_keeps_its_partition_across_routing_and_intake(
    make_event: MakeEvent[Any],
) -> None:
    received = make_event(TrainingRequestReceived)
    routed = make_event(TrainingRequestRouted)

    assert TRAINING_REQUESTS.partitions == TRAINING_ROUTING.partitions
    assert key_for(received) == key_for(routed)


def test_a_topic_refuses_keys_for_events_it_does_not_carry(make_event: MakeEvent[Any]) -> None:
    with pytest.raises(TypeError):
        PRIVACY.key_for(make_event(TrainingRequestReceived))
    with pytest.raises(LookupError):
        topic_for(Event)


# --- JSON Schema --------------------------------------------------------------------


def test_json_schemas_cover_every_event() -> None:
    assert set(json_schemas()) == set(EVENT_TYPES)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_encoded_events_match_their_json_schema(make_event: MakeEvent[Any], cls: type[Event]) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = json_schemas()[cls.event_type()]
    validator = jsonschema_rs.validator_for(schema)

    assert validator.is_valid(_structured(make_event(cls)))
    assert not validator.is_valid(_structured(make_event(cls)) | {"type": "be.bruxellesformation.other"})


# --- public surface -----------------------------------------------------------------


def test_all_is_the_public_surface() -> None:
    public = {name for name, value in vars(schemas).items() if not name.startswith("_") and not isinstance(value, ModuleType)}

    assert set(schemas.__all__) == public
    assert len(schemas.__all__) == len(set(schemas.__all__))


# --- property -----------------------------------------------------------------------

_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
_aware = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=_offsets)
_opaque_ids = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=40)
_optional_text = st.none() | st.text(max_size=50)

_contacts = st.builds(
    Contact,
    name=_optional_text,
    phone=st.none() | st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z"),
    email=st.none() | st.emails(),
)
_campaigns = st.none() | st.builds(
    CampaignAttribution,
    utm_source=_optional_text,
    utm_medium=_optional_text,
    utm_campaign=_optional_text,
    utm_term=_optional_text,
    utm_content=_optional_text,
    referrer=_optional_text,
)
_requests = st.builds(
    TrainingRequestReceived,
    id=st.uuids(),
    source=st.sampled_from(["/intake/web", "/intake/phone", "/intake/email"]),
    time=_aware,
    subject=st.none() | st.uuids().map(str),
    correlation_id=st.uuids(),
    causation_id=st.none() | st.uuids(),
    request_id=st.uuids().map(str),
    person_id=_opaque_ids,
    channel=st.sampled_from(Channel),
    received_at=_aware,
    contact=_contacts,
    language=st.sampled_from(Language),
    need=st.text(max_size=200),
    requested_course=st.none() | _opaque_ids,
    qualification_level=st.none() | st.sampled_from(QualificationLevel),
    has_computer=st.none() | st.booleans(),
    has_internet=st.none() | st.booleans(),
    unemployed_since=st.none() | st.dates(min_value=date(1950, 1, 1), max_value=date(2100, 1, 1)),
    campaign=_campaigns,
    consent_to_contact=st.booleans(),
    linked_request_ids=st.lists(st.uuids().map(str), max_size=3),
    needs_triage=st.booleans(),
    triage_reason=_optional_text,
    channel_details=st.dictionaries(
        st.text(max_size=20),
        st.none() | st.booleans() | st.integers() | st.text(max_size=50),
        max_size=5,
    ),
)


@settings(database=None, max_examples=200)
@given(event=_requests)
def test_any_training_request_round_trips(event: TrainingRequestReceived) -> None:
    binary_value, binary_headers = _binary_message(event)

    assert decode(encode(event), headers(event)) == event
    assert decode(encode(event)) == event
    assert decode(binary_value, binary_headers) == event
    assert decode(_flat(event)) == event
    assert isinstance(event.correlation_id, UUID)


def test_an_event_without_fact_sources_still_decodes(make_event: MakeEvent[Any]) -> None:
    wire = _structured(make_event(TrainingRequestReceived))
    wire["data"].pop("fact_sources", None)

    decoded = decode(json.dumps(wire).encode())

    assert isinstance(decoded, TrainingRequestReceived) and decoded.fact_sources == {}
