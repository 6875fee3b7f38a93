"""One phone call followed to its certificate by correlation id, with routing, certification and
notification as processes on the real broker and mongod: every event about the person - routed, the
call at the desk, the exam request, the exam, the certificate, the notifications - carries the id of
the call's `TrainingRequestReceived`, and each one's causation is an earlier event of the chain. Every
record of the run, raw, matches the AsyncAPI document of the service that sends to its topic."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from schemas import (
    CertificateIssued,
    Channel,
    ContactAttempted,
    ContactOutcome,
    Event,
    ExamScheduled,
    ExamSchedulingRequested,
    NotificationSent,
    QualificationLevel,
    TrainingRequestRouted,
    decode,
)
from schemas.topics import (
    ALL_TOPICS,
    CERTIFICATION_EXAMS,
    NOTIFICATIONS,
    TRAINING_ENROLMENTS,
    TRAINING_REQUESTS,
    TRAINING_ROUTING,
)
from scripts.demo import Inbox
from scripts.tokens import Tokens
from services.consumers import service_topics
from services.retries import DEFAULT_RETRY_DELAYS
from tests.asyncapi_checks import Record, publisher_errors
from tests.conftest import KAFKA_CLIENT
from tests.factories import make_request
from tests.processes import Run, produce, roster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def read_all(
    run: Run, *, until: Callable[[list[Event]], bool], timeout: float = 120, records: list[Record] | None = None
) -> list[Event]:
    """Every event on the run's topics, in the order read, once `until` holds (or the time is up);
    each record, raw, kept in `records` with those of the services' retry levels and dead letters."""
    own = [t.name for service in CONSUMING_SERVICES for t in service_topics(service, len(DEFAULT_RETRY_DELAYS))]
    consumer = AIOKafkaConsumer(
        *(run.topic(name) for name in (*(t.name for t in ALL_TOPICS), *own)),
        **KAFKA_CLIENT,
        group_id=None,
        auto_offset_reset="earliest",
    )
    declared = {run.topic(t.name) for t in ALL_TOPICS}
    events: list[Event] = []
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(events) and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                for r in batch:
                    if records is not None:
                        records.append(Record.read(r.topic, r.key, r.value, r.headers, prefix=run.topic("")))
                    if r.topic in declared:
                        events.append(decode(r.value, r.headers))
    finally:
        await consumer.stop()
    return events


CONSUMING_SERVICES = ("routing", "certification", "notification")


def notified_about(events: list[Event], about: Event | None) -> bool:
    return about is not None and any(isinstance(e, NotificationSent) and e.about_event_id == about.id for e in events)


def first(events: list[Event], cls: type[Any]) -> Any:
    return next((e for e in events if isinstance(e, cls)), None)


