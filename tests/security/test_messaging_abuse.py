"""Messaging abuse, tried on the real notification sender, mongod, SMTP sink and HTTP SMS provider:
texting a number abroad, a phishing lure as a name, and flooding one number from two replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from intake.web import InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from notification.budget import DailyCaps, MessageBudget
from notification.messages import MessageRenderer
from notification.policy import BELGIUM_ONLY, is_mobile
from notification.quiet_hours import QuietHours
from notification.retry import RetryPolicy
from notification.sender import DeliverySender
from notification.service import NotificationService
from notification.sms_http import HttpSmsSender
from notification.smtp import SmtpMailSender
from notification.store import DeliveryStore, PeopleStore
from schemas import Contact, NotificationChannel, Target, TrainingRequestReceived, TrainingRequestRouted
from services.calendar import BRUSSELS
from services.catalogue import load_catalogue
from services.clock import FixedClock
from services.idempotency import ProcessedEvents
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.ratelimits import InMemoryRateLimits
from tests.factories import make_request
from tests.fakes import RecordingPipeline
from tests.integration.test_notification_adapters import SMS_TOKEN, SmsProvider, SmtpSink, provider, sink
from tests.security.conftest import Attacks

pytestmark = pytest.mark.security

__all__ = ["provider", "sink"]  # fixtures shared with the adapters' tests

SMS, EMAIL = NotificationChannel.SMS, NotificationChannel.EMAIL
DAYTIME = datetime(2026, 3, 3, 10, 0, tzinfo=BRUSSELS)  # a Tuesday morning: no quiet hours by chance
LURE = "URGENT: confirm at https://evil.example"
VICTIM = "+32470555666"


def request_from(
    *, name: str = "Amina El Idrissi", phone: str | None = None, email: str | None = None
) -> TrainingRequestReceived:
    return make_request(contact=Contact(name=name, phone=phone, email=email))


def routed_after(request: TrainingRequestReceived) -> TrainingRequestRouted:
    return TrainingRequestRouted.following(
        request,
        source="/routing",
        request_id=request.request_id,
        person_id=request.person_id,
        target=Target.ESPACES_NUMERIQUES,
        rule_id="named-online-course",
        rule_set_version="test",
        explanation="staff only",
        priority=50,
        callback_deadline=DAYTIME + timedelta(days=2),
    )


@dataclass
class Notification:
    service: NotificationService
    deliveries: DeliveryStore
    clock: FixedClock
    make_sender: Callable[[str], DeliverySender]

    async def tell(self, request: TrainingRequestReceived) -> TrainingRequestRouted:
        routed = routed_after(request)
        await self.service.record_contact(request)
        await self.service.notify(routed)
        return routed

    async def delivery(self, event: TrainingRequestRouted, channel: NotificationChannel) -> dict[str, Any]:
        doc = await self.deliveries.get(f"{event.id}:{channel.value}")
        assert doc is not None
        return doc


@pytest.fixture
async def notification(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: Any, sink: SmtpSink, provider: SmsProvider
) -> AsyncIterator[Notification]:
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
        sms_country_allowed=BELGIUM_ONLY.allows,
        personal=PersonalData(PersonKeys(mongo_db)),
    )
    senders: list[DeliverySender] = []

    def make_sender(owner: str) -> DeliverySender:
        # Each replica has its own budget object: only the counters in MongoDB are shared.
        budget = MessageBudget(mongo_db, DailyCaps(per_destination={SMS: 5, EMAIL: 10}, overall={SMS: 2_000, EMAIL: 20_000}))
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
            sms_country_allowed=BELGIUM_ONLY.allows,
            budget=budget,
            owner=owner,
        )
        senders.append(sender)
        return sender

    yield Notification(service, deliveries, clock, make_sender)
    for sender in senders:
        await sender.sms.aclose()


async def drain(*senders: DeliverySender) -> None:
    while sum([await sender.run_once(batch=4) for sender in senders]):
        pass


async def test_an_sms_to_a_number_abroad_is_not_sent_and_the_email_goes_instead(
    notification: Notification, sink: SmtpSink, provider: SmsProvider, attacks: Attacks
) -> None:
    abroad = await notification.tell(request_from(phone="+31612345678", email="jan@example.org"))
    abroad_only = await notification.tell(request_from(phone="+447911123456"))
    at_home = await notification.tell(request_from(phone="+32470123456"))

    await drain(notification.make_sender("replica-a"))

    refused = await notification.delivery(abroad, SMS)
    assert (refused["status"], refused["reason"], refused["attempts"]) == ("skipped", "country_not_allowed", 0)
    assert (await notification.delivery(abroad, EMAIL))["status"] == "sent"
    nobody = await notification.delivery(abroad_only, SMS)
    assert (nobody["status"], nobody["reason"]) == ("skipped", "country_not_allowed")
    assert (await notification.delivery(at_home, SMS))["status"] == "sent"
    assert [call["to"] for call in provider.calls] == ["+32470123456"]  # the Belgian one only
    assert [m["To"].addresses[0].addr_spec for m in sink.messages] == ["jan@example.org"]
    attacks.record(
        "SMS to a mobile number abroad (+31, +44)",
        tried="request with a Dutch and a British mobile",
        refused=True,
        nothing_lost=True,  # recorded as skipped with its reason; the e-mail went where there was one
    )


async def test_a_phishing_lure_as_a_name_is_refused_and_never_rendered(
    notification: Notification, sink: SmtpSink, provider: SmsProvider, attacks: Attacks
) -> None:
    pipeline = RecordingPipeline()
    app = FastAPI()
    app.include_router(web_router)
    channel = WebChannel(
        pipeline,
        WebSettings(),
        load_catalogue(),
        clock=lambda: DAYTIME,
        rate_limits=InMemoryRateLimits(),
        idempotency_keys=InMemoryIdempotencyKeys(),
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        response = await http.post(
            "/api/v1/requests",
            json={"name": LURE, "phone": "0470 12 34 56", "email": "a@example.org", "consent_to_contact": True},
        )
    assert response.status_code == 422 and response.json()["detail"][0]["code"] == "name_url"
    assert pipeline.drafts == []

    # Defence in depth: a lure stored some other way (an older version, a replayed event) is not greeted.
    routed = await notification.tell(request_from(name=LURE + "\r\nBcc: x", phone="+32470123456", email="amina@example.org"))
    enrolment_like = await notification.tell(request_from(name=LURE, email="amina@example.org"))
    await drain(notification.make_sender("replica-a"))

    assert (await notification.delivery(routed, SMS))["status"] == "sent"
    assert (await notification.delivery(enrolment_like, EMAIL))["status"] == "sent"
    rendered = [m.as_string() for m in sink.messages] + [call["text"] for call in provider.calls]
    assert len(rendered) == 2
    assert all("evil" not in text and "URGENT" not in text for text in rendered)
    attacks.record(
        "phishing link as the name, echoed in our messages",
        tried="POST name 'URGENT: confirm at https://…'",
        refused=True,
        nothing_lost=True,  # the stored lure's messages went out, greeting nobody by name
    )


async def test_one_number_flooded_from_two_replicas_gets_at_most_its_daily_budget(
    notification: Notification, provider: SmsProvider, attacks: Attacks
) -> None:
    # Twelve requests carrying the same victim's number (twelve "persons": the form proves nothing).
    events = [await notification.tell(request_from(phone=VICTIM)) for _ in range(12)]

    await drain(notification.make_sender("replica-a"), notification.make_sender("replica-b"))

    assert len(provider.calls) == 5
    docs = [await notification.delivery(e, SMS) for e in events]
    deferred = [d for d in docs if d["status"] == "deferred"]
    assert len(deferred) == 7 and {d["reason"] for d in deferred} == {"budget_destination"}
    midnight = datetime(2026, 3, 4, 0, 0, tzinfo=BRUSSELS)
    assert {d["next_attempt_at"] for d in deferred} == {midnight}
    assert all(d["attempts"] == 0 for d in deferred)  # not an attempt: no retry loop, no fallback

    # Nothing more today, however often the senders look.
    notification.clock.advance(timedelta(hours=3))
    await drain(notification.make_sender("replica-c"))
    assert len(provider.calls) == 5

    # The next day (after the quiet hours), the rest goes out at the same pace: nothing is lost.
    notification.clock.advance(datetime(2026, 3, 4, 8, 0, tzinfo=BRUSSELS) - notification.clock.now())
    await drain(notification.make_sender("replica-a"), notification.make_sender("replica-b"))
    assert len(provider.calls) == 10
    still = [d for e in events if (d := await notification.delivery(e, SMS))["status"] == "deferred"]
    assert len(still) == 2
    print(f"flood=12 texts_day1=5 texts_day2={len(provider.calls) - 5} still_deferred={len(still)}")
    attacks.record(
        "one number flooded with requests (12, two replicas)",
        tried="12 routed notices to one mobile",
        refused=True,
        nothing_lost=True,  # at most 5 a day; the others are deferred to the next day, not dropped
    )
