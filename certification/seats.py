"""Seats: training centres and their exam sessions, seat offers with a deadline, and the answers to them.

Every change that must not be lost or doubled is one unit of work (`certification.repositories`):
an offer holds a seat of the session (``held + booked < seats``), claims a waiting candidate, checks
the centre is still as read (open), stores the offer and schedules its deadline timer, all or
nothing, each state saved by compare-and-set on its version; so two replicas racing to fill one
session never overbook it nor offer one candidate two seats: the loser loads again. An acceptance
books the held seat and writes `ExamScheduled` to the outbox in the same unit of work. Who is next,
the order and the deadline come from `certification.seating`; the changes themselves from the pure
`decide` of `certification.offer` and `certification.candidate`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import structlog
from opentelemetry import trace
from opentelemetry.trace import Tracer

from certification import candidate as candidates_
from certification import offer as offers_
from certification.certifications import CertificationInfo, Certifications
from certification.errors import CertificationError, ConcurrencyConflict, Invalid, Unknown
from certification.offer import SeatOffer
from certification.offer_links import OfferLinks
from certification.repositories import CertificationUnitOfWork, DueTimers, UnitOfWorkFactory, retry_on_conflict
from certification.seating import (
    CentreState,
    OfferStatus,
    OfferTerms,
    WaitingReason,
    next_candidate,
    waiting_reason,
    why_no_offer,
)
from certification.sessions import Centre, Session, SessionFull
from certification.store import catalogued
from schemas import Event, ExamScheduled, ExamSeatOffered
from services.clock import Clock
from services.privacy import PersonErased
from services.tracing import continued

__all__ = ["OFFER_EXPIRY", "Centre", "Offer", "Seats", "Session"]

log = structlog.get_logger(__name__)

OFFER_EXPIRY = "offer_expiry"
"""Timer kind: an offer's deadline (key: the offer id)."""

Offer = SeatOffer
"""The name the API and tests know the seat offer by."""

Seal = Callable[[Event], Awaitable[Event]]
"""Seals an event's personal fields with its person's key (`services.privacy.PersonalData.seal`)."""


