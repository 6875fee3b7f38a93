"""Intake's wiring: the HTTP API, the outbox and its relay to Kafka."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Depends, status
from fastapi import FastAPI
from pydantic import BaseModel, Field

from intake.settings import IntakeSettings
from schemas import Channel, Contact, Language, TrainingRequestReceived
from schemas.topics import TRAINING_REQUESTS
from services import Runtime, create_service_app, get_runtime
from services.app import instance_name
from services.outbox import Outbox
from datetime import UTC, datetime


class RequestSubmission(BaseModel):
    """A training request as a partner site or the Cité des métiers posts it."""

    name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=254)
    language: Language = Language.FR
    need: str = Field("", max_length=5000)
    requested_course: str | None = Field(None, max_length=64)
    consent_to_contact: bool


class Accepted(BaseModel):
    request_id: str
    status: str = "accepted"


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    def register(runtime: Runtime) -> list[Any]:
        outbox = Outbox(runtime.db, "intake_outbox")
        runtime.publishes(TRAINING_REQUESTS, TrainingRequestReceived)
        runtime.on_startup(lambda _: outbox.ensure_indexes())
        runtime.run_in_background(
            "intake.outbox_relay", lambda: outbox.run_relay(runtime.broker, holder=instance_name(settings))
        )
        router = APIRouter(prefix="/api/v1", tags=["requests"])

        @router.post("/requests", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
        async def submit_request(
            submission: RequestSubmission, rt: Annotated[Runtime, Depends(get_runtime)]
        ) -> Accepted:
            request_id = str(uuid4())
            event = TrainingRequestReceived(
                source="/intake/web/api",
                subject=request_id,
                request_id=request_id,
                person_id=request_id,
                channel=Channel.WEB,
                received_at=datetime.now(UTC),
                contact=Contact(name=submission.name, phone=submission.phone, email=submission.email),
                language=submission.language,
                need=submission.need,
                requested_course=submission.requested_course,
                consent_to_contact=submission.consent_to_contact,
            )
            await outbox.add([event])
            return Accepted(request_id=request_id)

        return [router]

    return create_service_app(
        settings,
        title="formation-events intake",
        description="Receives job seekers' training requests and publishes them to training.requests.v1.",
        register=register,
    )
