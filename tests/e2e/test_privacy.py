"""Personal data and the event log: sealed on Kafka, erased for good, and never in the logs."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from schemas import PersonDataErased, TrainingRequestReceived, decode
from scripts.launch import REPO, ServiceProcess, start_service
from scripts.tokens import Tokens
from services.privacy import PersonalData, PersonKeys
from tests.conftest import KAFKA_CLIENT, drop_database

pytestmark = pytest.mark.e2e

PHONE, PHONE_E164, EMAIL, NAME = "0470 55 44 33", "+32470554433", "sofia.erase@example.org", "Sofia Erasmus"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, Any]]:
    database = f"e2e_privacy_{uuid.uuid4().hex[:10]}"
    env = {"MONGODB_DATABASE": database, "KAFKA_TOPIC_PREFIX": f"{database}.", "INTAKE_SMTP_ENABLED": "false"}
    started: list[ServiceProcess] = []
    try:
        for name, port in (("intake", 18501), ("routing", 18502)):
            started.append(start_service(name, port=port, env=env, log_dir=tmp_path))
        # The DPOs' surface: a process of its own; the public intake app has no erasure route.
        privacy_env = {**env, "INTAKE_SURFACES": "privacy"}
        started.append(start_service("intake", port=18503, env=privacy_env, log_dir=tmp_path, instance="intake-privacy"))
        for process in started:
            process.wait_ready()
        yield {"database": database, "intake": started[0], "routing": started[1], "privacy": started[2], "logs": tmp_path}
    finally:
        for process in started:
            process.stop()
        drop_database(database)


async def everything_on(prefix: str) -> list[tuple[str, bytes]]:
    """Every record of every topic of the run, read from the beginning as an analyst's replay would."""
    consumer = AIOKafkaConsumer(**KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.startswith(prefix)]
        consumer.subscribe(topics)
        records: list[tuple[str, bytes]] = []
        while batch := await consumer.getmany(timeout_ms=2000):
            records += [(r.topic, r.value or b"") for rs in batch.values() for r in rs]
        return records
    finally:
        await consumer.stop()


async def wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_erasure_leaves_no_personal_data_in_a_full_replay(
    services: dict[str, Any], mongo_client: AsyncMongoClient[dict[str, Any]], tokens: Tokens
) -> None:
    db = mongo_client[services["database"]]
    async with httpx.AsyncClient(base_url=services["intake"].url, timeout=10) as http:
        accepted = await http.post(
            "/api/v1/requests",
            json={
                "name": NAME,
                "phone": PHONE,
                "email": EMAIL,
                "need": "Je voudrais apprendre Excel, appelez-moi au 0470 55 44 33",
                "consent_to_contact": True,
            },
        )
        assert accepted.status_code == 202
        stored = await db["intake_requests"].find_one({"_id": accepted.json()["request_id"]})
        assert stored is not None
        person_id = stored["person_id"]

        async def routed() -> bool:
            return await db["routing_cases"].count_documents({"person_id": person_id}) == 1

        await wait_for(routed)
        case = await db["routing_cases"].find_one({"person_id": person_id})
        assert case is not None and case["contact"]["phone"] == PHONE_E164  # the desk can call back

        before = await everything_on(f"{services['database']}.")
        assert before and not any(
            secret.encode() in value for _, value in before for secret in (PHONE_E164, EMAIL, NAME, "55 44 33")
        )

        erasure = {"phone": "+32 470 55 44 33"}
        public = await http.post("/api/v1/privacy/erasures", json=erasure, headers=tokens.headers("dpo-1"))
        assert public.status_code == 404, "the public intake app serves no erasure route"
        async with httpx.AsyncClient(base_url=services["privacy"].url, timeout=10) as dpo:
            asked = await dpo.post("/api/v1/privacy/erasures", json=erasure, headers=tokens.headers("dpo-1"))
            assert asked.status_code == 202 and asked.json()["status"] == "awaiting_approval"
            approval = f"/api/v1/privacy/erasures/{asked.json()['erasure_id']}/approval"
            assert (await dpo.post(approval, headers=tokens.headers("dpo-1"))).status_code == 403  # not by who asked
            erased = await dpo.post(approval, headers=tokens.headers("dpo-2"))
            assert (erased.status_code, erased.json()) == (202, {"status": "accepted"})  # the same for an unknown person

        async def blanked() -> bool:
            return await db["routing_cases"].count_documents({"person_id": person_id, "erased": True}) == 1

        await wait_for(blanked)
        again = await http.post("/api/v1/requests", json={"phone": PHONE, "need": "Excel", "consent_to_contact": True})
        stored_again = await db["intake_requests"].find_one({"_id": again.json()["request_id"]})
        assert stored_again is not None and stored_again["person_id"] != person_id, "nothing links it to the forgotten person"

    case = await db["routing_cases"].find_one({"person_id": person_id})
    assert case is not None and case["contact"] == {} and case["need"] == ""
    assert await db["intake_identities"].count_documents({"person_id": person_id}) == 0

    keys = PersonalData(PersonKeys(db))
    replay = await everything_on(f"{services['database']}.")
    events = [decode(value) for _, value in replay]
    theirs = [await keys.unseal(e) for e in events if getattr(e, "person_id", None) == person_id]
    requests = [e for e in theirs if isinstance(e, TrainingRequestReceived)]
    assert requests and all(e.contact.phone is None and e.contact.email is None and e.need == "" for e in requests)
    erasures = [e for e in theirs if isinstance(e, PersonDataErased)]
    assert [(e.requested_by, e.actor) for e in erasures] == [("dpo-1", "dpo-2")], "asked by one DPO, approved by another"
    text = "\n".join(repr(e) for e in theirs)
    assert PHONE_E164 not in text and EMAIL not in text and NAME not in text
    print(f"replayed records={len(replay)} of the person={len(theirs)} personal data found=0")


def test_a_full_demo_run_logs_no_personal_data(tmp_path: Path) -> None:
    """Runs `make demo`'s script and greps every service log for the demo's numbers and addresses."""
    import scripts.demo as demo

    result = subprocess.run([sys.executable, "-m", "scripts.demo"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    logs = "\n".join(p.read_text(errors="replace") for p in (REPO / ".local" / "demo" / "logs").glob("*.log"))
    assert logs, "the demo wrote no logs"
    secrets: set[str] = set()
    for spec in [*demo.PHONE_CALLS, *demo.WEB_REQUESTS]:
        secrets |= {v for v in (spec.get("caller"), spec.get("phone"), spec.get("email"), spec.get("name")) if v is not None}
    for spec in demo.EMAILS:
        secrets |= set(re.findall(r"[\w.+-]+@[\w.-]+", spec["from"])) | set(
            re.findall(r"0\d{3}[/ .]?\d\d[ .]?\d\d[ .]?\d\d", spec["body"])
        )
    digits_only = {re.sub(r"\D", "", s)[-9:] for s in secrets if re.search(r"\d{6}", re.sub(r"\D", "", s))}
    leaked = sorted(s for s in secrets if s in logs) + sorted(d for d in digits_only if d in re.sub(r"[ ./-]", "", logs))
    print(f"log lines={logs.count(chr(10))} secrets checked={len(secrets)} leaked={leaked}")
    assert leaked == []
