"""The case-store contract on MongoDB, and what only the real documents can show: the shape the
desk and the reports read, and cases stored before they had a version."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from routing.case import Erase, decide
from routing.case_repository import CASES_COLLECTION, CaseStore, MongoCaseStore, case_to_document
from services.clock import SystemClock
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.timers import TIMERS_COLLECTION, TimerStore
from tests.routing_case_contract import CaseStoreContract, a_case

pytestmark = pytest.mark.integration

OUTBOX = "routing_outbox"


class TestMongoCaseStore(CaseStoreContract):
    @pytest.fixture
    def store(self, mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase) -> MongoCaseStore:
        return MongoCaseStore(
            mongo_client,
            mongo_db,
            outbox=Outbox(mongo_db, OUTBOX),
            timers=TimerStore(mongo_client, mongo_db, clock=SystemClock(), owner="case-store-test"),
            personal=PersonalData(PersonKeys(mongo_db)),
        )

    async def published_ids(self, store: CaseStore) -> list[str]:
        assert isinstance(store, MongoCaseStore)
        return [doc["_id"] async for doc in store.db[OUTBOX].find().sort("seq", 1)]

    async def live_timers(self, store: CaseStore) -> set[tuple[str, str]]:
        assert isinstance(store, MongoCaseStore)
        return {(doc["kind"], doc["key"]) async for doc in store.db[TIMERS_COLLECTION].find({"state": "pending"})}

    async def test_documents_keep_their_shape(self, store: MongoCaseStore) -> None:
        await self.add(store, a_case())
        doc = await store.db[CASES_COLLECTION].find_one({"_id": "r-1"})
        assert doc is not None
        assert set(doc) == {
            *("_id", "person_id", "channel", "language", "target", "received_at", "deadline", "due_at", "sla"),
            *("first_contact_at", "attempts", "outcome", "joined_to", "contact", "need", "requested_course"),
            *("needs_triage", "priority", "programme", "correlation_id", "routed_event_id", "version"),
        }
        assert (doc["channel"], doc["target"], doc["sla"], doc["version"]) == ("phone", "advisors", "pending", 0)

        loaded = await self.get(store, "r-1")
        assert loaded is not None
        erased, _ = decide(loaded, Erase())
        await store.run(lambda uow: uow.cases.save(erased))
        doc = await store.db[CASES_COLLECTION].find_one({"_id": "r-1"})
        assert doc is not None
        # Fields a transition sets appear once set, never as nulls.
        assert (doc["erased"], doc["contact"], doc["need"], doc["version"]) == (True, {}, "", 1)
        assert "due_sent_at" not in doc and "breached_at" not in doc and "closed_by" not in doc

    async def test_a_case_stored_without_a_version_loads_at_version_0(self, store: MongoCaseStore) -> None:
        legacy = case_to_document(a_case())
        del legacy["version"], legacy["correlation_id"], legacy["routed_event_id"]
        await store.db[CASES_COLLECTION].insert_one(legacy)
        loaded = await self.get(store, "r-1")
        assert loaded is not None
        assert (loaded.version, loaded.correlation_id, loaded.routed_event_id) == (0, None, None)
        saved = await store.run(lambda uow: uow.cases.save(loaded.model_copy(update={"attempts": 1})))
        assert saved.version == 1
        doc = await store.db[CASES_COLLECTION].find_one({"_id": "r-1"})
        assert doc is not None and (doc["attempts"], doc["version"]) == (1, 1)
