"""Who the client is, as the services run: uvicorn's proxy-headers middleware configured by `serve`,
believing X-Forwarded-For only from the proxies a setting names (none by default)."""

from __future__ import annotations

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from intake.settings import IntakeSettings
from services.app import server_options

pytestmark = pytest.mark.unit


def echo_client() -> FastAPI:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(request: Request) -> str:
        return request.client.host if request.client else ""

    return app


async def client_seen(settings: IntakeSettings, peer: str, forwarded_for: str) -> str:
    config = uvicorn.Config(echo_client(), **server_options(settings))
    config.load()  # the app wrapped as `uvicorn.run` wraps it
    transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
        response = await http.get("/whoami", headers={"X-Forwarded-For": forwarded_for})
    return str(response.json())


async def test_by_default_no_peer_is_believed_not_even_localhost() -> None:
    assert await client_seen(IntakeSettings(), "127.0.0.1", "192.0.2.1") == "127.0.0.1"


async def test_a_named_proxy_is_believed_and_only_for_the_hop_it_appended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_FORWARDED_ALLOW_IPS", "10.0.0.0/24")
    settings = IntakeSettings()

    assert await client_seen(settings, "10.0.0.2", "192.0.2.1, 198.51.100.7") == "198.51.100.7"
    assert await client_seen(settings, "203.0.113.9", "198.51.100.7") == "203.0.113.9"  # not our proxy
