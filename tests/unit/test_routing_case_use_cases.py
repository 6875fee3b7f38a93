"""RoutingService's case use cases on the in-memory case store: the callback timers, the desk's
call outcomes, the programme's waitlist and erasure, load -> decide -> save, without MongoDB.

Routing a request (`route`) runs through the processed-events record and the decision log in
MongoDB, and the enrolment outcome through the course seats: the integration tier covers those
(`tests/integration/test_routing_service.py`). The assignment store is stood in for by
the real `Assignments` use case over in-memory repositories, so the tests read what the
worker and the request became.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from structlog.testing import capture_logs

from routing.assignment import RequestStatus, RoutedRequest
from routing.case import Case, ScheduleTimer
from routing.case_repository import ConcurrencyConflict
from routing.enrolment import CourseSeats
from routing.programme import DigitalDivideProgramme
from routing.rules import load_rules
from routing.service import DeskError, RoutingPolicy, RoutingService
from routing.workers import Availability, Worker, worker_hours
from schemas import CallbackDue, CallbackSlaBreached, ContactAttempted, ContactOutcome, Language, Target, TrainingRequestRouted
from services.calendar import BrusselsCalendar
from services.catalogue import load_catalogue
from services.clock import FixedClock
from services.idempotency import ProcessedEvents
from services.outbox import Outbox
from services.timers import Timer, TimerKind, TimerState, TimerStore, timer_id
from tests.routing_case_contract import RECEIVED, a_case
from tests.routing_case_fakes import FakeCaseStore
from tests.routing_fakes import in_memory_assignments

pytestmark = pytest.mark.unit

NOW = RECEIVED + timedelta(hours=5)
CALLBACK_TIMERS = {("callback_due", "r-1"), ("sla_breach", "r-1")}


ALWAYS = worker_hours({day: [("00:00", "23:59")] for day in range(7)})


class Desk:
    """The real assignment use case over in-memory repositories, with a worker per team."""

    def __init__(self) -> None:
        self.memory = in_memory_assignments(clock=lambda: NOW)
        self.assignments = self.memory.assignments

    async def assign(self, request_id: str, worker_id: str) -> None:
        """The request queued for the advisors, offered to `worker_id` and accepted."""
        case = a_case(request_id)
        await self.assignments.upsert_worker(
            Worker(
                worker_id=worker_id,
                display_name=worker_id,
                team=Target.ADVISORS,
                languages=frozenset({case.language}),
                skills=frozenset(),
                working_hours=ALWAYS,
                availability=Availability.AVAILABLE,
                capacity=1,
            )
        )
        await self.assignments.add_request(request_id, Target.ADVISORS, case.language, (), case.priority, case.deadline)
        reservation = await self.assignments.offer_next(request_id)
        assert reservation is not None and reservation.worker_id == worker_id
        assert await self.assignments.accept(request_id, worker_id)

    async def request(self, request_id: str = "r-1") -> RoutedRequest:
        routed = await self.assignments.get_request(request_id)
        assert routed is not None
        return routed

    async def open_count(self, worker_id: str) -> int:
        worker = await self.assignments.get_worker(worker_id)
        assert worker is not None
        return worker.open_count


@pytest.fixture
async def client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    # Never used for I/O here (PyMongo connects lazily): the stores built on it stay idle.
    unused: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    yield unused
    await unused.close()


@pytest.fixture
def desk() -> Desk:
    return Desk()


@pytest.fixture
def store() -> FakeCaseStore:
    return FakeCaseStore([a_case()])


@pytest.fixture
def service(client: AsyncMongoClient[dict[str, Any]], store: FakeCaseStore, desk: Desk) -> RoutingService:
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
        assignment=desk.assignments,
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
    service: RoutingService, store: FakeCaseStore, desk: Desk
) -> None:
    await desk.assign("r-1", "adv-1")
    fire = service.timer_handlers()[TimerKind.CALLBACK_DUE.value]

    await fire(timer(TimerKind.CALLBACK_DUE), None)

    [due] = store.published
    assert isinstance(due, CallbackDue)
    assert due.id == uuid.uuid5(uuid.NAMESPACE_URL, "formation-events:callback_due:r-1")
    assert (due.assignee_id, str(due.causation_id)) == ("adv-1", a_case().routed_event_id)
    assert (stored(store).due_sent_at, stored(store).version) == (NOW, 1)


async def test_the_deadline_timer_breaches_escalates_to_the_teams_supervisor_and_logs(
    service: RoutingService, store: FakeCaseStore, desk: Desk
) -> None:
    await desk.assignments.upsert_worker(
        Worker(
            worker_id="adv-sup",
            display_name="adv-sup",
            team=Target.ADVISORS,
            languages=frozenset({Language.FR}),
            skills=frozenset(),
            working_hours=ALWAYS,
            availability=Availability.AVAILABLE,
            capacity=1,
            supervisor=True,
        )
    )
    fire = service.timer_handlers()[TimerKind.SLA_BREACH.value]

    with capture_logs() as logs:
        await fire(timer(TimerKind.SLA_BREACH), None)

    [breach] = store.published
    assert isinstance(breach, CallbackSlaBreached) and breach.escalated_to == "adv-sup"
    assert (stored(store).sla, stored(store).breached_at, stored(store).escalated_to) == ("breached", NOW, "adv-sup")
    assert {"event": "callback.sla_breached", "request_id": "r-1", "assignee_id": None, "escalated_to": "adv-sup"}.items() <= (
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
    service: RoutingService, store: FakeCaseStore, desk: Desk
) -> None:
    await desk.assign("r-1", "adv-1")
    arm(store, "r-1")

    events = await service.record_outcome("r-1", worker_id="adv-1", outcome=ContactOutcome.NO_ANSWER, notes="répondeur")

    [attempted] = events
    assert isinstance(attempted, ContactAttempted) and attempted.next_attempt_at == NOW + service.policy.retry_after_no_answer
    assert store.published == events and store.sealed == events
    assert (stored(store).attempts, stored(store).outcome, stored(store).sla) == (1, None, "pending")
    assert set(store.timers) == CALLBACK_TIMERS
    still = await desk.request()
    assert (still.status, still.held_by(), await desk.open_count("adv-1")) == (RequestStatus.ASSIGNED, "adv-1", 1)


async def test_reaching_the_person_keeps_the_promise_of_the_requests_that_joined(
    service: RoutingService, store: FakeCaseStore, desk: Desk
) -> None:
    store.cases["r-2"] = a_case("r-2", joined_to="r-1")
    store.cases["r-3"] = a_case("r-3", joined_to="r-1", sla="breached")
    arm(store, "r-1", "r-2")
    await desk.assign("r-1", "adv-1")

    await service.record_outcome("r-1", worker_id="adv-1", outcome=ContactOutcome.ADVICE_GIVEN)

    assert (stored(store).outcome, stored(store).sla, stored(store).closed_by) == (ContactOutcome.ADVICE_GIVEN, "met", "adv-1")
    assert (stored(store, "r-2").sla, stored(store, "r-2").first_contact_at) == ("met", NOW)
    assert stored(store, "r-3") == a_case("r-3", joined_to="r-1", sla="breached")
    assert set(store.cancelled) == {*CALLBACK_TIMERS, ("callback_due", "r-2"), ("sla_breach", "r-2")}
    assert store.timers == {}
    assert ((await desk.request()).status, await desk.open_count("adv-1")) == (RequestStatus.CLOSED, 0)
    assert store.commits == 1, "the call, its events and the joined cases commit together"


async def test_a_redirection_routes_the_request_again_after_the_call(
    service: RoutingService, store: FakeCaseStore, desk: Desk
) -> None:
    await desk.assign("r-1", "adv-1")

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
    requeued = await desk.request()
    # No one works at the Cité des métiers in this desk: the request waits in its queue.
    assert (requeued.team, requeued.status, requeued.reservation) == (Target.CITE_DES_METIERS, RequestStatus.QUEUED, None)
    assert await desk.open_count("adv-1") == 0


async def test_the_desk_is_refused_without_touching_the_case(service: RoutingService, store: FakeCaseStore, desk: Desk) -> None:
    with pytest.raises(DeskError, match="request r-1 is unknown") as unknown:
        await service.record_outcome("r-1", worker_id="adv-1", outcome=ContactOutcome.ADVICE_GIVEN)
    assert unknown.value.status == 404
    await desk.assign("r-1", "adv-2")
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
    service: RoutingService, store: FakeCaseStore, desk: Desk
) -> None:
    store.cases["r-1"] = a_case(target=Target.DIGITAL_DIVIDE, programme="waitlisted")

    await service.admit_waiting(["r-1", "r-unknown"])

    case = stored(store)
    assert case.programme == "admitted"
    queued = await desk.request()
    assert (queued.team, queued.status, queued.language, queued.priority, queued.deadline) == (
        Target.DIGITAL_DIVIDE,
        RequestStatus.QUEUED,
        case.language,
        case.priority,
        case.deadline,
    )
    assert await desk.assignments.get_request("r-unknown") is None


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


def supervisor(worker_id: str, team: Target, supervises: frozenset[Target] = frozenset()) -> Worker:
    return Worker(
        worker_id=worker_id,
        display_name=worker_id,
        team=team,
        languages=frozenset({Language.FR}),
        working_hours=ALWAYS,
        supervisor=True,
        supervises=supervises,
    )


async def test_a_team_without_a_supervisor_of_its_own_escalates_to_the_one_who_answers_for_it(
    service: RoutingService, desk: Desk
) -> None:
    await desk.assignments.upsert_worker(supervisor("adv-sup", Target.ADVISORS, frozenset({Target.DIGITAL_DIVIDE})))
    await desk.assignments.upsert_worker(supervisor("en-sup", Target.ESPACES_NUMERIQUES))

    assert await service.supervisor_of(Target.DIGITAL_DIVIDE) == "adv-sup"
    assert await service.supervisor_of(Target.ESPACES_NUMERIQUES) == "en-sup"
    assert await service.supervisor_of(Target.CITE_DES_METIERS) is None
    # A team's own supervisor comes before one who answers for it besides their own team.
    await desk.assignments.upsert_worker(supervisor("dd-lead", Target.DIGITAL_DIVIDE))
    assert await service.supervisor_of(Target.DIGITAL_DIVIDE) == "dd-lead"
