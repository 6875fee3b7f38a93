"""Staff alerts, durable and once: plan them in the handler's transaction, send them from a loop.

Like the job seekers' deliveries (`notification.sender`), but smaller: each routing event is
applied once (`ProcessedEvents.run_once`, consumer `notification-staff`) and its effect is one
alert document per member of staff told (`notification_staff_alerts`, `_id` = event id and
worker id), in the same transaction. A loop claims due alerts, sends each through the same
`MailSender`, and records the outcome; a transient failure is tried again on the delivery
retry policy's schedule, a permanent one is recorded as failed (or bounced). An alert for a
worker the staff directory does not know is recorded as skipped (`unknown_worker`) and never tried.

Alert states: queued -> sending -> sent | failed | bounced; queued <- sending (transient,
attempts left); skipped (unknown worker). A `sending` alert whose claim expired is claimable again.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from jinja2 import TemplateError
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from notification.messages import MessageRenderer
from notification.model import DeliveryStatus
from notification.ports import MailSender, OutgoingEmail, SendResult, SendStatus
from notification.retry import RetryPolicy
from notification.sender import poll_due
from notification.staff import PlannedAlert, StaffDirectory, alert_id, staff_alerts_for
from notification.store import ClaimLost, claim_due_documents, recorded_fields
from schemas import CallbackDue, CallbackSlaBreached, Event, PartnerInformationOverdue
from services.clock import Clock
from services.idempotency import Outcome
from services.mongo import MongoDatabase

__all__ = [
    "STAFF_ALERTS",
    "STAFF_CONSUMER",
    "UNKNOWN_WORKER",
    "MongoStaffAlertStore",
    "RunsOnce",
    "StaffAlert",
    "StaffAlertStore",
    "StaffAlerts",
]

log = structlog.get_logger(__name__)

STAFF_ALERTS = "notification_staff_alerts"
STAFF_CONSUMER = "notification-staff"
"""The processed-events consumer of staff alerts (apart from the job seekers' `notification`)."""
UNKNOWN_WORKER = "unknown_worker"

Effect = Callable[[AsyncClientSession], Awaitable[Sequence[Event]]]


class RunsOnce(Protocol):
    """`services.idempotency.ProcessedEvents`, or an in-memory fake in unit tests."""

    async def run_once(self, event: Event, effect: Effect) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class StaffAlert:
    """One alert as the sending loop sees it."""

    id: str
    about_event_id: str
    recipient_id: str
    role: str
    template: str
    facts: dict[str, Any]
    status: DeliveryStatus
    attempts: int

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> StaffAlert:
        return cls(
            id=doc["_id"],
            about_event_id=doc["about_event_id"],
            recipient_id=doc["recipient_id"],
            role=doc["role"],
            template=doc["template"],
            facts=dict(doc.get("facts") or {}),
            status=DeliveryStatus(doc["status"]),
            attempts=int(doc.get("attempts", 0)),
        )


def alert_document(event: Event, alert: PlannedAlert, *, now: datetime) -> dict[str, Any]:
    """The stored alert: ids, times and states only (no address, nothing about the job seeker)."""
    status = DeliveryStatus.QUEUED if alert.known else DeliveryStatus.SKIPPED
    reason = None if alert.known else UNKNOWN_WORKER
    return {
        "_id": alert_id(event.id, alert.recipient_id),
        "about_event_id": str(event.id),
        "about_event_type": event.type,
        "correlation_id": str(event.correlation_id or event.id),
        "request_id": alert.facts["request_id"],
        "recipient_id": alert.recipient_id,
        "role": alert.role.value,
        "template": alert.template,
        "facts": alert.facts,
        "status": status.value,
        "reason": reason,
        "attempts": 0,
        "next_attempt_at": now if alert.known else None,
        "claimed_by": None,
        "claim_expires_at": None,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
        "last_error": None,
    }


class StaffAlertStore(ABC):
    """Where alerts are kept: `MongoStaffAlertStore`, or an in-memory fake in unit tests."""

    @abstractmethod
    async def add(self, docs: Sequence[dict[str, Any]], *, session: AsyncClientSession | None) -> list[str]:
        """Insert the alerts not stored yet (by `_id`); the ids inserted."""

    @abstractmethod
    async def claim_due(self, *, owner: str, now: datetime, lease: timedelta, limit: int) -> list[StaffAlert]:
        """Claim up to `limit` queued alerts due by `now`, or `sending` ones whose claim expired."""

    @abstractmethod
    async def record(
        self,
        alert: StaffAlert,
        *,
        owner: str,
        status: DeliveryStatus,
        now: datetime,
        attempted: bool,
        next_attempt_at: datetime | None = None,
        reason: str | None = None,
        error: str | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        """Move an alert claimed by `owner` to `status`; raises `ClaimLost` if it is not ours any more."""

    @abstractmethod
    async def get(self, alert_id_: str) -> dict[str, Any] | None: ...

    async def ensure_indexes(self) -> None:  # noqa: B027 - optional hook
        """Create what the store needs; nothing by default."""


class MongoStaffAlertStore(StaffAlertStore):
    def __init__(self, db: MongoDatabase) -> None:
        self._alerts = db[STAFF_ALERTS]

    async def ensure_indexes(self) -> None:
        await self._alerts.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="status_next_attempt_at")
        await self._alerts.create_index([("status", ASCENDING), ("claim_expires_at", ASCENDING)], name="status_claim_expires_at")
        await self._alerts.create_index([("recipient_id", ASCENDING), ("created_at", ASCENDING)], name="recipient_created_at")

    async def add(self, docs: Sequence[dict[str, Any]], *, session: AsyncClientSession | None) -> list[str]:
        created = []
        for doc in docs:
            fields = {k: v for k, v in doc.items() if k != "_id"}
            result = await self._alerts.update_one({"_id": doc["_id"]}, {"$setOnInsert": fields}, upsert=True, session=session)
            if result.upserted_id is not None:
                created.append(doc["_id"])
        return created

    async def claim_due(self, *, owner: str, now: datetime, lease: timedelta, limit: int) -> list[StaffAlert]:
        docs = await claim_due_documents(
            self._alerts, waiting=(DeliveryStatus.QUEUED,), owner=owner, now=now, lease=lease, limit=limit
        )
        return [StaffAlert.from_document(doc) for doc in docs]

    async def record(
        self,
        alert: StaffAlert,
        *,
        owner: str,
        status: DeliveryStatus,
        now: datetime,
        attempted: bool,
        next_attempt_at: datetime | None = None,
        reason: str | None = None,
        error: str | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        fields = recorded_fields(status, now, next_attempt_at, reason, error, provider_message_id)
        update: dict[str, Any] = {"$set": fields}
        if attempted:
            update["$inc"] = {"attempts": 1}
        doc = await self._alerts.find_one_and_update(
            {"_id": alert.id, "status": DeliveryStatus.SENDING.value, "claimed_by": owner}, update
        )
        if doc is None:
            raise ClaimLost(alert.id)

    async def get(self, alert_id_: str) -> dict[str, Any] | None:
        return await self._alerts.find_one({"_id": alert_id_})


class StaffAlerts:
    """Plans staff alerts from routing's events and sends them."""

    def __init__(
        self,
        *,
        processed: RunsOnce,
        store: StaffAlertStore,
        directory: StaffDirectory,
        renderer: MessageRenderer,
        mail: MailSender,
        clock: Clock,
        retry: RetryPolicy,
        console_url: str,
        owner: str,
        lease: timedelta = timedelta(minutes=2),
        rng: random.Random | None = None,
    ) -> None:
        self.processed = processed
        self.store = store
        self.directory = directory
        self.renderer = renderer
        self.mail = mail
        self.clock = clock
        self.retry = retry
        self.console_url = console_url
        self.owner = owner
        self.lease = lease
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    # --- planning (the Kafka handler) ---------------------------------------------------

    async def alert(self, event: Event) -> Outcome | None:
        """Record the alerts `event` gives staff, once; None if it tells staff nothing."""
        if not isinstance(event, CallbackDue | CallbackSlaBreached | PartnerInformationOverdue):
            return None
        planned = staff_alerts_for(event, self.directory, console_url=self.console_url)
        if not planned:
            return None
        created: list[str] = []

        async def effect(session: AsyncClientSession) -> list[Event]:
            created.clear()  # the transaction may run again
            now = self.clock.now()
            created.extend(await self.store.add([alert_document(event, a, now=now) for a in planned], session=session))
            return []

        outcome = await self.processed.run_once(event, effect)
        if outcome.applied:
            for alert in planned:
                log.info(
                    "notification.staff_alert_planned",
                    about_event_id=str(event.id),
                    request_id=event.request_id,
                    recipient_id=alert.recipient_id,
                    role=alert.role.value,
                    template=alert.template,
                    status=DeliveryStatus.QUEUED.value if alert.known else DeliveryStatus.SKIPPED.value,
                    reason=None if alert.known else UNKNOWN_WORKER,
                )
        if created:
            self.wake()
        return outcome

    # --- sending (the background loop) --------------------------------------------------

    async def run(self, *, poll_interval: float = 1.0, batch: int = 20) -> None:
        """Send due alerts forever; `poll_interval` is real seconds between empty rounds."""
        await poll_due(
            self.send_due, self._wake, poll_interval=poll_interval, batch=batch, failed="notification.staff_alerts_poll_failed"
        )

    async def send_due(self, batch: int = 20) -> int:
        """Claim up to `batch` due alerts and send them one after the other; how many were claimed."""
        claimed = await self.store.claim_due(owner=self.owner, now=self.clock.now(), lease=self.lease, limit=batch)
        for alert in claimed:
            try:
                await self.process(alert)
            except asyncio.CancelledError:
                raise
            except ClaimLost:
                log.info("notification.claim_lost", alert_id=alert.id, owner=self.owner)
            except Exception:  # left `sending`: claimable again once the lease expires
                log.exception("notification.staff_alert_crashed", alert_id=alert.id)
        return len(claimed)

    async def process(self, alert: StaffAlert) -> None:
        member = self.directory.get(alert.recipient_id)
        if member is None:  # left the roster since the alert was planned
            await self.store.record(
                alert,
                owner=self.owner,
                status=DeliveryStatus.SKIPPED,
                now=self.clock.now(),
                attempted=False,
                reason=UNKNOWN_WORKER,
            )
            log.info(
                "notification.staff_alert_skipped", alert_id=alert.id, recipient_id=alert.recipient_id, reason=UNKNOWN_WORKER
            )
            return
        template = alert.template
        try:
            message = self.renderer.render(alert.template, member.language, alert.facts)
        except TemplateError as error:  # a bug of ours, caught by the template tests; retrying would not fix it
            log.error("notification.template_failed", alert_id=alert.id, template=template, error_type=type(error).__name__)
            result = SendResult.permanent(f"template error: {type(error).__name__}")
        else:
            template = message.template
            result = await self._send(alert, member.email, message.subject, message.text, message.html, message.language)
        done_at = self.clock.now()
        step = self.retry.after(result, attempts=alert.attempts + 1, now=done_at, rng=self.rng)
        reason = None
        if step.final and step.status is not DeliveryStatus.SENT:
            reason = "attempts_exhausted" if result.status is SendStatus.TRANSIENT else step.status.value
        await self.store.record(
            alert,
            owner=self.owner,
            status=step.status,
            now=done_at,
            attempted=True,
            next_attempt_at=step.next_attempt_at,
            reason=reason,
            error=result.reason or None,
            provider_message_id=result.provider_message_id,
        )
        log.info(
            "notification.staff_alert_attempted",
            alert_id=alert.id,
            recipient_id=alert.recipient_id,
            template=template,
            status=step.status.value,
            attempts=alert.attempts + 1,
            reason=reason or result.reason or None,
            next_attempt_at=step.next_attempt_at,
        )

    async def _send(self, alert: StaffAlert, to: str, subject: str, text: str, html: str, language: str) -> SendResult:
        try:
            return await self.mail.send(
                OutgoingEmail(
                    delivery_id=alert.id, to_address=to, to_name=None, language=language, subject=subject, text=text, html=html
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # an adapter bug must not lose the alert: retry it
            log.exception("notification.adapter_failed", alert_id=alert.id, channel="email")
            return SendResult.transient(f"adapter error: {type(error).__name__}")
