"""The web channel's API against its own OpenAPI document, fuzzed by schemathesis: whatever is
posted, no 5xx, and every answer is one the document announces (status, headers, body schema).

No broker or database here (a RecordingPipeline stands in for intake), but it is an integration
test of the HTTP contract as a client reads it, and slower than a unit test.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from intake.web import InMemoryIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from services.catalogue import load_catalogue
from services.ratelimits import InMemoryRateLimits
from tests.fakes import RecordingPipeline

pytestmark = pytest.mark.integration


def create_app() -> FastAPI:
    app = FastAPI(title="intake web channel")
    # No rate limit here: schemathesis posts hundreds of times from one address.
    app.include_router(web_router)
    channel = WebChannel(
        RecordingPipeline(),
        WebSettings(rate_per_minute=10**9, burst=10**9, destination_per_day=10**9),
        load_catalogue(),
        rate_limits=InMemoryRateLimits(),
        idempotency_keys=InMemoryIdempotencyKeys(),
    )
    app.dependency_overrides[get_web_channel] = lambda: channel
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_documented_contract(case: schemathesis.Case[Any]) -> None:
    # Rules the schema cannot express (a *possible* phone number, "phone or e-mail", a date not in
    # the future) make some schema-valid bodies a 422: accepting all of them is not the contract.
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500
