"""Seats: training centres and their exam sessions, seat offers with a deadline, and the answers to them.

Every change that must not be lost or doubled is one transaction: an offer takes a seat with a
conditional update on the session's counters (``held + booked < seats``), claims the candidate
with a conditional update on its status, stores the offer and schedules its deadline timer, all or
nothing; so two replicas racing to fill one session never overbook it nor offer one candidate two
seats. An acceptance moves the seat from held to booked and writes `ExamScheduled` to the outbox in
the same transaction. Who is next, the order and the deadline come from `certification.seating`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from certification.certifications import CertificationInfo, Certifications
from certification.seating import (
    CandidateStatus,
    CentreState,
    OfferStatus,
    SessionSeats,
    WaitingCandidate,
    WaitingReason,
    next_candidate,
    offer_deadline,
    waiting_reason,
    why_no_offer,
)
from certification.store import (
    SOURCE,
    WAITLIST_SORT,
    CertificationError,
    CertificationStore,
    catalogued,
    correlation_of,
    utc,
    waiting_candidate,
)
from schemas import ExamScheduled
from services.clock import Clock
from services.outbox import Outbox
from services.timers import Timer, TimerStore

__all__ = ["OFFER_EXPIRY", "Centre", "Offer", "Seats", "Session"]

log = structlog.get_logger(__name__)

OFFER_EXPIRY = "offer_expiry"
"""Timer kind: an offer's deadline (key: the offer id)."""


class _SessionFull(Exception):
    """Aborts an offer's transaction: no seat left (or the centre closed meanwhile)."""


class _CandidateTaken(Exception):
    """Aborts an offer's transaction: the candidate is no longer waiting (another replica got there)."""


class _NotOffered(Exception):
    """Aborts an answer's transaction: the offer was answered or expired meanwhile."""


@dataclass(frozen=True, slots=True)
class Centre:
    centre_id: str
    name: str
    address: str
    state: CentreState

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Centre:
        return cls(doc["_id"], doc["name"], doc["address"], CentreState(doc["state"]))


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    centre_id: str
    certifications: tuple[str, ...]
    starts_at: datetime
    seats: int
    held: int
    booked: int

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Session:
        return cls(
            doc["_id"],
            doc["centre_id"],
            tuple(doc["certifications"]),
            utc(doc["starts_at"]) or doc["starts_at"],
            doc["seats"],
            doc["held"],
            doc["booked"],
        )

    @property
    def seating(self) -> SessionSeats:
        return SessionSeats(
            self.session_id, self.centre_id, frozenset(self.certifications), self.starts_at, self.seats, self.held, self.booked
        )


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    candidate_id: str
    person_id: str
    certification_code: str
    session_id: str
    centre_id: str
    status: OfferStatus
    offered_at: datetime
    expires_at: datetime
    exam_at: datetime
    answered_at: datetime | None = None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Offer:
        return cls(
            offer_id=doc["_id"],
            candidate_id=doc["candidate_id"],
            person_id=doc["person_id"],
            certification_code=doc["certification_code"],
            session_id=doc["session_id"],
            centre_id=doc["centre_id"],
            status=OfferStatus(doc["status"]),
            offered_at=utc(doc["offered_at"]) or doc["offered_at"],
            expires_at=utc(doc["expires_at"]) or doc["expires_at"],
            exam_at=utc(doc["exam_at"]) or doc["exam_at"],
            answered_at=utc(doc.get("answered_at")),
        )


