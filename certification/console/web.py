"""The certification staff's console, behind sign-in (`services.console`): centres and sessions, seat
offers and waitlists, results and revocations (French, Dutch, English).

    GET  /console/{lang}/                      centres (open or closed) and sessions, earliest first
    POST /console/{lang}/centres               open, close or add a centre       (as PUT /centres/{centre_id})
    POST /console/{lang}/sessions              add a session                      (as POST /sessions)
    GET  /console/{lang}/seats                 offers awaiting an answer, and each certification's waitlist
    GET  /console/{lang}/results               the result and revocation forms
    POST /console/{lang}/results               record a result                    (as POST /sessions/{id}/results)
    POST /console/{lang}/credentials/revoke    revoke a credential                (as POST /credentials/{id}/revoke)

Every page declares the staff API's policy (`CERTIFICATION_ADMIN`) and calls the same use case as the
API route it mirrors, parsing its form into that route's own body model (the same validation). The
events these calls cause carry the signed-in subject as their `actor`, as the API's do (the session
dependency sets it, `schemas.envelope.ACTOR`); the log names who acted too.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from certification.api import (
    AwardsDep,
    CandidatesDep,
    CatalogueDep,
    CentreChange,
    Identifier,
    NewSession,
    ResultIn,
    Revocation,
    SeatsDep,
)
from certification.console.i18n import TEXTS
from certification.errors import CertificationError
from certification.seating import CandidateStatus, CentreState, OfferStatus
from certification.seats import Offer
from schemas import Language
from services.auth import Principal, requires_signed_in
from services.auth.roles import CERTIFICATION_ADMIN, may
from services.console import (
    ConsoleTexts,
    NavLink,
    checked_form,
    page_language,
    render,
    render_message,
    signed_in_principal,
)

__all__ = ["COOKIE", "PAGES", "TEMPLATES", "WORDS", "console_router"]

log = structlog.get_logger(__name__)

COOKIE = "certification_console_session"
TEMPLATES = Path(__file__).parent / "templates"
WORDS = ConsoleTexts(TEXTS)
_STAFF_ROLES = frozenset(may(CERTIFICATION_ADMIN))
PAGES = (
    NavLink("", "nav_centres", _STAFF_ROLES),
    NavLink("seats", "nav_seats", _STAFF_ROLES),
    NavLink("results", "nav_results", _STAFF_ROLES),
)
BRUSSELS = ZoneInfo("Europe/Brussels")
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)

Staff = Annotated[Principal, requires_signed_in(signed_in_principal, *may(CERTIFICATION_ADMIN))]

console_router = APIRouter(prefix="/console", include_in_schema=False)


def _brussels(moment: datetime | None) -> str | None:
    return moment.astimezone(BRUSSELS).strftime("%d/%m/%Y %H:%M") if moment else None


def _refusal(request: Request, language: Language, error: CertificationError, back: str) -> HTMLResponse:
    return render_message(request, language, error.status, WORDS.text(language, "refused", reason=str(error)), back=back)


def _expired(request: Request, language: Language, back: str) -> HTMLResponse:
    return render_message(request, language, 403, WORDS.text(language, "form_expired"), back=back)


def _invalid(request: Request, language: Language, error: ValidationError | str, back: str) -> HTMLResponse:
    """A form the API's model refuses: 422, naming the field (not echoing what was typed)."""
    if isinstance(error, ValidationError):
        field = ".".join(str(part) for part in error.errors()[0]["loc"]) if error.errors() else "?"
    else:
        field = error
    return render_message(request, language, 422, WORDS.text(language, "invalid_form", field=field), back=back)


def _done(lang: str, page: str, **query: str | int) -> RedirectResponse:
    return RedirectResponse(f"/console/{lang}/{page}?{urlencode(query)}", status_code=303)


