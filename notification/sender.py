"""The sender loop: claims due deliveries in MongoDB and sends each through its port, without
letting one message wait for another.

Deliveries live in MongoDB with a `next_attempt_at`; a retry in ten minutes is just a document
that is not due yet, so nothing blocks behind it, and the deliveries claimed together are sent
concurrently (`concurrency` at a time), so a slow SMTP server does not hold the texts back.

Exactly one message per event and channel, as far as the providers allow. Sending one delivery
takes three steps:

1. **claim** it: one conditional update (queued/deferred and due -> `sending`, `claimed_by` this
   sender, `claim_expires_at` = now + lease), so two replicas never hold the same delivery;
2. **send** it through the port, with no transaction open during the network call;
3. **record** the outcome - status, attempts, `NotificationSent`/`NotificationFailed` in the
   outbox, a fallback e-mail - in one transaction, conditional on the claim still being ours.

A crash between 1 and 2 sent nothing: the claim expires and the next claim sends it. A crash
between 2 and 3 (or a send slower than the lease) leaves a message the provider has but a
delivery still `sending`: after the lease it is claimed and **sent once more**. That is the
SMTP reality without an idempotency key on the provider's side; the resend carries the same
Message-ID, and a text carries the delivery id as the provider's `reference`, so a provider
that deduplicates drops it. The lease (2 min by default) is kept well above the send timeouts
(SMTP 30 s, SMS 10 s) so that a slow send is not taken over by another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import structlog
from jinja2 import TemplateError
from opentelemetry import trace
from opentelemetry.trace import Tracer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from notification.budget import MessageBudget, next_budget_day
from notification.messages import MessageRenderer
from notification.model import Delivery, DeliveryStatus, Person, Reachability, SkipReason
from notification.notices import Notice, NoticeKind
from notification.policy import BELGIUM_ONLY, Defer, PlannedDelivery, Skip, check_before_sending, fallback_channel
from notification.ports import MailSender, OutgoingEmail, OutgoingSms, SendResult, SendStatus, SmsSender
from notification.quiet_hours import QuietHours
from notification.retry import NextStep, RetryPolicy
from notification.store import ClaimLost, DeliveryStore, PeopleStore
from schemas import Event, NotificationChannel, NotificationFailed, NotificationSent
from services.clock import Clock
from services.free_text import clean_name
from services.logging import redacting
from services.outbox import Outbox
from services.tracing import continued

__all__ = ["DeliverySender"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
EMAIL = NotificationChannel.EMAIL


async def poll_due(
    send_due: Callable[[int], Awaitable[int]],
    wake: asyncio.Event,
    *,
    poll_interval: float,
    batch: int,
    failed: str,
) -> None:
    """Call `send_due(batch)` forever: again at once while it finds a full batch, else after
    `poll_interval` real seconds or when `wake` is set. MongoDB unavailable: log `failed` and keep
    polling, with a back-off up to ten seconds."""
    pause = poll_interval
    while True:
        wake.clear()
        try:
            claimed = await send_due(batch)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - MongoDB unavailable: keep polling, with a back-off
            log.warning(failed, error_type=type(error).__name__, pause_s=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, max(poll_interval, 10.0))
            continue
        pause = poll_interval
        if claimed < batch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=poll_interval)


class DeliverySender:
    def __init__(
        self,
        client: AsyncMongoClient[Any],
        *,
        deliveries: DeliveryStore,
        people: PeopleStore,
        outbox: Outbox,
        renderer: MessageRenderer,
        mail: MailSender,
        sms: SmsSender,
        clock: Clock,
        quiet_hours: QuietHours,
        retry: RetryPolicy,
        is_mobile: Callable[[str], bool],
        owner: str,
        sms_country_allowed: Callable[[str], bool] = BELGIUM_ONLY.allows,
        budget: MessageBudget | None = None,
        lease: timedelta = timedelta(minutes=2),
        concurrency: int = 8,
        rng: random.Random | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._client = client
        self._tracer = tracer or trace.get_tracer(__name__)
        self.deliveries = deliveries
        self.people = people
        self.outbox = outbox
        self.renderer = renderer
        self.mail = mail
        self.sms = sms
        self.clock = clock
        self.quiet_hours = quiet_hours
        self.retry = retry
        self.is_mobile = is_mobile
        self.sms_country_allowed = sms_country_allowed
        self.budget = budget
        self.owner = owner
        self.lease = lease
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (new deliveries were planned)."""
        self._wake.set()

    async def run(self, *, poll_interval: float = 1.0, batch: int = 20) -> None:
        """Send due deliveries forever; `poll_interval` is real seconds between empty rounds."""
        await poll_due(
            self.run_once, self._wake, poll_interval=poll_interval, batch=batch, failed="notification.sender_poll_failed"
        )

    async def run_once(self, batch: int = 20) -> int:
        """Claim up to `batch` due deliveries and send them concurrently; returns how many were claimed."""
        claimed = await self.deliveries.claim_due(owner=self.owner, now=self.clock.now(), lease=self.lease, limit=batch)
        if claimed:
            await asyncio.gather(*(self._guarded(delivery) for delivery in claimed))
        return len(claimed)

    async def _guarded(self, delivery: Delivery) -> None:
        # Sent later, from a loop: in the trace of the event the message is about (its notification,
        # hours later if quiet hours deferred it, is one more step of that request).
        async with self._limit:
            with continued(self._tracer, "notification.deliver", delivery.trace, channel=delivery.channel.value):
                try:
                    await self.process(delivery)
                except asyncio.CancelledError:
                    raise
                except ClaimLost:
                    log.info("notification.claim_lost", delivery_id=delivery.id, owner=self.owner)
                except Exception:  # left `sending`: claimable again once the lease expires
                    log.exception("notification.delivery_crashed", delivery_id=delivery.id)

    # --- one delivery -----------------------------------------------------------------

    def _reachability(self, person: Person | None) -> Reachability | None:
        if person is None or not person.known:
            return None
        return person.reachability(is_mobile=self.is_mobile, sms_country_allowed=self.sms_country_allowed)

    async def process(self, delivery: Delivery) -> None:
        """Send one claimed delivery, or skip or defer it, and record what happened."""
        now = self.clock.now()
        person = await self.people.get(delivery.person_id)
        who = self._reachability(person)
        check = check_before_sending(
            delivery.channel, who, erased=bool(person and person.erased), now=now, quiet_hours=self.quiet_hours
        )
        if isinstance(check, Defer):
            await self.deliveries.record(
                delivery,
                owner=self.owner,
                status=DeliveryStatus.DEFERRED,
                now=now,
                attempted=False,
                next_attempt_at=check.until,
                reason="quiet_hours",
            )
            log.info("notification.deferred", delivery_id=delivery.id, until_at=check.until)
            return
        if isinstance(check, Skip):
            skip = check
            fallback = await self._transaction(lambda session: self._skip(delivery, skip.reason, who, now, session))
            log.info("notification.skipped", delivery_id=delivery.id, reason=skip.reason.value, fallback_id=fallback)
            if fallback:
                self.wake()
            return
        assert person is not None and who is not None  # check_before_sending skips the unknown
        if self.budget is not None and await self._over_budget(delivery, person, now):
            return
        template = f"{delivery.template}.{self.renderer.language_for(delivery.template, person.language)}"
        try:
            message = self.renderer.render(
                delivery.template,
                person.language,
                delivery.facts,
                name=person.name,
                with_email=who.has_email and EMAIL not in who.opted_out,
                status_url=person.status_url(delivery.request_id),
            )
        except TemplateError as error:
            # A bug of ours, caught by the template tests; retrying would not fix it.
            log.error("notification.template_failed", delivery_id=delivery.id, template=template, error_type=type(error).__name__)
            result = SendResult.permanent(f"template error: {type(error).__name__}")
        else:
            template = message.template
            result = await self._send(
                delivery, person, message.subject, message.text, message.html, message.sms, message.language
            )
        done_at = self.clock.now()
        step = self.retry.after(result, attempts=delivery.attempts + 1, now=done_at, rng=self.rng)
        fallback = await self._transaction(
            lambda session: self._record_attempt(delivery, result, step, template, who, done_at, session)
        )
        self._log_attempt(delivery, result, step, fallback)
        if fallback:
            self.wake()

    async def _over_budget(self, delivery: Delivery, person: Person, now: datetime) -> bool:
        """Take one message of the day's budgets; over budget, defer the delivery to the next day.

        Deferred, not dropped: an official notice over a destination's budget still goes out,
        the next day (a flood is spread at the budget's pace instead of reaching the person at once).
        """
        assert self.budget is not None
        destination = person.email if delivery.channel is EMAIL else person.phone
        assert destination is not None  # check_before_sending skips a channel the person has no address for
        refusal = await self.budget.spend(delivery.channel, destination, now=now)
        if refusal is None:
            return False
        until = next_budget_day(now)
        await self.deliveries.record(
            delivery,
            owner=self.owner,
            status=DeliveryStatus.DEFERRED,
            now=now,
            attempted=False,
            next_attempt_at=until,
            reason=refusal.value,
        )
        log.warning(
            "notification.over_budget",
            delivery_id=delivery.id,
            channel=delivery.channel.value,
            reason=refusal.value,
            until_at=until,
        )
        return True

    async def _send(
        self, delivery: Delivery, person: Person, subject: str, text: str, html: str, sms_text: str, language: str
    ) -> SendResult:
        # An adapter's error may quote the name or the address: a logged traceback must not.
        with redacting(person.name, clean_name(person.name), person.email, person.phone):
            return await self._send_as_redacted(delivery, person, subject, text, html, sms_text, language)

    async def _send_as_redacted(
        self, delivery: Delivery, person: Person, subject: str, text: str, html: str, sms_text: str, language: str
    ) -> SendResult:
        try:
            if delivery.channel is EMAIL:
                assert person.email is not None
                return await self.mail.send(
                    OutgoingEmail(
                        delivery_id=delivery.id,
                        to_address=person.email,
                        to_name=clean_name(person.name),  # as greeted: no link, no control character
                        language=language,
                        subject=subject,
                        text=text,
                        html=html,
                    )
                )
            assert person.phone is not None
            return await self.sms.send(OutgoingSms(reference=delivery.id, to=person.phone, text=sms_text))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # an adapter bug must not lose the delivery: retry it
            log.exception("notification.adapter_failed", delivery_id=delivery.id, channel=delivery.channel.value)
            return SendResult.transient(f"adapter error: {type(error).__name__}")

    async def _record_attempt(
        self,
        delivery: Delivery,
        result: SendResult,
        step: NextStep,
        template: str,
        who: Reachability,
        now: datetime,
        session: AsyncClientSession,
    ) -> str | None:
        reason = None
        if step.final and step.status is not DeliveryStatus.SENT:
            reason = "attempts_exhausted" if result.status is SendStatus.TRANSIENT else step.status.value
        attempts = await self.deliveries.record(
            delivery,
            owner=self.owner,
            status=step.status,
            now=now,
            session=session,
            attempted=True,
            next_attempt_at=step.next_attempt_at,
            reason=reason,
            error=result.reason or None,
            provider_message_id=result.provider_message_id,
            template=template,
        )
        event: Event
        common: dict[str, Any] = {
            "source": f"/notification/{delivery.channel.value}",
            "subject": delivery.person_id,
            "person_id": delivery.person_id,
            "about_event_id": UUID(delivery.about_event_id),
            "channel": delivery.channel,
            "template": template,
            "attempts": attempts,
            "correlation_id": UUID(delivery.correlation_id),
            "causation_id": UUID(delivery.about_event_id),
        }
        if step.status is DeliveryStatus.SENT:
            event = NotificationSent(**common)
        else:
            event = NotificationFailed(**common, reason=result.reason or reason or "failed", final=step.final)
        await self.outbox.add([event], session=session)
        if step.final and step.status is not DeliveryStatus.SENT:
            return await self._fall_back(delivery, who, now, session)
        return None

    async def _skip(
        self, delivery: Delivery, reason: SkipReason, who: Reachability | None, now: datetime, session: AsyncClientSession
    ) -> str | None:
        await self.deliveries.record(
            delivery,
            owner=self.owner,
            status=DeliveryStatus.SKIPPED,
            now=now,
            session=session,
            attempted=False,
            reason=reason.value,
        )
        return await self._fall_back(delivery, who, now, session)

    async def _fall_back(
        self, delivery: Delivery, who: Reachability | None, now: datetime, session: AsyncClientSession
    ) -> str | None:
        """Plan the fallback delivery of one that will never be sent; its id if one was created."""
        channel = fallback_channel(delivery.channel, who) if who is not None and delivery.fallback_of is None else None
        if channel is None:
            return None
        notice = Notice(
            kind=NoticeKind(delivery.template),
            about_event_id=delivery.about_event_id,
            about_event_type=delivery.about_event_type,
            correlation_id=delivery.correlation_id,
            person_id=delivery.person_id,
            request_id=delivery.request_id,
            facts=delivery.facts,
        )
        created = await self.deliveries.plan(
            notice, [PlannedDelivery(channel)], now=now, quiet_hours=self.quiet_hours, session=session, fallback_of=delivery.id
        )
        if not created:
            return None  # the event has an e-mail already (an enrolment, or a fallback planned before)
        await self.deliveries.link_fallback(delivery.id, created[0], session=session)
        return created[0]

    def _log_attempt(self, delivery: Delivery, result: SendResult, step: NextStep, fallback: str | None) -> None:
        fields = {"delivery_id": delivery.id, "channel": delivery.channel.value, "attempt": delivery.attempts + 1}
        if step.status is DeliveryStatus.SENT:
            log.info("notification.sent", **fields)
        elif not step.final:
            log.warning("notification.retry_scheduled", **fields, error=result.reason, next_attempt_at=step.next_attempt_at)
        else:
            log.warning("notification.failed", **fields, status=step.status.value, error=result.reason, fallback_id=fallback)

    async def _transaction(self, body: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        async with self._client.start_session() as session:
            return await session.with_transaction(body)
