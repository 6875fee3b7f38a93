"""A small HTTP/1.1 keep-alive client for the load generator.

httpx costs this machine milliseconds of CPU per request, so with two cores the client, not the
service, would set the figure. This client only does what the benchmark needs - JSON POSTs and
GETs over persistent connections to our own services on 127.0.0.1, answers with Content-Length or
chunked bodies - in a fraction of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Self
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    pass


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None, content_type: str) -> tuple[int, bytes]:
        if self.reader is not None and self.reader.at_eof():
            await self.close()  # the server closed it while idle (uvicorn: after 5 s)
        reused = self.writer is not None
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: formation-events-bench\r\n"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        try:
            self.writer.write(head.encode("latin-1") + b"\r\n" + (body or b""))
            status_line = await self.reader.readline()
        except ConnectionError:
            status_line = b""
        if not status_line:
            await self.close()
            if reused:  # an idle connection the server had closed: nothing was read, send it again once
                return await self.request(method, path, body, content_type)
            raise ConnectionResetError("connection closed before the answer")
        status = int(status_line.split(None, 2)[1])
        length: int | None = None
        chunked = close = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            parts = []
            while (size := int((await self.reader.readline()).split(b";")[0], 16)) > 0:
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            await self.reader.readline()
            payload = b"".join(parts)
        elif length is not None:
            payload = await self.reader.readexactly(length)
        else:
            payload, close = await self.reader.read(), True
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


class HttpClient:
    """Up to `connections` persistent connections to one base URL; each call takes a free one."""

    def __init__(self, base_url: str, *, connections: int = 32, timeout: float = 30.0) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname or not url.port:
            raise ValueError(f"need http://host:port, not {base_url!r}")
        self._all = [_Connection(url.hostname, url.port) for _ in range(connections)]
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        for connection in self._all:
            self._idle.put_nowait(connection)
        self.timeout = timeout

    async def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        connection = await self._idle.get()
        try:
            return await asyncio.wait_for(connection.request(method, path, body, content_type), self.timeout)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError):
            await connection.close()  # the next use opens a fresh one
            raise
        finally:
            self._idle.put_nowait(connection)

    async def post_json(self, path: str, document: Any) -> tuple[int, Any]:
        status, payload = await self.request("POST", path, json.dumps(document).encode())
        try:
            return status, json.loads(payload) if payload else None
        except ValueError as error:
            raise HttpError(f"{status}: not JSON: {payload[:200]!r}") from error

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.gather(*(c.close() for c in self._all))
