"""The desk in the browser, behind sign-in (`services.console`): the advisor's own queue, and the
supervisor's view of a team (French, Dutch, English).

    GET  /console/{lang}/                              my queue, nearest deadline first, with why, the priority's parts
                                                       and where each part's fact came from
    POST /console/{lang}/requests/{id}/accept          |
    POST /console/{lang}/requests/{id}/decline         |
    POST /console/{lang}/requests/{id}/outcome         | each calls one `Desk` method, as the desk API does
    POST /console/{lang}/requests/{id}/facts           | (facts said on the call: the request is scored again)
    POST /console/{lang}/requests/{id}/partner-questions | (ask the partner that handed the request over)
    POST /console/{lang}/requests/{id}/partner-answers |  (the partner's answer)
    GET  /console/{lang}/team?team=...                 a team's open requests in the dispatcher's order; the programme
    POST /console/{lang}/team/requests/{id}/reassign   take a request back and offer it to someone (supervisor)
    POST /console/{lang}/team/programme/{action}       suspend or resume the digital-divide programme (supervisor)

Every page declares the same policy as the desk API route it mirrors; the worker is the session's
subject, never a form field. A form the desk cannot take as filled in (no fact, an empty question)
is answered with the queue page again, the message tied to its field.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from routing.api import Facts, Outcome, PartnerAnswer, PartnerQuestion, Reassignment, get_desk
from routing.console.i18n import TEXTS, window_words
from routing.desk import BoardItem, Desk, DeskError, QueueItem
from routing.priority import PART_FACTS
from schemas import ContactOutcome, Language, QualificationLevel, Target
from services.auth import Principal, requires_signed_in
from services.auth.roles import ACTS_FOR_OTHERS, DESK_OWN_WORK, DESK_READ, DESK_TEAM, may
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

COOKIE = "routing_console_session"
TEMPLATES = Path(__file__).parent / "templates"
WORDS = ConsoleTexts(TEXTS)
PAGES = (
    NavLink("", "nav_queue", frozenset(may(DESK_OWN_WORK))),
    NavLink("team", "nav_team", frozenset(may(DESK_TEAM))),
    NavLink("sessions", "nav_sessions", frozenset(may(DESK_READ))),
)
BRUSSELS = ZoneInfo("Europe/Brussels")

Advisor = Annotated[Principal, requires_signed_in(signed_in_principal, *may(DESK_OWN_WORK))]
Reader = Annotated[Principal, requires_signed_in(signed_in_principal, *may(DESK_READ))]
SupervisorSignedIn = Annotated[Principal, requires_signed_in(signed_in_principal, *may(DESK_TEAM))]
DeskDep = Annotated[Desk, Depends(get_desk)]

console_router = APIRouter(prefix="/console", include_in_schema=False)


def _brussels(moment: datetime | None) -> str | None:
    return moment.astimezone(BRUSSELS).strftime("%d/%m %H:%M") if moment else None


def _countdown(language: Language, seconds: int | None, words: str | None) -> str | None:
    if seconds is None or words is None:
        return None
    return WORDS.text(language, "deadline_in" if seconds >= 0 else "late_by", countdown=words.removeprefix("late by "))


def _refusal(request: Request, language: Language, error: DeskError, back: str) -> HTMLResponse:
    return render_message(request, language, error.status, WORDS.text(language, "refused", reason=str(error)), back=back)


def _expired(request: Request, language: Language, back: str) -> HTMLResponse:
    return render_message(request, language, 403, WORDS.text(language, "form_expired"), back=back)


# --- the advisor's queue -----------------------------------------------------------------------


def _part_name(language: Language, name: str) -> str:
    """A priority part in words; a part a newer rule set added is shown by its key rather than hidden."""
    key = f"part_{name}"
    return WORDS.text(language, key) if key in WORDS.keys(language) else name


def _source_name(language: Language, source: str | None) -> str:
    key = f"source_{source or 'unknown'}"
    return WORDS.text(language, key) if key in WORDS.keys(language) else str(source)


def _parts(language: Language, parts: dict[str, int], sources: dict[str, str], ageing: int) -> list[dict[str, Any]]:
    """How a priority adds up, in words: each part, its points and where its fact came from (a part
    that reads the request itself, like `phone`, has no source; a fact without one was not given, as
    an unknown qualification's middle value; a case stored before cases kept sources shows none), then
    the ageing."""
    shown = [
        {
            "name": _part_name(language, name),
            "points": points,
            "source": _source_name(language, sources.get(PART_FACTS[name])) if name in PART_FACTS and sources else None,
        }
        for name, points in parts.items()
    ]
    if ageing:
        shown.append({"name": WORDS.text(language, "ageing"), "points": ageing, "source": None})
    return shown


def _card(language: Language, item: QueueItem, decision: dict[str, Any]) -> dict[str, Any]:
    """One queue entry with its decision: the rule's explanation and how its priority adds up (the
    case's parts, scored again when the desk learns facts; the decision's for a case without them)."""
    parts = item.priority_parts or decision.get("priority_parts") or {}
    score = item.score if item.score is not None else int(decision.get("priority", item.priority))
    french = language is Language.FR and decision.get("explanation_fr")
    explanation = decision.get("explanation_fr") if french else decision.get("explanation")
    return {
        "item": item,
        "countdown": _countdown(language, item.deadline_in_s, item.deadline_in),
        "deadline_local": _brussels(item.deadline),
        "explanation": explanation,
        # The decision explains in the request's language, and in French.
        "explanation_lang": "fr" if french else item.language,
        "rule_id": decision.get("rule_id"),
        "parts": _parts(language, parts, item.fact_sources, item.priority - score),
        "partner_since": _brussels(item.partner_asked_at) if item.waiting_for_partner else None,
        "slot": window_words(language, item.callback_slot_start, item.callback_slot_end)
        if item.callback_slot_start and item.callback_slot_end
        else None,
        "promise_local": _brussels(item.promised_deadline),
        "corrected_local": _brussels(item.corrected_at),
        "next_attempt": _brussels(item.next_attempt_at),
    }


FormErrors = dict[str, dict[str, str]]
"""Per request id, the message of each field the desk could not take (`facts`: the facts as a whole)."""

DONE_ON_QUEUE = ("accepted", "declined", "outcome", "facts", "asked", "answered", "contact_confirmed")


async def _queue_page(
    request: Request,
    language: Language,
    desk: Desk,
    worker: Principal,
    *,
    done: str | None = None,
    errors: FormErrors | None = None,
    values: dict[str, dict[str, str]] | None = None,
) -> HTMLResponse:
    """The worker's queue; with `errors` (status 422), the forms of those requests show what to fix,
    filled with `values` as they were sent."""
    try:
        items = await desk.queue(worker.subject)
    except DeskError as error:
        return _refusal(request, language, error, back=f"/console/{language.value}/")
    decisions = await desk.decisions([item.request_id for item in items])
    return render(
        request,
        "queue.html",
        language,
        422 if errors else 200,
        principal=worker,
        cards=[_card(language, item, decisions.get(item.request_id, {})) for item in items],
        done=WORDS.text(language, f"done_{done}") if done in DONE_ON_QUEUE else None,
        errors=errors or {},
        values=values or {},
        outcomes=[o.value for o in ContactOutcome],
        targets=[t.value for t in Target],
        qualifications=[q.value for q in QualificationLevel],
        courses=[(c["code"], c["title"]) for c in await desk.courses()],
    )


@console_router.get("/{lang}/", name="console_queue")
async def queue(request: Request, lang: str, desk: DeskDep, worker: Advisor, done: str | None = None) -> HTMLResponse:
    return await _queue_page(request, page_language(lang), desk, worker, done=done)


def _done(lang: str, what: str, page: str = "") -> RedirectResponse:
    return RedirectResponse(f"/console/{lang}/{page}?done={what}", status_code=303)


@console_router.post("/{lang}/requests/{request_id}/accept")
async def accept(request: Request, lang: str, request_id: str, desk: DeskDep, worker: Advisor) -> Response:
    language = page_language(lang)
    if await checked_form(request) is None:
        return _expired(request, language, back=f"/console/{lang}/")
    try:
        await desk.accept(request_id, worker.subject)
    except DeskError as error:
        return _refusal(request, language, error, back=f"/console/{lang}/")
    return _done(lang, "accepted")


@console_router.post("/{lang}/requests/{request_id}/decline")
async def decline(request: Request, lang: str, request_id: str, desk: DeskDep, worker: Advisor) -> Response:
    language = page_language(lang)
    if await checked_form(request) is None:
        return _expired(request, language, back=f"/console/{lang}/")
    try:
        await desk.decline(request_id, worker.subject)
    except DeskError as error:
        return _refusal(request, language, error, back=f"/console/{lang}/")
    return _done(lang, "declined")


_OUTCOME_FIELDS = tuple(name for name in Outcome.model_fields if name != "retry_at")


def _outcome_from_form(fields: dict[str, str]) -> Outcome:
    """The form's strings as the desk API's own `Outcome` model (the same validation); an empty field is
    "not given", and `retry_at` is Brussels time as the page's datetime-local input sends it."""
    data: dict[str, Any] = {name: fields[name] for name in _OUTCOME_FIELDS if fields.get(name)}
    if fields.get("retry_at"):
        data["retry_at"] = datetime.fromisoformat(fields["retry_at"]).replace(tzinfo=BRUSSELS)
    return Outcome.model_validate(data)


