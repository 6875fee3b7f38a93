"""Erasure of a job seeker's personal data (GDPR art. 17), requested by a data protection officer at intake.

Intake knows who a person is (their normalised phone numbers and addresses), so it resolves the
request, deletes the person's key - which makes every copy of their events unreadable as personal
data - forgets their identities, and publishes `PersonDataErased` for the other services to blank
their projections, all in one transaction with the outbox.

Only a `dpo` may ask, and who asked is the token's subject, never a body field. The answer is the
same 202 whether or not anyone is known by the details given, so the endpoint cannot be used to find
out whether a phone number or address is in our records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from intake.identity import identity_keys, normalise_email, normalise_phone
from schemas import PersonDataErased
from services.app import Runtime, get_runtime
from services.auth import PROTECTED, Principal, error_responses, requires
from services.auth.roles import PRIVACY_ERASURE, may
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonKeys

log = structlog.get_logger(__name__)


class ErasureRequest(BaseModel):
    """Who is to be forgotten: their person id, or a phone number or e-mail address they used."""

    # Forbid: `requested_by` used to be a body field; who asks is now the token's subject.
    model_config = ConfigDict(extra="forbid")

    person_id: str | None = Field(None, max_length=64, examples=["per_7f3a9c2e41d84b6f9a0c1d2e3f405162"])
    phone: str | None = Field(None, max_length=40, examples=["0470 12 34 56"])
    email: str | None = Field(None, max_length=254, examples=["amina@example.org"])

    @model_validator(mode="after")
    def _one_way_to_find_the_person(self) -> ErasureRequest:
        if not (self.person_id or self.phone or self.email):
            raise ValueError("give person_id, phone or email")
        return self


class ErasureAccepted(BaseModel):
    """The same answer whether or not anyone was known by the details given."""

    status: str = Field("accepted", description="The request is recorded; a known person's data is erased.")


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

    async def forget(self, request: ErasureRequest, *, requested_by: str) -> str | None:
        """Erase the person `request` names; their person id, or None if nobody is known by these details."""
        person_id = await self.resolve(request)
        if person_id is not None:
            await self.erase(person_id, requested_by=requested_by)
        return person_id


def get_erasures(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Erasures:
    """FastAPI dependency: the erasures of the app serving the request (`runtime.app_state["erasures"]`)."""
    erasures: Erasures = runtime.app_state["erasures"]
    return erasures


erasure_router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


@erasure_router.post(
    "/erasures",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Erase a person's personal data",
    responses=error_responses(*PROTECTED, 422),
)
async def erase(
    request: ErasureRequest,
    erasures: Annotated[Erasures, Depends(get_erasures)],
    dpo: Annotated[Principal, requires(*may(PRIVACY_ERASURE))],
) -> ErasureAccepted:
    person_id = await erasures.forget(request, requested_by=dpo.subject)
    log.info("person.erasure_asked", found=person_id is not None, requested_by=dpo.subject)
    return ErasureAccepted()
