"""RoutingService's case use cases on the in-memory case store: the callback timers, the desk's
call outcomes, the programme's waitlist and erasure, load -> decide -> save, without MongoDB.

Routing a request (`route`) runs through the processed-events record and the decision log in
MongoDB, and the enrolment outcome through the course seats: the integration tier covers those
(`tests/integration/test_routing_service.py`). The assignment store is stood in for by
`Assignments`, which answers what the case use cases ask of it and records the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest
from pymongo import AsyncMongoClient
from structlog.testing import capture_logs

from routing.assignment import AssignmentStore, RequestStatus, Reservation, RoutedRequest
from routing.case import Case, ScheduleTimer
from routing.case_repository import ConcurrencyConflict
from routing.enrolment import CourseSeats
from routing.programme import DigitalDivideProgramme
from routing.rules import load_rules
from routing.service import DeskError, RoutingPolicy, RoutingService
from routing.workers import EscalationLevel
from schemas import CallbackDue, CallbackSlaBreached, ContactAttempted, ContactOutcome, Target, TrainingRequestRouted
from services.calendar import BrusselsCalendar
from services.catalogue import load_catalogue
from services.clock import FixedClock
from services.idempotency import ProcessedEvents
from services.outbox import Outbox
from services.timers import Timer, TimerKind, TimerState, TimerStore, timer_id
from tests.routing_case_contract import RECEIVED, a_case
from tests.routing_case_fakes import FakeCaseStore

pytestmark = pytest.mark.unit

NOW = RECEIVED + timedelta(hours=5)
CALLBACK_TIMERS = {("callback_due", "r-1"), ("sla_breach", "r-1")}


class Assignments:
    """Stands in for `AssignmentStore` where the case use cases call it; records the calls."""

    def __init__(self) -> None:
        self.requests: dict[str, RoutedRequest] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def assign(self, request_id: str, worker_id: str, *, status: str = RequestStatus.ASSIGNED) -> None:
        reservation = Reservation(request_id, worker_id, RECEIVED, RECEIVED + timedelta(minutes=5), accepted_at=RECEIVED)
        self.requests[request_id] = RoutedRequest(
            request_id=request_id,
            team=Target.ADVISORS,
            language=a_case().language,
            required_skills=frozenset(),
            priority=40,
            deadline=None,
            status=status,
            escalation=EscalationLevel.TEAM,
            declined_by=frozenset(),
            created_at=RECEIVED,
            reservation=reservation,
        )

    async def get_request(self, request_id: str) -> RoutedRequest | None:
        return self.requests.get(request_id)

    async def add_request(self, request_id: str, *args: Any, **kwargs: Any) -> bool:
        self.calls.append(("add_request", (request_id, *args)))
        return True

    async def offer_next(self, request_id: str) -> None:
        self.calls.append(("offer_next", (request_id,)))

    async def complete(self, request_id: str, worker_id: str) -> bool:
        self.calls.append(("complete", (request_id, worker_id)))
        return True

    async def requeue(self, request_id: str, team: Target, *, reason: str = "") -> bool:
        self.calls.append(("requeue", (request_id, team, reason)))
        return True


@pytest.fixture
async def client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    # Never used for I/O here (PyMongo connects lazily): the stores built on it stay idle.
    unused: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    yield unused
    await unused.close()


@pytest.fixture
def assignments() -> Assignments:
    return Assignments()


@pytest.fixture
def store() -> FakeCaseStore:
    return FakeCaseStore([a_case()])


@pytest.fixture
def service(client: AsyncMongoClient[dict[str, Any]], store: FakeCaseStore, assignments: Assignments) -> RoutingService:
    db = client["unused"]
    clock = FixedClock(NOW)
    catalogue = load_catalogue()
    rules = load_rules()
    return RoutingService(
        client,
        db,
        policy=RoutingPolicy(rules=rules, calendar=BrusselsCalendar(), catalogue=catalogue),
        clock=clock,
        processed=ProcessedEvents(client, db, consumer="routing"),
        assignment=cast(AssignmentStore, assignments),
        timers=TimerStore(client, db, clock=clock, owner="unit"),
        programme=DigitalDivideProgramme(client, db, quota=10),
        seats=CourseSeats(client, db, catalogue),
        outbox=Outbox(db, "routing_outbox"),
        case_store=store,
    )


def timer(kind: TimerKind, key: str = "r-1") -> Timer:
    return Timer(
        id=timer_id(kind, key),
        kind=kind,
        key=key,
        fire_at=NOW,
        payload={},
        state=TimerState.FIRING,
        claimed_by="unit",
        claim_expires_at=NOW + timedelta(seconds=30),
        fired_at=None,
        attempts=0,
    )


def arm(store: FakeCaseStore, *request_ids: str) -> None:
    """The callback timers `route` scheduled for these requests."""
    for request_id in request_ids:
        for kind in (TimerKind.CALLBACK_DUE, TimerKind.SLA_BREACH):
            store.timers[(kind, request_id)] = ScheduleTimer(kind, request_id, NOW, {})


def stored(store: FakeCaseStore, request_id: str = "r-1") -> Case:
    return store.cases[request_id]


# --- the callback timers ------------------------------------------------------------------


async def test_the_due_timer_publishes_one_reminder_named_after_the_timer(
    service: RoutingService, store: FakeCaseStore, assignments: Assignments
) -> None:
    assignments.assign("r-1", "adv-1")
    fire = service.timer_handlers()[TimerKind.CALLBACK_DUE.value]

    await fire(timer(TimerKind.CALLBACK_DUE), None)

    [due] = store.published
    assert isinstance(due, CallbackDue)
    assert due.id == uuid.uuid5(uuid.NAMESPACE_URL, "formation-events:callback_due:r-1")
    assert (due.assignee_id, str(due.causation_id)) == ("adv-1", a_case().routed_event_id)
    assert (stored(store).due_sent_at, stored(store).version) == (NOW, 1)


async def test_the_deadline_timer_breaches_escalates_and_logs(service: RoutingService, store: FakeCaseStore) -> None:
    fire = service.timer_handlers()[TimerKind.SLA_BREACH.value]

    with capture_logs() as logs:
        await fire(timer(TimerKind.SLA_BREACH), None)

    [breach] = store.published
    assert isinstance(breach, CallbackSlaBreached) and breach.escalated_to == "supervisor"
    assert (stored(store).sla, stored(store).breached_at) == ("breached", NOW)
    assert {"event": "callback.sla_breached", "request_id": "r-1", "assignee_id": None, "escalated_to": "supervisor"}.items() <= (
        logs[-1].items()
    )


async def test_timers_firing_after_the_call_or_for_an_unknown_case_do_nothing(
    service: RoutingService, store: FakeCaseStore
) -> None:
    store.cases["r-1"] = a_case(sla="met")
    for kind in (TimerKind.CALLBACK_DUE, TimerKind.SLA_BREACH):
        await service.timer_handlers()[kind.value](timer(kind), None)
        await service.timer_handlers()[kind.value](timer(kind, "r-unknown"), None)
    assert store.published == [] and stored(store).version == 0


# --- the desk -----------------------------------------------------------------------------


async def test_no_answer_counts_the_attempt_and_keeps_the_worker(
    service: RoutingService, store: FakeCaseStore, assignments: Assignments
) -> None:
    assignments.assign("r-1", "adv-1")
    arm(store, "r-1")

    events = await service.record_outcome("r-1", worker_id="adv-1", outcome=ContactOutcome.NO_ANSWER, notes="répondeur")

    [attempted] = events
    assert isinstance(attempted, ContactAttempted) and attempted.next_attempt_at == NOW + service.policy.retry_after_no_answer
    assert store.published == events and store.sealed == events
    assert (stored(store).attempts, stored(store).outcome, stored(store).sla) == (1, None, "pending")
    assert set(store.timers) == CALLBACK_TIMERS
    assert assignments.calls == []


async def test_reaching_the_person_keeps_the_promise_of_the_requests_that_joined(
    service: RoutingService, store: FakeCaseStore, assignments: Assignments
) -> None:
    store.cases["r-2"] = a_case("r-2", joined_to="r-1")
    store.cases["r-3"] = a_case("r-3", joined_to="r-1", sla="breached")
    arm(store, "r-1", "r-2")
    assignments.assign("r-1", "adv-1")

    await service.record_outcome("r-1", worker_id="adv-1", outcome=ContactOutcome.ADVICE_GIVEN)

    assert (stored(store).outcome, stored(store).sla, stored(store).closed_by) == (ContactOutcome.ADVICE_GIVEN, "met", "adv-1")
    assert (stored(store, "r-2").sla, stored(store, "r-2").first_contact_at) == ("met", NOW)
    assert stored(store, "r-3") == a_case("r-3", joined_to="r-1", sla="breached")
    assert set(store.cancelled) == {*CALLBACK_TIMERS, ("callback_due", "r-2"), ("sla_breach", "r-2")}
    assert store.timers == {}
    assert assignments.calls == [("complete", ("r-1", "adv-1"))]
    assert store.commits == 1, "the call, its events and the joined cases commit together"


async def test_a_redirection_routes_the_request_again_after_the_call(
    service: RoutingService, store: FakeCaseStore, assignments: Assignments
) -> None:
    assignments.assign("r-1", "adv-1")

    events = await service.record_outcome(
        "r-1", worker_id="adv-1", outcome=ContactOutcome.REDIRECTED, redirect_to=Target.CITE_DES_METIERS
    )

    attempted, routed = store.published
    assert events == [attempted]
    assert isinstance(routed, TrainingRequestRouted) and routed.causation_id == attempted.id
    case = stored(store)
    assert (case.target, case.redirected_from, case.outcome, case.routed_event_id, case.version) == (
        Target.CITE_DES_METIERS,
        Target.ADVISORS,
        None,
        str(routed.id),
        2,
    )
    assert assignments.calls == [
        ("complete", ("r-1", "adv-1")),
        ("requeue", ("r-1", Target.CITE_DES_METIERS, "redirected by adv-1")),
        ("offer_next", ("r-1",)),
    ]


async def test_the_desk_is_refused_without_touching_the_case(
    service: RoutingService, store: FakeCaseStore, assignments: Assignments
) -> None:
    with pytest.raises(DeskError, match="request r-1 is unknown") as unknown:
        await service.record_outcome("r-1", worker_id="adv-1", outcome=ContactOutcome.ADVICE_GIVEN)
    assert unknown.value.status == 404
    assignments.assign("r-1", "adv-2")
    with pytest.raises(DeskError, match="accept it first") as not_theirs:
        await service.record_outcome("r-1", worker_id="adv-1", outcome=ContactOutcome.ADVICE_GIVEN)
    assert not_theirs.value.status == 409
    with pytest.raises(DeskError, match="certification_code from the catalogue") as no_exam:
        await service.record_outcome(
            "r-1", worker_id="adv-2", outcome=ContactOutcome.EXAM_WANTED, certification_code="NOT-A-CERT"
        )
    assert no_exam.value.status == 422
    assert (store.published, store.commits, stored(store)) == ([], 0, a_case())


# --- the programme and erasure -------------------------------------------------------------


async def test_requests_admitted_from_the_waitlist_join_the_teams_queue(
    service: RoutingService, store: FakeCaseStore, assignments: Assignments
) -> None:
    store.cases["r-1"] = a_case(target=Target.DIGITAL_DIVIDE, programme="waitlisted")

    await service.admit_waiting(["r-1", "r-unknown"])

    case = stored(store)
    assert case.programme == "admitted"
    assert assignments.calls == [
        ("add_request", ("r-1", Target.DIGITAL_DIVIDE, case.language, (), case.priority, case.deadline)),
        ("offer_next", ("r-1",)),
    ]


async def test_erasure_blanks_a_persons_cases_once(service: RoutingService, store: FakeCaseStore) -> None:
    store.cases["r-2"] = a_case("r-2")
    store.cases["r-3"] = a_case("r-3", person_id="p-other")

    assert await service.erase_person("p-1") == 2
    assert await service.erase_person("p-1") == 0
    assert [(c.request_id, c.erased, c.contact, c.need) for c in store.cases.values() if c.erased] == [
        ("r-1", True, {}, ""),
        ("r-2", True, {}, ""),
    ]
    assert stored(store, "r-3").contact != {}


async def test_a_change_that_keeps_losing_its_race_gives_up(store: FakeCaseStore) -> None:
    async def always_stale(uow: Any) -> None:
        raise ConcurrencyConflict("r-1", 0)

    with pytest.raises(ConcurrencyConflict):
        await store.run(always_stale)
