"""Routing as ops run it (`python -m routing`) on the real broker and mongod: two replicas under
concurrent load, callback timers across a restart, and the desk API end to end."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from schemas import Channel, EnrolmentConfirmed, Event, QualificationLevel, TrainingAbandoned, TrainingRequestRouted
from scripts.tokens import Tokens
from tests.factories import live_request
from tests.processes import Run, policy, produce, read_events, roster, wait_for

pytestmark = pytest.mark.e2e

RELEASES = {"declined", "timed_out", "reassigned", "closed", "requeued"}
"""History events that end a live reservation; a later `reserved` is then a legitimate re-offer."""


def reservation_violations(history: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Checks one request's stored history: at most one live reservation at any moment.

    Returns the violations found (a `reserved` while another reservation is live, an `accepted`
    by someone who does not hold the reservation) and how many legitimate re-offers it shows.
    """
    live: str | None = None
    violations: list[str] = []
    reoffers = 0
    offered_before = False
    for entry in history:
        event, worker = entry["event"], entry.get("worker_id")
        if event == "reserved":
            if live is not None:
                violations.append(f"reserved to {worker} while reserved to {live}")
            else:
                reoffers += offered_before
            live, offered_before = worker, True
        elif event == "accepted" and worker != live:
            violations.append(f"accepted by {worker} while reserved to {live}")
        elif event in RELEASES:
            live = None
    return violations, reoffers


@pytest.fixture
def cpu_pressure(request: pytest.FixtureRequest) -> Iterator[int]:
    """With `indirect` True: both cores kept busy by spinning processes for the test's length.

    Each spinner is the Python process itself, so killing it stops the spinning (a `timeout`
    wrapper would die alone and leave its child spinning); it also stops by itself after ten
    minutes, so a test that crashes never leaves the machine loaded."""
    spin = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end:\n    pass"
    spinners = []
    if getattr(request, "param", False):
        spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    yield len(spinners)
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


@pytest.mark.parametrize(
    ("replicas", "cpu_pressure"),
    [(2, False), (3, False), (2, True)],
    ids=["two-replicas", "three-replicas", "two-replicas-cores-busy"],
    indirect=["cpu_pressure"],
)
async def test_replicas_route_each_request_once_and_respect_capacities(
    run: Run, mongo_client: Any, replicas: int, cpu_pressure: int
) -> None:
    workers = roster(run.tmp / "roster.yaml", per_team=3, capacity=4)
    run.env["ROUTING_WORKERS_PATH"] = str(workers)
    processes = [run.start("routing", 18401 + i) for i in range(replicas)]
    # Stamped by the clock the services run on (`live_request`): from a fixed past date they
    # would arrive already past their deadline on some days and not others.
    requests = [
        live_request(
            channel=Channel.PHONE if i % 3 else Channel.WEB,
            requested_course="EXCEL" if i % 2 else None,
            qualification_level=QualificationLevel.PRIMARY if i % 5 == 0 else None,
        )
        for i in range(400)
    ]
    await produce(run.topic("training.requests.v1"), requests)
    db = mongo_client[run.database]

    async def all_decided() -> bool:
        return bool(await db["routing_decisions"].count_documents({}) == len(requests))

    await wait_for(all_decided, timeout=240 if cpu_pressure else 90)
    await asyncio.sleep(1.0)  # let the dispatchers settle

    processed = await db["processed_events"].count_documents({"consumer": "routing"})
    violations: dict[str, list[str]] = {}
    reoffers = 0
    async for doc in db["routing_requests"].find({}, {"history": 1}):
        found, again = reservation_violations(doc["history"])
        reoffers += again
        if found:
            violations[doc["_id"]] = found
    holders: Counter[str] = Counter()
    async for doc in db["routing_requests"].find({"status": {"$in": ["reserved", "assigned"]}}):
        holders[doc["reservation"]["worker_id"]] += 1
    over_capacity = []
    async for worker in db["routing_workers"].find():
        assert worker["open_count"] == holders[worker["_id"]], worker["_id"]
        if worker["open_count"] > worker["capacity"]:
            over_capacity.append(worker["_id"])
    routed_by = Counter(
        p.log_path.stem for p in processes for line in p.log_path.read_text().splitlines() if '"request.routed"' in line
    )
    print(
        f"replicas={replicas} busy_spinners={cpu_pressure} requests={len(requests)} decided={processed} "
        f"reserved={sum(holders.values())} two_live_reservations={len(violations)} reoffers={reoffers} "
        f"over_capacity={len(over_capacity)} per_replica={dict(routed_by)}"
    )
    assert processed == len(requests)
    assert violations == {} and over_capacity == []
    # Far more requests than seats: every worker of the two teams that got requests is full.
    for team in ("espaces_numeriques", "advisors"):
        async for worker in db["routing_workers"].find({"team": team, "supervisor": False}):
            assert worker["open_count"] == worker["capacity"] == 4
    routed = await read_events(run.topic("training.routing.v1"), until=lambda e: len(e) >= len(requests))
    assert Counter(e.request_id for e in routed if isinstance(e, TrainingRequestRouted)) == Counter(
        r.request_id for r in requests
    )