@console_router.post("/{lang}/requests/{request_id}/outcome")
async def outcome(request: Request, lang: str, request_id: str, desk: DeskDep, worker: Advisor) -> Response:
    language = page_language(lang)
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, back=f"/console/{lang}/")
    try:
        body = _outcome_from_form(fields)
    except (ValueError, ValidationError) as error:
        reason = WORDS.text(language, "refused", reason=str(error)[:200])
        return render_message(request, language, 422, reason, back=f"/console/{lang}/")
    try:
        await desk.record_outcome(
            request_id,
            worker_id=worker.subject,
            outcome=body.outcome,
            notes=body.notes,
            redirect_to=body.redirect_to,
            course_code=body.course_code,
            certification_code=body.certification_code,
            retry_at=body.retry_at,
            facts=body.facts(),
        )
    except DeskError as error:
        return _refusal(request, language, error, back=f"/console/{lang}/")
    return _done(lang, "outcome")


_FACT_FIELDS = tuple(Facts.model_fields)


@console_router.post("/{lang}/requests/{request_id}/facts")
async def record_facts(request: Request, lang: str, request_id: str, desk: DeskDep, principal: Reader) -> Response:
    """`POST /desk/requests/{id}/facts`: the worker holding the request, or a supervisor."""
    language = page_language(lang)
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, back=f"/console/{lang}/")
    invalid = WORDS.text(language, "invalid_value")
    try:
        body = Facts.model_validate({name: fields[name] for name in _FACT_FIELDS if fields.get(name)})
    except ValidationError as error:
        wrong = {str(e["loc"][0]): invalid for e in error.errors() if e["loc"]}
        return await _queue_page(request, language, desk, principal, errors={request_id: wrong}, values={request_id: fields})
    if not body.facts().learned():
        needed = {"facts": WORDS.text(language, "facts_needed")}
        return await _queue_page(request, language, desk, principal, errors={request_id: needed})
    try:
        await desk.record_facts(
            request_id, facts=body.facts(), recorded_by=principal.subject, for_team=principal.has_any(ACTS_FOR_OTHERS)
        )
    except DeskError as error:
        return _refusal(request, language, error, back=f"/console/{lang}/")
    return _done(lang, "facts")


