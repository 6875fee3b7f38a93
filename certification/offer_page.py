"""The public page a candidate answers a seat offer on, in French, Dutch or English.

`GET /seat-offers/respond?token=…` shows the offer (certification, centre, date, deadline) and two
buttons, accept and decline, each a plain HTML form that POSTs a token: no script, no account, no
cookie. GET never changes anything, because mail scanners and link previews open links on their
own. `POST /seat-offers/respond` gives the answer once (`certification.offer_responses`); a second
use says the offer was already answered, an expired link says so plainly.

Not under `/offers/…`: that prefix belongs to the staff routes (`/offers/{offer_id}`), which a
public path of the same shape would shadow or be shadowed by when both surfaces run in one process.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal

import jinja2
import structlog
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from certification.offer_links import RESPOND_PATH, OfferAction
from certification.offer_responses import OfferResponses, Outcome, Response
from services import Runtime, get_runtime
from services.auth import public
from services.auth.roles import PUBLIC_SEAT_OFFER_ANSWER
from services.calendar import BRUSSELS
from services.helpline import reach_us
from services.local_time import MONTHS
from services.ratelimits import Hit, Limit, client_network

log = structlog.get_logger(__name__)

__all__ = ["LIMITS", "TEXTS", "offer_page_router", "page_language"]

Lang = Literal["fr", "nl", "en"]
LANGUAGES: tuple[Lang, ...] = ("fr", "nl", "en")

TEXTS: dict[Lang, dict[str, str]] = {
    "fr": {
        "title": "Votre place d'examen",
        "intro": "Une place vous est proposée pour l'examen de certification {code}.",
        "centre": "Centre",
        "date": "Date de l'examen",
        "respond_by": "Répondez avant le",
        "accept": "J'accepte cette place",
        "decline": "Je refuse cette place",
        "accepted": "C'est noté : votre place est réservée. Vous recevrez un message avec la date, "
        "le centre et ce qu'il faut apporter.",
        "declined": "C'est noté : vous avez refusé cette place. Elle est proposée à une autre personne, "
        "et vous gardez votre place dans la liste d'attente pour une autre session.",
        "already_answered": "Vous avez déjà répondu à cette proposition (ou son délai est passé) : rien n'a changé.",
        "status_accepted": "Réponse enregistrée : acceptée.",
        "status_declined": "Réponse enregistrée : refusée.",
        "status_expired": "Le délai pour répondre est passé.",
        "expired": "Ce lien a expiré : le délai pour répondre est passé et la place a été proposée à quelqu'un d'autre. "
        "Vous restez sur la liste d'attente.",
        "invalid": "Ce lien n'est pas valable. Utilisez le lien reçu par e-mail ou SMS, sans le modifier.",
        "help": reach_us("fr"),
        "languages": "Langue",
    },
    "nl": {
        "title": "Uw examenplaats",
        "intro": "U krijgt een plaats aangeboden voor het certificeringsexamen {code}.",
        "centre": "Centrum",
        "date": "Datum van het examen",
        "respond_by": "Antwoord vóór",
        "accept": "Ik aanvaard deze plaats",
        "decline": "Ik weiger deze plaats",
        "accepted": "Genoteerd: uw plaats is gereserveerd. U krijgt een bericht met de datum, "
        "het centrum en wat u moet meebrengen.",
        "declined": "Genoteerd: u hebt deze plaats geweigerd. Ze wordt aan iemand anders aangeboden, "
        "en u behoudt uw plaats op de wachtlijst voor een andere sessie.",
        "already_answered": "U hebt al op dit aanbod geantwoord (of de termijn is verstreken): er is niets veranderd.",
        "status_accepted": "Antwoord geregistreerd: aanvaard.",
        "status_declined": "Antwoord geregistreerd: geweigerd.",
        "status_expired": "De termijn om te antwoorden is verstreken.",
        "expired": "Deze link is verlopen: de termijn om te antwoorden is voorbij en de plaats is aan iemand anders "
        "aangeboden. U blijft op de wachtlijst.",
        "invalid": "Deze link is niet geldig. Gebruik de link uit uw e-mail of sms, zonder hem te wijzigen.",
        "help": reach_us("nl"),
        "languages": "Taal",
    },
    "en": {
        "title": "Your exam seat",
        "intro": "You are offered a seat for the certification exam {code}.",
        "centre": "Centre",
        "date": "Exam date",
        "respond_by": "Answer by",
        "accept": "I accept this seat",
        "decline": "I decline this seat",
        "accepted": "Done: your seat is booked. You will get a message with the date, the centre and what to bring.",
        "declined": "Done: you declined this seat. It is offered to someone else, and you keep your place on the "
        "waiting list for another session.",
        "already_answered": "You already answered this offer (or its deadline passed): nothing changed.",
        "status_accepted": "Answer recorded: accepted.",
        "status_declined": "Answer recorded: declined.",
        "status_expired": "The deadline to answer has passed.",
        "expired": "This link has expired: the deadline to answer has passed and the seat was offered to someone else. "
        "You stay on the waiting list.",
        "invalid": "This link is not valid. Use the link from your e-mail or text message, unchanged.",
        "help": reach_us("en"),
        "languages": "Language",
    },
}

_STATUS = {
    Outcome.OPEN: 200,
    Outcome.ACCEPTED: 200,
    Outcome.DECLINED: 200,
    Outcome.ALREADY_ANSWERED: 409,
    Outcome.EXPIRED: 410,
    Outcome.INVALID: 404,
}

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # The address holds a bearer token: never sent on to another site, never indexed.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
}

_PAGE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }} – Bruxelles Formation</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
button { font-size: 1.1rem; padding: .6rem 1.2rem; margin: .3rem 0; }
dt { font-weight: bold; }
</style>
</head>
<body>
<header>
<nav aria-label="{{ t.languages }}">
<ul>
{% for other in languages %}{% if other != lang %}
<li><a href="{{ path }}?{% if token %}token={{ token|urlencode }}&amp;{% endif %}lang={{ other }}"
 lang="{{ other }}" hreflang="{{ other }}">{{ names[other] }}</a></li>
{% endif %}{% endfor %}
</ul>
</nav>
</header>
<main>
<h1>{{ t.title }}</h1>
{% if message %}<p role="status">{{ message }}</p>{% endif %}
{% if offer %}
<h2>{{ intro }}</h2>
<dl>
<dt>{{ t.centre }}</dt><dd>{{ centre }}</dd>
<dt>{{ t.date }}</dt><dd>{{ exam_at }}</dd>
{% if open %}<dt>{{ t.respond_by }}</dt><dd>{{ respond_by }}</dd>{% endif %}
</dl>
{% endif %}
{% if open %}
{% for action, label in buttons %}
<form method="post" action="{{ path }}">
<input type="hidden" name="token" value="{{ tokens[action] }}">
<input type="hidden" name="lang" value="{{ lang }}">
<button type="submit" name="action" value="{{ action }}">{{ label }}</button>
</form>
{% endfor %}
{% endif %}
<p>{{ t.help }}</p>
</main>
</body>
</html>
"""

