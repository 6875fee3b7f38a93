"""The page of course sessions in the console (French, Dutch, English), beside the queue and the team
pages of `routing.console.web`, over the same `CourseSeats` as the sessions API (`routing.sessions_api`):

    GET  /console/{lang}/sessions?course=EXCEL           a course's sessions: dates, places taken, who waits
    POST /console/{lang}/sessions                        plan a session (supervisor)
    POST /console/{lang}/sessions/{session_id}/change    change its dates, capacity or place (supervisor)
    POST /console/{lang}/sessions/{session_id}/cancel    cancel a session nobody is enrolled in (supervisor)
    POST /console/{lang}/enrolments/completed            a person completed their course (anyone on the desk)
    POST /console/{lang}/enrolments/abandoned            a person left their course, and why (anyone on the desk)

The policies are the sessions API's: anyone on the desk reads the page and records how a course ended
(`DESK_READ`); only supervisors see and send the forms that plan, change and cancel (`DESK_TEAM`).
Every form is CSRF-checked; a form the desk cannot take comes back filled as sent, each problem beside
its field. Its words are its own (`WORDS` below) rather than `routing.console.i18n`'s, so that the page
is one module and one template."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from routing.case import DeskError
from routing.enrolment import CourseSeats
from routing.sessions import InvalidSession, SessionPlan
from routing.sessions_api import NewSession, SeatsDep
from schemas import Language
from schemas.events import AbandonReason
from services.auth import Principal, requires_signed_in
from services.auth.roles import DESK_READ, DESK_TEAM, may
from services.console import checked_form, page_language, render, render_message, signed_in_principal

__all__ = ["WORDS", "sessions_page_router"]

SupervisorSignedIn = Annotated[Principal, requires_signed_in(signed_in_principal, *may(DESK_TEAM))]
DeskSignedIn = Annotated[Principal, requires_signed_in(signed_in_principal, *may(DESK_READ))]
SUPERVISORS = frozenset(may(DESK_TEAM))
REASONS: tuple[str, ...] = get_args(AbandonReason)
PLAN_FIELDS = ("starts_on", "ends_on", "capacity", "mode", "centre_id", "language")

FormErrors = dict[str, dict[str, str]]
"""Problems by form (`plan`, `change-{session_id}`, `cancel-{session_id}`, `completed`, `abandoned`), then by field."""

WORDS: dict[Language, dict[str, str]] = {
    Language.FR: {
        "heading": "Sessions de formation",
        "course": "Formation",
        "show": "Afficher",
        "none": "Aucune session planifiée pour cette formation.",
        "starts_on": "Début",
        "ends_on": "Fin",
        "capacity": "Places",
        "enrolled": "Inscrits",
        "waiting": "En attente",
        "mode": "Mode",
        "online": "en ligne",
        "centre": "en centre",
        "centre_id": "Centre",
        "language": "Langue",
        "waiting_for_course": "En attente de la formation (toute session)",
        "plan": "Planifier une session",
        "session_id": "Identifiant (facultatif)",
        "submit": "Planifier",
        "planned": "Session planifiée ; les personnes en attente y sont inscrites.",
        "invalid": "Formulaire incomplet ou invalide : {reason}",
        "changed": "Session modifiée.",
        "cancelled": "Session annulée ; qui l'attendait attend la formation.",
        "change": "Modifier la session {session_id}",
        "save": "Enregistrer",
        "cancel": "Annuler la session",
        "cancel_hint": "Seule une session sans inscrit peut être annulée.",
        "finish": "Fin de formation d'une personne",
        "request_id": "Demande",
        "completed": "A terminé la formation",
        "record_completed": "Enregistrer la fin",
        "abandoned": "A abandonné la formation",
        "reason": "Motif",
        "record_abandoned": "Enregistrer l'abandon",
        "finished_completed": "Fin de formation enregistrée ; la place est libérée.",
        "finished_abandoned": "Abandon enregistré ; la place est libérée.",
        "field_invalid": "Valeur manquante ou invalide.",
        "reason_no_show": "ne s'est pas présentée",
        "reason_found_work": "a trouvé un emploi",
        "reason_personal": "raisons personnelles",
        "reason_level_mismatch": "niveau inadapté",
        "reason_other": "autre",
    },
    Language.NL: {
        "heading": "Opleidingssessies",
        "course": "Opleiding",
        "show": "Tonen",
        "none": "Geen sessie gepland voor deze opleiding.",
        "starts_on": "Begin",
        "ends_on": "Einde",
        "capacity": "Plaatsen",
        "enrolled": "Ingeschreven",
        "waiting": "Wachtend",
        "mode": "Vorm",
        "online": "online",
        "centre": "in een centrum",
        "centre_id": "Centrum",
        "language": "Taal",
        "waiting_for_course": "Wachtend op de opleiding (om het even welke sessie)",
        "plan": "Een sessie plannen",
        "session_id": "Id (facultatief)",
        "submit": "Plannen",
        "planned": "Sessie gepland; wie wachtte, is ingeschreven.",
        "invalid": "Onvolledig of ongeldig formulier: {reason}",
        "changed": "Sessie gewijzigd.",
        "cancelled": "Sessie geannuleerd; wie erop wachtte, wacht op de opleiding.",
        "change": "Sessie {session_id} wijzigen",
        "save": "Opslaan",
        "cancel": "Sessie annuleren",
        "cancel_hint": "Alleen een sessie zonder inschrijvingen kan geannuleerd worden.",
        "finish": "Einde van iemands opleiding",
        "request_id": "Aanvraag",
        "completed": "Heeft de opleiding voltooid",
        "record_completed": "Voltooiing opslaan",
        "abandoned": "Heeft de opleiding stopgezet",
        "reason": "Reden",
        "record_abandoned": "Stopzetting opslaan",
        "finished_completed": "Voltooiing opgeslagen; de plaats is vrij.",
        "finished_abandoned": "Stopzetting opgeslagen; de plaats is vrij.",
        "field_invalid": "Ontbrekende of ongeldige waarde.",
        "reason_no_show": "niet komen opdagen",
        "reason_found_work": "werk gevonden",
        "reason_personal": "persoonlijke redenen",
        "reason_level_mismatch": "niveau past niet",
        "reason_other": "andere",
    },
    Language.EN: {
        "heading": "Course sessions",
        "course": "Course",
        "show": "Show",
        "none": "No session planned for this course.",
        "starts_on": "Starts",
        "ends_on": "Ends",
        "capacity": "Places",
        "enrolled": "Enrolled",
        "waiting": "Waiting",
        "mode": "Mode",
        "online": "online",
        "centre": "in a centre",
        "centre_id": "Centre",
        "language": "Language",
        "waiting_for_course": "Waiting for the course (any session)",
        "plan": "Plan a session",
        "session_id": "Id (optional)",
        "submit": "Plan",
        "planned": "Session planned; the people waiting are enrolled in it.",
        "invalid": "Incomplete or invalid form: {reason}",
        "changed": "Session changed.",
        "cancelled": "Session cancelled; whoever waited for it waits for the course.",
        "change": "Change session {session_id}",
        "save": "Save",
        "cancel": "Cancel the session",
        "cancel_hint": "Only a session nobody is enrolled in can be cancelled.",
        "finish": "A person's course ends",
        "request_id": "Request",
        "completed": "Completed the course",
        "record_completed": "Record the completion",
        "abandoned": "Left the course",
        "reason": "Reason",
        "record_abandoned": "Record the drop-out",
        "finished_completed": "Completion recorded; the place is free.",
        "finished_abandoned": "Drop-out recorded; the place is free.",
        "field_invalid": "Missing or invalid value.",
        "reason_no_show": "did not show up",
        "reason_found_work": "found work",
        "reason_personal": "personal reasons",
        "reason_level_mismatch": "level did not fit",
        "reason_other": "other",
    },
}

sessions_page_router = APIRouter(prefix="/console", include_in_schema=False)


class _Finish(BaseModel):
    """A completion or drop-out as the desk's form sends it."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    reason: AbandonReason | None = None


