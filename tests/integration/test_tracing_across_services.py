"""One phone call followed in one OpenTelemetry trace, intake -> routing -> notification -> certification,
on the real broker and mongod: the four services run in this process (their own `create_app` and
lifespan, each with its own tracer provider and `service.name`), their spans collected by one
in-memory exporter. The call comes in with a `traceparent` the test chose; routing consumes it in a
batch, the advisor's outcome is recorded at the desk and the exam booked and passed at certification
by staff requests that are not in that trace, and still every service's spans - and the
`traceparent` of every record of the conversation, to the certificate - are in it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, get_current_span
from pydantic import SecretStr

from certification.app import create_app as create_certification
from certification.settings import CertificationSettings
from intake.app import create_app as create_intake
from intake.email_server import EmailInboxSettings
from intake.phone import PhoneWebhookSettings, generic_signature
from intake.settings import IntakeSettings
from notification.app import create_app as create_notification
from notification.settings import NotificationSettings
from routing.app import create_app as create_routing
from routing.settings import RoutingSettings
from schemas import (
    CertificateIssued,
    ContactAttempted,
    ExamScheduled,
    ExamSchedulingRequested,
    NotificationSent,
    TrainingRequestReceived,
    TrainingRequestRouted,
    decode,
)
from schemas.topics import ALL_TOPICS
from scripts.demo import Inbox
from scripts.tokens import Tokens
from services.clock import FixedClock
from services.kafka import delete_topics_with_prefix, use_topic_prefix
from services.settings import KafkaSettings, MongoSettings
from services.timers import Timer, TimerStore
from services.tracing import export_to
from tests.conftest import KAFKA_BOOTSTRAP, KAFKA_CLIENT, MONGODB_URI, drop_database
from tests.processes import roster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SECRET = "tracing-phone-secret"
TRACE_ID = uuid.uuid4().hex
"""The trace the telephony platform started the call in (W3C: 32 hex digits)."""


@asynccontextmanager
async def four_services(tmp: Path, exporter: InMemorySpanExporter) -> AsyncIterator[dict[str, FastAPI]]:
    database = f"test_tracing_{uuid.uuid4().hex[:10]}"
    prefix = f"{database}."
    common: dict[str, Any] = {
        "kafka": KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP, topic_prefix=prefix),
        "mongo": MongoSettings(uri=SecretStr(MONGODB_URI), database=database),
        "log_format": "json",
    }
    inbox = Inbox()
    smtp_port, sms_port = inbox.start()
    try:
        with export_to(exporter):
            apps = {
                "intake": create_intake(
                    IntakeSettings(instance_id="intake-tracing", **common),
                    phone=PhoneWebhookSettings(secret=SecretStr(SECRET)),
                    email=EmailInboxSettings(enabled=False),
                ),
                "routing": create_routing(
                    RoutingSettings(
                        instance_id="routing-tracing",
                        workers_path=roster(tmp / "roster.yaml", per_team=1, capacity=5),
                        dispatch_interval=timedelta(milliseconds=200),
                        timer_poll_interval=timedelta(milliseconds=200),
                        **common,
                    )
                ),
                "notification": create_notification(
                    NotificationSettings(
                        instance_id="notification-tracing",
                        smtp_host="127.0.0.1",
                        smtp_port=smtp_port,
                        sms_url=f"http://127.0.0.1:{sms_port}/sms",
                        quiet_hours_start=dt_time(23, 59),  # equal: no quiet hours, whenever the test runs
                        quiet_hours_end=dt_time(23, 59),
                        sender_poll_interval=timedelta(milliseconds=200),
                        **common,
                    )
                ),
                "certification": create_certification(CertificationSettings(instance_id="certification-tracing", **common)),
            }
        async with AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield apps
    finally:
        inbox.stop()
        use_topic_prefix("")
        await delete_topics_with_prefix(common["kafka"], prefix)
        await asyncio.to_thread(drop_database, database)


def client(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers, timeout=30)


async def wait_for(condition: Callable[[], Awaitable[bool]], *, timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def records_of(prefix: str, request_id: str, *, until: Callable[[list[Any]], bool]) -> list[Any]:
    """The Kafka records (event and headers) of the request's conversation on every topic of the run."""
    consumer = AIOKafkaConsumer(
        *(prefix + t.name for t in ALL_TOPICS), **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest"
    )
    read: list[Any] = []

    def mine() -> list[Any]:
        calls = {e.id for e, _ in read if isinstance(e, TrainingRequestReceived) and e.request_id == request_id}
        return [(e, headers) for e, headers in read if e.correlation_id in calls]

    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not until(mine()) and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                read += [(decode(r.value, r.headers), dict(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return mine()


def services_in(spans: tuple[ReadableSpan, ...], trace_id: int) -> set[str]:
    return {str(s.resource.attributes["service.name"]) for s in spans if s.context is not None and s.context.trace_id == trace_id}


async def test_one_phone_call_is_one_trace_across_the_four_services(tmp_path: Path, tokens: Tokens) -> None:
    exporter = InMemorySpanExporter()
    trace_id = int(TRACE_ID, 16)
    async with four_services(tmp_path, exporter) as apps:
        prefix = apps["routing"].state.runtime.settings.kafka.topic_prefix
        body = json.dumps(
            {
                "call_id": f"CA-{time.time_ns()}",
                "event": "answered",
                "caller": "0476 12 34 56",
                "started_at": datetime.now(UTC).isoformat(),
                "language": "fr",
                "agent_notes": "Veut passer une certification Excel.",
                "ivr": {"qualification": "1", "computer": "1"},  # no diploma: the advisors call back
            }
        ).encode()
        timestamp = str(int(time.time()))
        async with client(apps["intake"]) as intake:
            call = await intake.post(
                "/webhooks/phone",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Signature-Timestamp": timestamp,
                    "X-Signature": generic_signature(SECRET, timestamp, body),
                    "traceparent": f"00-{TRACE_ID}-{uuid.uuid4().hex[:16]}-01",
                },
            )
        assert call.status_code == 202, call.text
        request_id = call.json()["request_id"]

        async with client(apps["routing"], **tokens.headers("adv-sup")) as desk:

            async def offered_to() -> str | None:
                view = await desk.get(f"/desk/requests/{request_id}")
                return view.json()["assignee_id"] if view.status_code == 200 and view.json()["status"] == "reserved" else None

            async def is_offered() -> bool:
                return await offered_to() is not None

            await wait_for(is_offered)
            worker = await offered_to()
            assert worker is not None
            as_worker = tokens.headers(worker)
            accepted = await desk.post(f"/desk/requests/{request_id}/accept", headers=as_worker)
            assert accepted.status_code == 200, accepted.text
            outcome = await desk.post(
                f"/desk/requests/{request_id}/outcome",
                json={"outcome": "exam_wanted", "certification_code": "MOS-EXCEL"},
                headers=as_worker,
            )
            assert outcome.status_code == 200, outcome.text

        # Certification's staff book the exam and record the pass, each from a request of their own.
        async with client(apps["certification"], **tokens.headers("cert-1")) as staff:

            async def waiting() -> bool:
                waitlist = (await staff.get("/waitlist", params={"certification": "MOS-EXCEL"})).json()
                return len(waitlist) == 1

            await wait_for(waiting)
            [candidate] = (await staff.get("/waitlist", params={"certification": "MOS-EXCEL"})).json()
            centre = {"state": "open", "name": "Centre d'examens d'Anderlecht", "address": "Anderlecht"}
            assert (await staff.put("/centres/ctr-trace", json=centre)).status_code == 200
            session = {
                "session_id": "ses-trace",
                "centre_id": "ctr-trace",
                "certifications": ["MOS-EXCEL"],
                "starts_at": (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0).isoformat(),
                "seats": 1,
            }
            added = await staff.post("/sessions", json=session)
            assert added.status_code == 201, added.text
            [offer] = added.json()["offers"]
            assert (await staff.post(f"/offers/{offer['offer_id']}/accept")).status_code == 200
            result = await staff.post(
                "/sessions/ses-trace/results", json={"person_id": candidate["person_id"], "passed": True, "score": 870}
            )
            assert result.status_code == 200, result.text

        def spans_of_all_four() -> bool:
            return services_in(exporter.get_finished_spans(), trace_id) >= {"intake", "routing", "notification", "certification"}

        async def traced_through() -> bool:
            return spans_of_all_four()

        await wait_for(traced_through)

        records = await records_of(
            prefix,
            request_id,
            until=lambda found: {CertificateIssued, NotificationSent} <= {type(e) for e, _ in found},
        )

    spans = exporter.get_finished_spans()
    mine = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    names = {(str(s.resource.attributes["service.name"]), s.name) for s in mine}
    print("trace:", sorted(names))
    assert services_in(spans, trace_id) >= {"intake", "routing", "notification", "certification"}
    # The hops that make it one trace: the outbox relays, the request's own span in routing's batch,
    # the desk's action continuing the stored trace, each consumer's processing.
    assert ("routing", "routing.route") in names
    assert ("routing", "desk.record_outcome") in names
    assert {service for service, name in names if name == "outbox.relay"} >= {"intake", "routing"}
    assert any(service == "certification" and name.endswith(" process") for service, name in names)
    assert {("certification", "certification.accept_offer"), ("certification", "certification.record_result")} <= names
    # Notification sends later, from its loop, and still in the request's trace.
    assert ("notification", "notification.deliver") in names
    # The desk's action is linked to the staff's HTTP request, which has a trace of its own.
    [record_outcome] = [s for s in mine if s.name == "desk.record_outcome"]
    assert any(link.context.trace_id != trace_id for link in record_outcome.links)
    # Every record about the request carries the trace, as the W3C header any consumer reads.
    kinds = {type(e) for e, _ in records}
    assert {
        TrainingRequestReceived,
        TrainingRequestRouted,
        ContactAttempted,
        ExamSchedulingRequested,
        ExamScheduled,
        CertificateIssued,
        NotificationSent,
    } <= kinds
    # Offers are made when staff add a session, for every waiting candidate at once: in staff's trace.
    offered = {e.id for e, _ in records if e.type.endswith("exam_seat.offered")}
    for event, headers in records:
        if event.id in offered or getattr(event, "about_event_id", None) in offered:
            continue
        traceparent = headers.get("traceparent", b"").decode()
        assert traceparent.split("-")[1] == TRACE_ID, f"{event.type} went out in trace {traceparent!r}"


async def test_a_timer_fires_in_the_trace_it_was_armed_in(mongo_client: Any, mongo_db: Any) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "routing"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    clock = FixedClock(datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    timers = TimerStore(mongo_client, mongo_db, clock=clock, owner="tracing", tracer=tracer)
    await timers.ensure_indexes()
    with tracer.start_as_current_span("request routed") as routed:
        await timers.schedule("callback_due", "req-1", clock.now() + timedelta(hours=2))
    seen: list[SpanContext] = []

    async def handler(timer: Timer, session: Any) -> None:
        seen.append(get_current_span().get_span_context())

    clock.advance(timedelta(hours=3))  # hours later, in no span at all
    assert await timers.run_once({"callback_due": handler}) == 1

    [fired] = [s for s in exporter.get_finished_spans() if s.name == "timer.callback_due"]
    assert fired.parent is not None and fired.parent.span_id == routed.get_span_context().span_id
    assert [c.trace_id for c in seen] == [routed.get_span_context().trace_id]
    provider.shutdown()
