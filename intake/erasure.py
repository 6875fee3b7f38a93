"""Erasure of a job seeker's personal data (GDPR art. 17), requested by a data protection officer at intake.

Intake knows who a person is (their normalised phone numbers and addresses), so it resolves the
request, deletes the person's key - which makes every copy of their events unreadable as personal
data - forgets their identities, and publishes `PersonDataErased` for the other services to blank
their projections, all in one transaction with the outbox.

Only a `dpo` may ask, and who asked is the token's subject, never a body field. An erasure cannot be
undone, so it takes two: one `dpo` asks, a second, different `dpo` approves, and only then is anything
erased. The details stay unresolved until the approval, and the approval answers the same 202 whether or
not anyone is known by them, so neither step can be used to find out whether a phone number or address
is in our records.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, status
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


class ErasureAsked(BaseModel):
    """An erasure waiting for a second DPO's approval."""

    erasure_id: str = Field(description="What the second DPO approves: `POST /api/v1/privacy/erasures/{erasure_id}/approval`.")
    status: str = "awaiting_approval"


class ErasureAccepted(BaseModel):
    """The same answer whether or not anyone was known by the details given."""

    status: str = Field("accepted", description="Approved; a known person's data is erased.")


class ErasureRefused(Exception):
    """An approval that cannot be given: `status` is the HTTP answer (404, 403, 409)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class Erasures:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, outbox: Outbox, keys: PersonKeys) -> None:
        self._client = client
        self._identities = db["intake_identities"]
        self._requests = db["intake_requests"]
        self._asked = db["intake_erasures"]
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

    async def ask(self, request: ErasureRequest, *, requested_by: str) -> str:
        """Record an erasure `requested_by` asks for; its id, for a second DPO to approve."""
        erasure_id = uuid.uuid4().hex
        await self._asked.insert_one(
            {
                "_id": erasure_id,
                "request": request.model_dump(exclude_none=True),
                "requested_by": requested_by,
                "asked_at": datetime.now(UTC),
                "status": "awaiting_approval",
            }
        )
        return erasure_id

    async def approve(self, erasure_id: str, *, approved_by: str) -> str | None:
        """Carry out the erasure `erasure_id` once a DPO other than the one who asked approves it.

        The person's id, or None when nobody is known by the details; raises `ErasureRefused`."""
        asked = await self._asked.find_one({"_id": erasure_id})
        if asked is None:
            raise ErasureRefused(404, "no erasure with this id")
        if asked["requested_by"] == approved_by:
            raise ErasureRefused(403, "an erasure is approved by a second, different dpo")
        claimed = await self._asked.find_one_and_update(
            {"_id": erasure_id, "status": "awaiting_approval"},
            {"$set": {"status": "approving", "approved_by": approved_by, "approved_at": datetime.now(UTC)}},
        )
        if claimed is None:
            raise ErasureRefused(409, "this erasure was already approved")
        try:
            person_id = await self.forget(ErasureRequest(**asked["request"]), requested_by=asked["requested_by"])
        except BaseException:
            await self._asked.update_one({"_id": erasure_id}, {"$set": {"status": "awaiting_approval"}})
            raise
        # The details that named the person are personal data too: kept no longer than needed.
        await self._asked.update_one({"_id": erasure_id}, {"$set": {"status": "done"}, "$unset": {"request": ""}})
        return person_id


def get_erasures(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Erasures:
    """FastAPI dependency: the erasures of the app serving the request (`runtime.app_state["erasures"]`)."""
    erasures: Erasures = runtime.app_state["erasures"]
    return erasures


erasure_router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


Erasing = Annotated[Erasures, Depends(get_erasures)]
Dpo = Annotated[Principal, requires(*may(PRIVACY_ERASURE))]


@erasure_router.post(
    "/erasures",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask for a person's personal data to be erased (a second DPO approves)",
    responses=error_responses(*PROTECTED, 422),
)
async def ask(request: ErasureRequest, erasures: Erasing, dpo: Dpo) -> ErasureAsked:
    erasure_id = await erasures.ask(request, requested_by=dpo.subject)
    log.info("person.erasure_asked", erasure_id=erasure_id, requested_by=dpo.subject)
    return ErasureAsked(erasure_id=erasure_id)


@erasure_router.post(
    "/erasures/{erasure_id}/approval",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Approve an erasure another DPO asked for: the person's data is erased",
    responses=error_responses(
        *PROTECTED, 404, 409, described={403: "Not a dpo, or the dpo who asked.", 409: "Already approved."}
    ),
)
async def approve(erasure_id: str, erasures: Erasing, dpo: Dpo) -> ErasureAccepted:
    try:
        person_id = await erasures.approve(erasure_id, approved_by=dpo.subject)
    except ErasureRefused as refused:
        raise HTTPException(refused.status, str(refused)) from refused
    log.info("person.erasure_approved", erasure_id=erasure_id, found=person_id is not None, approved_by=dpo.subject)
    return ErasureAccepted()
