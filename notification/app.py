"""Notification's wiring: react to routing events with one delivery record per event and channel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI
from pymongo.asynchronous.client_session import AsyncClientSession

from notification.settings import NotificationSettings
from schemas import Event, TrainingRequestRouted
from schemas.topics import TRAINING_ROUTING
from services.kafka import topic_name
from services import Runtime, create_service_app, subscriber_options

log = structlog.get_logger(__name__)


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or NotificationSettings()

    def register(runtime: Runtime) -> list[Any]:
        deliveries = runtime.db["deliveries"]

        @runtime.broker.subscriber(topic_name(TRAINING_ROUTING), **subscriber_options("notification"))
        async def on_routing_event(event: Event) -> None:
            if not isinstance(event, TrainingRequestRouted):
                return

            async def queue(session: AsyncClientSession) -> list[Event]:
                await deliveries.insert_one(
                    {
                        "_id": f"{event.id}:email",
                        "about_event_id": str(event.id),
                        "person_id": event.person_id,
                        "request_id": event.request_id,
                        "channel": "email",
                        "template": "request_routed",
                        "status": "queued",
                        "queued_at": datetime.now(UTC),
                    },
                    session=session,
                )
                return []

            outcome = await runtime.processed.run_once(event, queue, broker=runtime.broker)
            if outcome.applied:
                log.info("notification.queued", request_id=event.request_id, template="request_routed")

        return []

    return create_service_app(
        settings,
        title="formation-events notification",
        description="Tells job seekers what happens to their request, by e-mail and SMS.",
        register=register,
    )