async def test_one_phone_call_is_followed_to_its_certificate_by_correlation_id(
    run: Run, mongo_client: Any, tokens: Tokens
) -> None:
    inbox = Inbox()
    smtp_port, sms_port = inbox.start()
    try:
        run.env |= {
            "ROUTING_WORKERS_PATH": str(roster(run.tmp / "roster.yaml", per_team=1, capacity=5)),
            "NOTIFICATION_SMTP_PORT": str(smtp_port),
            "NOTIFICATION_SMS_URL": f"http://127.0.0.1:{sms_port}/sms",
            "NOTIFICATION_QUIET_HOURS_START": "23:59",  # equal: no quiet hours, whenever the test runs
            "NOTIFICATION_QUIET_HOURS_END": "23:59",
            "NOTIFICATION_SENDER_POLL_INTERVAL": "PT0.2S",
        }
        routing = run.start("routing", 18801)
        certification = run.start("certification", 18802)
        run.start("notification", 18803)
        # A caller without a secondary-school certificate, received now: the services run on the real clock.
        call = make_request(channel=Channel.PHONE, qualification_level=QualificationLevel.NONE, received_at=datetime.now(UTC))
        await produce(run.topic("training.requests.v1"), [call])

        supervisor = tokens.headers("adv-sup")
        async with httpx.AsyncClient(base_url=routing.url, timeout=10) as desk:

            async def offered_to() -> str | None:
                view = await desk.get(f"/desk/requests/{call.request_id}", headers=supervisor)
                return view.json()["assignee_id"] if view.status_code == 200 and view.json()["status"] == "reserved" else None

            async def is_offered() -> bool:
                return await offered_to() is not None

            await wait_for(is_offered)
            worker = await offered_to()
            assert worker is not None
            as_worker = tokens.headers(worker)  # the worker is whoever signs in, never a body field
            assert (await desk.post(f"/desk/requests/{call.request_id}/accept", headers=as_worker)).status_code == 200
            outcome = await desk.post(
                f"/desk/requests/{call.request_id}/outcome",
                json={"outcome": "exam_wanted", "certification_code": "MOS-EXCEL"},
                headers=as_worker,
            )
            assert outcome.status_code == 200, outcome.text

        async with httpx.AsyncClient(base_url=certification.url, timeout=10, headers=tokens.headers("cert-1")) as staff:

            async def waiting() -> bool:
                waitlist = (await staff.get("/waitlist", params={"certification": "MOS-EXCEL"})).json()
                return [c["person_id"] for c in waitlist] == [call.person_id]

            await wait_for(waiting)
            centre = {"state": "open", "name": "Centre d'examens d'Anderlecht", "address": "Anderlecht"}
            assert (await staff.put("/centres/ctr-chain", json=centre)).status_code == 200
            exam_at = (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0)
            session = {
                "session_id": "ses-chain",
                "centre_id": "ctr-chain",
                "certifications": ["MOS-EXCEL"],
                "starts_at": exam_at.isoformat(),
                "seats": 1,
            }
            added = await staff.post("/sessions", json=session)
            assert added.status_code == 201, added.text
            [offer] = added.json()["offers"]
            assert (await staff.post(f"/offers/{offer['offer_id']}/accept")).status_code == 200
            result = await staff.post(
                "/sessions/ses-chain/results", json={"person_id": call.person_id, "passed": True, "score": 870}
            )
            assert result.status_code == 200, result.text

        def journey_told(events: list[Event]) -> bool:
            return all(
                notified_about(events, first(events, cls)) for cls in (TrainingRequestRouted, ExamScheduled, CertificateIssued)
            )

        records: list[Record] = []
        events = await read_all(run, until=journey_told, records=records)
    finally:
        inbox.stop()

    mine = [e for e in events if getattr(e, "person_id", None) == call.person_id]
    print("chain:", [(e.type.removeprefix("be.bruxellesformation."), str(e.id)[:8], str(e.causation_id)[:8]) for e in mine])
    assert journey_told(mine)
    # Every event about the person's request, whatever service wrote it, is in the call's conversation...
    assert {e.correlation_id for e in mine} == {call.id}
    # ...and each was caused by an event of that conversation written before it.
    seen: dict[Any, Event] = {}
    for event in sorted(mine, key=lambda e: e.time):
        if event.id != call.id:
            assert event.causation_id in seen, f"{event.type} caused by {event.causation_id}, not an earlier event of the chain"
        seen[event.id] = event
    # Hop by hop.
    routed, attempt = first(mine, TrainingRequestRouted), first(mine, ContactAttempted)
    exam_request, scheduled, issued = (
        first(mine, ExamSchedulingRequested),
        first(mine, ExamScheduled),
        first(mine, CertificateIssued),
    )
    assert routed.causation_id == call.id
    assert (attempt.causation_id, attempt.outcome) == (routed.id, ContactOutcome.EXAM_WANTED)
    assert exam_request.causation_id == attempt.id
    assert scheduled.causation_id == exam_request.id
    assert issued.causation_id == scheduled.id
    for sent in (e for e in mine if isinstance(e, NotificationSent)):
        assert sent.causation_id == sent.about_event_id
    assert inbox.mails or inbox.sms

    # Every record of the run, as it was on Kafka, is what the sending service's AsyncAPI document says.
    mismatches = {f"{r.topic} {r.headers.get('ce_type')}": errors for r in records if (errors := publisher_errors(r))}
    print("records checked against the AsyncAPI documents:", dict(Counter(r.topic for r in records)))
    assert mismatches == {}
    assert {r.topic for r in records} >= {
        t.name for t in (TRAINING_REQUESTS, TRAINING_ROUTING, TRAINING_ENROLMENTS, CERTIFICATION_EXAMS, NOTIFICATIONS)
    }