def _notices(language: Language, done: str | None, offers: int | None, credential: str | None) -> list[str]:
    """What the last action did, as the redirect after it told this page."""
    notices: list[str] = []
    if done == "result_passed" and credential:
        notices.append(WORDS.text(language, "done_result_passed", credential=credential))
    elif done in ("centre_open", "centre_closed", "session_added", "result_failed", "revoked"):
        notices.append(WORDS.text(language, f"done_{done}"))
    if offers:
        notices.append(WORDS.text(language, "offers_made", count=offers))
    return notices


# --- centres and sessions --------------------------------------------------------------------------


@console_router.get("/{lang}/", name="certification_console_centres")
async def centres(
    request: Request,
    lang: str,
    seats: SeatsDep,
    catalogue: CatalogueDep,
    staff: Staff,
    done: str | None = None,
    offers: int | None = None,
) -> HTMLResponse:
    language = page_language(lang)
    sessions = await seats.list_sessions()
    return render(
        request,
        "centres.html",
        language,
        principal=staff,
        notices=_notices(language, done, offers, None),
        centres=await seats.list_centres(),
        sessions=[{"session": s, "starts_local": _brussels(s.starts_at)} for s in sessions],
        certifications=[(c.code, c.title) for c in catalogue.all() if c.open],
        states=[s.value for s in CentreState],
    )


@console_router.post("/{lang}/centres")
async def put_centre(request: Request, lang: str, seats: SeatsDep, staff: Staff) -> Response:
    language = page_language(lang)
    back = f"/console/{lang}/"
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, back)
    try:
        centre_id = _IDENTIFIER.validate_python(fields.get("centre_id", ""))
        change = CentreChange.model_validate(
            {"state": fields.get("state"), "name": fields.get("name") or None, "address": fields.get("address") or None}
        )
    except ValidationError as error:
        return _invalid(request, language, error, back)
    try:
        centre, offered = await seats.put_centre(centre_id, state=change.state, name=change.name, address=change.address)
    except CertificationError as error:
        return _refusal(request, language, error, back)
    log.info(
        "console.centre_changed", centre_id=centre.centre_id, state=centre.state.value, offers=len(offered), by=staff.subject
    )
    return _done(lang, "", done=f"centre_{centre.state.value}", offers=len(offered))


@console_router.post("/{lang}/sessions")
async def add_session(request: Request, lang: str, seats: SeatsDep, staff: Staff) -> Response:
    language = page_language(lang)
    back = f"/console/{lang}/"
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, back)
    # A form sends one field per ticked certification; `checked_form` keeps one value per name.
    ticked = (await request.form()).getlist("certifications")
    try:
        # The page's datetime-local input is Brussels time, without a zone.
        starts_at = datetime.fromisoformat(fields.get("starts_at", "")).replace(tzinfo=BRUSSELS)
    except ValueError:
        return _invalid(request, language, "starts_at", back)
    try:
        body = NewSession.model_validate(
            {
                "session_id": fields.get("session_id") or None,
                "centre_id": fields.get("centre_id", ""),
                "certifications": [code for code in ticked if isinstance(code, str)],
                "starts_at": starts_at,
                "seats": fields.get("seats", ""),
            }
        )
    except ValidationError as error:
        return _invalid(request, language, error, back)
    try:
        session, offered = await seats.add_session(
            session_id=body.session_id,
            centre_id=body.centre_id,
            certifications=body.certifications,
            starts_at=body.starts_at,
            seats=body.seats,
        )
    except CertificationError as error:
        return _refusal(request, language, error, back)
    log.info("console.session_added", session_id=session.session_id, offers=len(offered), by=staff.subject)
    return _done(lang, "", done="session_added", offers=len(offered))


# --- offers and waitlists --------------------------------------------------------------------------


