"""Staff alerts on the real broker, mongod and an SMTP sink: a breach redelivered e-mails the
team's supervisor and the worker once each, a callback due warns its assignee, and a team with
no named supervisor leaves a skipped alert and sends nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from notification.staff_alerts import STAFF_ALERTS, STAFF_CONSUMER, UNKNOWN_WORKER
from schemas import CallbackDue, CallbackSlaBreached
from tests.integration.test_notification_adapters import SmsProvider, SmtpSink, provider, sink
from tests.integration.test_notification_service import DAYTIME, running, wait_until

pytestmark = pytest.mark.integration

__all__ = ["provider", "sink"]  # fixtures shared with the adapters' tests

PERSON = "prs_7f3a9c2e41d8"
DEADLINE = DAYTIME + timedelta(hours=1)


def breach(escalated_to: str, assignee: str | None) -> CallbackSlaBreached:
    return CallbackSlaBreached(
        source="/routing",
        request_id=str(uuid.uuid4()),
        person_id=PERSON,
        assignee_id=assignee,
        deadline=DEADLINE,
        escalated_to=escalated_to,
    )


async def test_breaches_and_callbacks_due_email_staff_once(sink: SmtpSink, provider: SmsProvider) -> None:
    async with running(sink, provider) as service:
        alerts = service.db[STAFF_ALERTS]
        broken = breach("adv-sup", "adv-1")
        orphan = breach("digital_divide:supervisor", None)
        due = CallbackDue(
            source="/routing", request_id=str(uuid.uuid4()), person_id=PERSON, assignee_id="adv-2", deadline=DEADLINE
        )
        await service.publish(broken, broken, due, orphan, broken)  # Kafka redelivering

        async def settled() -> bool:
            statuses = [d["status"] async for d in alerts.find({})]
            return len(statuses) == 4 and all(s in ("sent", "skipped") for s in statuses)

        await wait_until(settled, what="four staff alerts sent or skipped")
        await asyncio.sleep(0.5)  # a second e-mail would be right behind

        to = sorted(m["To"].addresses[0].addr_spec for m in sink.messages)
        assert to == ["adv-1@example.org", "adv-2@example.org", "adv-sup@example.org"]
        supervisor = next(m for m in sink.messages if m["To"].addresses[0].addr_spec == "adv-sup@example.org")
        assert broken.request_id[:8] in str(supervisor["Subject"])
        assert supervisor["Message-ID"] == f"<{broken.id}.adv-sup@notification.bruxellesformation.brussels>"
        body = supervisor.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "/console/fr/team" in text and "adv-1" in text and PERSON not in text

        skipped: dict[str, Any] | None = await alerts.find_one({"_id": f"{orphan.id}:digital_divide:supervisor"})
        assert skipped is not None and skipped["status"] == "skipped" and skipped["reason"] == UNKNOWN_WORKER
        assert skipped["attempts"] == 0
        processed = service.db["processed_events"]
        assert await processed.count_documents({"consumer": STAFF_CONSUMER}) == 3