class Seats:
    """Centres, sessions and seat offers; safe to run on any number of replicas at once."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        certifications: Certifications,
        clock: Clock,
        timers: DueTimers,
        links: OfferLinks,
        seal: Seal,
        terms: OfferTerms | None = None,
        what_to_bring: Sequence[str] = (),
        tracer: Tracer | None = None,
    ) -> None:
        self._uow = uow
        self._tracer = tracer or trace.get_tracer(__name__)
        self.certifications = certifications
        self.clock = clock
        self.timers = timers
        self.links = links
        self.seal = seal
        self.terms = terms or OfferTerms()
        self.what_to_bring = list(what_to_bring)
        self._to_refill: set[str] = set()
        self.offer_attempts: Counter[str] = Counter()
        """How seat offers went on this replica: `offered`, `session_full`, `conflict` (races lost)."""

    # --- centres and sessions (staff) ------------------------------------------------------

    async def put_centre(
        self, centre_id: str, *, state: CentreState, name: str | None = None, address: str | None = None
    ) -> tuple[Centre, list[Offer]]:
        """Create or update a centre; opening one offers its sessions' seats to waiting candidates."""

        async def attempt() -> None:
            async with self._uow() as uow:
                existing = await uow.centres.get(centre_id)
                if existing is None:
                    if not (name and address):
                        raise Invalid(f"centre {centre_id} is new: give its name and address")
                    uow.centres.add(Centre(centre_id, name, address, state))
                else:
                    uow.centres.save(
                        replace(existing, state=state, name=name or existing.name, address=address or existing.address)
                    )
                await uow.commit()

        await retry_on_conflict(attempt)
        centre = await self._uow().centres.get(centre_id)
        assert centre is not None  # just saved; centres are never deleted
        log.info("centre.updated", centre_id=centre_id, state=state.value)
        offers = await self.fill_centre(centre_id) if state is CentreState.OPEN else []
        await self.refresh_waiting_reasons()
        return centre, offers

    async def list_centres(self) -> list[Centre]:
        return await self._uow().centres.find()

    async def add_session(
        self, *, centre_id: str, certifications: Sequence[str], starts_at: datetime, seats: int, session_id: str | None = None
    ) -> tuple[Session, list[Offer]]:
        """Add an exam session; its seats are offered at once if the centre is open."""
        if await self._uow().centres.get(centre_id) is None:
            raise Unknown(f"centre {centre_id} is unknown")
        codes: list[str] = []
        for code in certifications:
            cert = catalogued(self.certifications, code)
            if not cert.open:
                raise Invalid(f"{cert.code} is announced but not open yet: no session can be held")
            if cert.code not in codes:
                codes.append(cert.code)
        if not codes:
            raise Invalid("a session is for at least one certification")
        if seats < 1:
            raise Invalid("a session has at least one seat")
        if starts_at.tzinfo is None:
            raise Invalid("starts_at needs a time zone")
        now = self.clock.now()
        if starts_at <= now:
            raise Invalid("a session must start in the future")
        session_id = session_id or f"ses_{uuid.uuid4().hex[:12]}"
        async with self._uow() as uow:
            uow.sessions.add(Session(session_id, centre_id, tuple(codes), starts_at.astimezone(UTC), seats))
            try:
                await uow.commit()
            except ConcurrencyConflict as error:
                raise CertificationError(f"session {session_id} exists already") from error
        log.info("session.added", session_id=session_id, centre_id=centre_id, certifications=codes, seats=seats)
        offers = await self.fill_session(session_id)
        await self.refresh_waiting_reasons(codes)
        return await self.session(session_id), offers

    async def session(self, session_id: str) -> Session:
        found = await self._uow().sessions.get(session_id)
        if found is None:
            raise Unknown(f"session {session_id} is unknown")
        return found

    async def list_sessions(self, *, centre_id: str | None = None, certification: str | None = None) -> list[Session]:
        return await self._uow().sessions.find(centre_id=centre_id, certification=certification)

    # --- why candidates wait -------------------------------------------------------------

    async def waiting_reason_for(self, cert: CertificationInfo, now: datetime) -> WaitingReason:
        """Why a candidate for `cert` has no seat now: the certification, the centres or the free seats."""
        uow = self._uow()
        open_centres = [c.centre_id for c in await uow.centres.find(open_only=True)]
        coming = await uow.sessions.find(
            certification=cert.code, centre_ids=open_centres, starting_after=self._offers_possible_until(now)
        )
        return waiting_reason(
            certification_open=cert.open,
            centres_open=bool(open_centres),
            free_seats=any(s.seating.free > 0 for s in coming),
        )

    async def refresh_waiting_reasons(self, codes: Iterable[str] | None = None) -> None:
        """Say again why each waiting candidate waits, after centres, sessions or seats changed."""
        now = self.clock.now()
        selected = (
            [catalogued(self.certifications, code) for code in codes] if codes is not None else list(self.certifications.all())
        )
        for cert in selected:
            reason = await self.waiting_reason_for(cert, now)
            for waiting in await self._uow().candidates.waiting([cert.code]):
                if waiting.waiting_reason is not reason:
                    await retry_on_conflict(partial(self._explain, waiting.candidate_id, reason))

    async def _explain(self, cid: str, reason: WaitingReason) -> None:
        async with self._uow() as uow:
            candidate = await uow.candidates.get(cid)
            if candidate is None:
                return
            changed, facts = candidates_.decide(candidate, candidates_.ExplainWait(reason))
            if facts:
                uow.candidates.save(changed)
                await uow.commit()

    # --- offering seats ----------------------------------------------------------------

    async def fill_session(self, session_id: str) -> list[Offer]:
        """Offer the session's free seats to waiting candidates, in waitlist order, one unit of work per seat.

        Safe to run on any number of replicas at once: a seat, a candidate or the centre changed by
        another one makes this commit conflict, and the loop reads again.
        """
        made: list[Offer] = []
        while True:
            now = self.clock.now()
            async with self._uow() as uow:
                session = await uow.sessions.get(session_id)
                if session is None:
                    return made
                centre = await uow.centres.get(session.centre_id)
                centre_open = centre is not None and centre.open
                if centre is None or why_no_offer(session.seating, centre_open=centre_open, now=now, terms=self.terms):
                    return made
                open_codes = [c for c in session.certifications if (cert := self.certifications.get(c)) and cert.open]
                batch = {
                    c.candidate_id: c for c in await uow.candidates.waiting(open_codes, not_passed_over=session_id, limit=20)
                }
                chosen = next_candidate([c.waiting() for c in batch.values()], session.seating, open_certifications=open_codes)
                if chosen is None:
                    return made
                try:
                    offer = await self._offer(uow, centre, session, batch[chosen.candidate_id], now)
                except SessionFull:
                    self.offer_attempts["session_full"] += 1
                    return made
                try:
                    await uow.commit()
                except ConcurrencyConflict:
                    self.offer_attempts["conflict"] += 1
                    continue
            self.offer_attempts["offered"] += 1
            log.info(
                "seat.offered",
                offer_id=offer.offer_id,
                candidate_id=offer.candidate_id,
                session_id=offer.session_id,
                expires_at=offer.expires_at,
            )
            made.append(replace(offer, version=offer.version + 1))

    async def _offer(
        self, uow: CertificationUnitOfWork, centre: Centre, session: Session, candidate: candidates_.Candidate, now: datetime
    ) -> Offer:
        """Decide an offer of a seat of `session` to `candidate`, and stage it with `ExamSeatOffered` in `uow`."""
        offer, [offered] = offers_.decide(
            None,
            offers_.MakeOffer(
                offer_id=uuid.uuid4().hex,
                candidate_id=candidate.candidate_id,
                person_id=candidate.person_id,
                certification_code=candidate.certification_code,
                session_id=session.session_id,
                centre_id=session.centre_id,
                exam_at=session.starts_at,
                at=now,
                terms=self.terms,
                centre_name=centre.name,
                requested_by=candidate.requested_by,
            ),
        )
        held = session.hold_seat()
        claimed, _ = candidates_.decide(candidate, candidates_.Offer(offer.offer_id, session.session_id, now))
        uow.centres.require_unchanged(centre)
        uow.sessions.save(held)
        uow.candidates.save(claimed)
        uow.offers.add(offer)
        uow.schedule(OFFER_EXPIRY, offer.offer_id, offer.expires_at, {"session_id": offer.session_id})
        uow.publish([await self._with_links(offered)])
        return offer

    async def _with_links(self, offered: Event) -> Event:
        """The offer's event with its answer links, sealed with the person's key: they never go out in clear.

        A person whose data was erased gets no links (nobody could read them, nor be sent them)."""
        assert isinstance(offered, ExamSeatOffered)
        linked = offered.model_copy(update=self.links.both(offered.offer_id, offered.respond_by))
        try:
            sealed = await self.seal(linked)
        except PersonErased:
            return offered
        if isinstance(sealed, ExamSeatOffered) and sealed.sealed is None:
            raise RuntimeError("the offer's links were not sealed")  # never put a bearer link on Kafka in clear
        return sealed

    def _offers_possible_until(self, now: datetime) -> datetime:
        """Sessions starting after this can still be offered now (see `OfferTerms.last_offer_before`)."""
        return now + self.terms.margin + self.terms.minimum

    async def _future_open_sessions(self, *, centre_id: str | None = None, certification: str | None = None) -> list[str]:
        uow = self._uow()
        open_centres = [c.centre_id for c in await uow.centres.find(open_only=True)]
        coming = await uow.sessions.find(
            centre_id=centre_id,
            certification=certification,
            centre_ids=open_centres,
            starting_after=self._offers_possible_until(self.clock.now()),
        )
        return [s.session_id for s in coming]

    async def _fill_sessions(self, session_ids: Iterable[str]) -> list[Offer]:
        made: list[Offer] = []
        for session_id in session_ids:
            made += await self.fill_session(session_id)
        return made

    async def fill_centre(self, centre_id: str) -> list[Offer]:
        """A centre (re)opened: its coming sessions are filled, earliest first."""
        return await self._fill_sessions(await self._future_open_sessions(centre_id=centre_id))

    async def fill_for_certification(self, code: str) -> list[Offer]:
        return await self._fill_sessions(await self._future_open_sessions(certification=code))

    async def fill_all(self) -> list[Offer]:
        """The sweep: every coming session of an open centre (a safety net after a crash between steps)."""
        made = await self._fill_sessions(await self._future_open_sessions())
        await self.refresh_waiting_reasons()
        return made

    # --- answers to offers -------------------------------------------------------------

    async def offer(self, offer_id: str) -> Offer:
        found = await self._uow().offers.get(offer_id)
        if found is None:
            raise Unknown(f"offer {offer_id} is unknown")
        return found

    async def accept(self, offer_id: str) -> tuple[Offer, ExamScheduled | None]:
        """Book the held seat and publish `ExamScheduled` (through the outbox, in the same unit of work).

        Accepting an accepted offer again answers the same (a retried click); a declined or expired
        offer cannot be accepted (`OfferClosed`), nor one past its deadline (`OfferPastDeadline`).
        """

        async def attempt() -> ExamScheduled | None:
            async with self._uow() as uow:
                offer = await uow.offers.get(offer_id)
                if offer is None:
                    raise Unknown(f"offer {offer_id} is unknown")
                centre = await uow.centres.get(offer.centre_id)
                candidate = await uow.candidates.get(offer.candidate_id)
                session = await uow.sessions.get(offer.session_id)
                await _unchanged(uow, offer)
                now = self.clock.now()
                accepted, events = offers_.decide(
                    offer,
                    offers_.Accept(
                        at=now,
                        centre_name=centre.name if centre else offer.centre_id,
                        what_to_bring=self.what_to_bring,
                        requested_by=candidate.requested_by if candidate else None,
                    ),
                )
                if not events:
                    return None
                if candidate is None or session is None:
                    raise RuntimeError(f"offer {offer_id}: its candidate or session is gone")
                [event] = [e for e in events if isinstance(e, ExamScheduled)]
                scheduled, _ = candidates_.decide(
                    candidate,
                    candidates_.Schedule(offer_id, offer.session_id, offer.exam_at, str(event.id), accepted.answered_at or now),
                )
                uow.offers.save(accepted)
                uow.sessions.save(session.book_seat())
                uow.candidates.save(scheduled)
                uow.cancel(OFFER_EXPIRY, offer_id)
                uow.publish(events)
                # The exam is booked in the trace of the person's request, linked to the click.
                trace_context = candidate.requested_by.context if candidate.requested_by else None
                with continued(self._tracer, "certification.accept_offer", trace_context, offer_id=offer_id):
                    await uow.commit()
                return event

        event = await retry_on_conflict(attempt)
        offer = await self.offer(offer_id)
        if event is not None:
            log.info("seat.accepted", offer_id=offer_id, candidate_id=offer.candidate_id, session_id=offer.session_id)
        return offer, event

    async def decline(self, offer_id: str) -> tuple[Offer, list[Offer]]:
        """Free the held seat and offer it to the next candidate; the decliner keeps their place for other sessions."""
        offer, next_offers, _ = await self.decline_once(offer_id)
        return offer, next_offers

    async def decline_once(self, offer_id: str) -> tuple[Offer, list[Offer], bool]:
        """`decline`, and whether this call declined the offer (False: it was declined already)."""
        released = await retry_on_conflict(lambda: self._release(offer_id, "decline"))
        offer = await self.offer(offer_id)
        if not released:
            return offer, [], False
        log.info("seat.declined", offer_id=offer_id, candidate_id=offer.candidate_id, session_id=offer.session_id)
        next_offers = await self.fill_session(offer.session_id)
        await self.refresh_waiting_reasons([offer.certification_code])
        return await self.offer(offer_id), next_offers, True

    async def _release(self, offer_id: str, how: Literal["decline", "expire"]) -> bool:
        """Close a pending offer as declined or expired (`how`), with its event: the seat is freed, the
        candidate waits again (same priority and waiting time) but is not offered that session again.
        False if it was not pending."""
        async with self._uow() as uow:
            offer = await uow.offers.get(offer_id)
            if offer is None:
                if how == "expire":
                    return False  # a timer left behind by hand-deleted data
                raise Unknown(f"offer {offer_id} is unknown")
            session = await uow.sessions.get(offer.session_id)
            candidate = await uow.candidates.get(offer.candidate_id)
            await _unchanged(uow, offer)
            trace = candidate.requested_by if candidate else None
            now = self.clock.now()
            command = offers_.Decline(now, trace) if how == "decline" else offers_.Expire(now, trace)
            closed, events = offers_.decide(offer, command)
            if closed is offer:
                return False
            uow.offers.save(closed)
            uow.publish(events)
            if session is not None:
                uow.sessions.save(session.free_seat())
            if candidate is not None:
                waiting, facts = candidates_.decide(
                    candidate, candidates_.Release(offer_id, offer.session_id, closed.status, command.at)
                )
                if facts:
                    uow.candidates.save(waiting)
            if closed.status is OfferStatus.DECLINED:
                uow.cancel(OFFER_EXPIRY, offer_id)
            await uow.commit()
            return True

    async def _on_offer_expired(self, offer_id: str, payload: Mapping[str, Any]) -> None:
        if await retry_on_conflict(lambda: self._release(offer_id, "expire")):
            self._to_refill.add(str(payload["session_id"]))
            log.info("seat.offer_expired", offer_id=offer_id, session_id=payload.get("session_id"))

    async def run_timers_once(self) -> int:
        """Expire the offers past their deadline and offer their seats to the next candidates."""
        fired = await self.timers.fire_due(OFFER_EXPIRY, self._on_offer_expired)
        refill, self._to_refill = self._to_refill, set()
        for session_id in sorted(refill):
            await self.fill_session(session_id)
        if refill:
            await self.refresh_waiting_reasons()
        return fired


async def _unchanged(uow: CertificationUnitOfWork, offer: Offer) -> None:
    """Read the offer again after the states it names: if it is unchanged, they were read after its
    last change, so they agree with it (the session holds its seat, the candidate holds it). Else
    `ConcurrencyConflict`, and the answer is decided again, rather than refused on a mixed read."""
    if await uow.offers.get(offer.offer_id) != offer:
        raise ConcurrencyConflict(f"offer {offer.offer_id} changed while it was read")