class Seats:
    """Centres, sessions and seat offers; safe to run on any number of replicas at once."""

    def __init__(
        self,
        store: CertificationStore,
        *,
        certifications: Certifications,
        clock: Clock,
        outbox: Outbox,
        timers: TimerStore,
        offer_window: timedelta = timedelta(hours=48),
        what_to_bring: Sequence[str] = (),
    ) -> None:
        if offer_window <= timedelta(0):
            raise ValueError("the offer window must be positive")
        self._store = store
        self.certifications = certifications
        self.clock = clock
        self.outbox = outbox
        self.timers = timers
        self.offer_window = offer_window
        self.what_to_bring = list(what_to_bring)
        self._to_refill: set[str] = set()
        self.offer_attempts: Counter[str] = Counter()
        """How seat offers went on this replica: `offered`, `candidate_taken`, `session_full` (races lost)."""

    # --- centres and sessions (staff) ------------------------------------------------------

    async def put_centre(
        self, centre_id: str, *, state: CentreState, name: str | None = None, address: str | None = None
    ) -> tuple[Centre, list[Offer]]:
        """Create or update a centre; opening one offers its sessions' seats to waiting candidates."""
        existing = await self._store.centres.find_one({"_id": centre_id})
        if existing is None and not (name and address):
            raise CertificationError(f"centre {centre_id} is new: give its name and address", status=422)
        now = self.clock.now()
        fields: dict[str, Any] = {"state": state.value, "updated_at": now}
        if name:
            fields["name"] = name
        if address:
            fields["address"] = address
        await self._store.centres.update_one(
            {"_id": centre_id},
            {"$set": fields, "$setOnInsert": {"created_at": now}, "$push": {"history": {"at": now, "state": state.value}}},
            upsert=True,
        )
        centre = Centre.from_document(await self._store.centres.find_one({"_id": centre_id}) or {})
        log.info("centre.updated", centre_id=centre_id, state=state.value)
        offers = await self.fill_centre(centre_id) if state is CentreState.OPEN else []
        await self.refresh_waiting_reasons()
        return centre, offers

    async def list_centres(self) -> list[Centre]:
        return [Centre.from_document(doc) async for doc in self._store.centres.find().sort("_id", ASCENDING)]

    async def add_session(
        self, *, centre_id: str, certifications: Sequence[str], starts_at: datetime, seats: int, session_id: str | None = None
    ) -> tuple[Session, list[Offer]]:
        """Add an exam session; its seats are offered at once if the centre is open."""
        if await self._store.centres.find_one({"_id": centre_id}) is None:
            raise CertificationError(f"centre {centre_id} is unknown", status=404)
        codes: list[str] = []
        for code in certifications:
            cert = catalogued(self.certifications, code)
            if not cert.open:
                raise CertificationError(f"{cert.code} is announced but not open yet: no session can be held", status=422)
            if cert.code not in codes:
                codes.append(cert.code)
        if not codes:
            raise CertificationError("a session is for at least one certification", status=422)
        if seats < 1:
            raise CertificationError("a session has at least one seat", status=422)
        if starts_at.tzinfo is None:
            raise CertificationError("starts_at needs a time zone", status=422)
        now = self.clock.now()
        if starts_at <= now:
            raise CertificationError("a session must start in the future", status=422)
        session_id = session_id or f"ses_{uuid.uuid4().hex[:12]}"
        try:
            await self._store.sessions.insert_one(
                {
                    "_id": session_id,
                    "centre_id": centre_id,
                    "certifications": codes,
                    "starts_at": starts_at.astimezone(UTC),
                    "seats": seats,
                    "held": 0,
                    "booked": 0,
                    "created_at": now,
                }
            )
        except DuplicateKeyError as error:
            raise CertificationError(f"session {session_id} exists already") from error
        log.info("session.added", session_id=session_id, centre_id=centre_id, certifications=codes, seats=seats)
        offers = await self.fill_session(session_id)
        await self.refresh_waiting_reasons(codes)
        return await self.session(session_id), offers

    async def session(self, session_id: str) -> Session:
        doc = await self._store.sessions.find_one({"_id": session_id})
        if doc is None:
            raise CertificationError(f"session {session_id} is unknown", status=404)
        return Session.from_document(doc)

    async def list_sessions(self, *, centre_id: str | None = None, certification: str | None = None) -> list[Session]:
        query: dict[str, Any] = {}
        if centre_id:
            query["centre_id"] = centre_id
        if certification:
            query["certifications"] = certification.upper()
        return [Session.from_document(doc) async for doc in self._store.sessions.find(query).sort("starts_at", ASCENDING)]

    # --- why candidates wait -------------------------------------------------------------

    async def waiting_reason_for(self, cert: CertificationInfo, now: datetime) -> WaitingReason:
        """Why a candidate for `cert` has no seat now: the certification, the centres or the free seats."""
        open_centres = await self._store.centres.distinct("_id", {"state": CentreState.OPEN.value})
        free = await self._store.sessions.find_one(
            {
                "certifications": cert.code,
                "centre_id": {"$in": open_centres},
                "starts_at": {"$gt": now},
                "$expr": {"$lt": [{"$add": ["$held", "$booked"]}, "$seats"]},
            }
        )
        return waiting_reason(certification_open=cert.open, centres_open=bool(open_centres), free_seats=free is not None)

    async def refresh_waiting_reasons(self, codes: Iterable[str] | None = None) -> None:
        """Say again why each waiting candidate waits, after centres, sessions or seats changed."""
        now = self.clock.now()
        selected = (
            [catalogued(self.certifications, code) for code in codes] if codes is not None else list(self.certifications.all())
        )
        for cert in selected:
            reason = await self.waiting_reason_for(cert, now)
            await self._store.candidates.update_many(
                {
                    "certification_code": cert.code,
                    "status": CandidateStatus.WAITING.value,
                    "waiting_reason": {"$ne": reason.value},
                },
                {"$set": {"waiting_reason": reason.value}},
            )

    # --- offering seats ----------------------------------------------------------------

    async def fill_session(self, session_id: str) -> list[Offer]:
        """Offer the session's free seats to waiting candidates, in waitlist order, one transaction per seat.

        Safe to run on any number of replicas at once: a seat or a candidate taken by another one
        aborts this transaction, and the loop reads again.
        """
        made: list[Offer] = []
        while True:
            now = self.clock.now()
            doc = await self._store.sessions.find_one({"_id": session_id})
            if doc is None:
                return made
            session = Session.from_document(doc)
            centre = await self._store.centres.find_one({"_id": session.centre_id}, {"state": 1})
            centre_open = centre is not None and centre["state"] == CentreState.OPEN.value
            if why_no_offer(session.seating, centre_open=centre_open, now=now) is not None:
                return made
            open_codes = [c for c in session.certifications if (cert := self.certifications.get(c)) and cert.open]
            batch = (
                await self._store.candidates.find(
                    {
                        "certification_code": {"$in": open_codes},
                        "status": CandidateStatus.WAITING.value,
                        "passed_over_sessions": {"$ne": session_id},
                    }
                )
                .sort(WAITLIST_SORT)
                .limit(20)
                .to_list(20)
            )
            chosen = next_candidate([waiting_candidate(d) for d in batch], session.seating, open_certifications=open_codes)
            if chosen is None:
                return made
            try:
                made.append(await self._offer(session, chosen, now))
            except _SessionFull:
                self.offer_attempts["session_full"] += 1
                return made
            except _CandidateTaken:
                self.offer_attempts["candidate_taken"] += 1
                continue
            self.offer_attempts["offered"] += 1

    async def _offer(self, session: Session, candidate: WaitingCandidate, now: datetime) -> Offer:
        offer = Offer(
            offer_id=uuid.uuid4().hex,
            candidate_id=candidate.candidate_id,
            person_id=candidate.person_id,
            certification_code=candidate.certification_code,
            session_id=session.session_id,
            centre_id=session.centre_id,
            status=OfferStatus.OFFERED,
            offered_at=now,
            expires_at=offer_deadline(now, self.offer_window, session.starts_at),
            exam_at=session.starts_at,
        )

        async def work(s: AsyncClientSession) -> None:
            # The centre is touched, not only read, so that closing it conflicts with offers in flight.
            centre = await self._store.centres.update_one(
                {"_id": session.centre_id, "state": CentreState.OPEN.value}, {"$inc": {"offers_made": 1}}, session=s
            )
            seat = await self._store.sessions.update_one(
                {"_id": session.session_id, "$expr": {"$lt": [{"$add": ["$held", "$booked"]}, "$seats"]}},
                {"$inc": {"held": 1}},
                session=s,
            )
            if not centre.modified_count or not seat.modified_count:
                raise _SessionFull
            claimed = await self._store.candidates.update_one(
                {
                    "_id": candidate.candidate_id,
                    "status": CandidateStatus.WAITING.value,
                    "passed_over_sessions": {"$ne": session.session_id},
                },
                {
                    "$set": {
                        "status": CandidateStatus.OFFERED.value,
                        "offer_id": offer.offer_id,
                        "waiting_reason": None,
                        "updated_at": now,
                    },
                    "$push": {
                        "history": {"at": now, "what": "offered", "offer_id": offer.offer_id, "session_id": session.session_id}
                    },
                },
                session=s,
            )
            if not claimed.modified_count:
                raise _CandidateTaken
            await self._store.offers.insert_one(
                {
                    "_id": offer.offer_id,
                    "candidate_id": offer.candidate_id,
                    "person_id": offer.person_id,
                    "certification_code": offer.certification_code,
                    "session_id": offer.session_id,
                    "centre_id": offer.centre_id,
                    "status": offer.status.value,
                    "offered_at": now,
                    "expires_at": offer.expires_at,
                    "exam_at": offer.exam_at,
                    "answered_at": None,
                },
                session=s,
            )
            await self.timers.schedule(
                OFFER_EXPIRY, offer.offer_id, offer.expires_at, {"session_id": offer.session_id}, session=s
            )

        await self._store.transaction(work)
        log.info(
            "seat.offered",
            offer_id=offer.offer_id,
            candidate_id=offer.candidate_id,
            session_id=offer.session_id,
            expires_at=offer.expires_at,
        )
        return offer

    async def _future_open_sessions(self, query: dict[str, Any]) -> list[str]:
        open_centres = await self._store.centres.distinct("_id", {"state": CentreState.OPEN.value})
        query = {**query, "centre_id": {"$in": open_centres}, "starts_at": {"$gt": self.clock.now()}}
        return [
            doc["_id"]
            async for doc in self._store.sessions.find(query, {"_id": 1}).sort([("starts_at", ASCENDING), ("_id", ASCENDING)])
        ]

    async def _fill_sessions(self, session_ids: Iterable[str]) -> list[Offer]:
        made: list[Offer] = []
        for session_id in session_ids:
            made += await self.fill_session(session_id)
        return made

    async def fill_centre(self, centre_id: str) -> list[Offer]:
        """A centre (re)opened: its coming sessions are filled, earliest first."""
        return await self._fill_sessions(await self._future_open_sessions({"centre_id": centre_id}))

    async def fill_for_certification(self, code: str) -> list[Offer]:
        return await self._fill_sessions(await self._future_open_sessions({"certifications": code}))

    async def fill_all(self) -> list[Offer]:
        """The sweep: every coming session of an open centre (a safety net after a crash between steps)."""
        made = await self._fill_sessions(await self._future_open_sessions({}))
        await self.refresh_waiting_reasons()
        return made

    # --- answers to offers -------------------------------------------------------------

    async def offer(self, offer_id: str) -> Offer:
        doc = await self._store.offers.find_one({"_id": offer_id})
        if doc is None:
            raise CertificationError(f"offer {offer_id} is unknown", status=404)
        return Offer.from_document(doc)

    async def accept(self, offer_id: str) -> tuple[Offer, ExamScheduled | None]:
        """Book the held seat and publish `ExamScheduled` (through the outbox, in the same transaction).

        Accepting an accepted offer again answers the same (a retried click); a declined or expired
        offer cannot be accepted.
        """
        offer = await self.offer(offer_id)
        if offer.status is OfferStatus.ACCEPTED:
            return offer, None
        now = self.clock.now()
        if offer.status is not OfferStatus.OFFERED:
            raise CertificationError(f"offer {offer_id} is {offer.status.value}")
        if now >= offer.expires_at:
            raise CertificationError(f"offer {offer_id} is past its deadline")
        centre = await self._store.centres.find_one({"_id": offer.centre_id}) or {}
        candidate = await self._store.candidates.find_one({"_id": offer.candidate_id}) or {}
        event = ExamScheduled(
            source=SOURCE,
            subject=offer.person_id,
            person_id=offer.person_id,
            certification_code=offer.certification_code,
            session_id=offer.session_id,
            centre_id=offer.centre_id,
            centre_name=centre.get("name", offer.centre_id),
            exam_at=offer.exam_at,
            what_to_bring=self.what_to_bring,
            **correlation_of(candidate.get("requested_by")),
        )

        async def work(s: AsyncClientSession) -> None:
            answered = await self._store.offers.update_one(
                {"_id": offer_id, "status": OfferStatus.OFFERED.value, "expires_at": {"$gt": now}},
                {"$set": {"status": OfferStatus.ACCEPTED.value, "answered_at": now, "event_id": str(event.id)}},
                session=s,
            )
            if not answered.modified_count:
                raise _NotOffered
            booked = await self._store.sessions.update_one(
                {"_id": offer.session_id, "held": {"$gte": 1}}, {"$inc": {"held": -1, "booked": 1}}, session=s
            )
            seated = await self._store.candidates.update_one(
                {"_id": offer.candidate_id, "status": CandidateStatus.OFFERED.value, "offer_id": offer_id},
                {
                    "$set": {
                        "status": CandidateStatus.SCHEDULED.value,
                        "session_id": offer.session_id,
                        "exam_at": offer.exam_at,
                        "scheduled_event_id": str(event.id),
                        "updated_at": now,
                    },
                    "$push": {"history": {"at": now, "what": "accepted", "offer_id": offer_id, "session_id": offer.session_id}},
                },
                session=s,
            )
            if not (booked.modified_count and seated.modified_count):
                raise RuntimeError(f"offer {offer_id}: session counters or candidate out of step")
            await self.timers.cancel(OFFER_EXPIRY, offer_id, session=s)
            await self.outbox.add([event], session=s)

        try:
            await self._store.transaction(work)
        except _NotOffered:
            again = await self.offer(offer_id)
            if again.status is OfferStatus.ACCEPTED:
                return again, None
            state = "past its deadline" if again.status is OfferStatus.OFFERED else again.status.value
            raise CertificationError(f"offer {offer_id} is {state}") from None
        log.info("seat.accepted", offer_id=offer_id, candidate_id=offer.candidate_id, session_id=offer.session_id)
        return await self.offer(offer_id), event

    async def decline(self, offer_id: str) -> tuple[Offer, list[Offer]]:
        """Free the held seat and offer it to the next candidate; the decliner keeps their place for other sessions."""
        offer = await self.offer(offer_id)
        if offer.status is OfferStatus.DECLINED:
            return offer, []
        if offer.status is not OfferStatus.OFFERED:
            raise CertificationError(f"offer {offer_id} is {offer.status.value}")

        async def work(s: AsyncClientSession) -> None:
            if not await self._release(s, offer_id, OfferStatus.DECLINED, self.clock.now()):
                raise _NotOffered

        try:
            await self._store.transaction(work)
        except _NotOffered:
            again = await self.offer(offer_id)
            if again.status is OfferStatus.DECLINED:
                return again, []
            raise CertificationError(f"offer {offer_id} is {again.status.value}") from None
        log.info("seat.declined", offer_id=offer_id, candidate_id=offer.candidate_id, session_id=offer.session_id)
        next_offers = await self.fill_session(offer.session_id)
        await self.refresh_waiting_reasons([offer.certification_code])
        return await self.offer(offer_id), next_offers

    async def _release(self, s: AsyncClientSession, offer_id: str, outcome: OfferStatus, now: datetime) -> bool:
        """Close a pending offer as declined or expired: the seat is freed, the candidate waits again
        (same priority and waiting time) but is not offered that session again. False if it was not pending."""
        doc = await self._store.offers.find_one_and_update(
            {"_id": offer_id, "status": OfferStatus.OFFERED.value},
            {"$set": {"status": outcome.value, "answered_at": now}},
            session=s,
        )
        if doc is None:
            return False
        await self._store.sessions.update_one({"_id": doc["session_id"], "held": {"$gte": 1}}, {"$inc": {"held": -1}}, session=s)
        await self._store.candidates.update_one(
            {"_id": doc["candidate_id"], "status": CandidateStatus.OFFERED.value, "offer_id": offer_id},
            {
                "$set": {"status": CandidateStatus.WAITING.value, "offer_id": None, "updated_at": now},
                "$addToSet": {"passed_over_sessions": doc["session_id"]},
                "$inc": {"missed_offers" if outcome is OfferStatus.EXPIRED else "declined_offers": 1},
                "$push": {"history": {"at": now, "what": outcome.value, "offer_id": offer_id, "session_id": doc["session_id"]}},
            },
            session=s,
        )
        if outcome is OfferStatus.DECLINED:
            await self.timers.cancel(OFFER_EXPIRY, offer_id, session=s)
        return True

    async def _on_offer_expired(self, timer: Timer, session: AsyncClientSession) -> None:
        if await self._release(session, timer.key, OfferStatus.EXPIRED, self.clock.now()):
            # Filled after the timer's transaction commits (fill_session runs transactions of its own).
            self._to_refill.add(str(timer.payload["session_id"]))
            log.info("seat.offer_expired", offer_id=timer.key, session_id=timer.payload.get("session_id"))

    async def run_timers_once(self) -> int:
        """Expire the offers past their deadline and offer their seats to the next candidates."""
        fired = await self.timers.run_once({OFFER_EXPIRY: self._on_offer_expired})
        refill, self._to_refill = self._to_refill, set()
        for session_id in sorted(refill):
            await self.fill_session(session_id)
        if refill:
            await self.refresh_waiting_reasons()
        return fired
