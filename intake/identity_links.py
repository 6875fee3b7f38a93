"""Staff confirming that a request's new contact details belong to a person already known.

A request that brought a new phone number or address along with a known one got a person of its own
(`intake.pipeline.resolve_person`), with the known person kept as a possible match. An advisor who spoke
with the person, and is satisfied it is them, confirms: the request's contact details then lead to that
person from now on. Events already published keep their person id; what changes is who later requests
belong to. The confirmation records who made it.

    POST /api/v1/identities/confirmations   advisor, en-team, supervisor
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from services import Runtime, get_runtime
from services.auth import PROTECTED, Principal, error_responses, requires
from services.auth.roles import IDENTITY_CONFIRMATION, may
from services.mongo import MongoDatabase

__all__ = ["IdentityLinks", "LinkRefused", "identity_router"]

log = structlog.get_logger(__name__)


class LinkRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class IdentityLinks:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase) -> None:
        self._client = client
        self._requests = db["intake_requests"]
        self._identities = db["intake_identities"]

    async def confirm(self, request_id: str, person_id: str, *, confirmed_by: str) -> int:
        """Point the request's contact details at `person_id`, one of its possible matches; returns
        how many identity keys now lead there."""

        async def transaction(session: AsyncClientSession) -> int:
            request = await self._requests.find_one({"_id": request_id}, session=session)
            if request is None:
                raise LinkRefused(404, f"request {request_id} is unknown")
            if person_id not in request.get("possible_person_ids", []):
                raise LinkRefused(409, "that person is not a possible match of this request")
            keys = request.get("identity_keys", [])
            moved = await self._identities.update_many(
                {"_id": {"$in": keys}, "person_id": request["person_id"]},
                {
                    "$set": {
                        "person_id": person_id,
                        "verified": True,
                        "confirmed_by": confirmed_by,
                        "confirmed_at": datetime.now(UTC),
                    }
                },
                session=session,
            )
            await self._requests.update_one(
                {"_id": request_id},
                {"$set": {"confirmed_person_id": person_id, "confirmed_by": confirmed_by}},
                session=session,
            )
            return moved.modified_count

        async with self._client.start_session() as session:
            moved: int = await session.with_transaction(transaction)
        log.info("identity.confirmed", request_id=request_id, person_id=person_id, keys=moved, confirmed_by=confirmed_by)
        return moved


def get_identity_links(runtime: Annotated[Runtime, Depends(get_runtime)]) -> IdentityLinks:
    links: IdentityLinks = runtime.app_state["identity_links"]
    return links


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    person_id: str = Field(min_length=1, max_length=64, description="One of the request's possible matches.")


class Confirmed(BaseModel):
    request_id: str
    person_id: str
    keys_linked: int


identity_router = APIRouter(prefix="/api/v1/identities", tags=["identities"])


@identity_router.post(
    "/confirmations",
    summary="Confirm that a request's contact details belong to a person already known",
    responses=error_responses(*PROTECTED, 404, 409, 422),
)
async def confirm(
    body: Confirmation,
    links: Annotated[IdentityLinks, Depends(get_identity_links)],
    staff: Annotated[Principal, requires(*may(IDENTITY_CONFIRMATION))],
) -> Confirmed:
    try:
        moved = await links.confirm(body.request_id, body.person_id, confirmed_by=staff.subject)
    except LinkRefused as refused:
        raise HTTPException(refused.status, str(refused)) from refused
    return Confirmed(request_id=body.request_id, person_id=body.person_id, keys_linked=moved)