def test_the_reservation_invariant_tells_a_reoffer_from_a_double_reservation() -> None:
    offer, again = {"event": "reserved", "worker_id": "a"}, {"event": "reserved", "worker_id": "b"}
    assert reservation_violations([offer, {"event": "declined", "worker_id": "a"}, again]) == ([], 1)
    assert reservation_violations(
        [offer, {"event": "timed_out", "worker_id": "a"}, again, {"event": "accepted", "worker_id": "b"}]
    ) == ([], 1)
    assert reservation_violations([offer, again]) == (["reserved to b while reserved to a"], 0)
    assert reservation_violations([offer, {"event": "accepted", "worker_id": "b"}]) == (["accepted by b while reserved to a"], 0)


async def test_callback_timers_survive_a_restart_and_fire_once(run: Run, mongo_client: Any, tokens: Tokens) -> None:
    env = {
        "ROUTING_CLOCK": "simulated",
        "ROUTING_RULES_PATH": str(policy(run.tmp / "policy.yaml", sla={"mode": "calendar"})),
        "ROUTING_WORKERS_PATH": str(roster(run.tmp / "r.yaml", per_team=1, capacity=1)),
    }
    routing = run.start("routing", 18411, **env)
    call = live_request(channel=Channel.PHONE)
    await produce(run.topic("training.requests.v1"), [call])
    db = mongo_client[run.database]

    async def timers_stored() -> bool:
        return bool(await db["routing_timers"].count_documents({"key": call.request_id}) == 2)

    await wait_for(timers_stored)
    routing.kill()  # SIGKILL: nothing in memory survives
    routing = run.start("routing", 18412, **env)
    async with httpx.AsyncClient(base_url=routing.url, headers=tokens.headers("ops-1")) as http:
        assert (await http.post("/admin/clock/advance", params={"hours": 45})).status_code == 200
        await asyncio.sleep(1.5)
        assert (await http.post("/admin/clock/advance", params={"hours": 4})).status_code == 200

    def both(events: list[Event]) -> bool:
        kinds = {e.type.rsplit(".", 2)[-2] + "." + e.type.rsplit(".", 1)[-1] for e in events}
        return {"callback.due", "callback.sla_breached"} <= kinds

    events = await read_events(run.topic("training.routing.v1"), until=both)
    await asyncio.sleep(2)  # a second firing would come right behind
    events = await read_events(run.topic("training.routing.v1"), until=lambda e: False, timeout=3)
    counts = Counter(e.type.rsplit(".", 1)[-1] for e in events if getattr(e, "request_id", None) == call.request_id)
    print(f"events for the request after restart: {dict(counts)}")
    assert counts["due"] == 1 and counts["sla_breached"] == 1
    case = await db["routing_cases"].find_one({"_id": call.request_id})
    assert case["sla"] == "breached"


