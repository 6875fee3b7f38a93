"""Rate counters and Idempotency-Key claims on the running mongod: one suite for the MongoDB adapters
and their in-memory fakes, then two "replicas" (two adapters, two apps) over the same database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from intake.pipeline import IntakePipeline
from intake.web import (
    IdempotencyKeys,
    InMemoryIdempotencyKeys,
    MongoIdempotencyKeys,
    WebChannel,
    WebSettings,
    get_web_channel,
    web_router,
)
from services.catalogue import load_catalogue
from services.outbox import Outbox
from services.ratelimits import Hit, InMemoryRateLimits, Limit, MongoRateLimits, RateLimits

pytestmark = pytest.mark.integration

# An hour ahead, on a minute boundary: every window of a test is the same, and none has ended,
# so MongoDB's TTL monitor cannot remove a counter while the test reads it.
START = datetime.fromtimestamp((datetime.now(UTC).timestamp() // 60 + 60) * 60, UTC)
PER_MINUTE = Limit(3, 60)


@pytest.fixture(params=["memory", "mongo"])
async def rate_limits(request: pytest.FixtureRequest, mongo_db: Any) -> RateLimits:
    if request.param == "memory":
        return InMemoryRateLimits()
    limits = MongoRateLimits(mongo_db)
    await limits.ensure_indexes()
    return limits


@pytest.fixture(params=["memory", "mongo"])
async def idempotency_keys(request: pytest.FixtureRequest, mongo_db: Any) -> IdempotencyKeys:
    if request.param == "memory":
        return InMemoryIdempotencyKeys()
    keys = MongoIdempotencyKeys(mongo_db, timedelta(hours=24))
    await keys.ensure_indexes()
    return keys


async def test_a_counter_refuses_beyond_its_limit_until_its_window_ends(rate_limits: RateLimits) -> None:
    hit = Hit("network", "198.51.100.7", PER_MINUTE)
    taken = [await rate_limits.take([hit], START + timedelta(seconds=n)) for n in range(4)]

    assert taken == [None, None, None, 57]  # refused at second 3: 57 s to the minute's end
    assert await rate_limits.take([hit], START + timedelta(seconds=60)) is None


async def test_counters_of_other_keys_and_scopes_are_apart(rate_limits: RateLimits) -> None:
    one = Limit(1, 60)
    assert await rate_limits.take([Hit("network", "a", one)], START) is None
    assert await rate_limits.take([Hit("network", "b", one)], START) is None
    assert await rate_limits.take([Hit("destination", "a", one)], START) is None
    assert await rate_limits.take([Hit("network", "a", one)], START) == 60


async def test_the_longest_refusing_window_says_how_long_to_wait(rate_limits: RateLimits) -> None:
    hits = [Hit("network", "a", Limit(1, 10)), Hit("network", "a", Limit(1, 60))]
    assert await rate_limits.take(hits, START) is None
    assert await rate_limits.take(hits, START + timedelta(seconds=1)) == 59  # the minute, not the 10 s


async def test_concurrent_requests_count_as_if_one_by_one_on_new_and_existing_counters(rate_limits: RateLimits) -> None:
    daily = Limit(3, 86_400)
    assert await rate_limits.take([Hit("destination", "known", daily)], START) is None
    takes = [[Hit("destination", f"new-{i}", daily), Hit("destination", "known", daily)] for i in range(4)]

    results = await asyncio.gather(*(rate_limits.take(hits, START) for hits in takes))

    assert results.count(None) == 2, "the known destination had room for two more"
    assert await rate_limits.take([Hit("destination", "new-0", daily)] * 2, START) is None, "each new one counted once"
    assert await rate_limits.take([Hit("destination", "new-1", daily)] * 3, START) is not None


async def test_a_key_is_claimed_by_its_first_body(idempotency_keys: IdempotencyKeys) -> None:
    assert await idempotency_keys.claim("k", "body-1", START)
    assert await idempotency_keys.claim("k", "body-1", START)  # the retry
    assert not await idempotency_keys.claim("k", "body-2", START)
    assert await idempotency_keys.claim("other", "body-2", START)


async def test_two_replicas_share_one_allowance(mongo_db: Any) -> None:
    replica_a, replica_b = MongoRateLimits(mongo_db), MongoRateLimits(mongo_db)
    await replica_a.ensure_indexes()
    hit = Hit("network", "2001:db8:1:2::/64", Limit(5, 60))

    results = await asyncio.gather(*(replica.take([hit], START) for replica in [replica_a, replica_b] * 10))

    assert results.count(None) == 5  # not 5 per replica
    counter = await mongo_db["rate_limits"].find_one({})
    assert counter["count"] == 20 and counter["expires_at"] == START + timedelta(seconds=60)
    assert "2001:db8" not in counter["_id"]  # the key is hashed: an address is personal data


async def test_two_replicas_claiming_one_key_with_two_bodies_at_once_agree_on_one(mongo_db: Any) -> None:
    replicas = [MongoIdempotencyKeys(mongo_db, timedelta(hours=1)) for _ in range(2)]
    for _ in range(20):
        key = f"k-{_}"
        won = await asyncio.gather(replicas[0].claim(key, "body-a", START), replicas[1].claim(key, "body-b", START))
        assert sorted(won) == [False, True]


async def test_claims_and_counters_expire_by_ttl_index(mongo_db: Any) -> None:
    await MongoRateLimits(mongo_db).ensure_indexes()
    await MongoIdempotencyKeys(mongo_db, timedelta(hours=1)).ensure_indexes()
    for collection in ("rate_limits", "web_idempotency_keys"):
        indexes = await mongo_db[collection].index_information()
        assert indexes["expires_at_ttl"]["expireAfterSeconds"] == 0


# --- Two intake apps over one database ----------------------------------------------------------


@pytest.fixture
async def make_replica(mongo_client: Any, mongo_db: Any) -> Callable[..., FastAPI]:
    pipeline = IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"))
    await pipeline.ensure_indexes()

    def make(**settings: Any) -> FastAPI:
        app = FastAPI()
        app.include_router(web_router)
        channel = WebChannel(
            IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox")),
            WebSettings(**settings),
            load_catalogue(),
            clock=lambda: START,
            rate_limits=MongoRateLimits(mongo_db),
            idempotency_keys=MongoIdempotencyKeys(mongo_db, timedelta(hours=24)),
        )
        app.dependency_overrides[get_web_channel] = lambda: channel
        return app

    return make


def client_of(app: FastAPI, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 1)), base_url="http://intake.test")


BODY = {"phone": "0470 12 34 56", "need": "Excel", "language": "fr", "consent_to_contact": True}


@pytest.fixture
async def two_clients(make_replica: Callable[..., FastAPI]) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with client_of(make_replica(), "198.51.100.7") as a, client_of(make_replica(), "198.51.100.7") as b:
        yield a, b


async def test_a_retry_on_the_other_replica_answers_the_first_result(
    two_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], mongo_db: Any
) -> None:
    replica_a, replica_b = two_clients
    headers = {"Idempotency-Key": "order-1"}
    first = await replica_a.post("/api/v1/requests", json=BODY, headers=headers)
    retry = await replica_b.post("/api/v1/requests", json=BODY, headers=headers)

    assert (first.status_code, retry.status_code) == (202, 200)
    assert retry.json()["request_id"] == first.json()["request_id"]
    assert await mongo_db["intake_requests"].count_documents({}) == 1


async def test_a_key_reused_with_another_body_is_refused_on_the_other_replica(
    two_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], mongo_db: Any
) -> None:
    replica_a, replica_b = two_clients
    headers = {"Idempotency-Key": "order-2"}
    assert (await replica_a.post("/api/v1/requests", json=BODY, headers=headers)).status_code == 202
    reused = await replica_b.post("/api/v1/requests", json={**BODY, "need": "Word"}, headers=headers)

    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert await mongo_db["intake_requests"].count_documents({}) == 1
