"""The web channel of intake: a JSON API for partner sites and the Cité des métiers, and a
server-rendered form (French, Dutch, English) for job seekers on their phones.

Both turn a submission into a `RequestDraft` and hand it to the intake pipeline through the app's
`WebChannel`; they answer only once the pipeline accepted it, so a 202 or a confirmation page
means the request is stored.

    web_router                 to include at the root of the intake app
        POST /api/v1/requests  JSON in, JSON out (202 accepted, 200 duplicate)   intake.web.api
        GET  /                 302 to /fr/, the campaign's query string kept      intake.web.form
        GET  /{lang}/          the form, lang in fr | nl | en
        POST /{lang}/          form-encoded submission: 422 form with errors, or 200 confirmation

The handlers find the channel with `get_web_channel` (`runtime.app_state["web"]` in the intake
app; a test overrides the dependency). What a submission is lives in `intake.web.submission`, the
size and rate limits in `intake.web.limits`, the Idempotency-Key claims in `intake.web.idempotency`.
"""

from fastapi import APIRouter

from intake.web import api, form
from intake.web.api import API_SOURCE
from intake.web.channel import WebChannel, get_web_channel
from intake.web.form import FORM_SOURCE
from intake.web.idempotency import IdempotencyKeys, InMemoryIdempotencyKeys, MongoIdempotencyKeys
from intake.web.limits import WebSettings
from intake.web.submission import (
    CampaignSubmission,
    FieldProblem,
    Problem,
    SubmissionAccepted,
    TrainingRequestSubmission,
    ValidationProblem,
)
from services.auth import public
from services.auth.roles import PUBLIC_INTAKE

__all__ = [
    "API_SOURCE",
    "FORM_SOURCE",
    "CampaignSubmission",
    "FieldProblem",
    "IdempotencyKeys",
    "InMemoryIdempotencyKeys",
    "MongoIdempotencyKeys",
    "Problem",
    "SubmissionAccepted",
    "TrainingRequestSubmission",
    "ValidationProblem",
    "WebChannel",
    "WebSettings",
    "get_web_channel",
    "web_router",
]

web_router = APIRouter(dependencies=[public(PUBLIC_INTAKE)])
web_router.include_router(api.router)
web_router.include_router(form.router)