async def _pending_offers(seats: SeatsDep, candidates: CandidatesDep) -> list[Offer]:
    """The offers awaiting an answer, soonest deadline first: the offered candidates' offers (the use
    cases list candidates, not offers; an offer answered meanwhile is left out)."""
    found: list[Offer] = []
    for candidate in await candidates.list_candidates(status=CandidateStatus.OFFERED):
        if not candidate.get("offer_id"):
            continue
        try:
            offer = await seats.offer(candidate["offer_id"])
        except CertificationError:
            continue
        if offer.status is OfferStatus.OFFERED:
            found.append(offer)
    return sorted(found, key=lambda offer: (offer.expires_at, offer.offer_id))


@console_router.get("/{lang}/seats", name="certification_console_seats")
async def seat_offers(
    request: Request, lang: str, seats: SeatsDep, candidates: CandidatesDep, catalogue: CatalogueDep, staff: Staff
) -> HTMLResponse:
    language = page_language(lang)
    offers = [
        {"offer": o, "expires_local": _brussels(o.expires_at), "exam_local": _brussels(o.exam_at)}
        for o in await _pending_offers(seats, candidates)
    ]
    waitlists: list[dict[str, Any]] = []
    nobody: list[str] = []
    for cert in catalogue.all():
        if not cert.open:
            continue
        entries = await candidates.waitlist(cert.code)
        if not entries:
            nobody.append(cert.code)
            continue
        rows = [
            {"position": i, "candidate": doc, "waiting_since_local": _brussels(doc.get("waiting_since"))}
            for i, doc in enumerate(entries, start=1)
        ]
        waitlists.append({"code": cert.code, "title": cert.title, "rows": rows})
    return render(
        request,
        "seats.html",
        language,
        principal=staff,
        here="seats",
        offers=offers,
        waitlists=waitlists,
        nobody=nobody,
    )


# --- results and revocations -----------------------------------------------------------------------


@console_router.get("/{lang}/results", name="certification_console_results")
async def results(
    request: Request,
    lang: str,
    seats: SeatsDep,
    staff: Staff,
    done: str | None = None,
    credential: str | None = None,
) -> HTMLResponse:
    language = page_language(lang)
    sessions = await seats.list_sessions()
    return render(
        request,
        "results.html",
        language,
        principal=staff,
        here="results",
        notices=_notices(language, done, None, credential),
        sessions=[{"session": s, "starts_local": _brussels(s.starts_at)} for s in sessions],
    )


@console_router.post("/{lang}/results")
async def record_result(request: Request, lang: str, awards: AwardsDep, staff: Staff) -> Response:
    language = page_language(lang)
    back = f"/console/{lang}/results"
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, back)
    try:
        session_id = _IDENTIFIER.validate_python(fields.get("session_id", ""))
        body = ResultIn.model_validate(
            {
                "person_id": fields.get("person_id", ""),
                "passed": fields.get("passed", ""),
                "score": fields.get("score") or None,
                "email": fields.get("email") or None,
            }
        )
    except ValidationError as error:
        return _invalid(request, language, error, back)
    try:
        recorded = await awards.record_result(
            session_id, person_id=body.person_id, passed=body.passed, score=body.score, email=body.email
        )
    except CertificationError as error:
        return _refusal(request, language, error, back)
    log.info("console.result_recorded", session_id=session_id, passed=body.passed, by=staff.subject)
    if recorded.get("credential_id"):
        return _done(lang, "results", done="result_passed", credential=recorded["credential_id"])
    return _done(lang, "results", done="result_failed")


@console_router.post("/{lang}/credentials/revoke")
async def revoke(request: Request, lang: str, awards: AwardsDep, staff: Staff) -> Response:
    language = page_language(lang)
    back = f"/console/{lang}/results"
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, back)
    try:
        credential_id = _IDENTIFIER.validate_python(fields.get("credential_id", ""))
        body = Revocation.model_validate({"reason": fields.get("reason", "")})
    except ValidationError as error:
        return _invalid(request, language, error, back)
    try:
        await awards.revoke(credential_id, body.reason)
    except CertificationError as error:
        return _refusal(request, language, error, back)
    log.info("console.credential_revoked", credential_id=credential_id, by=staff.subject)
    return _done(lang, "results", done="revoked")
