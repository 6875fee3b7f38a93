"""Every HTTP app bounds what comes in: the body (413) and, in the process that serves it, the number of
connections and requests at once (uvicorn's `limit_concurrency`, 503 beyond)."""

from __future__ import annotations

from typing import cast

import httpx
import pytest

from intake.settings import IntakeSettings
from services.app import server_options
from services.body_limit import BodySizeLimit
from tests.service_apps import every_app

pytestmark = pytest.mark.unit


def test_every_app_bounds_request_bodies() -> None:
    for name, app in every_app().items():
        limits = [m for m in app.user_middleware if m.cls is cast(object, BodySizeLimit)]
        assert len(limits) == 1, name
        assert limits[0].kwargs["max_bytes"] == 256 * 1024, name


async def test_the_erasure_route_refuses_a_large_body_before_reading_it() -> None:
    app = every_app()["intake-privacy"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://privacy.test") as client:
        answer = await client.post("/api/v1/privacy/erasures", content=b"{" + b" " * (300 * 1024) + b"}")
    assert answer.status_code == 413


def test_every_server_limits_its_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    assert server_options(IntakeSettings())["limit_concurrency"] == 200
    monkeypatch.setenv("INTAKE_MAX_CONCURRENCY", "32")
    assert server_options(IntakeSettings())["limit_concurrency"] == 32
