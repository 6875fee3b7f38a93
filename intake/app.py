"""Intake's wiring: the three channels, the pipeline, and the outbox relay to Kafka.

One process serves all three channels (the phone webhook and the web form/API over HTTP, the
inbox over SMTP) because they share the pipeline and scale together; each replica runs all
three, and the outbox relay runs on one replica at a time (a lease).

The DPOs' erasures are another surface (`INTAKE_SURFACES=privacy`), served by processes of their own on
another port (8011), never by the public app: the routes that can erase a person are not reachable from
where the public posts its requests. Both surfaces write to the same outbox, and each runs its relay.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from intake.adapters import adapter_router
from intake.email_server import EmailInbox, EmailInboxSettings
from intake.erasure import Erasures, erasure_router
from intake.identity_links import IdentityLinks, identity_router
from intake.phone import PhoneChannel, PhoneWebhookSettings, phone_router
from intake.pipeline import IntakePipeline
from intake.settings import IntakeSettings
from intake.status import LOCAL_STATUS_LINK_KEY, StatusLinks, StatusTokens
from intake.status import handlers as status_handlers
from intake.status.page import router as status_router
from intake.status.projection import StatusProjection
from intake.status.service import CONSUMER as STATUS_CONSUMER
from intake.status.service import StatusService
from intake.web import MongoIdempotencyKeys, WebChannel, WebSettings, web_router
from intake.web.captcha import CaptchaSettings, CaptchaVerifier
from schemas import (
    CallbackSlotChosen,
    PersonDataErased,
    RequestDetailsCorrected,
    TrainingRequestReceived,
    TrainingRequestWithdrawn,
)
from schemas.topics import PRIVACY, TRAINING_REQUESTS
from services import Runtime, create_service_app
from services.app import instance_name
from services.calendar import LiveCalendar
from services.catalogue import load_catalogue
from services.clock import SystemClock
from services.configuration import Configuration, ConfigurationFeed
from services.idempotency import ProcessedEvents
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.ratelimits import MongoRateLimits


def create_app(
    settings: IntakeSettings | None = None,
    *,
    phone: PhoneWebhookSettings | None = None,
    web: WebSettings | None = None,
    captcha: CaptchaSettings | None = None,
    email: EmailInboxSettings | None = None,
) -> FastAPI:
    settings = settings or IntakeSettings()
    phone = phone or settings.phone
    web = web or WebSettings()
    captcha = captcha or CaptchaSettings()
    email = email or EmailInboxSettings()
    clock = SystemClock()
    catalogue = load_catalogue()

    serves_public, serves_privacy = "public" in settings.surfaces, "privacy" in settings.surfaces
    status_tokens = StatusTokens(
        settings.status_link_key.get_secret_value() if settings.status_link_key else LOCAL_STATUS_LINK_KEY
    )
    status_links = StatusLinks(settings.public_base_url, status_tokens, ttl=timedelta(days=settings.status_link_ttl_days))

    def register(runtime: Runtime) -> list[Any]:
        if serves_public:
            runtime.publishes(
                TRAINING_REQUESTS, TrainingRequestReceived, CallbackSlotChosen, TrainingRequestWithdrawn, RequestDetailsCorrected
            )
        if serves_privacy:
            runtime.publishes(PRIVACY, PersonDataErased)
        outbox = Outbox(runtime.db, "intake_outbox", tracer=runtime.tracing.tracer)
        keys = PersonKeys(runtime.db)
        pipeline = IntakePipeline(
            runtime.mongo,
            runtime.db,
            outbox,
            link_window=timedelta(days=settings.link_window_days),
            clock=clock.now,
            personal=PersonalData(keys),
            status_links=status_links,
        )
        runtime.app_state["pipeline"] = pipeline
        routers: list[Any] = []
        if serves_privacy:
            runtime.app_state["erasures"] = Erasures(runtime.mongo, runtime.db, outbox, keys)
            runtime.app_state["identity_links"] = IdentityLinks(runtime.mongo, runtime.db)
            routers += [erasure_router, identity_router]
        if serves_public:
            # The phone line's out-of-hours and holiday flags follow the closure days staff set.
            calendar = LiveCalendar()
            feed = ConfigurationFeed(settings.kafka, client_id=f"intake-configuration-{instance_name(settings)}")

            @feed.on_change
            def apply_closures(setting: str, config: Configuration) -> None:
                if setting == "closures" and config.closures is not None:
                    calendar.replace_closures(config.closures.as_mapping())

            # Intake starts while Kafka is down (its outbox holds requests): it catches up in the background.
            feed.attach(runtime, before_ready=False)
            # Counters and Idempotency-Key claims in MongoDB: every replica sees the same ones.
            rate_limits = MongoRateLimits(runtime.db)
            idempotency_keys = MongoIdempotencyKeys(runtime.db, timedelta(hours=web.idempotency_key_hours))
            runtime.on_startup(lambda _: rate_limits.ensure_indexes())
            runtime.on_startup(lambda _: idempotency_keys.ensure_indexes())
            verifier = CaptchaVerifier.from_settings(captcha)
            if verifier is not None:
                runtime.on_shutdown(lambda _: verifier.aclose())
            runtime.app_state.update(
                web=WebChannel(
                    pipeline,
                    web,
                    catalogue,
                    clock.now,
                    rate_limits=rate_limits,
                    idempotency_keys=idempotency_keys,
                    captcha=verifier,
                    captcha_widget=captcha.widget(),
                ),
                phone=PhoneChannel(pipeline, phone, calendar, clock.now),
            )
            # The status pages read a projection of the events about each request, fed by a subscriber of
            # intake's own; the person's actions go out through the outbox like the requests.
            projection = StatusProjection(runtime.db)
            status = StatusService(
                projection=projection,
                processed=ProcessedEvents(runtime.mongo, runtime.db, STATUS_CONSUMER),
                outbox=outbox,
                personal=PersonalData(keys),
                tokens=status_tokens,
                calendar=calendar,
                catalogue=catalogue,
                clock=clock.now,
            )
            runtime.app_state["status"] = status
            status_handlers.include(runtime.broker, status)
            runtime.on_startup(lambda _: projection.ensure_indexes())
            routers += [web_router, phone_router, adapter_router, status_router]
        runtime.on_startup(lambda _: pipeline.ensure_indexes())
        runtime.run_in_background(
            "intake.outbox_relay",
            lambda: outbox.run_relay(runtime.broker, holder=instance_name(settings), connected=runtime.kafka_connected),
        )
        if serves_public and email.enabled:
            inbox = EmailInbox(pipeline, email, catalogue=catalogue)
            runtime.app_state["inbox"] = inbox

            async def start_inbox(_: Runtime) -> None:
                await inbox.start()

            async def stop_inbox(_: Runtime) -> None:
                await inbox.stop()

            runtime.on_startup(start_inbox)
            runtime.on_shutdown(stop_inbox)
        return routers

    return create_service_app(
        settings,
        title="formation-events intake",
        description=(
            "Receives job seekers' training requests by phone (telephony webhook), e-mail (SMTP inbox) "
            "and web (form and JSON API), and publishes them to training.requests.v1."
        ),
        register=register,
        kafka_required=False,
    )
