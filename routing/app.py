"""Routing's wiring: consume requests, store decisions once, publish `TrainingRequestRouted`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI
from pymongo.asynchronous.client_session import AsyncClientSession

from routing.decision import RULE_SET_VERSION, decide_route
from routing.settings import RoutingSettings
from schemas import TrainingRequestReceived, TrainingRequestRouted
from schemas.topics import TRAINING_REQUESTS, TRAINING_ROUTING
from services import Runtime, create_service_app, subscriber_options

log = structlog.get_logger(__name__)


def create_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()

    def register(runtime: Runtime) -> list[Any]:
        decisions = runtime.db["routing_decisions"]
        runtime.publishes(TRAINING_ROUTING, TrainingRequestRouted)

        @runtime.broker.subscriber(TRAINING_REQUESTS.name, **subscriber_options("routing"))
        async def on_training_request_received(event: TrainingRequestReceived) -> None:
            decision = decide_route(event)
            routed = TrainingRequestRouted.following(
                event,
                source="/routing",
                request_id=event.request_id,
                person_id=event.person_id,
                target=decision.target,
                rule_id=decision.rule_id,
                rule_set_version=RULE_SET_VERSION,
                explanation=decision.explanation,
                priority=0,
                priority_parts={},
                callback_deadline=None,
                assignee_id=None,
            )

            async def store(session: AsyncClientSession) -> list[TrainingRequestRouted]:
                await decisions.insert_one(
                    {
                        "_id": event.request_id,
                        "person_id": event.person_id,
                        "channel": event.channel.value,
                        "target": decision.target.value,
                        "rule_id": decision.rule_id,
                        "rule_set_version": RULE_SET_VERSION,
                        "explanation": decision.explanation,
                        "received_at": event.received_at,
                        "decided_at": datetime.now(UTC),
                        "routed_event_id": str(routed.id),
                    },
                    session=session,
                )
                return [routed]

            outcome = await runtime.processed.run_once(event, store, broker=runtime.broker)
            if outcome.applied:
                log.info("request.routed", request_id=event.request_id, target=decision.target.value, rule_id=decision.rule_id)

        return []

    return create_service_app(
        settings,
        title="formation-events routing",
        description="Routes training requests to advisors or the espaces numériques team and enforces the callback SLA.",
        register=register,
    )
