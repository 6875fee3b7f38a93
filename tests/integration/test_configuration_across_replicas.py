"""Configuration run by staff, on the real servers: a supervisor sets a closure day through one routing
replica (real Keycloak token, MongoDB history, outbox, Kafka); a second replica, already running, reads
the `ConfigurationChanged` from `configuration.v1` and the deadline of a request received the day
before the closure moves one working day later there, without a restart."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from analytics.settings import AnalyticsSettings
from analytics.whatif import staff_calendar
from routing.app import create_app
from routing.settings import RoutingSettings
from schemas import Channel, ConfigurationChanged, codec
from scripts.tokens import Tokens
from services.calendar import BRUSSELS
from services.kafka import delete_topics_with_prefix, use_topic_prefix
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_CLIENT, require_identity_provider
from tests.factories import make_request

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(os.environ.get("OIDC_ISSUER")), reason="OIDC_ISSUER names a provider without the demo users"),
]

TUESDAY_10 = datetime(2026, 3, 3, 10, 0, tzinfo=BRUSSELS)
"""Tuesday 3 March 2026, 10:00 in Brussels: the day before the closure the test configures."""
CLOSURE = date(2026, 3, 4)


@pytest.fixture(scope="module")
def tokens() -> Tokens:
    require_identity_provider()
    return Tokens()


@pytest.fixture
async def replicas(
    unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[tuple[FastAPI, FastAPI, str]]:
    prefix = f"test_configuration_{unique}."
    kafka = kafka_settings.model_copy(update={"topic_prefix": prefix})
    apps = [
        create_app(RoutingSettings(kafka=kafka, mongo=mongo_settings, instance_id=f"routing-{n}-{unique}")) for n in ("a", "b")
    ]
    try:
        async with AsyncExitStack() as stack:
            for app in apps:
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield apps[0], apps[1], prefix
    finally:
        use_topic_prefix("")
        await delete_topics_with_prefix(kafka_settings, prefix)


def runtime_of(app: FastAPI) -> Any:
    return app.state.runtime


async def published_changes(prefix: str) -> list[ConfigurationChanged]:
    consumer = AIOKafkaConsumer(**KAFKA_CLIENT, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(f"{prefix}configuration.v1", 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        events: list[Any] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                events.extend(codec.decode(r.value, r.headers) for r in records)
        return [e for e in events if isinstance(e, ConfigurationChanged)]
    finally:
        await consumer.stop()


async def test_a_closure_set_on_one_replica_moves_the_deadline_on_another(
    replicas: tuple[FastAPI, FastAPI, str], tokens: Tokens, kafka_settings: KafkaSettings
) -> None:
    first, second, prefix = replicas
    service = runtime_of(second).app_state["service"]
    request = make_request(channel=Channel.PHONE, received_at=TUESDAY_10)
    before = await deadline_on(service, request)
    supervisor = tokens.headers("adv-sup")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://routing.test") as http:
        refused = await http.put("/config/closures", headers=tokens.headers("adv-1"), json={"expected_version": 0, "days": []})
        changed = await http.put(
            "/config/closures",
            headers=supervisor,
            json={"expected_version": 0, "days": [{"date": CLOSURE.isoformat(), "name": "Staff day"}], "reason": "bridge"},
        )
        stale = await http.put("/config/closures", headers=supervisor, json={"expected_version": 0, "days": []})
        invalid = await http.put(
            "/config/quotas", headers=supervisor, json={"expected_version": 0, "digital_divide_per_year": -5}
        )
        history = (await http.get("/config/closures/history", headers=supervisor)).json()

    assert refused.status_code == 403
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 1
    assert stale.status_code == 409
    assert invalid.status_code == 422
    assert [(h["version"], h["reason"], h["value"]) for h in history] == [
        (1, "bridge", {"days": [{"date": CLOSURE.isoformat(), "name": "Staff day"}]})
    ]

    # The replica that did not take the change hears it from Kafka, without a restart.
    feed = runtime_of(second).app_state["configuration"].feed
    async with asyncio.timeout(30):
        while feed.current.version("closures") < 1:  # noqa: ASYNC110 - the feed signals nothing
            await asyncio.sleep(0.1)
    on_kafka = await published_changes(prefix)
    assert [(e.setting, e.version, e.changed_by) for e in on_kafka] == [("closures", 1, history[0]["changed_by"])]

    later = make_request(channel=Channel.PHONE, received_at=TUESDAY_10)
    after = await deadline_on(service, later)
    assert before == datetime(2026, 3, 5, 10, 0, tzinfo=BRUSSELS)  # Thursday
    assert after == datetime(2026, 3, 6, 10, 0, tzinfo=BRUSSELS)  # Friday: one working day later
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://routing.test") as http:
        current = (await http.get("/config", headers=supervisor)).json()
    assert current["closures"]["version"] == 1

    # The analysts' what-if redoes deadlines with the same closures, read from the same topic.
    analytics = AnalyticsSettings(kafka=kafka_settings.model_copy(update={"topic_prefix": prefix}))
    calendar = await staff_calendar(analytics)
    assert not calendar.is_working_day(CLOSURE) and calendar.is_working_day(TUESDAY_10.date())


async def deadline_on(service: Any, request: Any) -> datetime:
    """Route `request` on that replica and read back the callback deadline it stored."""
    await service.route(request)
    stored = await service.decisions.find_one({"_id": request.request_id})
    deadline: datetime = stored["callback_deadline"]
    return deadline.astimezone(BRUSSELS)
