"""The supervisor's page of course sessions in the console (French, Dutch, English), beside the queue
and the team pages of `routing.console.web`, over the same `CourseSeats` as the sessions API:

    GET  /console/{lang}/sessions?course=EXCEL   a course's sessions: dates, places taken, who waits
    POST /console/{lang}/sessions                plan a session (supervisor), from the page's form

Its words are its own (`WORDS` below) rather than `routing.console.i18n`'s, so that the page is one
module and one template; the policy is the sessions API's (`DESK_TEAM`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from routing.case import DeskError
from routing.sessions import SessionPlan
from routing.sessions_api import NewSession, SeatsDep
from schemas import Language
from services.auth import Principal, requires_signed_in
from services.auth.roles import DESK_TEAM, may
from services.console import checked_form, page_language, render, render_message, signed_in_principal

__all__ = ["WORDS", "sessions_page_router"]

SupervisorSignedIn = Annotated[Principal, requires_signed_in(signed_in_principal, *may(DESK_TEAM))]

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
    },
}

sessions_page_router = APIRouter(prefix="/console", include_in_schema=False)


@sessions_page_router.get("/{lang}/sessions", name="console_sessions")
async def sessions_page(
    request: Request,
    lang: str,
    seats: SeatsDep,
    supervisor: SupervisorSignedIn,
    course: str | None = None,
    done: str | None = None,
) -> HTMLResponse:
    language = page_language(lang)
    courses = seats.catalogue.courses
    chosen = seats.catalogue.course(course or "") or courses[0]
    waiting = await seats.waiting(chosen.code)
    rows: list[dict[str, Any]] = [
        {"session": s, "waiting": waiting.get(s.session_id, 0)} for s in await seats.sessions_of(chosen.code)
    ]
    return render(
        request,
        "sessions.html",
        language,
        principal=supervisor,
        here="sessions",
        w=WORDS[language],
        courses=[(c.code, c.title_in(language)) for c in courses],
        course=chosen,
        languages=[lang.value for lang in chosen.languages],
        rows=rows,
        waiting_for_course={k.split(":", 1)[1]: n for k, n in waiting.items() if k.startswith("*:")},
        done=WORDS[language]["planned"] if done == "planned" else None,
    )


@sessions_page_router.post("/{lang}/sessions")
async def plan_session(request: Request, lang: str, seats: SeatsDep, _: SupervisorSignedIn) -> Response:
    language = page_language(lang)
    fields = await checked_form(request)
    course = (fields or {}).get("course", "")
    page = f"/console/{lang}/sessions?course={course}" if seats.catalogue.course(course) else f"/console/{lang}/sessions"
    if fields is None:
        return render_message(request, language, 403, "CSRF", back=page)
    try:
        body = NewSession.model_validate(
            {
                "session_id": fields.get("session_id") or None,
                "starts_on": fields.get("starts_on"),
                "ends_on": fields.get("ends_on"),
                "capacity": fields.get("capacity"),
                "mode": fields.get("mode"),
                "centre_id": fields.get("centre_id") or None,
                "language": fields.get("language"),
            }
        )
        await seats.plan_session(course, SessionPlan(**body.model_dump(exclude={"session_id"})), session_id=body.session_id)
    except ValidationError as error:
        names = ", ".join(str(e["loc"][0]) for e in error.errors() if e["loc"])
        return render_message(request, language, 422, WORDS[language]["invalid"].format(reason=names), back=page)
    except DeskError as error:
        return render_message(request, language, error.status, WORDS[language]["invalid"].format(reason=error), back=page)
    return RedirectResponse(f"{page}{'&' if '?' in page else '?'}done=planned", status_code=303)
