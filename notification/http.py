"""Notification's HTTP API for support staff: a person's channel preferences and their deliveries.

What it returns is ids, states and flags: never an address, a number or a message body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from notification.service import NotificationService
from schemas import NotificationChannel
from services.app import Runtime, get_runtime
from services.auth import PROTECTED, error_responses, requires
from services.auth.roles import NOTIFICATION_PREFERENCES, NOTIFICATION_SUPPORT, may

__all__ = ["ChannelChoice", "DeliveryView", "PersonPreferences", "get_notifications", "notification_router"]


class ChannelChoice(BaseModel):
    channel: NotificationChannel = Field(description="The channel to opt out of, or back in to.", examples=["sms"])


class PersonPreferences(BaseModel):
    person_id: str
    known: bool = Field(description="Whether the person's contact is known (a request was received).")
    language: str | None
    consent: bool = Field(description="Consent to be contacted, from the latest request.")
    has_email: bool
    has_mobile: bool
    opted_out: list[NotificationChannel]
    erased: bool


class HistoryEntry(BaseModel):
    at: datetime
    status: str
    reason: str | None = None
    error: str | None = None
    attempt: int | None = None


class DeliveryView(BaseModel):
    delivery_id: str
    about_event_id: str
    about_event_type: str
    request_id: str | None
    channel: NotificationChannel
    template: str
    status: str = Field(description="queued, sending, sent, failed, bounced, deferred, skipped or waiting_for_contact.")
    reason: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime
    sent_at: datetime | None = None
    last_error: str | None = None
    fallback_of: str | None = None
    fallback_to: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)


class WaitingView(BaseModel):
    about_event_id: str
    about_event_type: str
    request_id: str | None
    template: str
    status: str = "waiting_for_contact"
    since: datetime


class PersonDeliveries(BaseModel):
    person_id: str
    deliveries: list[DeliveryView]
    waiting: list[WaitingView] = Field(description="Notices held until the person's contact arrives.")


def _delivery_view(doc: dict[str, Any]) -> DeliveryView:
    return DeliveryView(
        delivery_id=doc["_id"],
        about_event_id=doc["about_event_id"],
        about_event_type=doc.get("about_event_type", ""),
        request_id=doc.get("request_id"),
        channel=doc["channel"],
        template=doc["template"],
        status=doc["status"],
        reason=doc.get("reason"),
        attempts=doc.get("attempts", 0),
        next_attempt_at=doc.get("next_attempt_at"),
        created_at=doc["created_at"],
        sent_at=doc.get("sent_at"),
        last_error=doc.get("last_error"),
        fallback_of=doc.get("fallback_of"),
        fallback_to=doc.get("fallback_to"),
        history=[HistoryEntry(**entry) for entry in doc.get("history", [])],
    )


def get_notifications(runtime: Annotated[Runtime, Depends(get_runtime)]) -> NotificationService:
    """FastAPI dependency: the notification service of the app serving the request (`runtime.app_state["service"]`)."""
    service: NotificationService = runtime.app_state["service"]
    return service


Notifications = Annotated[NotificationService, Depends(get_notifications)]

notification_router = APIRouter(tags=["notification"], responses=error_responses(*PROTECTED))


@notification_router.post(
    "/people/{person_id}/opt-out",
    dependencies=[requires(*may(NOTIFICATION_PREFERENCES))],
    summary="Stop messages to a person on one channel",
)
async def opt_out(person_id: str, choice: ChannelChoice, notifications: Notifications) -> PersonPreferences:
    return PersonPreferences(**await notifications.change_preference(person_id, choice.channel, opted_out=True))


@notification_router.post(
    "/people/{person_id}/opt-in",
    dependencies=[requires(*may(NOTIFICATION_PREFERENCES))],
    summary="Resume messages to a person on one channel",
)
async def opt_in(person_id: str, choice: ChannelChoice, notifications: Notifications) -> PersonPreferences:
    return PersonPreferences(**await notifications.change_preference(person_id, choice.channel, opted_out=False))


@notification_router.get(
    "/people/{person_id}",
    dependencies=[requires(*may(NOTIFICATION_SUPPORT))],
    summary="A person's channels and preferences (flags only)",
)
async def person(person_id: str, notifications: Notifications) -> PersonPreferences:
    found = await notifications.preferences(person_id)
    if found is None:
        raise HTTPException(status_code=404, detail="unknown person")
    return PersonPreferences(**found)


@notification_router.get(
    "/deliveries",
    dependencies=[requires(*may(NOTIFICATION_SUPPORT))],
    summary="A person's deliveries, newest first, for support staff",
)
async def list_deliveries(
    notifications: Notifications,
    person_id: str = Query(min_length=1, description="The pseudonymous person id."),
    limit: int = Query(100, ge=1, le=500),
) -> PersonDeliveries:
    docs, waiting = await notifications.deliveries_of(person_id, limit=limit)
    return PersonDeliveries(
        person_id=person_id,
        deliveries=[_delivery_view(d) for d in docs],
        waiting=[
            WaitingView(
                about_event_id=w["about_event_id"],
                about_event_type=w["about_event_type"],
                request_id=w.get("request_id"),
                template=w["kind"],
                since=w["created_at"],
            )
            for w in waiting
        ],
    )