async def test_the_desk_declines_reoffers_accepts_and_enrols(run: Run, mongo_client: Any, tokens: Tokens) -> None:
    run.env["ROUTING_WORKERS_PATH"] = str(roster(run.tmp / "roster.yaml", per_team=2, capacity=2))
    routing = run.start("routing", 18421)
    request = live_request(channel=Channel.EMAIL, requested_course="EXCEL")
    await produce(run.topic("training.requests.v1"), [request])

    async with httpx.AsyncClient(base_url=routing.url, timeout=10) as http:

        async def offered_to() -> str | None:
            view = await http.get(f"/desk/requests/{request.request_id}", headers=tokens.headers("adv-sup"))
            return view.json()["assignee_id"] if view.status_code == 200 and view.json()["status"] == "reserved" else None

        async def is_offered() -> bool:
            return await offered_to() is not None

        await wait_for(is_offered)
        first = await offered_to()
        assert first is not None
        queue = (await http.get(f"/desk/workers/{first}/queue", headers=tokens.headers(first))).json()
        assert [item["request_id"] for item in queue] == [request.request_id] and queue[0]["status"] == "offered"

        declined = await http.post(f"/desk/requests/{request.request_id}/decline", headers=tokens.headers(first))
        assert declined.status_code == 200
        second = declined.json()["offered_to"]
        assert second and second != first

        as_second = tokens.headers(second)
        assert (await http.post(f"/desk/requests/{request.request_id}/accept", headers=tokens.headers(first))).status_code == 409
        assert (await http.post(f"/desk/requests/{request.request_id}/accept", headers=as_second)).status_code == 200
        full = await http.post(
            f"/desk/requests/{request.request_id}/outcome",
            json={"outcome": "enrolled", "course_code": "NOPE"},
            headers=as_second,
        )
        assert full.status_code == 409 and "not in the catalogue" in full.json()["detail"]
        # A supervisor plans the session the person is enrolled in (the first after today in French).
        starts_on = datetime.now(UTC).date() + timedelta(days=30)
        planned = await http.post(
            "/desk/courses/EXCEL/sessions",
            json={
                "session_id": "EXCEL-E2E-FR",
                "starts_on": starts_on.isoformat(),
                "ends_on": (starts_on + timedelta(weeks=6)).isoformat(),
                "capacity": 10,
                "mode": "online",
                "language": request.language.value,
            },
            headers=tokens.headers("adv-sup"),
        )
        assert planned.status_code == 201, planned.text
        enrolled = await http.post(
            f"/desk/requests/{request.request_id}/outcome",
            json={"outcome": "enrolled", "course_code": "EXCEL"},
            headers=as_second,
        )
        assert enrolled.status_code == 200, enrolled.text
        assert enrolled.json()["enrolment"] == {
            "course_code": "EXCEL",
            "session_id": "EXCEL-E2E-FR",
            "starts_on": starts_on.isoformat(),
            "waitlisted": False,
        }
        assert (await http.get(f"/desk/workers/{second}/queue", headers=as_second)).json() == []
        # The course has not started: it cannot be completed yet; the person may leave it.
        early = await http.post(f"/desk/enrolments/{request.request_id}/completed", json={}, headers=as_second)
        assert early.status_code == 409 and "cannot be completed before" in early.json()["detail"]
        left = await http.post(
            f"/desk/enrolments/{request.request_id}/abandoned", json={"reason": "found_work"}, headers=as_second
        )
        assert left.status_code == 200, left.text
        assert left.json()["published"] == ["be.bruxellesformation.training.course.abandoned"]
        sessions = (await http.get("/desk/courses/EXCEL/sessions", headers=as_second)).json()["sessions"]
        assert [(s["session_id"], s["enrolled"]) for s in sessions] == [("EXCEL-E2E-FR", 0)]
        page = await http.get(f"/desk/ui/{second}", headers=as_second)
        assert page.status_code == 200 and "File d'appels" in page.text

    enrolments = await read_events(run.topic("training.enrolments.v1"), until=lambda e: len(e) >= 2)
    confirmed = [(type(e), e.course_code, e.actor) for e in enrolments if isinstance(e, EnrolmentConfirmed)]
    assert confirmed == [(EnrolmentConfirmed, "EXCEL", second)], "the event names who acted: the signed-in worker"
    assert [type(e) for e in enrolments] == [EnrolmentConfirmed, TrainingAbandoned]
    decision = await mongo_client[run.database]["routing_cases"].find_one({"_id": request.request_id})
    assert decision["outcome"] == "enrolled"
