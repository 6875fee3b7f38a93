"""Certification's wiring: enrolments in certifying paths make candidates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI
from pymongo.asynchronous.client_session import AsyncClientSession

from certification.settings import CertificationSettings
from schemas import EnrolmentConfirmed, Event, ExamSchedulingRequested
from schemas.topics import TRAINING_ENROLMENTS
from services.kafka import topic_name
from services import Runtime, create_service_app, subscriber_options

log = structlog.get_logger(__name__)


def create_app(settings: CertificationSettings | None = None) -> FastAPI:
    settings = settings or CertificationSettings()

    def register(runtime: Runtime) -> list[Any]:
        candidates = runtime.db["candidates"]

        @runtime.broker.subscriber(topic_name(TRAINING_ENROLMENTS), **subscriber_options("certification"))
        async def on_enrolment_event(event: Event) -> None:
            if not isinstance(event, EnrolmentConfirmed | ExamSchedulingRequested):
                return

            async def record(session: AsyncClientSession) -> list[Event]:
                await candidates.update_one(
                    {"_id": event.person_id},
                    {"$setOnInsert": {"since": datetime.now(UTC)}, "$push": {"history": {"event_id": str(event.id), "type": event.type}}},
                    upsert=True,
                    session=session,
                )
                return []

            outcome = await runtime.processed.run_once(event, record, broker=runtime.broker)
            if outcome.applied:
                log.info("candidate.recorded", person_id=event.person_id, event_type=event.type)

        return []

    return create_service_app(
        settings,
        title="formation-events certification",
        description="Carries candidates from enrolment to exam seats and certificates.",
        register=register,
    )
