"""The in-memory fakes of the certification repositories keep the contract the MongoDB adapters keep."""

from __future__ import annotations

import pytest

from tests.certification_contract import Backend, UnitOfWorkContract
from tests.certification_fakes import FakeStorage, FakeUnitOfWork

pytestmark = pytest.mark.unit


class TestFakeUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    def backend(self) -> Backend:
        storage = FakeStorage()

        async def published() -> list[str]:
            return [str(event.id) for event in storage.outbox]

        async def pending_timers() -> set[tuple[str, str]]:
            return {key for key, timer in storage.timers.items() if timer.state == "pending"}

        return Backend(lambda: FakeUnitOfWork(storage), published, pending_timers)
