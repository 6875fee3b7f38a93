"""A year of Brussels volume for the `year` figure: requests with their downstream events, put on
the bench's own topics as fast as the broker takes them.

`a_year` is the month of tests/integration/test_analytics_replay.py stretched to a year: requests by
phone, e-mail and the web (some with campaigns) on working days in office hours, each routed by
the shipped rules, most called back (a third of them at the second attempt), enrolments for those
who asked for a course, breaches where the callback came too late, and an exam request (sometimes
scheduled) now and then. The same year for a seed (event ids aside), so two runs replay alike.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from routing.decision import decide_route
from routing.rules import load_rules
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
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from schemas.topics import CERTIFICATION_EXAMS, TRAINING_ENROLMENTS, TRAINING_REQUESTS, TRAINING_ROUTING, TopicSpec
from services.calendar import BRUSSELS, BrusselsCalendar
from services.kafka import admin_client_kwargs, wire
from services.settings import KafkaSettings

__all__ = ["YEAR_TOPICS", "a_year", "create_year_topics", "publish_fast"]

YEAR_TOPICS: tuple[TopicSpec, ...] = (TRAINING_REQUESTS, TRAINING_ROUTING, TRAINING_ENROLMENTS, CERTIFICATION_EXAMS)
"""The topics a year's events go to."""

_CALENDAR = BrusselsCalendar()
_PROMISE = SlaPolicy(mode="working_days")
_HOURS = (7, 8, 9, 10, 11, 13, 14, 15, 16, 19)
_COURSES = ("EXCEL", "WORD", "PHOTOSHOP", "FR-BASE")


def a_year(requests: int = 100_000, *, year: int = 2025, seed: int = 2025) -> Iterator[Event]:
    """`requests` requests received over `year` (Brussels time) and what followed each, request by
    request (a request's events in the order they happened; requests in no particular order)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    rules = load_rules()  # once: `decide_route` would load the shipped rules for every request
    first_day = date(year, 1, 1)
    days = [first_day + timedelta(days=d) for d in range((date(year + 1, 1, 1) - first_day).days)]
    working_days = [d for d in days if _CALENDAR.is_working_day(d)]
    for n in range(requests):
        day = rng.choice(working_days) if rng.random() < 0.85 else rng.choice(days)
        received = datetime(day.year, day.month, day.day, rng.choice(_HOURS), rng.randrange(60), tzinfo=BRUSSELS)
        yield from _one_request(n, received, rng, rules)


def _one_request(n: int, received: datetime, rng: random.Random, rules: Any) -> Iterator[Event]:
    kind = rng.random()
    channel = Channel.WEB if kind < 0.45 else Channel.EMAIL if kind < 0.7 else Channel.PHONE
    named = channel is not Channel.PHONE and rng.random() < 0.8
    request_id = str(uuid.UUID(int=rng.getrandbits(128)))
    person_id = f"prs_{n:06d}"
    request = TrainingRequestReceived(
        source=f"/intake/{channel.value}",
        subject=request_id,
        time=received,
        request_id=request_id,
        person_id=person_id,
        channel=channel,
        received_at=received,
        contact=Contact(name=f"Year Person{n}", phone=f"+3247{n:07d}", email=f"person{n}@example.org"),
        language=rng.choice([Language.FR, Language.FR, Language.NL, Language.EN]),
        need="Je voudrais suivre une formation." if rng.random() < 0.5 else "Ik wil graag leren",
        requested_course=rng.choice(_COURSES) if named else None,
        qualification_level=rng.choice([QualificationLevel.PRIMARY, QualificationLevel.UPPER_SECONDARY, None]),
        has_computer=False if rng.random() < 0.08 else None,
        campaign=CampaignAttribution(utm_source="facebook", utm_campaign=rng.choice(["confine-mais-connecte", "printemps"]))
        if channel is Channel.WEB and rng.random() < 0.6
        else None,
        consent_to_contact=True,
    )
    decision = decide_route(request, rules=rules)
    deadline = callback_deadline(received, _PROMISE, _CALENDAR, channel=channel)
    yield request
    yield TrainingRequestRouted.following(
        request,
        source="/routing",
        time=received + timedelta(seconds=2),
        request_id=request_id,
        person_id=person_id,
        target=decision.target,
        rule_id=decision.rule_id,
        rule_set_version=decision.rule_set_version,
        explanation=decision.explanation,
        priority=decision.priority,
        priority_parts=dict(decision.priority_parts),
        callback_deadline=deadline,
    )
    reached_at = None
    if rng.random() < 0.85:
        first = _CALENDAR.add_working_time(received, timedelta(minutes=rng.randrange(10, 1500)))
        outcomes = [ContactOutcome.NO_ANSWER] if rng.random() < 0.3 else []
        outcomes.append(ContactOutcome.ENROLLED if request.requested_course else ContactOutcome.ADVICE_GIVEN)
        for attempt, outcome in enumerate(outcomes, 1):
            at = first + timedelta(hours=3 * (attempt - 1))
            yield ContactAttempted(
                source="/routing",
                time=at,
                request_id=request_id,
                person_id=person_id,
                worker_id="en-1",
                outcome=outcome,
                attempt=attempt,
            )
            reached_at = at if outcome is not ContactOutcome.NO_ANSWER else None
        if request.requested_course and reached_at:
            yield EnrolmentConfirmed(
                source="/routing",
                time=reached_at + timedelta(minutes=5),
                request_id=request_id,
                person_id=person_id,
                course_code=request.requested_course,
                course_title="Cours",
                language=request.language,
            )
    if deadline is not None and (reached_at is None or reached_at > deadline):
        yield CallbackSlaBreached(
            source="/routing",
            time=deadline,
            request_id=request_id,
            person_id=person_id,
            deadline=deadline,
            escalated_to="supervisor",
        )
    if n % 40 == 0:
        asked = received + timedelta(days=1)
        yield ExamSchedulingRequested(
            source="/routing",
            time=asked,
            request_id=request_id,
            person_id=person_id,
            certification_code="MOS-EXCEL",
            reason=ExamRequestReason.PATH_COMPLETED,
        )
        if n % 80 == 0:
            yield ExamScheduled(
                source="/certification",
                time=asked + timedelta(days=5),
                person_id=person_id,
                certification_code="MOS-EXCEL",
                session_id="s1",
                centre_id="c1",
                centre_name="Anderlecht",
                exam_at=asked + timedelta(days=30),
            )


async def create_year_topics(settings: KafkaSettings, prefix: str) -> None:
    """The year's topics under `prefix`, kept forever: their records carry last year's timestamps,
    which the broker's default retention would start deleting at once."""
    admin = AIOKafkaAdminClient(**admin_client_kwargs(settings), client_id="bench-year-admin")
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(prefix + t.name, t.partitions, 1, topic_configs={"retention.ms": "-1"}) for t in YEAR_TOPICS]
        )
    finally:
        await admin.close()


