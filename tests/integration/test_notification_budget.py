"""The daily message budgets on the real mongod, as two replicas see them: each has its own
`MessageBudget`, and together they never send more than the caps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notification.budget import BUDGET, BudgetRefusal, DailyCaps, MessageBudget, next_budget_day
from schemas import NotificationChannel
from services.calendar import BRUSSELS

pytestmark = pytest.mark.integration

SMS, EMAIL = NotificationChannel.SMS, NotificationChannel.EMAIL
NOON = datetime(2026, 3, 3, 12, 0, tzinfo=BRUSSELS)
PHONE = "+32470123456"


def caps(sms_each: int = 5, sms_all: int = 2_000) -> DailyCaps:
    return DailyCaps(per_destination={SMS: sms_each, EMAIL: 10}, overall={SMS: sms_all, EMAIL: 20_000})


async def test_two_replicas_flooding_one_number_send_at_most_its_budget(mongo_db: Any) -> None:
    first, second = MessageBudget(mongo_db, caps()), MessageBudget(mongo_db, caps())
    await first.ensure_indexes()

    results = await asyncio.gather(*(b.spend(SMS, PHONE, now=NOON) for _ in range(20) for b in (first, second)))

    assert results.count(None) == 5
    assert set(results) == {None, BudgetRefusal.DESTINATION}
    assert await first.used(SMS, PHONE, now=NOON) == 5
    assert await second.used(SMS, None, now=NOON) == 5  # refusals are not counted overall
    # The same number by e-mail, or another number, has its own budget.
    assert await first.spend(EMAIL, "amina@example.org", now=NOON) is None
    assert await second.spend(SMS, "+32470999999", now=NOON) is None
    # The next Brussels day starts afresh.
    tomorrow = next_budget_day(NOON)
    assert tomorrow == datetime(2026, 3, 4, 0, 0, tzinfo=BRUSSELS)
    assert await first.spend(SMS, PHONE, now=tomorrow) is None
    assert await first.spend(SMS, PHONE, now=tomorrow - timedelta(microseconds=1)) is BudgetRefusal.DESTINATION


async def test_the_global_cap_holds_across_replicas_and_gives_back_the_destinations_unit(mongo_db: Any) -> None:
    first, second = MessageBudget(mongo_db, caps(sms_all=7)), MessageBudget(mongo_db, caps(sms_all=7))
    numbers = [f"+3247010{i:04d}" for i in range(12)]

    results = await asyncio.gather(*(b.spend(SMS, n, now=NOON) for n in numbers for b in (first, second)))

    assert results.count(None) == 7
    assert results.count(BudgetRefusal.GLOBAL) + results.count(BudgetRefusal.DESTINATION) == 17
    assert await first.used(SMS, None, now=NOON) == 7
    assert sum([await first.used(SMS, n, now=NOON) for n in numbers]) == 7  # what was refused overall was given back


async def test_counters_expire_and_hold_no_address_in_clear(mongo_db: Any) -> None:
    budget = MessageBudget(mongo_db, caps())
    await budget.ensure_indexes()
    await budget.spend(SMS, PHONE, now=NOON.astimezone(UTC))

    indexes = await mongo_db[BUDGET].index_information()
    assert indexes["expires_at_ttl"]["expireAfterSeconds"] == 0
    docs = await mongo_db[BUDGET].find().to_list(None)
    assert len(docs) == 2
    assert all(PHONE not in str(doc) and "470123456" not in str(doc) for doc in docs)
    assert all(doc["expires_at"] == datetime(2026, 3, 6, 0, 0, tzinfo=BRUSSELS) for doc in docs)  # two days after its day


async def test_a_zero_cap_sends_nothing(mongo_db: Any) -> None:
    budget = MessageBudget(mongo_db, caps(sms_each=0))
    assert await budget.spend(SMS, PHONE, now=NOON) is BudgetRefusal.DESTINATION
