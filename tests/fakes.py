"""Small in-memory fakes of our own abstractions, for unit tests (never of Kafka or MongoDB)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from intake.domain import AcceptedRequest, RequestDraft
from notification.model import DeliveryStatus
from notification.staff_alerts import StaffAlert, StaffAlertStore
from notification.store import ClaimLost
from schemas import Event
from services.idempotency import Outcome


class RecordingPipeline:
    """A fake `intake.domain.AcceptRequests`: keeps drafts, honours dedup keys like the real one."""

    def __init__(self) -> None:
        self.drafts: list[RequestDraft] = []
        self._by_dedup_key: dict[str, AcceptedRequest] = {}
        self.fail_with: Exception | None = None

    async def accept(self, draft: RequestDraft) -> AcceptedRequest:
        if self.fail_with is not None:
            raise self.fail_with
        if draft.dedup_key and draft.dedup_key in self._by_dedup_key:
            first = self._by_dedup_key[draft.dedup_key]
            return AcceptedRequest(first.request_id, first.person_id, duplicate=True)
        self.drafts.append(draft)
        accepted = AcceptedRequest(request_id=str(uuid.uuid4()), person_id=f"p-{uuid.uuid4().hex[:12]}")
        if draft.dedup_key:
            self._by_dedup_key[draft.dedup_key] = accepted
        return accepted


class OnceInMemory:
    """A fake `services.idempotency.ProcessedEvents`: applies each event id once, no transaction."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def run_once(self, event: Event, effect: Callable[[Any], Awaitable[Sequence[Event]]]) -> Outcome:
        if str(event.id) in self.seen:
            return Outcome(applied=False, published=0)
        outputs = await effect(None)
        self.seen.add(str(event.id))
        return Outcome(applied=True, published=len(outputs))


class InMemoryStaffAlertStore(StaffAlertStore):
    """A fake `notification.staff_alerts.MongoStaffAlertStore`: the same states, in a dict."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def add(self, docs: Sequence[dict[str, Any]], *, session: Any) -> list[str]:
        created = []
        for doc in docs:
            if doc["_id"] not in self.docs:
                self.docs[doc["_id"]] = dict(doc)
                created.append(doc["_id"])
        return created

    async def claim_due(self, *, owner: str, now: datetime, lease: timedelta, limit: int) -> list[StaffAlert]:
        def due(doc: dict[str, Any]) -> bool:
            if doc["status"] == DeliveryStatus.QUEUED.value:
                return doc["next_attempt_at"] is not None and doc["next_attempt_at"] <= now
            return bool(doc["status"] == DeliveryStatus.SENDING.value and doc["claim_expires_at"] < now)

        claimed = []
        for doc in sorted((d for d in self.docs.values() if due(d)), key=lambda d: d["next_attempt_at"] or now)[:limit]:
            doc.update(status=DeliveryStatus.SENDING.value, claimed_by=owner, claim_expires_at=now + lease, updated_at=now)
            claimed.append(StaffAlert.from_document(doc))
        return claimed

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
        doc = self.docs.get(alert.id)
        if doc is None or doc["status"] != DeliveryStatus.SENDING.value or doc["claimed_by"] != owner:
            raise ClaimLost(alert.id)
        doc.update(status=status.value, next_attempt_at=next_attempt_at, claimed_by=None, claim_expires_at=None, updated_at=now)
        if reason is not None:
            doc["reason"] = reason
        if error is not None:
            doc["last_error"] = error
        if attempted:
            doc["attempts"] += 1
        if status is DeliveryStatus.SENT:
            doc["sent_at"] = now

    async def get(self, alert_id_: str) -> dict[str, Any] | None:
        return self.docs.get(alert_id_)
