"""Notification's wiring: keep the contact projection, plan one delivery per event and channel,
send them from a background loop, publish the outcomes through an outbox, and serve support."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI

from notification import handlers
from notification.budget import DailyCaps, MessageBudget
from notification.http import notification_router
from notification.messages import MessageRenderer
from notification.policy import SmsCountries, is_mobile
from notification.ports import MailSender, SmsSender
from notification.quiet_hours import QuietHours
from notification.retry import RetryPolicy
from notification.sender import DeliverySender
from notification.service import NotificationService
from notification.settings import NotificationSettings
from notification.sms_http import HttpSmsSender
from notification.smtp import SmtpMailSender
from notification.staff import load_staff_directory
from notification.staff_alerts import STAFF_CONSUMER, MongoStaffAlertStore, StaffAlerts
from notification.store import DeliveryStore, PeopleStore
from schemas import NotificationChannel, NotificationFailed, NotificationSent
from schemas.topics import NOTIFICATIONS
from services import Runtime, create_service_app
from services.app import instance_name
from services.clock import Clock, SimulatedClock, SystemClock
from services.idempotency import ProcessedEvents
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys

log = structlog.get_logger(__name__)

SMS, EMAIL = NotificationChannel.SMS, NotificationChannel.EMAIL


def build_clock(settings: NotificationSettings) -> Clock:
    if settings.clock == "simulated":
        start = settings.clock_start
        return SimulatedClock(start - datetime.now(UTC) if start else timedelta(0))
    return SystemClock()


def _never_mobile(_: str) -> bool:
    return False


def create_app(
    settings: NotificationSettings | None = None,
    *,
    clock: Clock | None = None,
    mail: MailSender | None = None,
    sms: SmsSender | None = None,
    rng: random.Random | None = None,
) -> FastAPI:
    """The notification service; tests may pass their own clock, senders and random source."""
    settings = settings or NotificationSettings()
    clock = clock or build_clock(settings)
    quiet_hours = QuietHours(settings.quiet_hours_start, settings.quiet_hours_end)
    retry = RetryPolicy(
        max_attempts=settings.max_attempts,
        base=settings.backoff_base,
        factor=settings.backoff_factor,
        cap=settings.backoff_max,
        jitter=settings.backoff_jitter,
    )
    mobile = is_mobile if settings.sms_enabled else _never_mobile
    sms_countries = SmsCountries(settings.sms_allowed_countries)
    caps = DailyCaps(
        per_destination={SMS: settings.sms_daily_per_destination, EMAIL: settings.email_daily_per_destination},
        overall={SMS: settings.sms_daily_global, EMAIL: settings.email_daily_global},
    )
    renderer = MessageRenderer()
    staff_directory = load_staff_directory(settings.staff_directory_path, address_pattern=settings.staff_address_pattern or None)

    def register(runtime: Runtime) -> list[Any]:
        me = instance_name(settings)
        outbox = Outbox(runtime.db, "notification_outbox", tracer=runtime.tracing.tracer)
        people = PeopleStore(runtime.db)
        deliveries = DeliveryStore(runtime.db)
        budget = MessageBudget(runtime.db, caps)
        mail_sender = mail or SmtpMailSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            from_address=settings.smtp_from_address,
            message_id_domain=settings.message_id_domain,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_s=settings.smtp_timeout.total_seconds(),
            clock=clock,
        )
        sms_sender = sms or HttpSmsSender(
            settings.sms_url,
            token=settings.sms_token.get_secret_value() if settings.sms_token else None,
            timeout_s=settings.sms_timeout.total_seconds(),
            clock=clock,
        )
        sender = DeliverySender(
            runtime.mongo,
            deliveries=deliveries,
            people=people,
            outbox=outbox,
            renderer=renderer,
            mail=mail_sender,
            sms=sms_sender,
            clock=clock,
            quiet_hours=quiet_hours,
            retry=retry,
            is_mobile=mobile,
            sms_country_allowed=sms_countries.allows,
            budget=budget,
            owner=me,
            lease=settings.claim_lease,
            concurrency=settings.sender_concurrency,
            rng=rng,
            tracer=runtime.tracing.tracer,
        )
        service = NotificationService(
            processed=runtime.processed,
            people=people,
            deliveries=deliveries,
            clock=clock,
            quiet_hours=quiet_hours,
            is_mobile=mobile,
            sms_country_allowed=sms_countries.allows,
            personal=PersonalData(PersonKeys(runtime.db)),
            on_planned=sender.wake,
        )
        staff_alerts = StaffAlerts(
            processed=ProcessedEvents(runtime.mongo, runtime.db, STAFF_CONSUMER),
            store=MongoStaffAlertStore(runtime.db),
            directory=staff_directory,
            renderer=renderer,
            mail=mail_sender,
            clock=clock,
            retry=retry,
            console_url=settings.console_url,
            owner=me,
            lease=settings.claim_lease,
            rng=rng,
        )
        runtime.app_state.update(
            staff_alerts=staff_alerts,
            service=service,
            sender=sender,
            deliveries=deliveries,
            people=people,
            outbox=outbox,
            clock=clock,
        )
        runtime.publishes(NOTIFICATIONS, NotificationSent, NotificationFailed)

        handlers.include(runtime.broker, service, staff_alerts)

        async def prepare(_: Runtime) -> None:
            await asyncio.gather(
                outbox.ensure_indexes(),
                deliveries.ensure_indexes(),
                budget.ensure_indexes(),
                staff_alerts.store.ensure_indexes(),
            )

        async def close_senders(_: Runtime) -> None:
            await asyncio.gather(mail_sender.aclose(), sms_sender.aclose())

        runtime.on_startup(prepare)
        runtime.on_shutdown(close_senders)
        runtime.run_in_background(
            "notification.sender",
            lambda: sender.run(poll_interval=settings.sender_poll_interval.total_seconds(), batch=settings.sender_batch),
        )
        runtime.run_in_background(
            "notification.staff_alerts",
            lambda: staff_alerts.run(poll_interval=settings.sender_poll_interval.total_seconds(), batch=settings.sender_batch),
        )
        runtime.run_in_background(
            "notification.outbox_relay", lambda: outbox.run_relay(runtime.broker, holder=me, connected=runtime.kafka_connected)
        )
        return [notification_router]

    return create_service_app(
        settings,
        title="formation-events notification",
        description=(
            "Tells job seekers what happens to their request - routed, a call missed, enrolled, an exam booked, "
            "a certificate issued - once per event and channel, by e-mail and SMS, in their language."
        ),
        register=register,
    )
