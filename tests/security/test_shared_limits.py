"""Messaging abuse past the web channel's brakes: rotating addresses in one IPv6 /64, spreading the
requests over two replicas, spoofing X-Forwarded-For, and reusing an Idempotency-Key on the other
replica, against two intake apps over the real pipeline on the running mongod, behind uvicorn's
proxy-headers middleware as `services.serve` installs it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from intake.pipeline import IntakePipeline
from intake.web import MongoIdempotencyKeys, WebChannel, WebSettings, get_web_channel, web_router
from services.catalogue import load_catalogue
from services.outbox import Outbox
from services.ratelimits import MongoRateLimits
from tests.security.conftest import Attacks

pytestmark = [pytest.mark.security, pytest.mark.integration]

URL = "/api/v1/requests"
# An hour ahead on a minute boundary: all requests fall in one window that MongoDB's TTL monitor leaves alone.
START = datetime.fromtimestamp((datetime.now(UTC).timestamp() // 60 + 60) * 60, UTC)
PROXY = "10.0.0.2"  # our edge proxy, the only peer whose X-Forwarded-For uvicorn believes


async def replica_apps(mongo_client: Any, mongo_db: Any, count: int = 2, **settings: Any) -> list[FastAPI]:
    """`count` intake web apps sharing one database, each behind uvicorn's ProxyHeadersMiddleware."""
    apps = []
    for _ in range(count):
        pipeline = IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"))
        await pipeline.ensure_indexes()
        app = FastAPI()
        app.include_router(web_router)
        channel = WebChannel(
            pipeline,
            WebSettings(**settings),
            load_catalogue(),
            clock=lambda: START,
            rate_limits=MongoRateLimits(mongo_db),
            idempotency_keys=MongoIdempotencyKeys(mongo_db, timedelta(hours=24)),
        )
        app.dependency_overrides[get_web_channel] = provides(channel)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=PROXY)
        apps.append(app)
    return apps


def provides(channel: WebChannel) -> Callable[[], WebChannel]:
    return lambda: channel


def connected_from(app: FastAPI, peer: str) -> httpx.AsyncClient:
    """A client whose TCP peer, as uvicorn sees it, is `peer`."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(peer, 40000)), base_url="http://intake.test")


async def replicas(mongo_client: Any, mongo_db: Any, **settings: Any) -> list[httpx.AsyncClient]:
    """Two replicas, reached through our proxy."""
    return [connected_from(app, PROXY) for app in await replica_apps(mongo_client, mongo_db, **settings)]


def body(n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "phone": f"0470 12 {n // 100:02d} {n % 100:02d}",
        "need": "Excel",
        "language": "fr",
        "consent_to_contact": True,
    } | overrides


async def stored_request_ids(mongo_db: Any) -> set[str]:
    return {doc["_id"] async for doc in mongo_db["intake_requests"].find({}, {"_id": 1})}


async def test_rotating_addresses_in_one_ipv6_64_over_two_replicas_share_one_limit(
    mongo_client: Any, mongo_db: Any, attacks: Attacks
) -> None:
    replica_a, replica_b = await replicas(mongo_client, mongo_db, burst=5, rate_per_minute=5)
    statuses, accepted = [], []
    async with replica_a, replica_b:
        for n in range(15):
            replica = (replica_a, replica_b)[n % 2]
            address = f"2001:db8:4a:7::{n + 1:x}"  # a new address per request, all in one /64
            response = await replica.post(URL, json=body(n), headers={"X-Forwarded-For": address})
            statuses.append(response.status_code)
            if response.status_code == 202:
                accepted.append(response.json()["request_id"])

    assert statuses.count(202) == 5 and statuses.count(429) == 10  # not 5 per replica, not 15
    assert all(status == 202 for status in statuses[:5])
    stored = await stored_request_ids(mongo_db)
    assert set(accepted) <= stored and len(stored) == 5  # every 202 is stored, nothing refused is
    attacks.record(
        "15 requests from rotating IPv6 addresses in one /64 over 2 replicas",
        tried="POST /api/v1/requests",
        refused=True,
        nothing_lost=set(accepted) <= stored,
    )


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    mongo_client: Any, mongo_db: Any, attacks: Attacks
) -> None:
    [app] = await replica_apps(mongo_client, mongo_db, count=1, burst=3, rate_per_minute=3)
    # Connecting directly, not through the proxy: the peer's address is the client, whatever it writes.
    async with connected_from(app, "203.0.113.66") as direct:
        statuses = [
            (await direct.post(URL, json=body(100 + n), headers={"X-Forwarded-For": f"192.0.2.{n}"})).status_code
            for n in range(8)
        ]

    assert statuses == [202] * 3 + [429] * 5
    assert len(await stored_request_ids(mongo_db)) == 3
    attacks.record(
        "spoofed X-Forwarded-For from an untrusted peer",
        tried="POST /api/v1/requests",
        refused=True,
        nothing_lost=True,
    )


async def test_one_phone_number_gets_only_so_many_requests_whoever_sends_them(
    mongo_client: Any, mongo_db: Any, attacks: Attacks
) -> None:
    replica_a, replica_b = await replicas(mongo_client, mongo_db, destination_per_day=2)
    async with replica_a, replica_b:
        statuses = [
            (
                await (replica_a, replica_b)[n % 2].post(
                    URL, json=body(0, phone=spelling), headers={"X-Forwarded-For": f"198.51.{n}.7"}
                )
            ).status_code
            for n, spelling in enumerate(["0470 12 00 00", "+32470120000", "0032 470 12 00 00", "+32 (0)470 120000"])
        ]

    assert statuses == [202, 202, 429, 429]
    assert len(await stored_request_ids(mongo_db)) == 2
    attacks.record(
        "one victim's number from 4 networks over 2 replicas",
        tried="POST /api/v1/requests",
        refused=True,
        nothing_lost=True,
    )


async def test_a_reused_idempotency_key_with_another_body_is_refused_on_the_other_replica(
    mongo_client: Any, mongo_db: Any, attacks: Attacks
) -> None:
    replica_a, replica_b = await replicas(mongo_client, mongo_db)
    client = {"X-Forwarded-For": "198.51.100.7", "Idempotency-Key": "order-42"}
    async with replica_a, replica_b:
        first = await replica_a.post(URL, json=body(7), headers=client)
        retry = await replica_b.post(URL, json=body(7), headers=client)
        reused = await replica_b.post(URL, json=body(8), headers=client)
        # Someone else, same key and body: their own request, not a window onto the first one.
        stranger = await replica_b.post(URL, json=body(7), headers={**client, "X-Forwarded-For": "203.0.113.5"})

    assert first.status_code == 202
    assert retry.status_code == 200 and retry.json()["request_id"] == first.json()["request_id"]
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert stranger.status_code == 202 and stranger.json()["request_id"] != first.json()["request_id"]
    stored = await stored_request_ids(mongo_db)
    assert stored == {first.json()["request_id"], stranger.json()["request_id"]}
    attacks.record(
        "Idempotency-Key reused with another body on the other replica",
        tried="POST /api/v1/requests",
        refused=True,
        nothing_lost=first.json()["request_id"] in stored,
    )
