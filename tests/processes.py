"""Running services as processes in a test: a database and topics of their own, a 24/7 roster,
and raw Kafka clients to feed and read the topics as any other client would."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from routing.rules import DEFAULT_PATH
from schemas import Event, decode
from scripts.launch import ServiceProcess, start_service
from services.kafka import wire
from tests.conftest import KAFKA_CLIENT, drop_database

ALWAYS = {day: [["00:00", "23:59"]] for day in range(7)}


def roster(path: Path, *, per_team: int, capacity: int) -> Path:
    teams = {
        "espaces_numeriques": ["office", "graphics", "basic_skills", "enrolment"],
        "advisors": ["orientation"],
        "digital_divide": ["digital_divide"],
        "cite_des_metiers": ["orientation"],
    }
    # The tests act at the desk as whoever a request is offered to, signed in at the local realm: the
    # first workers of the two desk teams are realm users (tests/realm.py), the others made-up names.
    signable = {"espaces_numeriques": ["en-1", "adv-1"], "advisors": ["adv-2", "adv-3"]}
    workers = [
        {
            "worker_id": signable[team][i] if i < len(signable.get(team, [])) else f"{team[:3]}-{i}",
            "display_name": f"{team} {i}",
            "team": team,
            "languages": ["fr", "nl", "en"],
            "skills": skills,
            "capacity": capacity,
        }
        for team, skills in teams.items()
        for i in range(per_team)
    ]
    workers.append(
        {
            "worker_id": "adv-sup",
            "display_name": "supervisor",
            "team": "advisors",
            "languages": ["fr", "nl", "en"],
            "skills": ["orientation"],
            "capacity": 50,
            "supervisor": True,
        }
    )
    path.write_text(yaml.safe_dump({"defaults": {"availability": "available", "working_hours": ALWAYS}, "workers": workers}))
    return path


def policy(path: Path, **sections: dict[str, Any]) -> Path:
    """The shipped policy document with some sections changed (`sla={"mode": "calendar"}`), for
    `ROUTING_RULES_PATH`: a test configures routing the way ops do, through the one document."""
    document = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    for name, changes in sections.items():
        document[name] = {**document.get(name, {}), **changes}
    document["version"] = f"{document['version']}+test"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class Run:
    """One test's database and topics, and the services started in them."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.database = f"run_{uuid.uuid4().hex[:12]}"
        self.tmp = tmp
        self.env = {"MONGODB_DATABASE": self.database, "KAFKA_TOPIC_PREFIX": f"{self.database}.", **env}
        self.processes: list[ServiceProcess] = []

    def topic(self, name: str) -> str:
        return f"{self.database}.{name}"

    def start(self, service: str, port: int, **env: str) -> ServiceProcess:
        process = start_service(
            service, port=port, env={**self.env, **env}, log_dir=self.tmp / "logs", instance=f"{service}-{port}"
        )
        self.processes.append(process)
        process.wait_ready()
        return process

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        drop_database(self.database)


async def produce(topic: str, events: Sequence[Event]) -> None:
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True, linger_ms=5)
    try:
        await producer.start()
        for event in events:
            _, key, value, headers = wire(event)
            await producer.send(topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
        await producer.flush()
    finally:
        await producer.stop()


async def read_events(topic: str, *, until: Any, timeout: float = 60) -> list[Event]:
    events: list[Event] = []
    consumer = AIOKafkaConsumer(topic, **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(events) and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                events += [decode(r.value, r.headers) for r in records]
    finally:
        await consumer.stop()
    return events


async def wait_for(predicate: Any, timeout: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)
