"""Certification's HTTP API (OpenAPI at /docs), in two surfaces that can be served apart
(`CERTIFICATION_SURFACES`): the public one (`verification_router`), where anyone shown a credential
fetches and checks it, and where candidates answer seat offers by their links (`offer_page_router`),
and the staff one (`staff_router`, `offers_router`), where staff manage centres,
sessions, priorities, results and revocations and answer seat offers for candidates.

The routers are module-level; each handler gets the use cases it needs (`Candidates`, `Seats`,
`Awards` of the app's `CertificationService`) through a dependency, calls one method and shapes
the answer; a `CertificationError` becomes its HTTP status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from certification.awards import Awards
from certification.candidates import Candidates
from certification.certifications import Certifications
from certification.offer_page import offer_page_router
from certification.seating import CandidateStatus, CentreState, OfferStatus
from certification.seats import Centre, Offer, Seats, Session
from certification.service import CertificationService
from certification.store import CertificationError
from certification.verification import PAGE_HEADERS, assess, render
from schemas import Language
from schemas.values import EMAIL_PATTERN
from services import Runtime, get_runtime
from services.auth import PROTECTED, error_responses, public, requires
from services.auth.roles import CERTIFICATION_ADMIN, PUBLIC_VERIFICATION, may

__all__ = [
    "SURFACES",
    "Surface",
    "get_certification",
    "offers_router",
    "staff_router",
    "verification_router",
]

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _refused(error: CertificationError) -> HTTPException:
    return HTTPException(status_code=error.status, detail=str(error))


# --- dependencies ----------------------------------------------------------------------


def get_certification(runtime: Annotated[Runtime, Depends(get_runtime)]) -> CertificationService:
    """FastAPI dependency: the use cases of the app serving the request (`runtime.app_state["service"]`)."""
    return runtime.app_state["service"]  # type: ignore[no-any-return]


def _catalogue(certification: Annotated[CertificationService, Depends(get_certification)]) -> Certifications:
    return certification.certifications


def _candidates(certification: Annotated[CertificationService, Depends(get_certification)]) -> Candidates:
    return certification.candidates


def _seats(certification: Annotated[CertificationService, Depends(get_certification)]) -> Seats:
    return certification.seats


def _awards(certification: Annotated[CertificationService, Depends(get_certification)]) -> Awards:
    return certification.awards


CatalogueDep = Annotated[Certifications, Depends(_catalogue)]
CandidatesDep = Annotated[Candidates, Depends(_candidates)]
SeatsDep = Annotated[Seats, Depends(_seats)]
AwardsDep = Annotated[Awards, Depends(_awards)]


# --- models --------------------------------------------------------------------------


class CentreChange(BaseModel):
    state: CentreState = Field(description="`open`: exams can take place; `closed`: candidates wait.")
    name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Required when the centre is new.",
        examples=["Bruxelles Formation – centre d'examens"],
    )
    address: str | None = Field(
        None,
        min_length=1,
        max_length=300,
        description="Required when the centre is new.",
        examples=["Rue de l'Exemple 1, 1000 Bruxelles"],
    )


class CentreOut(BaseModel):
    centre_id: str
    name: str
    address: str
    state: CentreState

    @classmethod
    def of(cls, centre: Centre) -> CentreOut:
        return cls(centre_id=centre.centre_id, name=centre.name, address=centre.address, state=centre.state)


class OfferOut(BaseModel):
    offer_id: str
    candidate_id: str
    person_id: str
    certification_code: str
    session_id: str
    centre_id: str
    status: OfferStatus
    offered_at: datetime
    expires_at: datetime = Field(description="The seat is held until then; past it, it goes to the next candidate.")
    exam_at: datetime
    answered_at: datetime | None

    @classmethod
    def of(cls, offer: Offer) -> OfferOut:
        return cls(
            offer_id=offer.offer_id,
            candidate_id=offer.candidate_id,
            person_id=offer.person_id,
            certification_code=offer.certification_code,
            session_id=offer.session_id,
            centre_id=offer.centre_id,
            status=offer.status,
            offered_at=offer.offered_at,
            expires_at=offer.expires_at,
            exam_at=offer.exam_at,
            answered_at=offer.answered_at,
        )


class CentreUpdated(BaseModel):
    centre: CentreOut
    offers: list[OfferOut] = Field(description="Seats offered because the centre opened.")


class NewSession(BaseModel):
    session_id: Identifier | None = Field(None, description="Chosen by the caller, or generated.", examples=["ses_2020_06_02_am"])
    centre_id: Identifier
    certifications: list[str] = Field(
        min_length=1, description="Catalogue codes of the certifications examined.", examples=[["MOS-WORD", "MOS-EXCEL"]]
    )
    starts_at: AwareDatetime = Field(examples=["2020-06-02T09:00:00+02:00"])
    seats: int = Field(ge=1, le=500, examples=[12])


class SessionOut(BaseModel):
    session_id: str
    centre_id: str
    certifications: list[str]
    starts_at: datetime
    seats: int
    held: int = Field(description="Seats offered and not answered yet.")
    booked: int
    free: int

    @classmethod
    def of(cls, session: Session) -> SessionOut:
        return cls(
            session_id=session.session_id,
            centre_id=session.centre_id,
            certifications=list(session.certifications),
            starts_at=session.starts_at,
            seats=session.seats,
            held=session.held,
            booked=session.booked,
            free=session.seating.free,
        )


class SessionAdded(BaseModel):
    session: SessionOut
    offers: list[OfferOut]


class ResultIn(BaseModel):
    person_id: Identifier
    passed: bool
    score: float | None = Field(
        None, ge=0, description="As the exam provider reports it (e.g. 0–1000 for Certiport exams).", examples=[812]
    )
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254, pattern=EMAIL_PATTERN)] | None = Field(
        None,
        description=(
            "The candidate's e-mail address: the credential names its holder by a salted hash of it, which a verifier "
            "told the address can check. Neither stored nor logged. Without it, a salted hash of the person id."
        ),
        examples=["candidate@example.org"],
    )


class ResultOut(BaseModel):
    session_id: str
    person_id: str
    certification_code: str
    passed: bool
    score: float | None
    recorded_at: datetime
    credential_id: str | None
    credential_url: str | None
    bf_certification: str | None = Field(None, description="Bruxelles Formation's certification the exam is for.")
    vendor_exam: str | None = Field(None, description="The vendor's exam paired with it, if any.")
    vendor: str | None = Field(None, description="Who owns the vendor's exam.")


class ExamOut(BaseModel):
    """The last exam a candidate sat: the BF certification, the vendor's exam paired with it, and the result."""

    session_id: str
    passed: bool
    score: float | None
    bf_certification: str = Field(description="Bruxelles Formation's certification the exam is for.")
    vendor_exam: str | None = Field(description="The vendor's (private) certification exam sat with it; null if none.")
    vendor_programme: str | None
    vendor: str | None


