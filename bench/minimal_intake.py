"""The intake baseline: the least a durable JSON endpoint can do.

    INTAKE_HTTP_PORT=... MONGODB_DATABASE=... python -m bench.minimal_intake

One FastAPI route on uvicorn (as intake is served), `POST /api/v1/requests`: parse the JSON,
build the same `TrainingRequestReceived`, write the same outbox document with intake's own
`Outbox.add` (one insert, majority write concern, same client settings), answer 202. Left out is
what intake adds: validation with field-by-field messages, rate limiting, phone and e-mail
normalisation, person linking and deduplication in one transaction, the request record, the
structured log line, metrics, and the relay to Kafka.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from intake.settings import IntakeSettings
from schemas import (
    Channel,
    Contact,
    Language,
    QualificationLevel,
    TrainingRequestReceived,
)
from services.mongo import create_mongo_client, ping
from services.outbox import Outbox


def create_app(settings: IntakeSettings) -> FastAPI:
    client = create_mongo_client(settings.mongo, app_name="bench-minimal-intake")
    outbox = Outbox(client[settings.mongo.database], "intake_outbox")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await outbox.ensure_indexes()  # the outbox's index, as intake has it
        yield
        await client.close()

    app = FastAPI(title="minimal intake (benchmark baseline)", lifespan=lifespan)

    @app.post("/api/v1/requests", status_code=202)
    async def submit(request: Request) -> JSONResponse:
        body: dict[str, Any] = json.loads(await request.body())
        request_id = str(uuid.uuid4())
        person_id = f"per_{uuid.uuid4().hex}"
        level = body.get("qualification_level")
        event = TrainingRequestReceived(
            source="/intake/web",
            subject=request_id,
            request_id=request_id,
            person_id=person_id,
            channel=Channel.WEB,
            received_at=datetime.now(UTC),
            contact=Contact(name=body.get("name"), phone=body.get("phone"), email=body.get("email")),
            language=Language(body.get("language", "fr")),
            need=body.get("need", ""),
            requested_course=body.get("requested_course"),
            qualification_level=QualificationLevel(level) if level else None,
            consent_to_contact=bool(body.get("consent_to_contact")),
        )
        await outbox.add([event])
        return JSONResponse(
            {"request_id": request_id, "person_id": person_id, "status": "accepted", "linked_request_ids": []}, 202
        )

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        ok = await ping(client)
        return JSONResponse({"mongodb": "up" if ok else "down"}, 200 if ok else 503)

    return app


def main() -> None:
    settings = IntakeSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