@console_router.post("/{lang}/requests/{request_id}/contact-confirmations")
async def confirm_contact(request: Request, lang: str, request_id: str, desk: DeskDep, principal: Reader) -> Response:
    """`POST /desk/requests/{id}/contact-confirmations`: the worker holding the request, or a supervisor."""
    language = page_language(lang)
    if await checked_form(request) is None:
        return _expired(request, language, back=f"/console/{lang}/")
    try:
        await desk.confirm_contact(request_id, worker_id=principal.subject, for_team=principal.has_any(ACTS_FOR_OTHERS))
    except DeskError as error:
        return _refusal(request, language, error, back=f"/console/{lang}/")
    return _done(lang, "contact_confirmed")


async def _text_needed(
    request: Request, language: Language, desk: Desk, principal: Principal, request_id: str, field: str, fields: dict[str, str]
) -> HTMLResponse:
    errors = {request_id: {field: WORDS.text(language, "text_needed")}}
    return await _queue_page(request, language, desk, principal, errors=errors, values={request_id: fields})


@console_router.post("/{lang}/requests/{request_id}/partner-questions")
async def ask_partner(request: Request, lang: str, request_id: str, desk: DeskDep, worker: Advisor) -> Response:
    """`POST /desk/requests/{id}/partner-questions`: the worker holding the request asks; the clock stops."""
    language = page_language(lang)
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, back=f"/console/{lang}/")
    try:
        body = PartnerQuestion.model_validate({"question": fields.get("question", "").strip()})
    except ValidationError:
        return await _text_needed(request, language, desk, worker, request_id, "question", fields)
    try:
        await desk.ask_partner(request_id, worker_id=worker.subject, question=body.question)
    except DeskError as error:
        return _refusal(request, language, error, back=f"/console/{lang}/")
    return _done(lang, "asked")