def _field_of(problem: str) -> str:
    """The field a problem of `routing.sessions.session_problems` is about (each names it, or the language)."""
    for field in ("ends_on", "capacity", "centre_id", "language"):
        if field in problem:
            return field
    return "language" if " is not given in " in problem else "form"


def _session_errors(language: Language, error: ValidationError | DeskError) -> dict[str, str]:
    if isinstance(error, ValidationError):
        return {str(e["loc"][0]): WORDS[language]["field_invalid"] for e in error.errors() if e["loc"]} or {
            "form": WORDS[language]["field_invalid"]
        }
    if isinstance(error, InvalidSession):
        found: dict[str, str] = {}
        for problem in error.problems:
            field = _field_of(problem)
            found[field] = f"{found[field]}; {problem}" if field in found else problem
        return found
    return {"form": str(error)}


def _plan_of(fields: dict[str, str]) -> dict[str, Any]:
    return {name: fields.get(name) or None for name in PLAN_FIELDS}


async def _page(
    request: Request,
    language: Language,
    seats: CourseSeats,
    principal: Principal,
    course: str | None,
    *,
    status: int = 200,
    done: str | None = None,
    errors: FormErrors | None = None,
    values: dict[str, dict[str, str]] | None = None,
) -> HTMLResponse:
    courses = seats.catalogue.courses
    chosen = seats.catalogue.course(course or "") or courses[0]
    waiting = await seats.waiting(chosen.code)
    rows: list[dict[str, Any]] = [
        {"session": s, "waiting": waiting.get(s.session_id, 0)} for s in await seats.sessions_of(chosen.code)
    ]
    words = WORDS[language]
    return render(
        request,
        "sessions.html",
        language,
        status,
        principal=principal,
        here="sessions",
        w=words,
        courses=[(c.code, c.title_in(language)) for c in courses],
        course=chosen,
        languages=[lang.value for lang in chosen.languages],
        rows=rows,
        waiting_for_course={k.split(":", 1)[1]: n for k, n in waiting.items() if k.startswith("*:")},
        done=words[done] if done in DONE else None,
        supervisor=principal.has_any(SUPERVISORS),
        reasons=REASONS,
        errors=errors or {},
        values=values or {},
    )