class PriorityChange(BaseModel):
    priority: int = Field(ge=-100, le=100, description="Higher is offered a seat first; 0 by default.")


class CandidateOut(BaseModel):
    candidate_id: str
    person_id: str
    certification_code: str
    status: CandidateStatus
    priority: int
    waiting_since: datetime | None
    waiting_reason: str | None = Field(description="Why a waiting candidate has no seat yet.")
    offer_id: str | None
    session_id: str | None
    courses: list[str]
    exam: ExamOut | None = Field(None, description="The last exam result recorded, with the vendor's exam paired with it.")

    @classmethod
    def of(cls, doc: dict[str, Any]) -> CandidateOut:
        return cls(
            candidate_id=doc["_id"],
            person_id=doc["person_id"],
            certification_code=doc["certification_code"],
            status=CandidateStatus(doc["status"]),
            priority=doc.get("priority", 0),
            waiting_since=doc.get("waiting_since"),
            waiting_reason=doc.get("waiting_reason"),
            offer_id=doc.get("offer_id"),
            session_id=doc.get("session_id"),
            courses=doc.get("courses", []),
            exam=ExamOut.model_validate(doc["exam"]) if doc.get("exam") else None,
        )


class WaitlistEntry(CandidateOut):
    position: int = Field(ge=1)


class Accepted(BaseModel):
    offer: OfferOut
    published: list[str] = Field(description="Events published by this call (none when the offer was already accepted).")


class Declined(BaseModel):
    offer: OfferOut
    next_offers: list[OfferOut] = Field(description="The freed seat, offered to the next candidate.")


class Revocation(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["Issued in error: wrong session"])


class CredentialStatusOut(BaseModel):
    credential_id: str
    id: str
    status: str = Field(examples=["active", "revoked"])
    revoked: bool
    issued_at: datetime
    revoked_at: datetime | None
    revocation_reason: str | None


class CertificationOut(BaseModel):
    code: str
    title: str
    bf_title: str
    family: str
    open: bool
    private_certification: str | None
    programme: str | None
    recognised_by: list[str]
    courses: list[str]


# --- staff -----------------------------------------------------------------------------

staff_router = APIRouter(
    tags=["staff"], dependencies=[requires(*may(CERTIFICATION_ADMIN))], responses=error_responses(*PROTECTED)
)


