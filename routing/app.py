"""Routing's wiring: consume requests, decide and queue them once, offer them to workers, keep
the callback timers, and serve the desk."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI

from routing import handlers
from routing.api import desk_router
from routing.assignment import AssignmentStore
from routing.configuration import ConfigurationStore, RoutingSettingsApplier, StaffConfiguration
from routing.configuration_api import configuration_router
from routing.console import console_router, desk_console
from routing.console.sessions_page import sessions_page_router
from routing.desk import Desk
from routing.enrolment import CourseSeats
from routing.programme import DigitalDivideProgramme
from routing.programme_desk import ProgrammeDesk, programme_router
from routing.roster import load_roster
from routing.rules import load_rules
from routing.service import RoutingPolicy, RoutingService
from routing.sessions_api import sessions_router
from routing.settings import RoutingSettings
from routing.spaces import Bookings, Spaces
from schemas import (
    ConfigurationChanged,
)
from schemas.topics import CONFIGURATION, TRAINING_ENROLMENTS, TRAINING_ROUTING
from services import Runtime, create_service_app
from services.admin import admin_router
from services.app import instance_name
from services.calendar import LiveCalendar
from services.catalogue import load_catalogue
from services.clock import Clock, SimulatedClock, SystemClock
from services.configuration import ConfigurationFeed
from services.console import MongoSessions, OidcClient, sign_in_router
from services.leases import Lease
from services.outbox import Outbox
from services.timers import TimerStore

log = structlog.get_logger(__name__)


def build_clock(settings: RoutingSettings) -> Clock:
    if settings.clock == "simulated":
        start = settings.clock_start
        return SimulatedClock(start - datetime.now(UTC) if start else timedelta(0))
    return SystemClock()


def create_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()
    clock = build_clock(settings)
    catalogue = load_catalogue()
    rules = load_rules(settings.rules_path, catalogue=catalogue) if settings.rules_path else load_rules()
    # Live: staff change the closures (and the rule set, in `policy.rules`) while routing runs.
    calendar = LiveCalendar()
    policy = RoutingPolicy(rules=rules, calendar=calendar, catalogue=catalogue)
    roster = load_roster(settings.workers_path)

    def register(runtime: Runtime) -> list[Any]:
        me = instance_name(settings)
        outbox = Outbox(runtime.db, "routing_outbox", tracer=runtime.tracing.tracer)
        assignment = AssignmentStore(
            runtime.mongo,
            runtime.db,
            reservation_timeout=rules.desk.reservation_timeout,
            escalate_after=rules.desk.escalate_after,
            clock=clock.now,
            # Nobody is offered a call on a public holiday or a closure day, whatever their hours.
            closed_on=calendar.is_holiday,
        )
        timers = TimerStore(runtime.mongo, runtime.db, clock=clock, owner=me, tracer=runtime.tracing.tracer)
        service = RoutingService(
            runtime.mongo,
            runtime.db,
            policy=policy,
            clock=clock,
            processed=runtime.processed,
            assignment=assignment,
            timers=timers,
            programme=DigitalDivideProgramme(
                runtime.mongo, runtime.db, quota=rules.quotas.digital_divide_per_year, outbox=outbox
            ),
            seats=CourseSeats(runtime.mongo, runtime.db, catalogue, clock=clock, outbox=outbox),
            outbox=outbox,
        )
        feed = ConfigurationFeed(settings.kafka, client_id=f"routing-configuration-{me}")
        feed.on_change(RoutingSettingsApplier(policy, service.programme, assignment, shipped_rules=rules))
        configuration = StaffConfiguration(
            ConfigurationStore(runtime.mongo, runtime.db, outbox=outbox),
            feed,
            policy=policy,
            shipped_rules=rules,
            programme=service.programme,
            clock=clock,
            on_admitted=service.admit_waiting,
        )
        runtime.app_state["configuration"] = configuration
        runtime.publishes(CONFIGURATION, ConfigurationChanged)
        sessions = MongoSessions(runtime.db)
        oidc = OidcClient(settings.auth, settings.console_client_id)
        bookings = Bookings(runtime.mongo, runtime.db, outbox=outbox)
        runtime.app_state.update(
            service=service,
            desk=Desk(service, tracer=runtime.tracing.tracer),
            programme_desk=ProgrammeDesk(service, Spaces(runtime.db, outbox=outbox), bookings),
            clock=clock,
            console=desk_console(sessions, oidc),
        )
        # Routing is the only producer of both topics: it publishes every event they carry.
        runtime.publishes(TRAINING_ROUTING, *TRAINING_ROUTING.events)
        runtime.publishes(TRAINING_ENROLMENTS, *TRAINING_ENROLMENTS.events)

        handlers.include(
            runtime.broker,
            service,
            batch_max_records=settings.batch_max_records,
            batch_timeout_ms=settings.batch_timeout_ms,
        )

        async def prepare(_: Runtime) -> None:
            await asyncio.gather(
                outbox.ensure_indexes(),
                assignment.ensure_indexes(),
                timers.ensure_indexes(),
                service.ensure_indexes(),
                service.programme.ensure_indexes(),
                service.seats.ensure_indexes(),
                bookings.ensure_indexes(),
                sessions.ensure_indexes(),
                configuration.store.ensure_indexes(),
            )
            for worker in roster:
                await assignment.upsert_worker(worker)
            # The store first (the latest change may still be in the outbox), then the topic (attached below).
            await configuration.load()

        runtime.on_startup(prepare)
        feed.attach(runtime)

        async def close_console(_: Runtime) -> None:
            await oidc.aclose()

        runtime.on_shutdown(close_console)

        async def dispatch_forever() -> None:
            # One dispatcher at a time: offers are safe from any replica, but racing for the
            # same queue only burns transactions.
            lease = Lease(runtime.db, "routing:dispatcher", me, ttl=timedelta(seconds=10))
            while True:
                if await lease.acquire():
                    await service.dispatch_once()
                await asyncio.sleep(settings.dispatch_interval.total_seconds())

        runtime.run_in_background("routing.dispatcher", dispatch_forever)
        runtime.run_in_background(
            "routing.timers",
            lambda: timers.run(service.timer_handlers(), poll_interval=settings.timer_poll_interval.total_seconds()),
        )
        runtime.run_in_background(
            "routing.outbox_relay", lambda: outbox.run_relay(runtime.broker, holder=me, connected=runtime.kafka_connected)
        )
        routers = [
            desk_router,
            sessions_router,
            programme_router,
            configuration_router,
            sign_in_router,
            console_router,
            sessions_page_router,
        ]
        return [*routers, admin_router] if isinstance(clock, SimulatedClock) else routers

    return create_service_app(
        settings,
        title="formation-events routing",
        description=(
            "Routes training requests to training advisors, the BF espaces numériques team, the digital-divide "
            "programme or the Cité des métiers; offers each to one worker; keeps the 48-hour callback promise; "
            "serves the desk."
        ),
        register=register,
    )