NAMES = {"fr": "Français", "nl": "Nederlands", "en": "English"}


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_PAGE)


def page_language(lang: str | None, accept_language: str | None) -> Lang:
    """`lang` when it is one of ours, else the first of ours in Accept-Language, else French."""
    if lang in LANGUAGES:
        return lang
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "fr"


def _when(at: datetime, lang: Lang) -> str:
    """`2 juin 2020, 09:00` in Brussels time."""
    local = at.astimezone(BRUSSELS)
    return f"{local.day} {MONTHS[lang][local.month - 1]} {local.year}, {local:%H:%M}"


def render(response: Response, lang: Lang, *, token: str | None) -> HTMLResponse:
    t = TEXTS[lang]
    offer = response.offer
    message = {
        Outcome.OPEN: "",
        Outcome.ACCEPTED: t["accepted"],
        Outcome.DECLINED: t["declined"],
        Outcome.EXPIRED: t["expired"],
        Outcome.INVALID: t["invalid"],
        Outcome.ALREADY_ANSWERED: t["already_answered"],
    }[response.outcome]
    if (
        response.outcome is Outcome.ALREADY_ANSWERED
        and offer is not None
        and offer.status.value in ("accepted", "declined", "expired")
    ):
        message = f"{message} {t['status_' + offer.status.value]}"
    open_ = response.outcome is Outcome.OPEN and response.tokens is not None
    # Either link shows both answers (a text message has room for one link only); the one it asked for comes first.
    order = [OfferAction.ACCEPT, OfferAction.DECLINE]
    if response.action is OfferAction.DECLINE:
        order.reverse()
    context: dict[str, Any] = {
        "lang": lang,
        "t": t,
        "languages": LANGUAGES,
        "names": NAMES,
        "path": RESPOND_PATH,
        "token": token if response.outcome is Outcome.OPEN else None,
        "message": message,
        "offer": offer is not None and response.outcome is not Outcome.INVALID,
        "open": open_,
        "buttons": [(a.value, t[a.value]) for a in order],
        "tokens": {a.value: v for a, v in (response.tokens or {}).items()},
        "intro": t["intro"].format(code=offer.certification_code) if offer else "",
        "centre": (response.centre.name if response.centre else offer.centre_id) if offer else "",
        "exam_at": _when(offer.exam_at, lang) if offer else "",
        "respond_by": _when(offer.expires_at, lang) if offer else "",
    }
    return HTMLResponse(_template().render(**context), _STATUS[response.outcome], headers=_HEADERS)


