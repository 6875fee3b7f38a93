"""Certification's use cases on MongoDB: candidates and their waitlists, centres and exam sessions,
seat offers with a deadline, results and credentials.

Every change that must not be lost or doubled is one transaction: an offer takes a seat with a
conditional update on the session's counters (``held + booked < seats``), claims the candidate
with a conditional update on its status, stores the offer and schedules its deadline timer, all or
nothing; so two replicas racing to fill one session never overbook it nor offer one candidate two
seats. An acceptance moves the seat from held to booked and writes `ExamScheduled` to the outbox in
the same transaction; a pass stores the credential and writes `CertificateIssued` likewise.
Decisions (who is next, the order, the deadline, the credential) come from `certification.seating`
and `certification.credentials`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from certification.certifications import CertificationInfo, Certifications
from certification.credentials import CredentialLinks, IssuerProfile, build_credential, new_salt, revocation_list, revoked_view
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
    waitlist_order,
    why_no_offer,
)
from certification.signing import CredentialSigner
from schemas import CertificateIssued, EnrolmentConfirmed, Event, ExamScheduled, ExamSchedulingRequested, TrainingRequestRouted
from services.clock import Clock
from services.idempotency import ProcessedEvents
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.timers import Timer, TimerStore

__all__ = [
    "OFFER_EXPIRY",
    "SOURCE",
    "Centre",
    "CertificationError",
    "CertificationService",
    "Offer",
    "Session",
    "candidate_id",
]

log = structlog.get_logger(__name__)

SOURCE = "/certification"
OFFER_EXPIRY = "offer_expiry"
"""Timer kind: an offer's deadline (key: the offer id)."""

WAITLIST_SORT = [("priority", DESCENDING), ("waiting_since", ASCENDING), ("_id", ASCENDING)]
"""`seating.order_key` in MongoDB's terms, so that the first documents are the first in line."""


class CertificationError(Exception):
    """A staff or candidate action that cannot be done, with the reason they read and an HTTP status."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class _SessionFull(Exception):
    """Aborts an offer's transaction: no seat left (or the centre closed meanwhile)."""


class _CandidateTaken(Exception):
    """Aborts an offer's transaction: the candidate is no longer waiting (another replica got there)."""


class _NotOffered(Exception):
    """Aborts an answer's transaction: the offer was answered or expired meanwhile."""


def candidate_id(person_id: str, certification_code: str) -> str:
    """One candidate per person and certification."""
    return f"{certification_code.upper()}:{person_id}"


def _utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


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
            doc["_id"], doc["centre_id"], tuple(doc["certifications"]), _utc(doc["starts_at"]) or doc["starts_at"],
            doc["seats"], doc["held"], doc["booked"],
        )

    @property
    def seating(self) -> SessionSeats:
        return SessionSeats(self.session_id, self.centre_id, frozenset(self.certifications), self.starts_at, self.seats, self.held, self.booked)


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
            offered_at=_utc(doc["offered_at"]) or doc["offered_at"],
            expires_at=_utc(doc["expires_at"]) or doc["expires_at"],
            exam_at=_utc(doc["exam_at"]) or doc["exam_at"],
            answered_at=_utc(doc.get("answered_at")),
        )


def _waiting(doc: Mapping[str, Any]) -> WaitingCandidate:
    return WaitingCandidate(
        candidate_id=doc["_id"],
        person_id=doc["person_id"],
        certification_code=doc["certification_code"],
        priority=int(doc.get("priority", 0)),
        waiting_since=_utc(doc["waiting_since"]) or doc["waiting_since"],
        passed_over=frozenset(doc.get("passed_over_sessions") or ()),
    )


def _correlation(event: ExamSchedulingRequested, candidate: Mapping[str, Any] | None) -> uuid.UUID:
    """The request an exam request belongs to: its own, unless it starts none (a root event from an
    e-learning platform that knows nothing of ours) and the candidate came through an enrolment, whose
    request it then continues - so the certificate can be traced back to the person's first call."""
    enrolled_by = (candidate or {}).get("enrolled_by")
    if event.correlation_id == event.id and enrolled_by:
        return uuid.UUID(enrolled_by["correlation_id"])
    return event.correlation_id


def _follows(requested_by: Mapping[str, Any] | None) -> dict[str, Any]:
    """Correlation of an event caused by the exam request (if the candidate came through one)."""
    if not requested_by or not requested_by.get("event_id"):
        return {}
    return {"correlation_id": uuid.UUID(requested_by["correlation_id"]), "causation_id": uuid.UUID(requested_by["event_id"])}


