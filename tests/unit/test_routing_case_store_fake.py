"""The case-store contract on the in-memory fake the routing use-case tests run on."""

from __future__ import annotations

import pytest

from routing.case_repository import CaseStore
from tests.routing_case_contract import CaseStoreContract
from tests.routing_case_fakes import FakeCaseStore

pytestmark = pytest.mark.unit


class TestFakeCaseStore(CaseStoreContract):
    @pytest.fixture
    def store(self) -> FakeCaseStore:
        return FakeCaseStore()

    async def published_ids(self, store: CaseStore) -> list[str]:
        assert isinstance(store, FakeCaseStore)
        return [str(event.id) for event in store.published]

    async def live_timers(self, store: CaseStore) -> set[tuple[str, str]]:
        assert isinstance(store, FakeCaseStore)
        return {(str(kind), key) for kind, key in store.timers}
