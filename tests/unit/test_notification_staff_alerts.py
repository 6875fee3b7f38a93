"""Staff alerts with in-memory fakes of the ports: a callback due e-mails the worker holding the
request, a breach the team's supervisor and the worker; an unknown worker is recorded as skipped;
an event seen twice sends one e-mail; transient failures are retried, permanent ones recorded;
the templates render in every language with ids and times only."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notification import handlers as notification_handlers
from notification.messages import LANGUAGES, MessageRenderer, format_datetime
from notification.model import DeliveryStatus
from notification.ports import SendResult
from notification.retry import RetryPolicy
from notification.staff import (
    DEFAULT_DIRECTORY_PATH,
    AlertRole,
    StaffDirectory,
    StaffMember,
    alert_id,
    load_staff_directory,
    staff_alerts_for,
)
from notification.staff_alerts import UNKNOWN_WORKER, StaffAlerts
from schemas import CallbackDue, CallbackSlaBreached, Event, PartnerInformationOverdue, Target, TrainingRequestRouted
from schemas.topics import TRAINING_ROUTING
from services.clock import FixedClock
from tests.factories import make_request
from tests.fakes import InMemoryStaffAlertStore, OnceInMemory
from tests.unit.test_kafka_handlers import RecordingNotifications, callback_due, in_memory, publish, routed
from tests.unit.test_notification_ports import FakeMailSender

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
DEADLINE = START + timedelta(hours=2)
CONSOLE = "https://routing.example.org/console"
PERSON = "prs_7f3a9c2e41d8"
DIRECTORY = StaffDirectory.of(
    StaffMember("adv-1", "adv-1@example.org", "nl"),
    StaffMember("adv-sup", "adv-sup@example.org", "fr"),
    StaffMember("en-1", "en-1@example.org", "en"),
)


def due(assignee: str | None = "adv-1") -> CallbackDue:
    return CallbackDue(source="/tests", request_id=str(uuid.uuid4()), person_id=PERSON, assignee_id=assignee, deadline=DEADLINE)


def breached(escalated_to: str | None = "adv-sup", assignee: str | None = "adv-1") -> CallbackSlaBreached:
    return CallbackSlaBreached(
        source="/tests",
        request_id=str(uuid.uuid4()),
        person_id=PERSON,
        assignee_id=assignee,
        deadline=DEADLINE,
        escalated_to=escalated_to,
    )


def partner_overdue(assignee: str | None = "en-1") -> PartnerInformationOverdue:
    return PartnerInformationOverdue(
        source="/tests",
        request_id=str(uuid.uuid4()),
        person_id=PERSON,
        partner="cite-des-metiers",
        assignee_id=assignee,
        asked_at=DEADLINE - timedelta(days=3),
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_question_the_partner_left_unanswered_reminds_the_worker_holding_the_request(language: str) -> None:
    event = partner_overdue()
    [planned] = staff_alerts_for(event, DIRECTORY, console_url=CONSOLE)
    assert (planned.recipient_id, planned.role, planned.known) == ("en-1", AlertRole.ASSIGNEE, True)
    message = MessageRenderer().render(planned.template, language, planned.facts)
    for part in (message.subject, message.text, message.html):
        assert event.request_id[:8] in part and "cite-des-metiers" in part and PERSON not in part
    assert format_datetime(event.asked_at, language) in message.text, "when it was asked, in Brussels time"
    assert staff_alerts_for(partner_overdue(assignee=None), DIRECTORY, console_url=CONSOLE) == []


async def test_an_unanswered_partner_question_is_e_mailed_to_the_worker_once() -> None:
    s = Setup()
    event = partner_overdue()
    await s.alerts.alert(event)
    await s.alerts.alert(event)
    await s.alerts.send_due()
    assert len(s.mail.sent) == 1


class Setup:
    def __init__(self, mail: FakeMailSender | None = None, directory: StaffDirectory = DIRECTORY) -> None:
        self.clock = FixedClock(START)
        self.store = InMemoryStaffAlertStore()
        self.once = OnceInMemory()
        self.mail = mail or FakeMailSender()
        self.alerts = StaffAlerts(
            processed=self.once,
            store=self.store,
            directory=directory,
            renderer=MessageRenderer(),
            mail=self.mail,
            clock=self.clock,
            retry=RetryPolicy(max_attempts=3, jitter=0),
            console_url=CONSOLE,
            owner="test",
            rng=random.Random(1),
        )


async def test_a_callback_due_emails_the_assignee_once() -> None:
    s = Setup()
    event = due()
    await s.alerts.alert(event)
    assert await s.alerts.send_due() == 1
    [email] = s.mail.sent
    assert email.to_address == "adv-1@example.org" and email.language == "nl"
    assert event.request_id[:8] in email.subject and f"{CONSOLE}/nl/" in email.text
    doc = await s.store.get(alert_id(event.id, "adv-1"))
    assert doc is not None and doc["status"] == DeliveryStatus.SENT.value and doc["role"] == "assignee"


async def test_a_callback_due_nobody_holds_tells_nobody() -> None:
    s = Setup()
    assert await s.alerts.alert(due(assignee=None)) is None
    assert s.store.docs == {} and await s.alerts.send_due() == 0


async def test_a_breach_emails_the_supervisor_and_the_assignee() -> None:
    s = Setup()
    event = breached()
    await s.alerts.alert(event)
    assert await s.alerts.send_due() == 2
    assert sorted(e.to_address for e in s.mail.sent) == ["adv-1@example.org", "adv-sup@example.org"]
    supervisor = next(e for e in s.mail.sent if e.to_address == "adv-sup@example.org")
    assert f"{CONSOLE}/fr/team" in supervisor.text and "adv-1" in supervisor.text
    roles = {d["recipient_id"]: d["role"] for d in s.store.docs.values()}
    assert roles == {"adv-sup": AlertRole.SUPERVISOR.value, "adv-1": AlertRole.ASSIGNEE.value}


async def test_a_breach_nobody_held_says_so_to_the_supervisor() -> None:
    s = Setup()
    await s.alerts.alert(breached(assignee=None))
    await s.alerts.send_due()
    [email] = s.mail.sent
    assert email.to_address == "adv-sup@example.org" and "personne" in email.text


async def test_an_unknown_supervisor_is_recorded_as_skipped_and_nothing_is_sent() -> None:
    s = Setup()
    event = breached(escalated_to="digital_divide:supervisor", assignee=None)
    outcome = await s.alerts.alert(event)
    assert outcome is not None and outcome.applied
    assert await s.alerts.send_due() == 0
    assert s.mail.calls == 0
    doc = await s.store.get(alert_id(event.id, "digital_divide:supervisor"))
    assert doc is not None and doc["status"] == DeliveryStatus.SKIPPED.value and doc["reason"] == UNKNOWN_WORKER


async def test_the_same_event_twice_sends_one_email() -> None:
    s = Setup()
    event = due()
    first, second = await s.alerts.alert(event), await s.alerts.alert(event)
    assert first is not None and first.applied and second is not None and not second.applied
    await s.alerts.send_due()
    await s.alerts.send_due()
    assert len(s.mail.sent) == 1


async def test_a_transient_failure_is_retried_and_a_permanent_one_recorded() -> None:
    s = Setup(FakeMailSender([SendResult.transient("SMTP 451"), SendResult.sent()]))
    event = due()
    await s.alerts.alert(event)
    await s.alerts.send_due()
    doc = await s.store.get(alert_id(event.id, "adv-1"))
    assert doc is not None and doc["status"] == DeliveryStatus.QUEUED.value and doc["attempts"] == 1
    assert await s.alerts.send_due() == 0, "not due before the back-off"
    s.clock.advance(timedelta(minutes=1))
    await s.alerts.send_due()
    assert doc["status"] == DeliveryStatus.SENT.value and len(s.mail.sent) == 1

    p = Setup(FakeMailSender([SendResult.permanent("SMTP 550", bounced=True)]))
    other = due()
    await p.alerts.alert(other)
    await p.alerts.send_due()
    doc = await p.store.get(alert_id(other.id, "adv-1"))
    assert doc is not None and doc["status"] == DeliveryStatus.BOUNCED.value and doc["reason"] == "bounced"
    p.clock.advance(timedelta(hours=1))
    assert await p.alerts.send_due() == 0


async def test_other_events_tell_staff_nothing() -> None:
    s = Setup()
    routed = TrainingRequestRouted(
        source="/tests",
        request_id=str(uuid.uuid4()),
        person_id=PERSON,
        target=Target.ADVISORS,
        rule_id="r",
        rule_set_version="v1",
        explanation="x",
        priority=50,
    )
    assert await s.alerts.alert(routed) is None and s.store.docs == {}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event", [due(), breached(), breached(assignee=None)], ids=["due", "breach", "breach-unheld"])
def test_staff_templates_render_in_every_language_with_ids_and_times_only(
    event: CallbackDue | CallbackSlaBreached, language: str
) -> None:
    renderer = MessageRenderer()
    for planned in staff_alerts_for(event, DIRECTORY, console_url=CONSOLE):
        message = renderer.render(planned.template, language, planned.facts)
        assert message.language == language and message.template == f"{planned.template}.{language}"
        assert message.subject and "\n" not in message.subject
        for part in (message.subject, message.text, message.html):
            assert event.request_id[:8] in part
            assert PERSON not in part, "no job seeker's id, let alone their data"
        assert event.request_id in message.text and event.request_id in message.html
        assert format_datetime(DEADLINE, language) in message.text, "the deadline, in Brussels time"


def test_the_shipped_roster_gives_every_worker_a_work_email() -> None:
    directory = load_staff_directory(DEFAULT_DIRECTORY_PATH)
    member = directory.get("adv-sup")
    assert member == StaffMember("adv-sup", "adv-sup@example.org", "fr")
    assert len(directory) >= 13


def test_a_roster_without_emails_gives_an_empty_directory(tmp_path: Path) -> None:
    roster = tmp_path / "workers.yaml"
    roster.write_text(
        "defaults: {languages: [nl]}\nworkers:\n  - {worker_id: w-1}\n  - {worker_id: w-2, email: w-2@example.org}\n"
    )
    directory = load_staff_directory(roster)
    assert directory.get("w-1") is None
    assert directory.get("w-2") == StaffMember("w-2", "w-2@example.org", "nl")


def test_a_supervisor_added_to_the_roster_while_running_is_written_to_through_the_address_pattern(tmp_path: Path) -> None:
    # The roster staff change through routing's configuration API carries no addresses: a new
    # supervisor is reached at the organisation's scheme, the file's people at their own address.
    roster = tmp_path / "workers.yaml"
    roster.write_text("workers:\n  - {worker_id: w-2, email: w.two@example.net, languages: [nl]}\n")
    directory = load_staff_directory(roster, address_pattern="{worker_id}@bf.example")

    assert directory.get("new-sup") == StaffMember("new-sup", "new-sup@bf.example", "fr")
    assert directory.get("w-2") == StaffMember("w-2", "w.two@example.net", "nl")
    assert directory.get("advisors:supervisor") is None, "a team named as escalation is nobody to write to"
    assert load_staff_directory(roster).get("new-sup") is None, "without a pattern: skipped, as before"

    planned = staff_alerts_for(breached(escalated_to="new-sup", assignee=None), directory, console_url=CONSOLE)
    assert [(p.recipient_id, p.known) for p in planned] == [("new-sup", True)]
    with pytest.raises(ValueError, match="worker_id"):
        load_staff_directory(roster, address_pattern="alerts@bf.example")


class RecordingStaff:
    def __init__(self) -> None:
        self.alerted: list[Event] = []

    async def alert(self, event: Event, /) -> None:
        self.alerted.append(event)


async def test_the_handler_alerts_staff_of_callbacks_due_breaches_and_unanswered_partners_only() -> None:
    notifications, staff = RecordingNotifications(), RecordingStaff()
    request = make_request()
    routed_event, callback, breach, unanswered = routed(request), callback_due(request), breached(), partner_overdue()
    async with in_memory("notification", lambda broker: notification_handlers.include(broker, notifications, staff)) as (
        broker,
        _,
    ):
        await publish(broker, TRAINING_ROUTING, routed_event)
        await publish(broker, TRAINING_ROUTING, callback)
        await publish(broker, TRAINING_ROUTING, breach)
        await publish(broker, TRAINING_ROUTING, unanswered)
    assert staff.alerted == [callback, breach, unanswered]
    assert [event for _, event in notifications.calls] == [routed_event, callback, breach], "the person's use case still decides"
