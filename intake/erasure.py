"""Erasure of a job seeker's personal data (GDPR art. 17), requested by staff at intake.

Intake knows who a person is (their normalised phone numbers and addresses), so it resolves the
request, deletes the person's key - which makes every copy of their events unreadable as personal
data - forgets their identities, and publishes `PersonDataErased` for the other services to blank
their projections, all in one transaction with the outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field, model_validator
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from intake.identity import identity_keys, normalise_email, normalise_phone
from schemas import PersonDataErased
from services.app import Runtime, get_runtime
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonKeys

log = structlog.get_logger(__name__)


class ErasureRequest(BaseModel):
    """Who is to be forgotten: their person id, or a phone number or e-mail address they used."""

    person_id: str | None = Field(None, examples=["per_7f3a9c2e41d84b6f9a0c1d2e3f405162"])
    phone: str | None = Field(None, examples=["0470 12 34 56"])
    email: str | None = Field(None, examples=["amina@example.org"])
    requested_by: str = Field(
        min_length=1, description="The staff member or process asking.", examples=["dpo@bruxellesformation.brussels"]
    )

    @model_validator(mode="after")
    def _one_way_to_find_the_person(self) -> ErasureRequest:
        if not (self.person_id or self.phone or self.email):
            raise ValueError("give person_id, phone or email")
        return self


class ErasureDone(BaseModel):
    person_id: str
    status: str = "erased"


class Erasures:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, outbox: Outbox, keys: PersonKeys) -> None:
        self._client = client
        self._identities = db["intake_identities"]
        self._requests = db["intake_requests"]
        self._outbox = outbox
        self._keys = keys

    async def resolve(self, request: ErasureRequest) -> str | None:
        if request.person_id:
            return request.person_id
        keys = identity_keys(normalise_phone(request.phone), normalise_email(request.email))
        found = await self._identities.find_one({"_id": {"$in": keys}}) if keys else None
        return str(found["person_id"]) if found else None

    async def erase(self, person_id: str, *, requested_by: str) -> PersonDataErased:
        event = PersonDataErased(
            source="/intake/privacy",
            subject=person_id,
            person_id=person_id,
            erased_at=datetime.now(UTC),
            requested_by=requested_by,
        )

        async def transaction(session: AsyncClientSession) -> None:
            await self._keys.erase(person_id, requested_by=requested_by, session=session)
            await self._identities.delete_many({"person_id": person_id}, session=session)
            await self._requests.update_many({"person_id": person_id}, {"$set": {"erased": True}}, session=session)
            await self._outbox.add([event], session=session)

        async with self._client.start_session() as session:
            await session.with_transaction(transaction)
        log.info("person.erasure_requested", person_id=person_id)
        return event

    async def forget(self, request: ErasureRequest) -> str | None:
        """Erase the person `request` names; their person id, or None if nobody is known by these details."""
        person_id = await self.resolve(request)
        if person_id is not None:
            await self.erase(person_id, requested_by=request.requested_by)
        return person_id


def get_erasures(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Erasures:
    """FastAPI dependency: the erasures of the app serving the request (`runtime.app_state["erasures"]`)."""
    erasures: Erasures = runtime.app_state["erasures"]
    return erasures


erasure_router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


@erasure_router.post("/erasures", status_code=status.HTTP_202_ACCEPTED, summary="Erase a person's personal data")
async def erase(request: ErasureRequest, erasures: Annotated[Erasures, Depends(get_erasures)]) -> ErasureDone:
    person_id = await erasures.forget(request)
    if person_id is None:
        raise HTTPException(404, "no person is known by these details")
    return ErasureDone(person_id=person_id)
