"""Notification's use cases, between the handlers (Kafka, HTTP) and the stores.

The Kafka handlers only *plan*: each event is applied once (`ProcessedEvents.run_once`) and its
effect is to update the contact projection, or to create delivery records (or a waiting notice),
in one transaction. Sending belongs to `notification.sender`, in the background, so a slow or
failing provider never holds a Kafka partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession

from notification.model import Person, SkipReason
from notification.notices import Notice, notice_for
from notification.policy import BELGIUM_ONLY, plan_channels
from notification.quiet_hours import QuietHours
from notification.store import DeliveryStore, PeopleStore
from schemas import (
    ContactDetailsConfirmed,
    Event,
    ExamSeatOffered,
    NotificationChannel,
    PersonDataErased,
    TrainingRequestReceived,
)
from services.clock import Clock
from services.idempotency import Outcome, ProcessedEvents
from services.privacy import PersonalData

__all__ = ["NotificationService"]

log = structlog.get_logger(__name__)


class NotificationService:
    def __init__(
        self,
        *,
        processed: ProcessedEvents,
        people: PeopleStore,
        deliveries: DeliveryStore,
        clock: Clock,
        quiet_hours: QuietHours,
        is_mobile: Callable[[str], bool],
        personal: PersonalData,
        sms_country_allowed: Callable[[str], bool] = BELGIUM_ONLY.allows,
        on_planned: Callable[[], None] = lambda: None,
    ) -> None:
        self.processed = processed
        self.people = people
        self.deliveries = deliveries
        self.clock = clock
        self.quiet_hours = quiet_hours
        self.is_mobile = is_mobile
        self.sms_country_allowed = sms_country_allowed
        self.personal = personal
        self._on_planned = on_planned

    async def _plan(self, notice: Notice, person: Person, session: AsyncClientSession) -> list[str]:
        who = person.reachability(is_mobile=self.is_mobile, sms_country_allowed=self.sms_country_allowed)
        planned = plan_channels(notice.kind, who)
        if await self.deliveries.already_said(notice, session=session):
            # Recorded, not sent: the person keeps one message per purpose (linked requests, one promise).
            planned = tuple(replace(item, skip=item.skip or SkipReason.ALREADY_SAID) for item in planned)
        if any(p.skip is SkipReason.COUNTRY_NOT_ALLOWED for p in planned):
            log.info("sms.refused", reason=SkipReason.COUNTRY_NOT_ALLOWED.value, about_event_id=notice.about_event_id)
        return await self.deliveries.plan(notice, planned, now=self.clock.now(), quiet_hours=self.quiet_hours, session=session)

    async def record_contact(self, event: TrainingRequestReceived) -> Outcome:
        """Fold the request's contact into the projection and plan the person's waiting notices.

        Intake seals the contact with the person's key; it is unsealed here. A request whose key
        was erased has no contact left to read: the person is touched but stays unknown, so
        nothing is sent, and the PersonDataErased that follows drops what waits for them.
        """
        request = await self.personal.unseal(event)
        readable = request.sealed is None
        released: list[str] = []

        async def effect(session: AsyncClientSession) -> list[Event]:
            released.clear()  # the transaction may run again
            if not readable:
                await self.people.touch(request.person_id, now=self.clock.now(), session=session)
                return []
            person = await self.people.record_contact(request, now=self.clock.now(), session=session)
            if person.known:
                for notice in await self.deliveries.take_waiting(person.person_id, session=session):
                    released.extend(await self._plan(notice, person, session))
            return []

        outcome = await self.processed.run_once(request, effect)
        if outcome.applied:
            log.info(
                "notification.contact_recorded",
                person_id=event.person_id,
                request_id=event.request_id,
                readable=readable,
                released=len(released),
            )
        if released:
            self._on_planned()
        return outcome

    async def notify(self, event: Event) -> Outcome | None:
        """Plan the deliveries `event` calls for (None if it tells the person nothing).

        A seat offer's answer links come sealed with the person's key: opened here, for the message."""
        notice = notice_for(await self.personal.unseal(event) if isinstance(event, ExamSeatOffered) else event)
        if notice is None:
            return None
        planned: list[str] = []
        waiting = False

        async def effect(session: AsyncClientSession) -> list[Event]:
            nonlocal waiting
            planned.clear()
            # A write to the person's document, so that a TrainingRequestReceived handled at the
            # same moment conflicts with this transaction instead of missing the waiting notice.
            person = await self.people.touch(notice.person_id, now=self.clock.now(), session=session)
            if person.erased:
                return []  # an event replayed after the erasure: nobody to tell, nothing to keep
            waiting = not person.known
            if waiting:
                await self.deliveries.wait_for_contact(notice, now=self.clock.now(), session=session)
            else:
                planned.extend(await self._plan(notice, person, session))
            return []

        outcome = await self.processed.run_once(event, effect)
        if outcome.applied:
            log.info(
                "notification.planned",
                about_event_id=notice.about_event_id,
                person_id=notice.person_id,
                template=notice.kind.value,
                deliveries=len(planned),
                waiting_for_contact=waiting,
            )
        if planned:
            self._on_planned()
        return outcome

    async def confirm_contact(self, event: ContactDetailsConfirmed) -> Outcome:
        """Contact details staff checked with the person: messages go there from now on."""
        confirmed = await self.personal.unseal(event)
        contact = confirmed.contact.model_dump() if confirmed.sealed is None and confirmed.contact else {}

        async def effect(session: AsyncClientSession) -> list[Event]:
            await self.people.confirm_contact(event.person_id, contact, now=self.clock.now(), session=session)
            return []

        outcome = await self.processed.run_once(event, effect)
        if outcome.applied:
            log.info("notification.contact_confirmed", person_id=event.person_id, request_id=event.request_id)
        return outcome

    async def erase(self, event: PersonDataErased) -> Outcome:
        """Forget the person's contact, drop waiting notices and skip unsent deliveries."""
        self.personal.keys.forget(event.person_id)

        async def effect(session: AsyncClientSession) -> list[Event]:
            now = self.clock.now()
            await self.people.erase(event.person_id, erased_at=event.erased_at, now=now, session=session)
            await self.deliveries.drop_waiting(event.person_id, session=session)
            await self.deliveries.skip_open(event.person_id, SkipReason.ERASED, now=now, session=session)
            return []

        outcome = await self.processed.run_once(event, effect)
        if outcome.applied:
            log.info("notification.person_erased", person_id=event.person_id)
        return outcome

    async def set_opted_out(self, person_id: str, channel: NotificationChannel, opted_out: bool) -> Person:
        person = await self.people.set_opted_out(person_id, channel, opted_out, now=self.clock.now())
        log.info("notification.preference_changed", person_id=person_id, channel=channel.value, opted_out=opted_out)
        return person

    async def preferences(self, person_id: str) -> dict[str, Any] | None:
        """What support may see of a person (`describe`), or None if nobody is known by that id."""
        person = await self.people.get(person_id)
        return None if person is None else self.describe(person)

    async def change_preference(self, person_id: str, channel: NotificationChannel, *, opted_out: bool) -> dict[str, Any]:
        """Opt a person out of a channel, or back in; what support may see of them afterwards."""
        return self.describe(await self.set_opted_out(person_id, channel, opted_out))

    async def deliveries_of(self, person_id: str, *, limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A person's deliveries, newest first, and the notices waiting for their contact."""
        return await self.deliveries.of_person(person_id, limit=limit), await self.deliveries.waiting_of(person_id)

    def describe(self, person: Person) -> dict[str, Any]:
        """What support may see of a person: flags, never the addresses themselves."""
        who = person.reachability(is_mobile=self.is_mobile)
        return {
            "person_id": person.person_id,
            "known": person.known,
            "language": person.language,
            "consent": person.consent,
            "has_email": who.has_email,
            "has_mobile": who.has_mobile,
            "opted_out": sorted(c.value for c in person.opted_out),
            "erased": person.erased,
        }
