"""The repository contract (`tests/routing_contract.py`) on the in-memory fakes unit tests use."""

from __future__ import annotations

import pytest

from tests.routing_contract import RepositoryContract
from tests.routing_fakes import FakeRequests, FakeTransactions, FakeWorkers

pytestmark = pytest.mark.unit


class TestFakeRepositories(RepositoryContract):
    @pytest.fixture
    def requests(self) -> FakeRequests:
        return FakeRequests()

    @pytest.fixture
    def workers(self) -> FakeWorkers:
        return FakeWorkers()

    @pytest.fixture
    def transactions(self, requests: FakeRequests, workers: FakeWorkers) -> FakeTransactions:
        return FakeTransactions(requests, workers)