@staff_router.get("/certifications", summary="The certifications, their pairing, recognition and preparing paths")
async def certifications(catalogue: CatalogueDep) -> list[CertificationOut]:
    return [
        CertificationOut(
            code=c.code,
            title=c.title,
            bf_title=c.bf_title,
            family=c.family,
            open=c.open,
            private_certification=c.private.title if c.private else None,
            programme=c.private.programme.name if c.private else None,
            recognised_by=[b.name for b in c.recognised_by],
            courses=list(c.courses),
        )
        for c in catalogue.all()
    ]


@staff_router.get("/centres", summary="Training centres and whether they are open")
async def centres(seats: SeatsDep) -> list[CentreOut]:
    return [CentreOut.of(c) for c in await seats.list_centres()]


@staff_router.put("/centres/{centre_id}", summary="Create, open or close a centre; opening offers seats to waiting candidates")
async def put_centre(seats: SeatsDep, centre_id: Identifier, change: CentreChange) -> CentreUpdated:
    try:
        centre, offers = await seats.put_centre(centre_id, state=change.state, name=change.name, address=change.address)
    except CertificationError as error:
        raise _refused(error) from error
    return CentreUpdated(centre=CentreOut.of(centre), offers=[OfferOut.of(o) for o in offers])


@staff_router.post(
    "/sessions", status_code=201, summary="Add an exam session; its seats are offered at once if the centre is open"
)
async def add_session(seats: SeatsDep, body: NewSession) -> SessionAdded:
    try:
        session, offers = await seats.add_session(
            session_id=body.session_id,
            centre_id=body.centre_id,
            certifications=body.certifications,
            starts_at=body.starts_at,
            seats=body.seats,
        )
    except CertificationError as error:
        raise _refused(error) from error
    return SessionAdded(session=SessionOut.of(session), offers=[OfferOut.of(o) for o in offers])


@staff_router.get("/sessions", summary="Exam sessions, earliest first")
async def sessions(seats: SeatsDep, centre_id: str | None = None, certification: str | None = None) -> list[SessionOut]:
    return [SessionOut.of(s) for s in await seats.list_sessions(centre_id=centre_id, certification=certification)]


@staff_router.get("/sessions/{session_id}", summary="One session and its seats")
async def session(seats: SeatsDep, session_id: str) -> SessionOut:
    try:
        return SessionOut.of(await seats.session(session_id))
    except CertificationError as error:
        raise _refused(error) from error


@staff_router.post("/sessions/{session_id}/results", summary="Record a result; a pass issues the credential")
async def record_result(awards: AwardsDep, session_id: str, body: ResultIn) -> ResultOut:
    try:
        return ResultOut(
            **await awards.record_result(
                session_id, person_id=body.person_id, passed=body.passed, score=body.score, email=body.email
            )
        )
    except CertificationError as error:
        raise _refused(error) from error


@staff_router.get("/waitlist", summary="A certification's waitlist, first in line first, with why each waits")
async def waitlist(candidates: CandidatesDep, certification: Annotated[str, Query(min_length=1)]) -> list[WaitlistEntry]:
    try:
        docs = await candidates.waitlist(certification)
    except CertificationError as error:
        raise _refused(error) from error
    return [WaitlistEntry(position=i, **CandidateOut.of(doc).model_dump()) for i, doc in enumerate(docs, start=1)]


@staff_router.get("/candidates", summary="Candidates, by certification, status or person")
async def candidates(
    candidates: CandidatesDep,
    certification: str | None = None,
    status: CandidateStatus | None = None,
    person_id: str | None = None,
) -> list[CandidateOut]:
    docs = await candidates.list_candidates(certification=certification, status=status, person_id=person_id)
    return [CandidateOut.of(doc) for doc in docs]


@staff_router.get("/candidates/{candidate_id}", summary="One candidate, with their history")
async def candidate(candidates: CandidatesDep, candidate_id: str) -> dict[str, Any]:
    try:
        doc = await candidates.candidate(candidate_id)
    except CertificationError as error:
        raise _refused(error) from error
    return {**CandidateOut.of(doc).model_dump(mode="json"), "history": doc.get("history", [])}


@staff_router.put("/candidates/{candidate_id}/priority", summary="Set a candidate's priority (higher is offered a seat first)")
async def set_priority(candidates: CandidatesDep, candidate_id: str, body: PriorityChange) -> CandidateOut:
    try:
        return CandidateOut.of(await candidates.set_priority(candidate_id, body.priority))
    except CertificationError as error:
        raise _refused(error) from error


@staff_router.post(
    "/credentials/{credential_id}/revoke",
    summary="Revoke a credential (staff)",
)
async def revoke(awards: AwardsDep, credential_id: str, body: Revocation) -> CredentialStatusOut:
    try:
        return CredentialStatusOut(**await awards.revoke(credential_id, body.reason))
    except CertificationError as error:
        raise _refused(error) from error


