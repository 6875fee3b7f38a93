"""Analytics on the real broker and mongod: a month of events (March 2026) on topics of their own,
replayed into read models (all of it, then a week), checked for personal data, for the live
consumer groups' offsets, and run end to end through `python -m analytics`."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from analytics import AnalyticsSettings, replay, run_report
from routing.decision import decide_route
from routing.sla import SlaPolicy, callback_deadline
from schemas import (
    CallbackSlaBreached,
    CampaignAttribution,
    Channel,
    Contact,
    ContactAttempted,
    ContactOutcome,
    EnrolmentConfirmed,
    Event,
    ExamRequestReason,
    ExamScheduled,
    ExamSchedulingRequested,
    Language,
    QualificationLevel,
    SealedPersonalData,
    TrainingRequestReceived,
    TrainingRequestRouted,
    codec,
)
from schemas.topics import CERTIFICATION_EXAMS, TRAINING_ENROLMENTS, TRAINING_REQUESTS, TRAINING_ROUTING
from services.calendar import BRUSSELS, BrusselsCalendar
from services.kafka import delete_topics_with_prefix, wire
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_BOOTSTRAP, KAFKA_CLIENT, MONGODB_URI

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOPICS = (TRAINING_REQUESTS, TRAINING_ROUTING, TRAINING_ENROLMENTS, CERTIFICATION_EXAMS)
MARCH = datetime(2026, 3, 1, tzinfo=BRUSSELS)
APRIL = datetime(2026, 4, 1, tzinfo=BRUSSELS)
CALENDAR = BrusselsCalendar()
PROMISE = SlaPolicy(mode="working_days")
# Whatever leaks, it matches one of these: every name, phone number, e-mail address, need and
# note of the month below is built to.
PERSONAL = re.compile(r"Testperson|\+32|0470 |@|voudrais|wil graag|rappeler|callback at", re.IGNORECASE)


@dataclass
class Month:
    prefix: str
    events: list[Event]
    databases: list[str] = field(default_factory=list)

    def settings(self, **mongo: Any) -> AnalyticsSettings:
        return AnalyticsSettings(
            kafka=KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP, topic_prefix=self.prefix),
            mongo=MongoSettings(uri=SecretStr(MONGODB_URI), **mongo),
        )

    def database(self, label: str) -> str:
        name = f"{self.prefix.rstrip('.')}_{label}"
        self.databases.append(name)
        return name


def a_month(seed: int = 20260301) -> list[Event]:
    """Requests over March 2026 by phone, e-mail and the web (with campaigns), their routing
    decisions, callbacks (some unanswered first), breaches, enrolments and a few exams."""
    rng = random.Random(seed)
    events: list[Event] = []
    working_days = [d for d in range(2, 32) if CALENDAR.is_working_day((MARCH + timedelta(days=d - 1)).date())]
    for n in range(400):
        day = rng.choice(working_days) if rng.random() < 0.85 else rng.randrange(1, 32)
        received = (
            MARCH + timedelta(days=day - 1, hours=rng.choice([7, 8, 9, 10, 11, 13, 14, 15, 16, 19]), minutes=rng.randrange(60))
        ).astimezone(BRUSSELS)
        kind = rng.random()
        channel = Channel.WEB if kind < 0.45 else Channel.EMAIL if kind < 0.7 else Channel.PHONE
        named = channel is not Channel.PHONE and rng.random() < 0.8
        rid = str(uuid.UUID(int=rng.getrandbits(128)))
        request = TrainingRequestReceived(
            source=f"/intake/{channel.value}",
            subject=rid,
            time=received,
            request_id=rid,
            person_id=f"prs_{n:04d}",
            channel=channel,
            received_at=received,
            contact=Contact(name=f"Amina Testperson{n}", phone=f"+3247{n:07d}", email=f"testperson{n}@example.org"),
            language=rng.choice([Language.FR, Language.FR, Language.NL, Language.EN]),
            need=f"Je voudrais suivre une formation, appelez le 0470 {n:06d}" if rng.random() < 0.5 else "Ik wil graag leren",
            requested_course=rng.choice(["EXCEL", "WORD", "PHOTOSHOP", "FR-BASE"]) if named else None,
            qualification_level=rng.choice([QualificationLevel.PRIMARY, QualificationLevel.UPPER_SECONDARY, None]),
            has_computer=False if rng.random() < 0.08 else None,
            campaign=CampaignAttribution(
                utm_source="facebook",
                utm_campaign=rng.choice(["confine-mais-connecte", "printemps-numerique"]),
                referrer=f"https://example.org/?mail=testperson{n}@example.org",
            )
            if channel is Channel.WEB and rng.random() < 0.6
            else None,
            consent_to_contact=True,
            channel_details={"agent_notes": f"Testperson{n} callback at +3247{n:07d}"} if channel is Channel.PHONE else {},
        )
        decision = decide_route(request)
        deadline = callback_deadline(received, PROMISE, CALENDAR, channel=channel)
        events += [
            request,
            TrainingRequestRouted.following(
                request,
                source="/routing",
                time=received + timedelta(seconds=2),
                request_id=rid,
                person_id=request.person_id,
                target=decision.target,
                rule_id=decision.rule_id,
                rule_set_version=decision.rule_set_version,
                explanation=decision.explanation,
                priority=decision.priority,
                priority_parts=dict(decision.priority_parts),
                callback_deadline=deadline,
            ),
        ]
        reached_at = None
        if rng.random() < 0.85:
            first = CALENDAR.add_working_time(received, timedelta(minutes=rng.randrange(10, 1500)))
            attempts = [ContactOutcome.NO_ANSWER] if rng.random() < 0.3 else []
            attempts.append(ContactOutcome.ENROLLED if request.requested_course else ContactOutcome.ADVICE_GIVEN)
            for number, outcome in enumerate(attempts, 1):
                at = first + timedelta(hours=3 * (number - 1))
                events.append(
                    ContactAttempted(
                        source="/routing",
                        time=at,
                        request_id=rid,
                        person_id=request.person_id,
                        worker_id="en-1",
                        outcome=outcome,
                        attempt=number,
                        notes=f"Testperson{n}: rappeler au +3247{n:07d}",
                    )
                )
                reached_at = at if outcome is not ContactOutcome.NO_ANSWER else None
            if request.requested_course and reached_at:
                events.append(
                    EnrolmentConfirmed(
                        source="/routing",
                        time=reached_at + timedelta(minutes=5),
                        request_id=rid,
                        person_id=request.person_id,
                        course_code=request.requested_course,
                        course_title="Cours",
                        language=request.language,
                        login_instructions=f"Identifiant testperson{n}@example.org",
                    )
                )
        if deadline is not None and (reached_at is None or reached_at > deadline):
            events.append(
                CallbackSlaBreached(
                    source="/routing",
                    time=deadline,
                    request_id=rid,
                    person_id=request.person_id,
                    deadline=deadline,
                    escalated_to="supervisor",
                )
            )
        if n % 40 == 0:
            asked = received + timedelta(days=1)
            events.append(
                ExamSchedulingRequested(
                    source="/routing",
                    time=asked,
                    request_id=rid,
                    person_id=request.person_id,
                    certification_code="MOS-EXCEL",
                    reason=ExamRequestReason.PATH_COMPLETED,
                )
            )
            if n % 80 == 0:
                events.append(
                    ExamScheduled(
                        source="/certification",
                        time=asked + timedelta(days=5),
                        person_id=request.person_id,
                        certification_code="MOS-EXCEL",
                        session_id="s1",
                        centre_id="c1",
                        centre_name="Anderlecht",
                        exam_at=APRIL + timedelta(days=10),
                    )
                )
    return sorted(events, key=lambda e: e.time)


async def publish(prefix: str, events: list[Event]) -> None:
    admin = AIOKafkaAdminClient(**KAFKA_CLIENT)
    await admin.start()
    try:
        # Kept forever: the records carry March's timestamps, which a week's retention would delete.
        await admin.create_topics(
            [NewTopic(prefix + t.name, t.partitions, 1, topic_configs={"retention.ms": "-1"}) for t in TOPICS]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True, linger_ms=10)
    await producer.start()
    try:
        for event in events:
            topic, key, value, headers = wire(event)
            await producer.send(
                prefix + topic,
                value,
                key=key,
                headers=[(k, v.encode()) for k, v in headers.items()],
                timestamp_ms=int(event.time.timestamp() * 1000),
            )
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
async def month() -> AsyncIterator[Month]:
    prefix = f"it_analytics_{uuid.uuid4().hex[:10]}."
    data = Month(prefix, a_month())
    await publish(prefix, data.events)
    yield data
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI)
    for name in data.databases:
        await client.drop_database(name)
    await client.close()
    await delete_topics_with_prefix(KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP), prefix)


async def everything(db: Any) -> list[dict[str, Any]]:
    return [doc for name in await db.list_collection_names() async for doc in db[name].find()]


async def test_a_replay_copies_every_event_and_no_personal_data(month: Month, mongo_client: Any) -> None:
    into = month.database("full")
    stats = await replay(month.settings(), [t.name for t in TOPICS], into=into)
    expected = Counter(type(e).__name__ for e in month.events)
    print(f"replayed {stats.records} events in {stats.seconds:.2f}s: {stats.events_per_second:,.0f} events/s")
    assert (stats.records, stats.written, stats.duplicates, stats.unreadable) == (len(month.events), len(month.events), 0, 0)
    assert dict(stats.by_event) == dict(expected)
    db = mongo_client[into]
    assert await db["events"].count_documents({}) == len(month.events)
    assert await db["events"].count_documents({"event": "TrainingRequestReceived", "channel": "web"}) == sum(
        1 for e in month.events if isinstance(e, TrainingRequestReceived) and e.channel is Channel.WEB
    )
    campaigns = await db["events"].distinct("campaign.utm_campaign")
    assert sorted(campaigns) == ["confine-mais-connecte", "printemps-numerique"]
    documents = await everything(db)
    leaks = [doc["_id"] for doc in documents if PERSONAL.search(json.dumps(doc, default=str))]
    assert leaks == [], f"{len(leaks)} documents hold personal data"
    replays = await db["replays"].find().to_list(None)
    assert len(replays) == 1 and replays[0]["records"] == len(month.events)


async def test_a_replay_can_be_run_again_into_the_same_read_model(month: Month, mongo_client: Any) -> None:
    into = month.database("again")
    topics = [TRAINING_REQUESTS.name, TRAINING_ROUTING.name]
    first = await replay(month.settings(), topics, into=into)
    second = await replay(month.settings(), topics, into=into)
    assert first.written == first.records > 0
    assert (second.written, second.duplicates) == (0, first.records)
    assert await mongo_client[into]["events"].count_documents({}) == first.records


async def test_a_time_window_replays_its_week_only(month: Month, mongo_client: Any) -> None:
    start, end = datetime(2026, 3, 9, tzinfo=BRUSSELS), datetime(2026, 3, 16, tzinfo=BRUSSELS)
    into = month.database("week")
    stats = await replay(month.settings(), [t.name for t in TOPICS], start, end, into)
    in_week = [e for e in month.events if start <= e.time < end]
    assert stats.written == len(in_week) > 0
    times = await mongo_client[into]["events"].distinct("time")
    assert min(times) >= start and max(times) < end


async def test_the_live_consumer_groups_are_untouched(month: Month) -> None:
    group = f"{month.prefix}routing"
    partitions = [TopicPartition(month.prefix + TRAINING_REQUESTS.name, p) for p in range(TRAINING_REQUESTS.partitions)]
    committed = {tp: OffsetAndMetadata(2 + tp.partition, "") for tp in partitions}
    service = AIOKafkaConsumer(**KAFKA_CLIENT, group_id=group, enable_auto_commit=False)
    await service.start()
    try:
        service.assign(partitions)
        await service.commit(committed)
    finally:
        await service.stop()
    admin = AIOKafkaAdminClient(**KAFKA_CLIENT)
    await admin.start()
    try:
        groups_before = {g[0] for g in await admin.list_consumer_groups()}
        before = await admin.list_consumer_group_offsets(group)
        await replay(month.settings(), [TRAINING_REQUESTS.name], into=month.database("bystander"))
        after = await admin.list_consumer_group_offsets(group)
        groups_after = {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    assert (
        {tp: o.offset for tp, o in after.items()}
        == {tp: o.offset for tp, o in before.items()}
        == {tp: o.offset for tp, o in committed.items()}
    )
    assert not {g for g in groups_after - groups_before if g.startswith(month.prefix) or "analytics" in g}


async def test_missing_topics_are_reported_not_created(month: Month) -> None:
    stats = await replay(month.settings(), ["notifications.v1", TRAINING_ENROLMENTS.name], into=month.database("missing"))
    assert stats.missing_topics == ("notifications.v1",)
    admin = AIOKafkaAdminClient(**KAFKA_CLIENT)
    await admin.start()
    try:
        assert month.prefix + "notifications.v1" not in await admin.list_topics()
    finally:
        await admin.close()


async def test_the_services_database_is_refused(month: Month) -> None:
    with pytest.raises(ValueError, match="services' database"):
        await replay(month.settings(database="formation"), [TRAINING_REQUESTS.name], into="formation")


async def test_run_report_for_the_demo(month: Month, tmp_path: Path) -> None:
    into = month.database("report")
    await replay(month.settings(), [t.name for t in TOPICS], into=into)
    report = await run_report(month.settings(), into, tmp_path)
    requests = sum(1 for e in month.events if isinstance(e, TrainingRequestReceived))
    by_channel = report.table("sla_by_channel")
    assert by_channel.row("all")["requests"] == requests
    # The month is complete (every missed deadline has its breach): the report reads late what routing recorded.
    channel_of = {e.request_id: e.channel.value for e in month.events if isinstance(e, TrainingRequestReceived)}
    recorded = Counter(channel_of[e.request_id] for e in month.events if isinstance(e, CallbackSlaBreached))
    for channel in ("phone", "email", "web"):
        row = by_channel.row(channel)
        assert row["late"] == row["breached_recorded"] == recorded[channel], channel
        assert row["met"] + row["late"] + row["pending"] == row["with_promise"], channel
    assert by_channel.row("web")["with_promise"] == by_channel.row("email")["with_promise"] == 0  # phone only, as shipped
    assert report.table("exam_waitlist").rows  # there are exam events this month
    assert {p.name for p in report.files} >= {"sla_trend.png", "volume_trend.png", "sla_by_week.csv"}
    assert all(p.stat().st_size > 0 for p in report.files)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP, "MONGODB_URI": MONGODB_URI, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "analytics", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


async def test_the_command_line_end_to_end(month: Month, tmp_path: Path, mongo_client: Any) -> None:
    into = month.database("cli")
    replayed = cli(
        "replay",
        "--topics",
        ",".join(t.name for t in TOPICS),
        "--prefix",
        month.prefix,
        "--into",
        into,
        "--from",
        "2026-03-01T00:00:00+01:00",
    )
    assert f"Replayed into {into}" in replayed.stdout
    assert await mongo_client[into]["events"].count_documents({}) == len(month.events)

    outcome = tmp_path / "what-if.json"
    # A loaded month: at 8 hours a contact, a person of espaces numériques makes one a day.
    cli(
        "what-if",
        "--team-size",
        "espaces_numeriques=8",
        "--prefix",
        month.prefix,
        "--from",
        "2026-03-01",
        "--to",
        "2026-04-01",
        "--handling-minutes",
        "480",
        "--json",
        str(outcome),
    )
    compared = json.loads(outcome.read_text())
    requests = sum(1 for e in month.events if isinstance(e, TrainingRequestReceived))
    assert compared["requests"] == requests and compared["changed_target"] == 0
    assert compared["current"]["team_sizes"]["espaces_numeriques"] == 6
    assert compared["alternative"]["team_sizes"]["espaces_numeriques"] == 8
    for mode in ("calendar", "working_days"):
        before, after = compared["current"]["sla"][mode], compared["alternative"]["sla"][mode]
        print(
            f"{mode}: 6 people {before['compliance']:.1%} ({before['breached']} breached), "
            f"8 people {after['compliance']:.1%} ({after['breached']} breached)"
        )
        assert after["breached"] < before["breached"]

    csv_dir, charts_dir = tmp_path / "csv", tmp_path / "charts"
    reported = cli("report", "--db", into, "--csv", str(csv_dir), "--charts", str(charts_dir))
    assert "Callback promises kept, by channel" in reported.stdout
    assert {p.name for p in charts_dir.iterdir()} == {"sla_trend.png", "volume_trend.png"}
    assert {"sla_by_channel.csv", "requests_by_campaign.csv", "exam_waitlist.csv"} <= {p.name for p in csv_dir.iterdir()}
    assert all(p.stat().st_size > 0 for p in [*csv_dir.iterdir(), *charts_dir.iterdir()])
    assert "confine-mais-connecte" in (csv_dir / "requests_by_campaign.csv").read_text()


SEALED_CIPHERTEXT = base64.b64encode(b"Testperson sealed: +32470 999 999, sealed@example.org").decode()


@pytest.fixture(scope="module")
async def odd() -> AsyncIterator[Month]:
    """Some of the month's events, a request whose personal fields intake sealed, and two records
    that are not events of the contract (an unknown type, and not JSON) among them."""
    prefix = f"it_analytics_odd_{uuid.uuid4().hex[:10]}."
    sealed = a_month(seed=7)[0]
    assert isinstance(sealed, TrainingRequestReceived)
    sealed = sealed.model_copy(
        update={
            "contact": Contact(),
            "need": "",
            "sealed": SealedPersonalData(
                key_id=sealed.person_id, nonce="bm9uY2U=", ciphertext=SEALED_CIPHERTEXT, fields=("contact", "need")
            ),
        }
    )
    data = Month(prefix, [*a_month(seed=11)[:150], sealed])
    await publish(prefix, data.events)
    body = json.loads(codec.encode(sealed))
    body["type"], body["id"] = "be.bruxellesformation.unheard.of", str(uuid.uuid4())
    producer = AIOKafkaProducer(**KAFKA_CLIENT)
    await producer.start()
    try:
        headers = [("content-type", codec.CONTENT_TYPE.encode())]
        for value in (json.dumps(body).encode(), b"{not json"):
            await producer.send_and_wait(prefix + TRAINING_REQUESTS.name, value, key=b"odd", headers=headers)
    finally:
        await producer.stop()
    yield data
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI)
    for name in data.databases:
        await client.drop_database(name)
    await client.close()
    await delete_topics_with_prefix(KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP), prefix)


async def test_records_that_are_not_events_are_skipped_and_counted(odd: Month, mongo_client: Any) -> None:
    into = odd.database("skipped")
    stats = await replay(odd.settings(), [t.name for t in TOPICS], into=into)
    assert (stats.records, stats.unreadable, stats.written) == (len(odd.events) + 2, 2, len(odd.events))
    assert await mongo_client[into]["events"].count_documents({}) == len(odd.events)
    assert await mongo_client[into]["events"].count_documents({"event": {"$nin": list(stats.by_event)}}) == 0


async def test_sealed_personal_data_never_reaches_the_read_model(odd: Month, mongo_client: Any) -> None:
    into = odd.database("sealed")
    await replay(odd.settings(), [TRAINING_REQUESTS.name], into=into)
    sealed = next(e for e in odd.events if isinstance(e, TrainingRequestReceived) and e.sealed is not None)
    document = await mongo_client[into]["events"].find_one({"_id": str(sealed.id)})
    assert document is not None and document["request_id"] == sealed.request_id and "sealed" not in document
    documents = await everything(mongo_client[into])
    assert not [doc["_id"] for doc in documents if SEALED_CIPHERTEXT in json.dumps(doc, default=str)]


async def test_replaying_twice_gives_the_same_read_model_as_once(odd: Month, mongo_client: Any) -> None:
    once, twice = odd.database("once"), odd.database("twice")
    topics = [t.name for t in TOPICS]
    await replay(odd.settings(), topics, into=once)
    await replay(odd.settings(), topics, into=twice)
    again = await replay(odd.settings(), topics, into=twice)
    assert (again.written, again.duplicates) == (0, len(odd.events))

    async def read_model(name: str) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = await mongo_client[name]["events"].find().sort("_id", 1).to_list(None)
        return documents

    assert await read_model(twice) == await read_model(once)