@console_router.post("/{lang}/requests/{request_id}/partner-answers")
async def partner_answer(request: Request, lang: str, request_id: str, desk: DeskDep, principal: Reader) -> Response:
    """`POST /desk/requests/{id}/partner-answers`: the worker holding the request, or a supervisor."""
    language = page_language(lang)
    fields = await checked_form(request)
    if fields is None:
        return _expired(request, language, back=f"/console/{lang}/")
    try:
        body = PartnerAnswer.model_validate({"answer": fields.get("answer", "").strip()})
    except ValidationError:
        return await _text_needed(request, language, desk, principal, request_id, "answer", fields)
    try:
        await desk.record_partner_answer(
            request_id, answer=body.answer, recorded_by=principal.subject, for_team=principal.has_any(ACTS_FOR_OTHERS)
        )
    except DeskError as error:
        return _refusal(request, language, error, back=f"/console/{lang}/")
    return _done(lang, "answered")


# --- the supervisor's view ---------------------------------------------------------------------


async def _supervised_team(desk: Desk, supervisor: Principal, asked: str | None) -> Target:
    """The team asked for, else the supervisor's own team on the roster, else the advisors."""
    if asked is not None and asked in Target._value2member_map_:
        return Target(asked)
    worker = await desk.worker(supervisor.subject)
    return worker.team if worker is not None else Target.ADVISORS


def _row(language: Language, item: BoardItem) -> dict[str, Any]:
    # A board item without its score (an older routing) shows no ageing rather than a made-up one.
    score = item.score if item.score is not None else item.priority
    return {
        "item": item,
        "countdown": _countdown(language, item.deadline_in_s, item.deadline_in),
        "deadline_local": _brussels(item.deadline),
        "waiting_since_local": _brussels(item.waiting_since),
        "parts": _parts(language, item.priority_parts, item.fact_sources, item.priority - score),
    }


@console_router.get("/{lang}/team", name="console_team")
async def team(
    request: Request,
    lang: str,
    desk: DeskDep,
    supervisor: SupervisorSignedIn,
    team: str | None = None,
    done: str | None = None,
) -> HTMLResponse:
    language = page_language(lang)
    chosen = await _supervised_team(desk, supervisor, team)
    board = await desk.team_board(chosen)
    workers = await desk.workers()
    counts = {urgency: sum(1 for item in board if item.urgency == urgency) for urgency in ("breached", "due")}
    return render(
        request,
        "team.html",
        language,
        principal=supervisor,
        here="team",
        team=chosen.value,
        teams=[t.value for t in Target],
        rows=[_row(language, item) for item in board],
        counts=counts,
        # Anyone who speaks the language may be chosen; the team's own are listed first.
        workers=sorted(workers, key=lambda w: (w["team"] != chosen.value, w["worker_id"])),
        programme=await desk.programme(),
        done=WORDS.text(language, f"done_{done}") if done in ("reassigned", "suspended", "resumed") else None,
    )


@console_router.post("/{lang}/team/requests/{request_id}/reassign")
async def reassign(request: Request, lang: str, request_id: str, desk: DeskDep, supervisor: SupervisorSignedIn) -> Response:
    language = page_language(lang)
    fields = await checked_form(request)
    team_page = f"/console/{lang}/team"
    if fields is None:
        return _expired(request, language, back=team_page)
    if fields.get("team") in Target._value2member_map_:
        team_page = f"{team_page}?team={fields['team']}"
    try:
        body = Reassignment.model_validate(
            {"to_worker_id": fields.get("to_worker_id") or None, "reason": fields.get("reason") or ""}
        )
    except ValidationError:
        return render_message(request, language, 422, WORDS.text(language, "reason_needed"), back=team_page)
    try:
        await desk.reassign(request_id, to_worker=body.to_worker_id, reason=body.reason, actor=supervisor.subject)
    except DeskError as error:
        return _refusal(request, language, error, back=team_page)
    separator = "&" if "?" in team_page else "?"
    return RedirectResponse(f"{team_page}{separator}done=reassigned", status_code=303)


@console_router.post("/{lang}/team/programme/{action}")
async def programme(request: Request, lang: str, action: str, desk: DeskDep, _: SupervisorSignedIn) -> Response:
    language = page_language(lang)
    if await checked_form(request) is None:
        return _expired(request, language, back=f"/console/{lang}/team")
    if action == "suspend":
        await desk.suspend_programme()
        return _done(lang, "suspended", "team")
    if action == "resume":
        await desk.resume_programme()
        return _done(lang, "resumed", "team")
    return render_message(request, language, 404, WORDS.text(language, "refused", reason=action), back=f"/console/{lang}/team")