DONE = frozenset({"planned", "changed", "cancelled", "finished_completed", "finished_abandoned"})


def _back(lang: str, seats: CourseSeats, course: str, done: str) -> RedirectResponse:
    page = f"/console/{lang}/sessions?course={course}" if seats.catalogue.course(course) else f"/console/{lang}/sessions"
    return RedirectResponse(f"{page}{'&' if '?' in page else '?'}done={done}", status_code=303)


def _expired(request: Request, language: Language, lang: str) -> HTMLResponse:
    return render_message(request, language, 403, "CSRF", back=f"/console/{lang}/sessions")


@sessions_page_router.get("/{lang}/sessions", name="console_sessions")
async def sessions_page(
    request: Request,
    lang: str,
    seats: SeatsDep,
    principal: DeskSignedIn,
    course: str | None = None,
    done: str | None = None,
) -> HTMLResponse:
    return await _page(request, page_language(lang), seats, principal, course, done=done)


@sessions_page_router.post("/{lang}/sessions")
async def plan_session(request: Request, lang: str, seats: SeatsDep, supervisor: SupervisorSignedIn) -> Response:
    language = page_language(lang)
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, lang)
    course = fields.get("course", "")
    try:
        body = NewSession.model_validate({"session_id": fields.get("session_id") or None, **_plan_of(fields)})
        await seats.plan_session(course, SessionPlan(**body.model_dump(exclude={"session_id"})), session_id=body.session_id)
    except (ValidationError, DeskError) as error:
        status = error.status if isinstance(error, DeskError) else 422
        errors = {"plan": _session_errors(language, error)}
        return await _page(request, language, seats, supervisor, course, status=status, errors=errors, values={"plan": fields})
    return _back(lang, seats, course, "planned")


@sessions_page_router.post("/{lang}/sessions/{session_id}/change")
async def change_session(
    request: Request, lang: str, session_id: str, seats: SeatsDep, supervisor: SupervisorSignedIn
) -> Response:
    language = page_language(lang)
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, lang)
    course, form = fields.get("course", ""), f"change-{session_id}"
    try:
        await seats.change_session(session_id, SessionPlan.model_validate(_plan_of(fields)))
    except (ValidationError, DeskError) as error:
        status = error.status if isinstance(error, DeskError) else 422
        errors = {form: _session_errors(language, error)}
        return await _page(request, language, seats, supervisor, course, status=status, errors=errors, values={form: fields})
    return _back(lang, seats, course, "changed")


@sessions_page_router.post("/{lang}/sessions/{session_id}/cancel")
async def cancel_session(
    request: Request, lang: str, session_id: str, seats: SeatsDep, supervisor: SupervisorSignedIn
) -> Response:
    language = page_language(lang)
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, lang)
    course = fields.get("course", "")
    try:
        await seats.cancel_session(session_id)
    except DeskError as error:
        errors = {f"cancel-{session_id}": {"form": str(error)}}
        return await _page(request, language, seats, supervisor, course, status=error.status, errors=errors)
    return _back(lang, seats, course, "cancelled")


async def _finish(request: Request, lang: str, seats: CourseSeats, principal: Principal, *, completed: bool) -> Response:
    language = page_language(lang)
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, lang)
    course, form = fields.get("course", ""), "completed" if completed else "abandoned"
    try:
        sent = _Finish.model_validate(
            {"request_id": fields.get("request_id", "").strip(), "reason": None if completed else fields.get("reason") or None}
        )
        if not completed and sent.reason is None:
            raise DeskError(WORDS[language]["field_invalid"], status=422)
        await seats.finish(sent.request_id, completed=completed, reason=sent.reason)
    except ValidationError as error:
        wrong = {str(e["loc"][0]): WORDS[language]["field_invalid"] for e in error.errors() if e["loc"]}
        return await _page(request, language, seats, principal, course, status=422, errors={form: wrong}, values={form: fields})
    except DeskError as error:
        # Without a reason the reason is wrong; otherwise it is about the request (none, or not in a session).
        field = "reason" if not completed and not fields.get("reason") else "request_id"
        errors = {form: {field: str(error)}}
        return await _page(request, language, seats, principal, course, status=error.status, errors=errors, values={form: fields})
    return _back(lang, seats, course, f"finished_{form}")


@sessions_page_router.post("/{lang}/enrolments/completed")
async def completed(request: Request, lang: str, seats: SeatsDep, principal: DeskSignedIn) -> Response:
    return await _finish(request, lang, seats, principal, completed=True)


@sessions_page_router.post("/{lang}/enrolments/abandoned")
async def abandoned(request: Request, lang: str, seats: SeatsDep, principal: DeskSignedIn) -> Response:
    return await _finish(request, lang, seats, principal, completed=False)
