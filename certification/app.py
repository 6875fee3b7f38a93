"""Certification's wiring: enrolments make candidates, exam requests fill waitlists, open centres and
new sessions offer seats, offers expire on durable timers, and the HTTP API serves staff, candidates
and anyone checking a credential."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI

from certification import handlers
from certification.api import SURFACES
from certification.certifications import load_certifications
from certification.console import SESSIONS_COLLECTION, console_router, staff_console
from certification.credentials import CredentialLinks, IssuerProfile
from certification.offer_links import LOCAL_OFFER_TOKEN_KEY, OfferLinks, OfferTokens
from certification.offer_page import LIMITS
from certification.offer_responses import OfferResponses
from certification.service import CertificationService
from certification.settings import CertificationSettings
from certification.signing import CredentialSigner
from schemas import (
    CertificateIssued,
    ExamScheduled,
    ExamSeatOfferAccepted,
    ExamSeatOfferDeclined,
    ExamSeatOffered,
    ExamSeatOfferExpired,
)
from schemas.topics import CERTIFICATION_EXAMS
from services import Runtime, create_service_app
from services.admin import admin_router
from services.app import instance_name
from services.clock import Clock, SimulatedClock, SystemClock
from services.configuration import Configuration, ConfigurationFeed
from services.console import MongoSessions, OidcClient, sign_in_router
from services.leases import Lease
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.ratelimits import MongoRateLimits
from services.timers import TimerStore

log = structlog.get_logger(__name__)

TIMERS_COLLECTION = "certification_timers"


def build_clock(settings: CertificationSettings) -> Clock:
    if settings.clock == "simulated":
        start = settings.clock_start
        return SimulatedClock(start - datetime.now(UTC) if start else timedelta(0))
    return SystemClock()


def _token_key(settings: CertificationSettings) -> str:
    return settings.offer_token_key.get_secret_value() if settings.offer_token_key else LOCAL_OFFER_TOKEN_KEY


def build_service(runtime: Runtime, settings: CertificationSettings, clock: Clock) -> CertificationService:
    """The service as the app runs it; tests build it the same way around their own runtime pieces."""
    certifications = load_certifications(path=settings.certifications_path)
    links = CredentialLinks(settings.public_base_url)
    signer = (
        CredentialSigner.from_seed(settings.signing_key.get_secret_value(), verification_method=links.signing_key)
        if settings.signing_key is not None
        else None
    )
    if signer is None:
        # Only local and test runs get here: production settings refuse to load without a key.
        log.warning("credentials.unsigned", reason="no CERTIFICATION_SIGNING_KEY", environment=settings.environment)
    personal = PersonalData(PersonKeys(runtime.db))
    if settings.offer_token_key is None:
        # Likewise: production refuses to start without CERTIFICATION_OFFER_TOKEN_KEY.
        log.warning("offers.local_token_key", reason="no CERTIFICATION_OFFER_TOKEN_KEY", environment=settings.environment)
    return CertificationService(
        runtime.mongo,
        runtime.db,
        certifications=certifications,
        clock=clock,
        processed=runtime.processed,
        outbox=Outbox(runtime.db, "certification_outbox", tracer=runtime.tracing.tracer),
        timers=TimerStore(
            runtime.mongo,
            runtime.db,
            clock=clock,
            owner=instance_name(settings),
            collection=TIMERS_COLLECTION,
            tracer=runtime.tracing.tracer,
        ),
        links=links,
        issuer=IssuerProfile(id=links.issuer, name=certifications.issuer_name, url=settings.issuer_url),
        offer_links=OfferLinks(settings.public_base_url, OfferTokens(_token_key(settings))),
        seal=personal.seal,
        personal=personal,
        offer_terms=settings.offer_terms,
        what_to_bring=settings.what_to_bring,
        signer=signer,
        routed_priority_from=settings.high_priority_routed_from,
        routed_priority_boost=settings.high_priority_boost,
    )


def create_app(settings: CertificationSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or CertificationSettings()
    clock = clock or build_clock(settings)

    staff = "staff" in settings.surfaces

    def register(runtime: Runtime) -> list[Any]:
        me = instance_name(settings)
        service = build_service(runtime, settings, clock)
        tokens = OfferTokens(_token_key(settings))
        runtime.app_state.update(service=service, clock=clock, offer_responses=OfferResponses(service.seats, tokens))
        if "public" in settings.surfaces:
            limits = MongoRateLimits(runtime.db, "certification_rate_limits")
            runtime.app_state[LIMITS] = (limits, settings.offer_page_rate_per_minute)
            runtime.on_startup(lambda _: limits.ensure_indexes())
        routers = [router for surface in sorted(settings.surfaces) for router in SURFACES[surface]]
        if not staff:
            return routers
        runtime.publishes(
            CERTIFICATION_EXAMS,
            ExamSeatOffered,
            ExamSeatOfferAccepted,
            ExamSeatOfferDeclined,
            ExamSeatOfferExpired,
            ExamScheduled,
            CertificateIssued,
        )

        handlers.include(
            runtime.broker,
            service.candidates,
            priority_from_routing=settings.high_priority_routed_from is not None,
            contacts=service.contacts,
        )

        # The staff's browser console: on the staff surface only, with sessions of its own.
        sessions = MongoSessions(runtime.db, SESSIONS_COLLECTION)
        oidc = OidcClient(settings.auth, settings.console_client_id)
        runtime.app_state["console"] = staff_console(sessions, oidc)
        routers = [*routers, sign_in_router, console_router]

        async def prepare(_: Runtime) -> None:
            await asyncio.gather(
                service.ensure_indexes(),
                service.outbox.ensure_indexes(),
                service.timers.ensure_indexes(),
                sessions.ensure_indexes(),
            )

        runtime.on_startup(prepare)

        # Which certifications are open for exams follows staff's configuration (routing's /config).
        feed = ConfigurationFeed(settings.kafka, client_id=f"certification-configuration-{me}")

        @feed.on_change
        def apply_certifications(setting: str, config: Configuration) -> None:
            if setting == "certifications" and config.certifications is not None:
                service.certifications.open_only(frozenset(config.certifications.codes))

        feed.attach(runtime)

        async def close_console(_: Runtime) -> None:
            await oidc.aclose()

        runtime.on_shutdown(close_console)

        async def expire_offers_forever() -> None:
            while True:
                await service.seats.run_timers_once()
                await asyncio.sleep(settings.timer_poll_interval.total_seconds())

        async def sweep_forever() -> None:
            # One sweeper at a time: offering is safe from any replica, but racing only burns transactions.
            lease = Lease(runtime.db, "certification:allocator", me, ttl=settings.allocation_interval * 3)
            while True:
                if await lease.acquire():
                    await service.seats.fill_all()
                await asyncio.sleep(settings.allocation_interval.total_seconds())

        runtime.run_in_background("certification.offer_timers", expire_offers_forever)
        runtime.run_in_background("certification.allocator", sweep_forever)
        runtime.run_in_background(
            "certification.outbox_relay",
            lambda: service.outbox.run_relay(runtime.broker, holder=me, connected=runtime.kafka_connected),
        )
        return [*routers, admin_router] if isinstance(clock, SimulatedClock) else routers

    return create_service_app(
        settings,
        title="formation-events certification",
        description=(
            "Carries candidates from enrolment to an exam seat and a certificate: waitlists per certification, "
            "exam sessions in training centres (closed during the lockdown), seat offers with a deadline, results, "
            "and Open Badges 3.0 credentials that can be fetched and revoked."
        ),
        register=register,
        kafka_required=staff,
    )
