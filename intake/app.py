"""Intake's wiring: the three channels, the pipeline, and the outbox relay to Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, status
from pydantic import BaseModel, Field

from intake.domain import AcceptedRequest, RequestDraft
from intake.pipeline import IntakePipeline
from intake.settings import IntakeSettings
from schemas import Channel, Language, TrainingRequestReceived
from schemas.topics import TRAINING_REQUESTS
from services import Runtime, create_service_app
from services.app import instance_name
from services.outbox import Outbox


class RequestSubmission(BaseModel):
    name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=254)
    language: Language = Language.FR
    need: str = Field("", max_length=5000)
    requested_course: str | None = Field(None, max_length=64)
    consent_to_contact: bool


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    def register(runtime: Runtime) -> list[Any]:
        runtime.publishes(TRAINING_REQUESTS, TrainingRequestReceived)
        outbox = Outbox(runtime.db, "intake_outbox")
        pipeline = IntakePipeline(runtime.mongo, runtime.db, outbox, link_window=timedelta(days=settings.link_window_days))
        runtime.app_state["pipeline"] = pipeline
        runtime.on_startup(lambda _: pipeline.ensure_indexes())
        runtime.run_in_background(
            "intake.outbox_relay",
            lambda: outbox.run_relay(runtime.broker, holder=instance_name(settings), connected=runtime.kafka_connected),
        )
        router = APIRouter(prefix="/api/v1", tags=["requests"])

        @router.post("/requests", status_code=status.HTTP_202_ACCEPTED)
        async def submit_request(submission: RequestSubmission) -> AcceptedRequest:
            return await pipeline.accept(
                RequestDraft(
                    channel=Channel.WEB,
                    source="/intake/web/api",
                    received_at=datetime.now(UTC),
                    language=submission.language,
                    consent_to_contact=submission.consent_to_contact,
                    name=submission.name,
                    phone=submission.phone,
                    email=submission.email,
                    need=submission.need,
                    requested_course=submission.requested_course,
                )
            )

        return [router]

    return create_service_app(
        settings,
        title="formation-events intake",
        description="Receives job seekers' training requests by phone, e-mail and web, and publishes them to training.requests.v1.",
        register=register,
        kafka_required=False,
    )