async def publish_fast(settings: KafkaSettings, prefix: str, events: Iterator[Event] | Sequence[Event]) -> int:
    """Put events on their topics under `prefix` as the services would (key, CloudEvents value and
    headers, the event's time as timestamp), partitioned as the producer's default partitioner
    does; returns the count.

    Record batches are filled by hand and sent without waiting for each: `send` per record spends
    more time in aiokafka's per-message bookkeeping than the broker spends storing it.
    """
    producer = AIOKafkaProducer(**admin_client_kwargs(settings), acks=1, linger_ms=50, max_batch_size=512 * 1024)
    await producer.start()
    partitioner = DefaultPartitioner()
    partitions = {prefix + t.name: sorted(await producer.partitions_for(prefix + t.name)) for t in YEAR_TOPICS}
    batches: dict[tuple[str, int], Any] = {}
    sent: list[asyncio.Future[Any]] = []
    count = 0
    try:
        for event in events:
            topic, key, value, headers = wire(event)
            topic = prefix + topic
            partition = partitioner(key, partitions[topic], partitions[topic])
            timestamp = int(event.time.timestamp() * 1000)
            pairs = [(k, v.encode()) for k, v in headers.items()]
            batch = batches.get((topic, partition))
            if batch is None or batch.append(key=key, value=value, timestamp=timestamp, headers=pairs) is None:
                if batch is not None:
                    sent.append(await producer.send_batch(batch, topic, partition=partition))
                    await asyncio.sleep(0)  # the producer's sender task sends it while the next is filled
                batch = batches[(topic, partition)] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=timestamp, headers=pairs)
            count += 1
        for (topic, partition), batch in batches.items():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return count
