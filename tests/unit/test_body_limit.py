"""Every service bounds request bodies before a handler reads them (`services.body_limit`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from services.body_limit import BodySizeLimit

pytestmark = pytest.mark.unit


def app(limit: int) -> FastAPI:
    application = FastAPI()
    application.add_middleware(BodySizeLimit, max_bytes=limit)

    @application.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    return application


async def client(limit: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app(limit)), base_url="http://service.test")


async def test_a_body_within_the_limit_is_read() -> None:
    async with await client(10) as http:
        answer = await http.post("/echo", content=b"x" * 10)
    assert (answer.status_code, answer.json()) == (200, {"read": 10})


async def test_a_declared_oversized_body_is_refused_unread() -> None:
    async with await client(10) as http:
        answer = await http.post("/echo", content=b"x" * 11)
    assert answer.status_code == 413


async def test_a_streamed_oversized_body_is_refused_while_read() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 5

    async with await client(10) as http:
        answer = await http.post("/echo", content=chunks())
    assert answer.status_code == 413
