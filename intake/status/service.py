"""The status page's use cases: read a request's status through its link, and act on it.

Each of the person's actions is an event (`CallbackSlotChosen`, `TrainingRequestWithdrawn`,
`RequestDetailsCorrected`) sealed with their key and put in intake's outbox in the same transaction
that applies it to the projection and records it as processed by the projection's consumer: the
page shows it at once, and when the event comes back from Kafka it is not applied twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession

from intake.identity import normalise_email, normalise_phone
from intake.status.links import BadStatusToken, StatusLinkExpired, StatusToken, StatusTokens
from intake.status.projection import StatusProjection, is_closed
from intake.status.slots import Window, find_window, offered_windows
from schemas import (
    CallbackSlotChosen,
    Contact,
    Event,
    RequestDetailsCorrected,
    SealedPersonalData,
    TrainingRequestWithdrawn,
)
from services.calendar import BrusselsCalendar
from services.catalogue import Catalogue
from services.idempotency import ProcessedEvents
from services.outbox import Outbox
from services.privacy import PersonalData, PersonErased, sealed_fields

__all__ = ["CONSUMER", "SOURCE", "ActionRefused", "Found", "StatusService"]

log = structlog.get_logger(__name__)

CONSUMER = "intake.status"
"""The projection's consumer group, and the name its processed events are recorded under."""
SOURCE = "/intake/status-page"
MAX_NEED_CHARS = 2000

Outcome = Literal["not_found", "expired", "revoked", "erased", "pending", "found"]


@dataclass(frozen=True, slots=True)
class Found:
    """What a link leads to: `outcome`, and for a live link its token and entries."""

    outcome: Outcome
    token: StatusToken | None = None
    entry: dict[str, Any] | None = None
    person: dict[str, Any] | None = None


class ActionRefused(Exception):
    """An action the page refuses; `reason` is a key of `intake.status.texts`, `field` the form field at fault."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.field = reason, field


class StatusService:
    def __init__(
        self,
        *,
        projection: StatusProjection,
        processed: ProcessedEvents,
        outbox: Outbox,
        personal: PersonalData,
        tokens: StatusTokens,
        calendar: BrusselsCalendar,
        catalogue: Catalogue,
        clock: Callable[[], datetime],
    ) -> None:
        self.projection = projection
        self.processed = processed
        self.outbox = outbox
        self.personal = personal
        self.tokens = tokens
        self.calendar = calendar
        self.catalogue = catalogue
        self.clock = clock

    # --- the projection's feed --------------------------------------------------------------

    async def record(self, event: Event) -> None:
        """Apply an event from Kafka to the projection, once."""

        async def effect(session: AsyncClientSession) -> list[Event]:
            await self.projection.apply(event, session)
            return []

        await self.processed.run_once(event, effect)

    # --- reading ----------------------------------------------------------------------------

    async def find(self, token: str) -> Found:
        try:
            found = self.tokens.verify(token, now=self.clock())
        except StatusLinkExpired:
            return Found("expired")
        except BadStatusToken:
            return Found("not_found")
        entry = await self.projection.request(found.request_id)
        if entry is None:
            # Signed by us, so the request exists: its events are on their way to the projection.
            return Found("pending", found)
        if entry.get("erased"):
            return Found("erased", found)
        if found.link_id in entry.get("revoked_links", []):
            return Found("revoked", found)
        return Found("found", found, entry, await self.projection.person(entry["person_id"]))

    async def need_of(self, entry: dict[str, Any]) -> str | None:
        """The person's words, the corrected ones if any; None once their key is erased."""
        raw = entry.get("need_corrected") or entry.get("need_sealed")
        if not raw:
            return None
        sealed = SealedPersonalData.model_validate(raw)
        key = await self.personal.keys.key(sealed.key_id)
        if key is None:
            return None
        need = sealed_fields(sealed, key).get("need")
        return need if isinstance(need, str) else None

    def windows(self, entry: dict[str, Any]) -> list[Window]:
        return offered_windows(self.calendar, self.clock(), entry.get("callback_deadline"))

    # --- acting -----------------------------------------------------------------------------

    def _open(self, found: Found) -> dict[str, Any]:
        if found.entry is None or found.outcome != "found":
            raise ActionRefused("not_found")
        if is_closed(found.entry):
            raise ActionRefused("refused_closed")
        return found.entry

    async def choose_slot(self, found: Found, key: str) -> Window:
        entry = self._open(found)
        window = find_window(self.windows(entry), key)
        if window is None:
            raise ActionRefused("refused_slot", "slot")
        await self._act(
            CallbackSlotChosen(
                source=SOURCE,
                subject=entry["_id"],
                request_id=entry["_id"],
                person_id=entry["person_id"],
                slot_start=window.start,
                slot_end=window.end,
                chosen_through="status_page",
            )
        )
        log.info("status.slot_chosen", request_id=entry["_id"], late=window.late)
        return window

    async def withdraw(self, found: Found) -> None:
        entry = self._open(found)
        await self._act(
            TrainingRequestWithdrawn(
                source=SOURCE,
                subject=entry["_id"],
                request_id=entry["_id"],
                person_id=entry["person_id"],
                withdrawn_through="status_page",
            )
        )
        log.info("status.withdrawn", request_id=entry["_id"])

    async def correct(self, found: Found, *, need: str, course: str, phone: str, email: str) -> None:
        """Only what the person filled in changes; new contact details travel sealed and unverified."""
        entry = self._open(found)
        need, course, phone, email = need.strip(), course.strip().upper(), phone.strip(), email.strip()
        if not (need or course or phone or email):
            raise ActionRefused("refused_empty", "need")
        if len(need) > MAX_NEED_CHARS:
            raise ActionRefused("refused_long", "need")
        if course and self.catalogue.course(course) is None:
            raise ActionRefused("refused_course", "requested_course")
        new_phone = normalise_phone(phone) if phone else None
        if phone and new_phone is None:
            raise ActionRefused("refused_phone", "phone")
        new_email = normalise_email(email) if email else None
        if email and new_email is None:
            raise ActionRefused("refused_email", "email")
        contact = Contact(phone=new_phone, email=new_email) if (new_phone or new_email) else None
        await self._act(
            RequestDetailsCorrected(
                source=SOURCE,
                subject=entry["_id"],
                request_id=entry["_id"],
                person_id=entry["person_id"],
                corrected_through="status_page",
                need=need or None,
                requested_course=course or None,
                contact=contact,
            )
        )
        changed = [name for name, value in (("need", need), ("requested_course", course), ("contact", contact)) if value]
        log.info("status.corrected", request_id=entry["_id"], fields=changed)

    async def revoke(self, found: Found) -> None:
        if found.entry is None or found.token is None or found.outcome != "found":
            raise ActionRefused("not_found")
        await self.projection.revoke(found.entry["_id"], found.token.link_id, self.clock())
        log.info("status.link_revoked", request_id=found.entry["_id"])

    async def _act(self, event: Event) -> None:
        try:
            sealed = await self.personal.seal(event)
        except PersonErased:
            raise ActionRefused("not_found") from None

        async def effect(session: AsyncClientSession) -> list[Event]:
            await self.projection.apply(sealed, session)
            return [sealed]

        await self.processed.run_once(sealed, effect, outbox=self.outbox)