# --- seat offers ---------------------------------------------------------------------------

# Candidates have no accounts: staff (or the desk, on the phone) answer an offer for them.
offers_router = APIRouter(
    prefix="/offers", tags=["offers"], dependencies=[requires(*may(CERTIFICATION_ADMIN))], responses=error_responses(*PROTECTED)
)


@offers_router.get("/{offer_id}", summary="A seat offer and its deadline")
async def offer(seats: SeatsDep, offer_id: str) -> OfferOut:
    try:
        return OfferOut.of(await seats.offer(offer_id))
    except CertificationError as error:
        raise _refused(error) from error


@offers_router.post("/{offer_id}/accept", summary="Accept a seat: the exam is scheduled (ExamScheduled)")
async def accept(seats: SeatsDep, offer_id: str) -> Accepted:
    try:
        offer, event = await seats.accept(offer_id)
    except CertificationError as error:
        raise _refused(error) from error
    return Accepted(offer=OfferOut.of(offer), published=[event.type] if event else [])


@offers_router.post("/{offer_id}/decline", summary="Decline a seat: it is offered to the next candidate")
async def decline(seats: SeatsDep, offer_id: str) -> Declined:
    try:
        offer, next_offers = await seats.decline(offer_id)
    except CertificationError as error:
        raise _refused(error) from error
    return Declined(offer=OfferOut.of(offer), next_offers=[OfferOut.of(o) for o in next_offers])


# --- public verification ---------------------------------------------------------------------

verification_router = APIRouter(tags=["credentials"], dependencies=[public(PUBLIC_VERIFICATION)])
"""What a credential's ids point at, open to anyone (`PUBLIC_VERIFICATION`); revoking is staff's."""


@verification_router.get(
    "/credentials/{credential_id}",
    summary="An Open Badges 3.0 credential (a revoked one says so)",
)
async def credential(awards: AwardsDep, credential_id: str) -> dict[str, Any]:
    try:
        return await awards.credential_document(credential_id)
    except CertificationError as error:
        raise _refused(error) from error


@verification_router.get(
    "/credentials/{credential_id}/status",
    summary="Whether a credential is active or revoked",
)
async def status(awards: AwardsDep, credential_id: str) -> CredentialStatusOut:
    try:
        return CredentialStatusOut(**await awards.credential_status(credential_id))
    except CertificationError as error:
        raise _refused(error) from error


@verification_router.get(
    "/status-lists/revocation",
    summary="The revocation BitstringStatusListCredential the credentials' credentialStatus points at (signed)",
)
async def revocation_status_list(awards: AwardsDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return await awards.status_list()


@verification_router.get(
    "/verify/{credential_id}",
    summary="A page saying whether a credential verifies, is revoked, and what it certifies (fr, nl, en)",
    response_class=HTMLResponse,
)
async def verification_page(awards: AwardsDep, credential_id: str, lang: Language = Language.FR) -> HTMLResponse:
    try:
        record = await awards.stored_credential(credential_id)
    except CertificationError as error:
        raise _refused(error) from error
    signer = awards.signer
    assessment = assess(
        record,
        public_key=signer.public_key if signer else None,
        verification_method=signer.verification_method if signer else None,
        credential_url=awards.links.credential(credential_id),
        page_url=awards.links.verification_page(credential_id),
    )
    return HTMLResponse(render(assessment, lang), headers={**PAGE_HEADERS, "Content-Language": lang.value})


@verification_router.get(
    "/revocations",
    summary="Revoked credentials and why (the earlier 1EdTech revocation list; credentials now point at the status list)",
)
async def revocations(awards: AwardsDep) -> dict[str, Any]:
    return await awards.revocation_list()


@verification_router.get("/achievements/{code}", summary="The Open Badges achievement of a certification")
async def achievement_of(awards: AwardsDep, code: str) -> dict[str, Any]:
    try:
        return awards.achievement(code)
    except CertificationError as error:
        raise _refused(error) from error


@verification_router.get(
    "/issuer",
    summary="The issuer's controller document: the Multikey that signs credentials (#key-1), for assertionMethod",
)
async def issuer(awards: AwardsDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return awards.issuer_profile()


# --- surfaces ------------------------------------------------------------------------------

Surface = Literal["public", "staff"]
SURFACES: dict[Surface, tuple[APIRouter, ...]] = {
    "public": (verification_router, offer_page_router),
    "staff": (staff_router, offers_router),
}
"""The routers of each surface: a process serves those of its `CERTIFICATION_SURFACES`."""