class CertificationService:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: MongoDatabase,
        *,
        certifications: Certifications,
        clock: Clock,
        processed: ProcessedEvents,
        outbox: Outbox,
        timers: TimerStore,
        links: CredentialLinks,
        issuer: IssuerProfile,
        offer_window: timedelta = timedelta(hours=48),
        what_to_bring: Sequence[str] = (),
        signer: CredentialSigner | None = None,
        routed_priority_from: int | None = None,
        routed_priority_boost: int = 1,
    ) -> None:
        if offer_window <= timedelta(0):
            raise ValueError("the offer window must be positive")
        self._client = client
        self.certifications = certifications
        self.clock = clock
        self.processed = processed
        self.outbox = outbox
        self.timers = timers
        self.links = links
        self.issuer = issuer
        self.offer_window = offer_window
        self.what_to_bring = list(what_to_bring)
        self.signer = signer
        self.routed_priority_from = routed_priority_from
        self.routed_priority_boost = routed_priority_boost
        self.candidates = db["certification_candidates"]
        self.centres = db["certification_centres"]
        self.sessions = db["certification_sessions"]
        self.offers = db["certification_offers"]
        self.results = db["certification_results"]
        self.credentials = db["certification_credentials"]
        self.hints = db["certification_priority_hints"]
        self._to_refill: set[str] = set()
        self.offer_attempts: Counter[str] = Counter()
        """How seat offers went on this replica: `offered`, `candidate_taken`, `session_full` (races lost)."""

    async def ensure_indexes(self) -> None:
        # Also creates every collection up front: creating one inside racing transactions conflicts.
        await self.candidates.create_index(
            [("certification_code", ASCENDING), ("status", ASCENDING), *WAITLIST_SORT], name="waitlist_order"
        )
        await self.candidates.create_index([("person_id", ASCENDING)], name="person")
        await self.candidates.create_index([("session_id", ASCENDING), ("person_id", ASCENDING)], name="session_person")
        await self.centres.create_index([("state", ASCENDING)], name="state")
        await self.sessions.create_index([("centre_id", ASCENDING), ("starts_at", ASCENDING)], name="centre_starts_at")
        await self.sessions.create_index([("certifications", ASCENDING), ("starts_at", ASCENDING)], name="certification_starts_at")
        await self.offers.create_index([("candidate_id", ASCENDING), ("status", ASCENDING)], name="candidate_status")
        await self.offers.create_index([("session_id", ASCENDING), ("status", ASCENDING)], name="session_status")
        await self.results.create_index([("session_id", ASCENDING)], name="session")
        await self.credentials.create_index([("person_id", ASCENDING)], name="person")
        await self.credentials.create_index([("status", ASCENDING)], name="status")
        await self.hints.create_index([("boost", ASCENDING)], name="boost")

    async def _transaction(self, work: Any) -> Any:
        async with self._client.start_session() as session:
            return await session.with_transaction(work)

    def _certification(self, code: str) -> CertificationInfo:
        cert = self.certifications.get(code)
        if cert is None:
            raise CertificationError(f"{code} is not a certification of the catalogue", status=404)
        return cert

    # --- events: candidates ------------------------------------------------------------

    async def on_enrolment(self, event: EnrolmentConfirmed) -> bool:
        """An enrolment in a path that prepares for a certification makes the person a candidate."""
        cert = self.certifications.for_course(event.course_code)
        if cert is None:
            return False
        now = self.clock.now()

        async def effect(session: AsyncClientSession) -> list[Event]:
            await self._ensure_candidate(session, event.person_id, cert, now, course=event.course_code.upper(), event=event)
            return []

        outcome = await self.processed.run_once(event, effect)
        if outcome.applied:
            log.info("candidate.enrolled", person_id=event.person_id, certification=cert.code, course=event.course_code)
        return outcome.applied

    async def on_exam_requested(self, event: ExamSchedulingRequested) -> bool:
        """The candidate joins the certification's waitlist; free seats are offered at once."""
        cert = self.certifications.get(event.certification_code)
        if cert is None:
            log.warning("exam_request.unknown_certification", person_id=event.person_id, certification=event.certification_code)
            return False
        now = self.clock.now()
        reason = await self._reason_for(cert, now)
        cid = candidate_id(event.person_id, cert.code)

        async def effect(session: AsyncClientSession) -> list[Event]:
            await self._ensure_candidate(session, event.person_id, cert, now, course=None, event=event)
            candidate = await self.candidates.find_one({"_id": cid}, {"enrolled_by": 1}, session=session)
            joined = await self.candidates.update_one(
                {"_id": cid, "status": {"$in": [CandidateStatus.PREPARING.value, CandidateStatus.FAILED.value]}},
                {
                    "$set": {
                        "status": CandidateStatus.WAITING.value,
                        "waiting_since": now,
                        "waiting_reason": reason.value,
                        "offer_id": None,
                        "session_id": None,
                        "requested_by": {
                            "event_id": str(event.id),
                            "correlation_id": str(_correlation(event, candidate)),
                            "reason": event.reason.value,
                        },
                        "updated_at": now,
                    },
                    "$push": {"history": {"at": now, "what": "joined_waitlist", "reason": event.reason.value}},
                },
                session=session,
            )
            if not joined.modified_count:
                log.info("exam_request.already_in_progress", candidate_id=cid)
            return []

        outcome = await self.processed.run_once(event, effect)
        if outcome.applied:
            log.info("candidate.waitlisted", candidate_id=cid, certification=cert.code, waiting_reason=reason.value)
            await self.fill_for_certification(cert.code)
        return outcome.applied

    async def on_routed(self, event: TrainingRequestRouted) -> bool:
        """Someone routed with high priority gets a higher candidate priority (kept as a hint for later candidacies)."""
        if self.routed_priority_from is None or event.priority < self.routed_priority_from:
            return False
        boost = self.routed_priority_boost
        # $max is idempotent and commutes with staff raising it further: no processed-events record needed.
        await self.hints.update_one({"_id": event.person_id}, {"$max": {"boost": boost}}, upsert=True)
        await self.candidates.update_many(
            {"person_id": event.person_id, "status": {"$in": [CandidateStatus.PREPARING.value, CandidateStatus.WAITING.value]}},
            {"$max": {"priority": boost}},
        )
        return True

    async def _ensure_candidate(
        self,
        session: AsyncClientSession,
        person_id: str,
        cert: CertificationInfo,
        now: datetime,
        *,
        course: str | None,
        event: Event,
    ) -> None:
        hint = await self.hints.find_one({"_id": person_id}, session=session)
        update: dict[str, Any] = {
            "$setOnInsert": {
                "person_id": person_id,
                "certification_code": cert.code,
                "status": CandidateStatus.PREPARING.value,
                "priority": int(hint["boost"]) if hint else 0,
                "waiting_since": None,
                "waiting_reason": None,
                "passed_over_sessions": [],
                "offer_id": None,
                "session_id": None,
                "created_at": now,
            },
            "$push": {"history": {"at": now, "what": event.type, "event_id": str(event.id)}},
        }
        if course:
            update["$addToSet"] = {"courses": course}
        if isinstance(event, EnrolmentConfirmed):
            update["$set"] = {"enrolled_by": {"event_id": str(event.id), "correlation_id": str(event.correlation_id)}}
        await self.candidates.update_one({"_id": candidate_id(person_id, cert.code)}, update, upsert=True, session=session)

    # --- staff: centres, sessions, priorities -----------------------------------------

    async def put_centre(
        self, centre_id: str, *, state: CentreState, name: str | None = None, address: str | None = None
    ) -> tuple[Centre, list[Offer]]:
        """Create or update a centre; opening one offers its sessions' seats to waiting candidates."""
        existing = await self.centres.find_one({"_id": centre_id})
        if existing is None and not (name and address):
            raise CertificationError(f"centre {centre_id} is new: give its name and address", status=422)
        now = self.clock.now()
        fields: dict[str, Any] = {"state": state.value, "updated_at": now}
        if name:
            fields["name"] = name
        if address:
            fields["address"] = address
        await self.centres.update_one(
            {"_id": centre_id},
            {"$set": fields, "$setOnInsert": {"created_at": now}, "$push": {"history": {"at": now, "state": state.value}}},
            upsert=True,
        )
        centre = Centre.from_document(await self.centres.find_one({"_id": centre_id}) or {})
        log.info("centre.updated", centre_id=centre_id, state=state.value)
        offers = await self.fill_centre(centre_id) if state is CentreState.OPEN else []
        await self.refresh_waiting_reasons()
        return centre, offers

    async def list_centres(self) -> list[Centre]:
        return [Centre.from_document(doc) async for doc in self.centres.find().sort("_id", ASCENDING)]

    async def add_session(
        self, *, centre_id: str, certifications: Sequence[str], starts_at: datetime, seats: int, session_id: str | None = None
    ) -> tuple[Session, list[Offer]]:
        """Add an exam session; its seats are offered at once if the centre is open."""
        if await self.centres.find_one({"_id": centre_id}) is None:
            raise CertificationError(f"centre {centre_id} is unknown", status=404)
        codes: list[str] = []
        for code in certifications:
            cert = self._certification(code)
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
            await self.sessions.insert_one(
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
        doc = await self.sessions.find_one({"_id": session_id})
        if doc is None:
            raise CertificationError(f"session {session_id} is unknown", status=404)
        return Session.from_document(doc)

    async def list_sessions(self, *, centre_id: str | None = None, certification: str | None = None) -> list[Session]:
        query: dict[str, Any] = {}
        if centre_id:
            query["centre_id"] = centre_id
        if certification:
            query["certifications"] = certification.upper()
        return [Session.from_document(doc) async for doc in self.sessions.find(query).sort("starts_at", ASCENDING)]

    async def set_priority(self, cid: str, priority: int) -> dict[str, Any]:
        now = self.clock.now()
        result = await self.candidates.update_one(
            {"_id": cid}, {"$set": {"priority": priority, "updated_at": now}, "$push": {"history": {"at": now, "what": "priority", "priority": priority}}}
        )
        if not result.matched_count:
            raise CertificationError(f"candidate {cid} is unknown", status=404)
        return await self.candidate(cid)

    async def candidate(self, cid: str) -> dict[str, Any]:
        doc = await self.candidates.find_one({"_id": cid})
        if doc is None:
            raise CertificationError(f"candidate {cid} is unknown", status=404)
        return doc

    async def list_candidates(
        self, *, certification: str | None = None, status: CandidateStatus | None = None, person_id: str | None = None
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if certification:
            query["certification_code"] = certification.upper()
        if status:
            query["status"] = status.value
        if person_id:
            query["person_id"] = person_id
        return await self.candidates.find(query, {"history": 0}).sort([("certification_code", ASCENDING), ("_id", ASCENDING)]).to_list(None)

    async def waitlist(self, certification: str) -> list[dict[str, Any]]:
        """The certification's waitlist, first in line first."""
        cert = self._certification(certification)
        docs = {doc["_id"]: doc async for doc in self.candidates.find({"certification_code": cert.code, "status": CandidateStatus.WAITING.value}, {"history": 0})}
        return [docs[c.candidate_id] for c in waitlist_order(_waiting(doc) for doc in docs.values())]

    async def _reason_for(self, cert: CertificationInfo, now: datetime) -> WaitingReason:
        open_centres = await self.centres.distinct("_id", {"state": CentreState.OPEN.value})
        free = await self.sessions.find_one(
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
        selected = [self._certification(code) for code in codes] if codes is not None else list(self.certifications.all())
        for cert in selected:
            reason = await self._reason_for(cert, now)
            await self.candidates.update_many(
                {"certification_code": cert.code, "status": CandidateStatus.WAITING.value, "waiting_reason": {"$ne": reason.value}},
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
            doc = await self.sessions.find_one({"_id": session_id})
            if doc is None:
                return made
            session = Session.from_document(doc)
            centre = await self.centres.find_one({"_id": session.centre_id}, {"state": 1})
            centre_open = centre is not None and centre["state"] == CentreState.OPEN.value
            if why_no_offer(session.seating, centre_open=centre_open, now=now) is not None:
                return made
            open_codes = [c for c in session.certifications if (cert := self.certifications.get(c)) and cert.open]
            batch = await self.candidates.find(
                {
                    "certification_code": {"$in": open_codes},
                    "status": CandidateStatus.WAITING.value,
                    "passed_over_sessions": {"$ne": session_id},
                }
            ).sort(WAITLIST_SORT).limit(20).to_list(20)
            chosen = next_candidate([_waiting(d) for d in batch], session.seating, open_certifications=open_codes)
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
            centre = await self.centres.update_one(
                {"_id": session.centre_id, "state": CentreState.OPEN.value}, {"$inc": {"offers_made": 1}}, session=s
            )
            seat = await self.sessions.update_one(
                {"_id": session.session_id, "$expr": {"$lt": [{"$add": ["$held", "$booked"]}, "$seats"]}},
                {"$inc": {"held": 1}},
                session=s,
            )
            if not centre.modified_count or not seat.modified_count:
                raise _SessionFull
            claimed = await self.candidates.update_one(
                {"_id": candidate.candidate_id, "status": CandidateStatus.WAITING.value, "passed_over_sessions": {"$ne": session.session_id}},
                {
                    "$set": {"status": CandidateStatus.OFFERED.value, "offer_id": offer.offer_id, "waiting_reason": None, "updated_at": now},
                    "$push": {"history": {"at": now, "what": "offered", "offer_id": offer.offer_id, "session_id": session.session_id}},
                },
                session=s,
            )
            if not claimed.modified_count:
                raise _CandidateTaken
            await self.offers.insert_one(
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
            await self.timers.schedule(OFFER_EXPIRY, offer.offer_id, offer.expires_at, {"session_id": offer.session_id}, session=s)

        await self._transaction(work)
        log.info(
            "seat.offered", offer_id=offer.offer_id, candidate_id=offer.candidate_id, session_id=offer.session_id, expires_at=offer.expires_at
        )
        return offer

    async def _future_open_sessions(self, query: dict[str, Any]) -> list[str]:
        open_centres = await self.centres.distinct("_id", {"state": CentreState.OPEN.value})
        query = {**query, "centre_id": {"$in": open_centres}, "starts_at": {"$gt": self.clock.now()}}
        return [doc["_id"] async for doc in self.sessions.find(query, {"_id": 1}).sort([("starts_at", ASCENDING), ("_id", ASCENDING)])]

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
        doc = await self.offers.find_one({"_id": offer_id})
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
        centre = await self.centres.find_one({"_id": offer.centre_id}) or {}
        candidate = await self.candidates.find_one({"_id": offer.candidate_id}) or {}
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
            **_follows(candidate.get("requested_by")),
        )

        async def work(s: AsyncClientSession) -> None:
            answered = await self.offers.update_one(
                {"_id": offer_id, "status": OfferStatus.OFFERED.value, "expires_at": {"$gt": now}},
                {"$set": {"status": OfferStatus.ACCEPTED.value, "answered_at": now, "event_id": str(event.id)}},
                session=s,
            )
            if not answered.modified_count:
                raise _NotOffered
            booked = await self.sessions.update_one(
                {"_id": offer.session_id, "held": {"$gte": 1}}, {"$inc": {"held": -1, "booked": 1}}, session=s
            )
            seated = await self.candidates.update_one(
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
            await self._transaction(work)
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
            await self._transaction(work)
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
        doc = await self.offers.find_one_and_update(
            {"_id": offer_id, "status": OfferStatus.OFFERED.value},
            {"$set": {"status": outcome.value, "answered_at": now}},
            session=s,
        )
        if doc is None:
            return False
        await self.sessions.update_one({"_id": doc["session_id"], "held": {"$gte": 1}}, {"$inc": {"held": -1}}, session=s)
        await self.candidates.update_one(
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

    # --- results and credentials -------------------------------------------------------

    async def record_result(self, session_id: str, *, person_id: str, passed: bool, score: float | None) -> dict[str, Any]:
        """Record an exam result; a pass issues the credential and publishes `CertificateIssued`.

        Recording the same result again answers the same; a different one is refused.
        """
        session = await self.session(session_id)
        result_id = f"{session_id}:{person_id}"
        if (existing := await self.results.find_one({"_id": result_id})) is not None:
            return self._same_result(existing, passed=passed, score=score)
        candidate = await self.candidates.find_one(
            {"person_id": person_id, "session_id": session_id, "status": CandidateStatus.SCHEDULED.value}
        )
        if candidate is None:
            raise CertificationError(f"{person_id} has no seat booked in session {session_id}", status=404)
        cert = self._certification(candidate["certification_code"])
        now = self.clock.now()
        credential_id = uuid.uuid4().hex if passed else None
        document: dict[str, Any] | None = None
        event: CertificateIssued | None = None
        if credential_id is not None:
            document = build_credential(
                credential_id=credential_id,
                certification=cert,
                person_id=person_id,
                salt=new_salt(),
                issued_at=now,
                links=self.links,
                issuer=self.issuer,
            )
            if self.signer is not None:
                document = self.signer.sign(document, created=now)
            follows = _follows(candidate.get("requested_by"))
            if candidate.get("scheduled_event_id") and follows:
                follows["causation_id"] = uuid.UUID(candidate["scheduled_event_id"])
            event = CertificateIssued(
                source=SOURCE,
                subject=person_id,
                person_id=person_id,
                certification_code=cert.code,
                credential_id=credential_id,
                issued_at=now,
                credential_url=self.links.credential(credential_id),
                **follows,
            )
        result = {
            "_id": result_id,
            "session_id": session_id,
            "person_id": person_id,
            "candidate_id": candidate["_id"],
            "certification_code": cert.code,
            "passed": passed,
            "score": score,
            "recorded_at": now,
            "credential_id": credential_id,
        }

        async def work(s: AsyncClientSession) -> None:
            await self.results.insert_one(result, session=s)
            status = CandidateStatus.PASSED if passed else CandidateStatus.FAILED
            await self.candidates.update_one(
                {"_id": candidate["_id"], "status": CandidateStatus.SCHEDULED.value},
                {
                    "$set": {"status": status.value, "result_id": result_id, "credential_id": credential_id, "updated_at": now},
                    "$push": {"history": {"at": now, "what": status.value, "session_id": session_id}},
                },
                session=s,
            )
            if document is not None and event is not None:
                await self.credentials.insert_one(
                    {
                        "_id": credential_id,
                        "person_id": person_id,
                        "certification_code": cert.code,
                        "session_id": session_id,
                        "issued_at": now,
                        "status": "active",
                        "document": document,
                    },
                    session=s,
                )
                await self.outbox.add([event], session=s)

        try:
            await self._transaction(work)
        except DuplicateKeyError:
            # The same result recorded twice at once: the other request stored it.
            return self._same_result(await self.results.find_one({"_id": result_id}) or {}, passed=passed, score=score)
        log.info("result.recorded", session_id=session_id, person_id=person_id, passed=passed, credential_id=credential_id)
        return self._result_view(result)

    def _same_result(self, existing: Mapping[str, Any], *, passed: bool, score: float | None) -> dict[str, Any]:
        if existing.get("passed") != passed or existing.get("score") != score:
            raise CertificationError(f"a different result is recorded for {existing.get('person_id')} in {existing.get('session_id')}")
        return self._result_view(existing)

    def _result_view(self, result: Mapping[str, Any]) -> dict[str, Any]:
        credential_id = result.get("credential_id")
        return {
            "session_id": result["session_id"],
            "person_id": result["person_id"],
            "certification_code": result["certification_code"],
            "passed": result["passed"],
            "score": result["score"],
            "recorded_at": result["recorded_at"],
            "credential_id": credential_id,
            "credential_url": self.links.credential(credential_id) if credential_id else None,
        }

    async def _credential(self, credential_id: str) -> dict[str, Any]:
        doc = await self.credentials.find_one({"_id": credential_id})
        if doc is None:
            raise CertificationError(f"credential {credential_id} is unknown", status=404)
        return doc

    async def credential_document(self, credential_id: str) -> dict[str, Any]:
        """The credential as issued; a revoked one is served marked revoked and without its proof."""
        doc = await self._credential(credential_id)
        if doc["status"] == "revoked":
            return revoked_view(doc["document"], revoked_at=_utc(doc["revoked_at"]) or doc["revoked_at"], reason=doc["revocation_reason"])
        return dict(doc["document"])

    async def credential_status(self, credential_id: str) -> dict[str, Any]:
        doc = await self._credential(credential_id)
        return {
            "credential_id": credential_id,
            "id": self.links.credential(credential_id),
            "status": doc["status"],
            "revoked": doc["status"] == "revoked",
            "issued_at": doc["issued_at"],
            "revoked_at": doc.get("revoked_at"),
            "revocation_reason": doc.get("revocation_reason"),
        }

    async def revoke(self, credential_id: str, reason: str) -> dict[str, Any]:
        """Revoke a credential (once: revoking it again keeps the first reason)."""
        await self._credential(credential_id)
        now = self.clock.now()
        result = await self.credentials.update_one(
            {"_id": credential_id, "status": "active"},
            {"$set": {"status": "revoked", "revoked_at": now, "revocation_reason": reason}},
        )
        if result.modified_count:
            log.info("credential.revoked", credential_id=credential_id)
        return await self.credential_status(credential_id)

    async def revocation_list(self) -> dict[str, Any]:
        revoked = [
            (doc["_id"], doc["revocation_reason"])
            async for doc in self.credentials.find({"status": "revoked"}, {"revocation_reason": 1}).sort("_id", ASCENDING)
        ]
        return revocation_list(self.links, self.issuer, revoked)
