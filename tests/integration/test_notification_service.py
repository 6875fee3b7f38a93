"""The notification service in-process on the real broker and mongod, sending through its real
adapters to a real SMTP sink and a real HTTP SMS provider: one message per event and channel
under redelivery and replay, retries, the fallback to e-mail, opt-outs, quiet hours, and events
that arrive before the person is known. Each test has its own database and topic prefix.

The last tests drive the sender directly (no Kafka) to show the claim protocol: a replica that
died holding a claim, and two replicas racing for the same deliveries.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from fastapi import FastAPI
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from certification.offer_links import OfferLinks, OfferTokens
from notification.app import create_app
from notification.messages import MessageRenderer
from notification.model import DeliveryStatus
from notification.policy import is_mobile
from notification.quiet_hours import QuietHours
from notification.retry import RetryPolicy
from notification.sender import DeliverySender
from notification.service import NotificationService
from notification.settings import NotificationSettings
from notification.sms_http import HttpSmsSender
from notification.smtp import SmtpMailSender
from notification.store import ClaimLost, DeliveryStore, PeopleStore
from schemas import (
    CallbackSlotChosen,
    Contact,
    ContactAttempted,
    ContactDetailsConfirmed,
    ContactOutcome,
    Disposition,
    EnrolmentConfirmed,
    Event,
    ExamScheduled,
    ExamSeatOfferDeclined,
    ExamSeatOffered,
    Language,
    NotificationFailed,
    NotificationSent,
    PersonDataErased,
    Target,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
    decode,
)
from services import kafka as kafka_defaults
from services.app import Runtime
from services.calendar import BRUSSELS
from services.clock import FixedClock, SimulatedClock
from services.idempotency import ProcessedEvents
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_BOOTSTRAP, KAFKA_CLIENT, MONGODB_URI, drop_database
from tests.factories import make_request
from tests.identity_provider import SignIn
from tests.integration.test_notification_adapters import SMS_TOKEN, Answer, SmsProvider, SmtpSink, provider, sink

pytestmark = pytest.mark.integration

__all__ = ["provider", "sink"]  # fixtures shared with the adapters' tests

EMAIL = "amina@example.org"
PHONE = "+32470123456"
# Tuesday 3 March 2026, 10:00 in Brussels: a daytime clock, so that no test meets the quiet hours by chance.
DAYTIME = datetime(2026, 3, 3, 10, 0, tzinfo=BRUSSELS)


def person(*, email: str | None = EMAIL, phone: str | None = PHONE, **overrides: Any) -> TrainingRequestReceived:
    return make_request(contact=Contact(name="Amina El Idrissi", email=email, phone=phone), **overrides)


def routed_after(request: TrainingRequestReceived, target: Target = Target.ESPACES_NUMERIQUES) -> TrainingRequestRouted:
    return TrainingRequestRouted.following(
        request,
        source="/routing",
        request_id=request.request_id,
        person_id=request.person_id,
        target=target,
        rule_id="named-online-course",
        rule_set_version="test",
        explanation="staff only",
        priority=50,
        callback_deadline=DAYTIME + timedelta(days=2),
    )


Notice = NotificationSent | NotificationFailed
"""What notifications.v1 carries."""


def notice(record: ConsumerRecord[bytes, bytes]) -> Notice:
    event = decode(record.value or b"", list(record.headers or ()))
    assert isinstance(event, NotificationSent | NotificationFailed), f"{event.type} on notifications.v1"
    return event


def enrolled(request: TrainingRequestReceived) -> EnrolmentConfirmed:
    return EnrolmentConfirmed.following(
        request,
        source="/routing",
        request_id=request.request_id,
        person_id=request.person_id,
        course_code="EXCEL",
        course_title="Excel : les bases",
        starts_on=None,
        language=Language.FR,
        login_instructions="https://learn.example.org - identifiant : votre adresse e-mail",
    )


def exam_for(request: TrainingRequestReceived) -> ExamScheduled:
    return ExamScheduled(
        source="/certification",
        person_id=request.person_id,
        certification_code="ICDL-BASE",
        session_id="ses_1",
        centre_id="ctr_anderlecht",
        centre_name="Bruxelles Formation Bureautique – Anderlecht",
        exam_at=DAYTIME + timedelta(days=10),
        what_to_bring=["Carte d'identité"],
    )


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@dataclass
class Running:
    app: FastAPI
    runtime: Runtime
    database: str
    clock: SimulatedClock
    sink: SmtpSink
    provider: SmsProvider

    @property
    def db(self) -> Any:
        return self.runtime.db

    async def publish(self, *events: Event) -> None:
        for event in events:
            await kafka_defaults.publish(self.runtime.broker, event)

    def http(self) -> httpx.AsyncClient:
        # Support staff: a supervisor (preferences and deliveries), signed in at the in-memory provider.
        sign_in = SignIn()
        sign_in.install(self.app)
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://notification", headers=sign_in.as_user("adv-sup"))

    async def delivery(self, event: Event, channel: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.db["deliveries"].find_one({"_id": f"{event.id}:{channel}"})
        return found

    async def wait_status(self, event: Event, channel: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def reached() -> bool:
            doc = await self.delivery(event, channel)
            found.update(doc or {})
            return doc is not None and doc["status"] in statuses

        await wait_until(reached, timeout, what=f"{channel} delivery in {statuses} (last: {found.get('status')})")
        return found

    async def wait_processed(self, event: Event) -> None:
        async def seen() -> bool:
            return await self.runtime.processed.seen(event.id)

        await wait_until(seen, what=f"{event.type} processed")

    async def notifications(
        self, until: Callable[[list[Notice]], bool], timeout: float = 30.0, settle: float = 0.0
    ) -> list[Notice]:
        """Read notifications.v1 from the start until `until(events)` holds, then `settle` seconds more."""
        consumer = AIOKafkaConsumer(
            kafka_defaults.topic_name("notifications.v1"),
            **KAFKA_CLIENT,
            group_id=None,
            auto_offset_reset="earliest",
        )
        events: list[Notice] = []
        await consumer.start()
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while not until(events):
                assert asyncio.get_running_loop().time() < deadline, f"notifications so far: {[e.type for e in events]}"
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    events += [notice(r) for r in records]
            settled = asyncio.get_running_loop().time() + settle
            while asyncio.get_running_loop().time() < settled:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    events += [notice(r) for r in records]
        finally:
            await consumer.stop()
        return events


@asynccontextmanager
async def running(
    sink: SmtpSink, provider: SmsProvider, *, start_at: datetime = DAYTIME, **settings: Any
) -> AsyncIterator[Running]:
    """The service with its own database and topics, a simulated clock from `start_at`, fast retries."""
    database = f"test_notification_{uuid.uuid4().hex[:10]}"
    config = NotificationSettings(
        kafka=KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP, topic_prefix=f"{database}."),
        mongo=MongoSettings(uri=SecretStr(MONGODB_URI), database=database),
        instance_id=f"notification-{database}",
        log_format="json",
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        sms_url=provider.url,
        sms_token=SecretStr(SMS_TOKEN),
        **{
            "backoff_base": timedelta(milliseconds=100),
            "backoff_factor": 2.0,
            "backoff_max": timedelta(seconds=1),
            "sender_poll_interval": timedelta(milliseconds=50),
            **settings,
        },
    )
    clock = SimulatedClock(start_at - datetime.now(UTC))
    previous_prefix = kafka_defaults.topic_name("")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    app = create_app(config, clock=clock)
    try:
        async with app.router.lifespan_context(app):
            yield Running(app, app.state.runtime, database, clock, sink, provider)
    finally:
        kafka_defaults.use_topic_prefix(previous_prefix)
        root.handlers[:], root.level = handlers, level
        await asyncio.to_thread(drop_database, database)


async def test_a_redelivered_and_a_replayed_event_send_one_email(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        request = person(phone=None, language=Language.NL)  # no mobile: a routed request is told by e-mail
        routed = routed_after(request)
        await service.publish(request, routed, routed, routed)  # Kafka redelivering
        sent = await service.wait_status(routed, "email", "sent")
        # An analyst replays the topic months later, after the processed-events records were purged:
        # the delivery record alone still stops a second message.
        await service.db["processed_events"].delete_many({"event_id": str(routed.id)})
        await service.publish(routed)
        await service.wait_processed(routed)
        await asyncio.sleep(0.5)  # a second message would be right behind

        assert len(sink.messages) == 1
        (message,) = sink.messages
        assert message["To"].addresses[0].addr_spec == EMAIL
        assert str(message["Subject"]).startswith("Uw online opleiding")  # Dutch, the person's language
        assert message["Message-ID"] == f"<{routed.id}.email@notification.bruxellesformation.brussels>"
        assert sent["attempts"] == 1 and sent["template"] == "request_routed_espaces_numeriques"
        assert await service.db["deliveries"].count_documents({"about_event_id": str(routed.id)}) == 1
        assert provider.calls == []
        events = await service.notifications(lambda e: len(e) >= 1, settle=1.0)
        assert [(type(e), e.attempts, e.template) for e in events] == [
            (NotificationSent, 1, "request_routed_espaces_numeriques.nl")
        ]


async def test_a_request_closed_as_unreachable_is_told_in_writing_by_email_and_the_last_attempt_says_nothing(
    sink: SmtpSink, provider: SmsProvider
) -> None:
    async with running(sink, provider) as service:
        request = person(language=Language.EN)  # a mobile and an address: the written account goes by e-mail
        routed = routed_after(request)
        last = ContactAttempted.following(
            routed,
            source="/routing/desk",
            request_id=request.request_id,
            person_id=request.person_id,
            worker_id="adv_042",
            outcome=ContactOutcome.NO_ANSWER,
            attempt=3,
            next_attempt_at=None,
        )
        closed = TrainingRequestClosed.following(
            last,
            source="/routing/desk",
            request_id=request.request_id,
            person_id=request.person_id,
            disposition=Disposition.UNREACHABLE,
            attempts=3,
            worker_id="adv_042",
        )
        await service.publish(request, last, closed)
        sent = await service.wait_status(closed, "email", "sent")
        # Both are keyed by the request: the last attempt was handled before the closing, and planned nothing.
        await asyncio.sleep(0.3)

        assert sent["template"] == "request_closed_unreachable"
        assert await service.db["deliveries"].count_documents({"about_event_id": str(last.id)}) == 0
        (message,) = sink.messages
        assert message["To"].addresses[0].addr_spec == EMAIL
        plain = message.get_body(("plain",))
        assert plain is not None
        body = plain.get_content()
        assert "3 times" in body and "0800 555 66" in body and "8:30 am–5:15 pm" in body and "closed this request" in body
        assert provider.calls == []


async def test_an_sms_failing_twice_then_accepted_is_sent_once(sink: SmtpSink, provider: SmsProvider) -> None:
    provider.script.extend([Answer(503, error="maintenance"), Answer(503, error="maintenance")])
    async with running(sink, provider) as service:
        request = person(email=None)
        routed = routed_after(request, Target.ADVISORS)
        await service.publish(request, routed)
        sent = await service.wait_status(routed, "sms", "sent")

        assert sent["attempts"] == 3 and sent["last_error"] == "HTTP 503 maintenance"
        assert [h["status"] for h in sent["history"]] == ["queued", "queued", "queued", "sent"]
        assert len(provider.calls) == 3
        (accepted,) = provider.accepted
        assert accepted["to"] == PHONE and accepted["reference"] == f"{routed.id}:sms"
        assert accepted["text"].startswith(
            # In the GSM alphabet, as sent: "reçue" becomes "recue".
            "Bruxelles Formation : demande recue. Un conseiller va vous appeler avant le jeudi 5 mars 2026"
        )

        events = await service.notifications(lambda e: any(isinstance(x, NotificationSent) for x in e))
        assert [(type(e).__name__, e.attempts) for e in events] == [
            ("NotificationFailed", 1),
            ("NotificationFailed", 2),
            ("NotificationSent", 3),
        ]
        failed, _, done = events
        assert isinstance(failed, NotificationFailed) and not failed.final and failed.reason == "HTTP 503 maintenance"
        assert done.about_event_id == routed.id and done.channel == "sms" and done.person_id == request.person_id
        assert done.causation_id == routed.id and done.correlation_id == routed.correlation_id
        assert sink.messages == []


@pytest.mark.parametrize(
    ("answers", "attempts", "reason"),
    [([Answer(400, error="invalid destination")], 1, "failed"), ([Answer(503)] * 2, 2, "attempts_exhausted")],
    ids=["invalid-number", "attempts-exhausted"],
)
async def test_an_sms_that_fails_for_good_falls_back_to_email(
    sink: SmtpSink, provider: SmsProvider, answers: list[Answer], attempts: int, reason: str, capfd: pytest.CaptureFixture[str]
) -> None:
    provider.script.extend(answers)
    async with running(sink, provider, max_attempts=2) as service:
        request = person()
        routed = routed_after(request)
        await service.publish(request, routed)
        email = await service.wait_status(routed, "email", "sent")
        sms = await service.delivery(routed, "sms")

        assert sms is not None and sms["status"] == "failed" and sms["attempts"] == attempts and sms["reason"] == reason
        assert sms["fallback_to"] == email["_id"] and email["fallback_of"] == sms["_id"]
        assert provider.accepted == []
        (message,) = sink.messages
        assert str(message["Subject"]).startswith("Votre formation en ligne")

        events = await service.notifications(lambda e: any(isinstance(x, NotificationSent) for x in e))
        final = [e for e in events if isinstance(e, NotificationFailed) and e.final]
        assert [(e.channel.value, e.attempts) for e in final] == [("sms", attempts)]
        assert [(e.channel.value) for e in events if isinstance(e, NotificationSent)] == ["email"]
    logs = capfd.readouterr().err
    assert "notification.failed" in logs and "notification.sent" in logs
    assert EMAIL not in logs and PHONE not in logs and "Amina" not in logs


async def test_an_opt_out_is_respected_and_an_opt_in_resumes(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        request = person()
        await service.publish(request)
        await service.wait_processed(request)
        async with service.http() as http:
            out = await http.post(f"/people/{request.person_id}/opt-out", json={"channel": "sms"})
            assert out.status_code == 200 and out.json()["opted_out"] == ["sms"]
            assert out.json()["has_mobile"] is True and EMAIL not in out.text and PHONE not in out.text

            enrolment = enrolled(request)
            await service.publish(enrolment)
            await service.wait_status(enrolment, "email", "sent")
            skipped = await service.wait_status(enrolment, "sms", "skipped")
            assert skipped["reason"] == "opted_out" and provider.calls == []

            assert (await http.post(f"/people/{request.person_id}/opt-in", json={"channel": "sms"})).json()["opted_out"] == []
            exam = exam_for(request)
            await service.publish(exam)
            await service.wait_status(exam, "sms", "sent")
            await service.wait_status(exam, "email", "sent")

            listed = await http.get("/deliveries", params={"person_id": request.person_id})
            assert listed.status_code == 200
            statuses = {(d["template"], d["channel"]): d["status"] for d in listed.json()["deliveries"]}
            assert statuses == {
                ("enrolment_confirmed", "email"): "sent",
                ("enrolment_confirmed", "sms"): "skipped",
                ("exam_scheduled", "email"): "sent",
                ("exam_scheduled", "sms"): "sent",
            }
            assert EMAIL not in listed.text and PHONE not in listed.text and "learn.example.org" not in listed.text
            assert (await http.post(f"/people/{request.person_id}/opt-out", json={"channel": "fax"})).status_code == 422
            assert (await http.get("/deliveries")).status_code == 422
        assert len(provider.accepted) == 1 and provider.accepted[0]["text"].startswith("Bruxelles Formation : examen ICDL-BASE")
        assert sorted(str(m["Subject"]) for m in sink.messages) == [
            "Inscription confirmée : Excel : les bases",
            f"Votre examen ICDL-BASE le {'vendredi 13 mars 2026'}",
        ]


async def test_quiet_hours_defer_a_text_to_eight_but_not_an_email(sink: SmtpSink, provider: SmsProvider) -> None:
    evening = datetime(2026, 3, 3, 22, 30, tzinfo=BRUSSELS)
    async with running(sink, provider, start_at=evening) as service:
        request = person()
        enrolment = enrolled(request)
        await service.publish(request, enrolment)
        await service.wait_status(enrolment, "email", "sent")
        deferred = await service.wait_status(enrolment, "sms", "deferred")
        assert deferred["next_attempt_at"] == datetime(2026, 3, 4, 8, 0, tzinfo=BRUSSELS)
        assert deferred["reason"] == "quiet_hours"
        await asyncio.sleep(0.5)
        assert provider.calls == [] and len(sink.messages) == 1

        service.clock.advance(datetime(2026, 3, 4, 7, 59, tzinfo=BRUSSELS) - service.clock.now())
        await asyncio.sleep(0.5)
        assert provider.calls == []
        service.clock.advance(timedelta(minutes=1))
        sent = await service.wait_status(enrolment, "sms", "sent")
        assert sent["attempts"] == 1 and len(provider.accepted) == 1
        assert sent["sent_at"] >= datetime(2026, 3, 4, 8, 0, tzinfo=BRUSSELS)


async def test_an_event_before_the_person_is_known_waits_and_ends_in_one_message(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        request = person(language=Language.EN)
        routed = routed_after(request)
        no_answer = ContactAttempted.following(
            routed,
            source="/routing",
            request_id=request.request_id,
            person_id=request.person_id,
            worker_id="adv_042",
            outcome=ContactOutcome.NO_ANSWER,
            attempt=1,
            next_attempt_at=DAYTIME + timedelta(hours=2),
        )
        await service.publish(routed, no_answer)
        await service.wait_processed(no_answer)
        assert await service.db["notification_waiting"].count_documents({}) == 2
        assert await service.db["deliveries"].count_documents({}) == 0
        async with service.http() as http:
            listed = (await http.get("/deliveries", params={"person_id": request.person_id})).json()
        assert [w["status"] for w in listed["waiting"]] == ["waiting_for_contact"] * 2 and listed["deliveries"] == []

        await service.publish(request, request)  # the contact arrives (twice: a redelivery)
        await service.wait_status(routed, "sms", "sent")
        await service.wait_status(no_answer, "sms", "sent")
        await asyncio.sleep(0.3)
        assert await service.db["notification_waiting"].count_documents({}) == 0
        assert sorted(a["reference"] for a in provider.accepted) == sorted([f"{routed.id}:sms", f"{no_answer.id}:sms"])
        texts = sorted(a["text"] for a in provider.accepted)
        assert texts[0].startswith("Bruxelles Formation: request received. Our online courses team")
        assert texts[1].startswith(
            "Bruxelles Formation: we tried to call you. We will call again around Tuesday 3 March 2026 at 12:00"
        )


async def test_a_contact_sealed_by_intake_is_unsealed_with_the_persons_key(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        personal = PersonalData(PersonKeys(service.db))
        request = await personal.seal(person(phone=None))  # as intake publishes it: contact blank, sealed
        assert isinstance(request, TrainingRequestReceived) and request.contact.email is None and request.sealed is not None
        routed = routed_after(request)
        await service.publish(request, routed)
        await service.wait_status(routed, "email", "sent")
        (message,) = sink.messages
        assert message["To"].addresses[0].addr_spec == EMAIL and str(message["To"]).startswith("Amina El Idrissi")

        # Another person, whose key is erased before notification reads the request: nothing to read, nothing sent.
        other = await personal.seal(person(phone=None))
        await personal.keys.erase(other.person_id, requested_by="data_subject")
        other_routed = routed_after(other)
        await service.publish(other, other_routed)
        await service.wait_processed(other_routed)
        await service.wait_processed(other)
        assert await service.delivery(other_routed, "email") is None
        stored = await service.db["notification_people"].find_one({"_id": other.person_id})
        assert stored is not None and stored.get("contact") is None
        assert len(sink.messages) == 1


STATUS_URL = "https://formation.bruxellesformation.brussels/en/status/s2.DG8eKps9TF6Kfx4tPEtaaWon50ChssPU5fanoSQUfQNpPSTJYBWjdLRP"


async def test_the_acknowledgement_carries_the_sealed_status_link_until_the_person_is_erased(
    sink: SmtpSink, provider: SmsProvider
) -> None:
    async with running(sink, provider) as service:
        personal = PersonalData(PersonKeys(service.db))
        # As intake publishes them: the link sealed with the contact, blank in clear.
        by_text = await personal.seal(person(email=None, language=Language.EN, status_url=STATUS_URL))
        by_mail = await personal.seal(person(phone=None, language=Language.EN, status_url=STATUS_URL + "x"))
        no_link = await personal.seal(person(phone=None, language=Language.EN))
        assert by_text.status_url is None and by_text.sealed is not None and "status_url" in by_text.sealed.fields
        routed = [routed_after(r, Target.ADVISORS) for r in (by_text, by_mail, no_link)]
        await service.publish(by_text, by_mail, no_link, *routed)
        await service.wait_status(routed[0], "sms", "sent")
        await service.wait_status(routed[1], "email", "sent")
        await service.wait_status(routed[2], "email", "sent")

        (sms,) = provider.accepted
        assert f"Follow your request: {STATUS_URL} " in sms["text"] and "0800 555 66" in sms["text"]
        texts = [m.get_body(("plain",)).get_content() for m in sink.messages]  # type: ignore[union-attr]
        assert sum(f"Follow your request: {STATUS_URL}x" in t for t in texts) == 1
        assert sum("Follow your request" not in t and "/status/" not in t for t in texts) == 1
        stored = await service.db["notification_people"].find_one({"_id": by_text.person_id})
        assert stored["status_links"] == {by_text.request_id: STATUS_URL}

        # Erased: the link goes with the contact, and a later confirmation has none to give.
        erased = PersonDataErased(
            source="/privacy", person_id=by_text.person_id, erased_at=datetime.now(UTC), requested_by="data_subject"
        )
        await service.publish(erased)
        await service.wait_processed(erased)
        stored = await service.db["notification_people"].find_one({"_id": by_text.person_id})
        assert stored["status_links"] == {} and stored["contact"] is None


async def test_a_withdrawal_and_a_chosen_slot_are_confirmed_by_text(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        request = person(email=None, language=Language.EN)
        slot = CallbackSlotChosen(
            source="/intake",
            request_id=request.request_id,
            person_id=request.person_id,
            slot_start=datetime(2026, 3, 10, 9, 0, tzinfo=BRUSSELS),
            slot_end=datetime(2026, 3, 10, 12, 30, tzinfo=BRUSSELS),
            chosen_through="status_page",
        )
        withdrawn = TrainingRequestClosed(
            source="/routing",
            request_id=request.request_id,
            person_id=request.person_id,
            disposition=Disposition.WITHDRAWN,
            attempts=0,
        )
        await service.publish(request, slot, withdrawn)
        await service.wait_status(slot, "sms", "sent")
        await service.wait_status(withdrawn, "sms", "sent")
        texts = sorted(a["text"] for a in provider.accepted)
        assert texts[0].startswith(
            "Bruxelles Formation: noted, an advisor will call you on Tuesday 10 March 2026 between 09:00 and 12:30"
        )
        assert texts[1].startswith("Bruxelles Formation: your training request is cancelled")
        assert all("0800 555 66" in t for t in texts)


async def test_contact_details_staff_confirmed_are_where_the_next_message_goes(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        personal = PersonalData(PersonKeys(service.db))
        request = await personal.seal(person(email=None, language=Language.EN))
        confirmed = await personal.seal(
            ContactDetailsConfirmed(
                source="/routing/desk",
                request_id=request.request_id,
                person_id=request.person_id,
                confirmed_by="adv-1",
                contact=Contact(phone="+32470999888"),
            )
        )
        assert confirmed.contact is None and confirmed.sealed is not None
        routed = routed_after(request, Target.ADVISORS)
        # As it happens: the advisor confirms on the call, long after notification read the request.
        await service.publish(request)
        await service.wait_processed(request)
        await service.publish(confirmed)
        await service.wait_processed(confirmed)
        await service.publish(routed)
        await service.wait_status(routed, "sms", "sent")

        (sms,) = provider.accepted
        assert sms["to"] == "+32470999888", "the confirmed number, not the first one"
        stored = await service.db["notification_people"].find_one({"_id": request.person_id})
        assert stored["contact"]["phone"] == "+32470999888" and stored["contact"]["name"] == "Amina El Idrissi"


async def test_a_seat_offer_reaches_the_candidate_by_email_and_sms_with_its_links(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        personal = PersonalData(PersonKeys(service.db))
        request = person(language=Language.EN)
        offer_id = "5b0c8e2f4a7d4c1e9f3a2b6c7d8e9f01"
        respond_by = DAYTIME + timedelta(days=2)
        links = OfferLinks(
            "https://certification.bruxellesformation.test", OfferTokens("a test key for seat offer links, 32 bytes")
        )
        urls = links.both(offer_id, respond_by)
        # As certification publishes it: the links sealed with the person's key.
        offered = await personal.seal(
            ExamSeatOffered(
                source="/certification",
                person_id=request.person_id,
                offer_id=offer_id,
                certification_code="ICDL-BASE",
                session_id="ses_1",
                centre_id="ctr_anderlecht",
                centre_name="Bruxelles Formation Bureautique – Anderlecht",
                exam_at=DAYTIME + timedelta(days=10),
                respond_by=respond_by,
                accept_url=urls["accept_url"],
                decline_url=urls["decline_url"],
            )
        )
        assert isinstance(offered, ExamSeatOffered) and offered.accept_url is None and offered.sealed is not None
        await service.publish(request, offered)
        await service.wait_status(offered, "email", "sent")
        await service.wait_status(offered, "sms", "sent")
        (message,) = sink.messages
        body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert str(message["Subject"]).startswith("A seat for the ICDL-BASE exam")
        assert f"{urls['accept_url']}&lang=en" in body and f"{urls['decline_url']}&lang=en" in body
        (sms,) = provider.accepted
        assert sms["to"] == PHONE and f"{urls['accept_url']}&lang=en" in sms["text"]
        # An answer tells nothing (and holds nothing up: the person's next event is told).
        answered = ExamSeatOfferDeclined(
            source="/certification",
            person_id=request.person_id,
            offer_id=offer_id,
            certification_code="ICDL-BASE",
            session_id="ses_1",
            closed_at=DAYTIME,
        )
        booked = exam_for(request)
        await service.publish(answered, booked)
        await service.wait_status(booked, "email", "sent")
        assert await service.delivery(answered, "email") is None and len(sink.messages) == 2


async def test_no_consent_records_skipped_deliveries_and_sends_nothing(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        request = person(consent_to_contact=False)
        enrolment = enrolled(request)
        await service.publish(request, enrolment)
        email = await service.wait_status(enrolment, "email", "skipped")
        sms = await service.wait_status(enrolment, "sms", "skipped")
        assert email["reason"] == sms["reason"] == "no_consent"
        await asyncio.sleep(0.3)
        assert sink.messages == [] and provider.calls == []


async def test_two_linked_requests_keeping_one_promise_send_one_message(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        first = person(phone=None)
        # The same person writes again: routing joins it to the first request, which keeps its promise.
        second = person(phone=None, person_id=first.person_id)
        routed_first, routed_second = routed_after(first), routed_after(second)
        await service.publish(first, routed_first, second, routed_second)
        # The two routed events sit on different partitions: either may be handled first, and it is the one sent.
        one = await service.wait_status(routed_first, "email", "sent", "skipped")
        other = await service.wait_status(routed_second, "email", "sent", "skipped")
        sent, said = (one, other) if one["status"] == "sent" else (other, one)
        assert (sent["status"], said["status"], said["reason"]) == ("sent", "skipped", "already_said")
        assert sent["purpose"] == said["purpose"]
        # Another purpose (a different team, so another message) is sent as usual.
        moved = routed_after(second, target=Target.ADVISORS)
        await service.publish(moved)
        await service.wait_status(moved, "email", "sent")
        await asyncio.sleep(0.3)
        assert len(sink.messages) == 2 and provider.calls == []


async def test_an_erased_person_gets_nothing_more(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider, start_at=datetime(2026, 3, 3, 23, 0, tzinfo=BRUSSELS)) as service:
        request = person(email=None)
        enrolment = enrolled(request)
        await service.publish(request, enrolment)
        await service.wait_status(enrolment, "sms", "deferred")  # held until 08:00
        erased = PersonDataErased(
            source="/privacy", person_id=request.person_id, erased_at=datetime.now(UTC), requested_by="data_subject"
        )
        await service.publish(erased)
        skipped = await service.wait_status(enrolment, "sms", "skipped")
        assert skipped["reason"] == "erased" and skipped["facts"] == {}
        stored = await service.db["notification_people"].find_one({"_id": request.person_id})
        assert stored["contact"] is None and stored["erased_at"] is not None

        # Events from before the erasure, read late: an older request of the person, a routed event.
        older = person(email=None, person_id=request.person_id, received_at=request.received_at - timedelta(days=1))
        late = routed_after(request)
        await service.publish(older, late)
        await service.wait_processed(late)
        await service.wait_processed(older)
        assert await service.db["notification_waiting"].count_documents({}) == 0
        assert await service.delivery(late, "sms") is None
        assert (await service.db["notification_people"].find_one({"_id": request.person_id}))["contact"] is None
        service.clock.advance(timedelta(hours=10))
        await asyncio.sleep(0.5)
        assert provider.calls == [] and sink.messages == []


# --- the claim protocol, without Kafka ---------------------------------------------------


@dataclass
class Replicas:
    service: NotificationService
    deliveries: DeliveryStore
    make_sender: Callable[[str], DeliverySender]


@pytest.fixture
async def replicas(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any, sink: SmtpSink, provider: SmsProvider
) -> AsyncIterator[Replicas]:
    clock = FixedClock(DAYTIME.astimezone(UTC))
    processed = ProcessedEvents(mongo_client, mongo_db, consumer="notification")
    await processed.ensure_indexes()
    people, deliveries, outbox = PeopleStore(mongo_db), DeliveryStore(mongo_db), Outbox(mongo_db, "notification_outbox")
    await deliveries.ensure_indexes()
    service = NotificationService(
        processed=processed,
        people=people,
        deliveries=deliveries,
        clock=clock,
        quiet_hours=QuietHours(),
        is_mobile=is_mobile,
        personal=PersonalData(PersonKeys(mongo_db)),
    )
    senders: list[DeliverySender] = []

    def make_sender(owner: str) -> DeliverySender:
        sender = DeliverySender(
            mongo_client,
            deliveries=deliveries,
            people=people,
            outbox=outbox,
            renderer=MessageRenderer(),
            mail=SmtpMailSender(
                host="127.0.0.1", port=sink.port, from_address="BF <no-reply@bf.test>", message_id_domain="n.test"
            ),
            sms=HttpSmsSender(provider.url, token=SMS_TOKEN),
            clock=clock,
            quiet_hours=QuietHours(),
            retry=RetryPolicy(),
            is_mobile=is_mobile,
            owner=owner,
            lease=timedelta(minutes=2),
        )
        senders.append(sender)
        return sender

    yield Replicas(service, deliveries, make_sender)
    for sender in senders:
        await sender.sms.aclose()


async def test_a_claim_left_by_a_dead_replica_is_sent_once_after_the_lease(replicas: Replicas, sink: SmtpSink) -> None:
    request = person(phone=None)
    routed = routed_after(request)
    await replicas.service.record_contact(request)
    await replicas.service.notify(routed)
    clock = replicas.service.clock
    assert isinstance(clock, FixedClock)

    dead, alive = replicas.make_sender("replica-a"), replicas.make_sender("replica-b")
    (claimed,) = await replicas.deliveries.claim_due(owner="replica-a", now=clock.now(), lease=dead.lease, limit=10)
    # replica-a dies here, between claiming and sending.
    assert await alive.run_once() == 0  # the claim protects the delivery...
    clock.advance(timedelta(minutes=2, seconds=1))
    assert await alive.run_once() == 1  # ...until its lease runs out
    doc = await replicas.deliveries.get(claimed.id)
    assert doc is not None and doc["status"] == "sent" and doc["attempts"] == 1
    assert len(sink.messages) == 1
    # replica-a comes back from its pause and tries to record: refused, nothing changes.
    with pytest.raises(ClaimLost):
        await replicas.deliveries.record(claimed, owner="replica-a", status=DeliveryStatus.SENT, now=clock.now(), attempted=True)
    assert await replicas.deliveries.claim_due(owner="replica-a", now=clock.now(), lease=dead.lease, limit=10) == []


async def test_two_replicas_racing_send_every_delivery_once(replicas: Replicas, sink: SmtpSink, provider: SmsProvider) -> None:
    requests = [person(email=f"person{i}@example.org", phone=f"+3247012{i:04d}") for i in range(15)]
    events = [enrolled(r) for r in requests]  # each: one e-mail and one text
    for request, event in zip(requests, events, strict=True):
        await replicas.service.record_contact(request)
        await replicas.service.notify(event)
    first, second = replicas.make_sender("replica-a"), replicas.make_sender("replica-b")

    async def drain(sender: DeliverySender) -> None:
        while await sender.run_once(batch=3):
            pass

    await asyncio.gather(drain(first), drain(second))
    recipients = sorted(m["To"].addresses[0].addr_spec for m in sink.messages)
    references = sorted(a["reference"] for a in provider.accepted)
    print(f"deliveries=30 emails={len(recipients)} texts={len(references)} provider_calls={len(provider.calls)}")
    assert recipients == sorted(f"person{i}@example.org" for i in range(15))
    assert references == sorted(f"{e.id}:sms" for e in events)
    assert len(provider.calls) == 15
    statuses = await replicas.deliveries._deliveries.distinct("status")  # a test may look inside
    assert statuses == ["sent"]