LIMITS = "offer_page_limits"
"""The app state key of the page's `RateLimits` and its per-minute count, as a pair (absent: no limit)."""


async def get_responses(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> OfferResponses:
    """FastAPI dependency: the answers use case of the app serving the request, once the client's
    network is within its rate (shared by every replica, like intake's public form); else 429."""
    responses: OfferResponses = runtime.app_state["offer_responses"]
    if (limited := runtime.app_state.get(LIMITS)) is not None:
        limits, per_minute = limited
        hit = Hit("network", client_network(request), Limit(per_minute, 60))
        if (wait := await limits.take([hit], responses.seats.clock.now())) is not None:
            log.info("offer_page.rate_limited", scope="network", retry_after_s=wait)
            raise HTTPException(429, "too many requests", headers={"Retry-After": str(wait)})
    return responses


ResponsesDep = Annotated[OfferResponses, Depends(get_responses)]
Token = Annotated[str, Query(min_length=1, max_length=600)]

offer_page_router = APIRouter(tags=["seat offers (candidates)"], dependencies=[public(PUBLIC_SEAT_OFFER_ANSWER)])
"""The candidate's answer page, open to anyone holding a link (`PUBLIC_SEAT_OFFER_ANSWER`)."""


@offer_page_router.get(
    RESPOND_PATH,
    summary="The seat offer a link points at, with its accept and decline buttons (changes nothing)",
    response_class=HTMLResponse,
)
async def show_offer(
    request: Request, responses: ResponsesDep, token: Token, lang: Annotated[str | None, Query(max_length=5)] = None
) -> HTMLResponse:
    language = page_language(lang, request.headers.get("accept-language"))
    return render(await responses.view(token), language, token=token)


@offer_page_router.post(
    RESPOND_PATH,
    summary="Answer a seat offer with a link's token, once (a second use answers 'already answered')",
    response_class=HTMLResponse,
)
async def answer_offer(
    request: Request,
    responses: ResponsesDep,
    token: Annotated[str, Form(min_length=1, max_length=600)],
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> HTMLResponse:
    language = page_language(lang, request.headers.get("accept-language"))
    return render(await responses.answer(token), language, token=None)
