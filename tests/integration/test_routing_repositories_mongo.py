"""The repository contract (`tests/routing_contract.py`) on the real mongod, plus what only
stored documents have: requests written before versions existed."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from routing.mongo_repositories import MongoRequests, MongoTransactions, MongoWorkers
from routing.reservation import Offer, RequestStatus, decide
from tests.routing_contract import NOW, TEAM, TIMEOUT, RepositoryContract

pytestmark = pytest.mark.integration


class TestMongoRepositories(RepositoryContract):
    @pytest.fixture
    async def requests(self, mongo_db: Any) -> MongoRequests:
        requests = MongoRequests(mongo_db)
        await requests.ensure_indexes()
        return requests

    @pytest.fixture
    async def workers(self, mongo_db: Any) -> MongoWorkers:
        workers = MongoWorkers(mongo_db)
        await workers.ensure_indexes()
        return workers

    @pytest.fixture
    def transactions(self, mongo_client: AsyncMongoClient[dict[str, Any]]) -> MongoTransactions:
        return MongoTransactions(mongo_client)

    async def test_a_request_stored_before_versions_is_at_version_0(self, requests: MongoRequests, mongo_db: Any) -> None:
        await mongo_db[MongoRequests.collection].insert_one(
            {
                "_id": "old",
                "team": TEAM.value,
                "language": "fr",
                "required_skills": [],
                "priority": 0,
                "deadline": None,
                "status": RequestStatus.QUEUED,
                "escalation": "team",
                "declined_by": [],
                "reservation": None,
                "created_at": NOW,
                "updated_at": NOW,
                "history": [{"at": NOW, "event": "queued"}],
            }
        )
        old = await requests.get("old")
        assert old is not None and old.version == 0 and old.status == RequestStatus.QUEUED
        offered, reserved = decide(old, Offer("w1", NOW, TIMEOUT))
        await requests.save(offered, 0, reserved)
        stored = await requests.get("old")
        assert stored is not None and stored.version == 1 and stored.held_by() == "w1"
        assert [h["event"] for h in await requests.history("old")] == ["queued", "reserved"]
