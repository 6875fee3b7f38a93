"""RoutingService end to end on the real mongod: decide, store, queue and offer a request; the
desk's outcomes; the callback timers on a simulated clock; linked requests; the digital-divide
waitlist; and ageing in the queues.

The service is wired as `routing.app` wires it, with a `FixedClock` and no Kafka: everything
routing produces waits in `routing_outbox` (no relay runs), and the tests read it back through
the wire codec.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import AsyncMongoClient

from routing.assignment import AssignmentStore, RequestStatus
from routing.case import CallFacts
from routing.desk import Desk
from routing.enrolment import CourseSeats
from routing.priority import queue_order
from routing.programme import DigitalDivideProgramme
from routing.rules import DEFAULT_PATH as RULES_PATH
from routing.rules import RuleSet, load_rules, parse_rules
from routing.service import DeskError, RoutingPolicy, RoutingService
from routing.sessions import SessionPlan
from routing.sla import callback_deadline, due_at
from routing.workers import Availability, Worker, worker_hours
from schemas import (
    CallbackDue,
    CallbackSlaBreached,
    Channel,
    ContactAttempted,
    ContactOutcome,
    Disposition,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamRequestReason,
    ExamSchedulingRequested,
    Language,
    ProgrammePlace,
    QualificationLevel,
    RequestFactsRecorded,
    Target,
    TrainingAbandoned,
    TrainingRequestClosed,
    TrainingRequestReceived,
    TrainingRequestRouted,
    decode,
)
from services.calendar import BRUSSELS, BrusselsCalendar
from services.catalogue import Catalogue, load_catalogue
from services.clock import FixedClock
from services.idempotency import ProcessedEvents
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.timers import TimerKind, TimerState, TimerStore
from tests.factories import make_request

pytestmark = pytest.mark.integration

TUESDAY_10 = datetime(2026, 3, 3, 10, 0, tzinfo=BRUSSELS)
"""Tuesday 3 March 2026, 10:00 in Brussels: a plain working day."""
POLICY = load_rules()
"""The shipped policy document, as routing runs it."""
OFFICE_HOURS = worker_hours({day: [("08:30", "17:15")] for day in range(5)})
NEUTRAL_NEED = "Je cherche une formation pour retrouver du travail."


def staff(
    worker_id: str, team: Target, languages: Sequence[Language], skills: Sequence[str] = (), *, supervisor: bool = False
) -> Worker:
    return Worker(
        worker_id=worker_id,
        display_name=worker_id,
        team=team,
        languages=frozenset(languages),
        skills=frozenset(skills),
        working_hours=OFFICE_HOURS,
        availability=Availability.AVAILABLE,
        capacity=2,
        supervisor=supervisor,
    )


FR, NL, EN = Language.FR, Language.NL, Language.EN
ROSTER = [
    staff("en-fr-1", Target.ESPACES_NUMERIQUES, [FR, EN], ["enrolment", "office", "graphics"]),
    staff("en-fr-2", Target.ESPACES_NUMERIQUES, [FR], ["enrolment", "office", "basic_skills"]),
    staff("en-nl-1", Target.ESPACES_NUMERIQUES, [NL], ["enrolment", "office", "graphics"]),
    staff("adv-1", Target.ADVISORS, [FR, NL], ["orientation", "enrolment"]),
    staff("adv-2", Target.ADVISORS, [FR, NL], ["orientation", "enrolment"]),
    staff("adv-sup", Target.ADVISORS, [FR, NL, EN], ["orientation", "enrolment"], supervisor=True),
    staff("dd-1", Target.DIGITAL_DIVIDE, [FR, NL], ["digital_divide", "basic_skills"]),
    staff("cdm-1", Target.CITE_DES_METIERS, [FR, NL, EN], ["orientation"]),
]


async def build_service(
    client: AsyncMongoClient[dict[str, Any]],
    db: MongoDatabase,
    clock: FixedClock,
    *,
    catalogue: Catalogue | None = None,
    rules: RuleSet | None = None,
) -> RoutingService:
    """A RoutingService wired as `routing.app.create_app` wires it, with the test roster."""
    catalogue = catalogue or load_catalogue()
    rules = rules or load_rules()
    policy = RoutingPolicy(rules=rules, calendar=BrusselsCalendar(), catalogue=catalogue)
    processed = ProcessedEvents(client, db, consumer="routing")
    outbox = Outbox(db, "routing_outbox")
    assignment = AssignmentStore(
        client, db, reservation_timeout=rules.desk.reservation_timeout, escalate_after=rules.desk.escalate_after, clock=clock.now
    )
    timers = TimerStore(client, db, clock=clock, owner="routing-test")
    service = RoutingService(
        client,
        db,
        policy=policy,
        clock=clock,
        processed=processed,
        assignment=assignment,
        timers=timers,
        programme=DigitalDivideProgramme(client, db, quota=rules.quotas.digital_divide_per_year, outbox=outbox),
        seats=CourseSeats(client, db, catalogue, clock=clock, outbox=outbox),
        outbox=outbox,
    )
    await processed.ensure_indexes()
    for store in (outbox, assignment, timers, service, service.programme, service.seats):
        await store.ensure_indexes()
    for worker in ROSTER:
        await assignment.upsert_worker(worker)
    return service


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(TUESDAY_10)


@pytest.fixture
async def service(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, clock: FixedClock) -> RoutingService:
    return await build_service(mongo_client, mongo_db, clock)


def received(clock: FixedClock, **overrides: Any) -> TrainingRequestReceived:
    """A request received now, in French, with a need that triggers no rule by itself."""
    fields: dict[str, Any] = {"received_at": clock.now(), "need": NEUTRAL_NEED}
    return make_request(**(fields | overrides))


def april_session(*, capacity: int) -> SessionPlan:
    """An online session in French from 1 April 2026, after the tests' Tuesday 3 March."""
    return SessionPlan(
        starts_on=date(2026, 4, 1), ends_on=date(2026, 5, 27), capacity=capacity, mode="online", language=Language.FR
    )


def phone_call(clock: FixedClock, **overrides: Any) -> TrainingRequestReceived:
    """A caller without a secondary-school certificate: advisors, with a callback deadline."""
    return received(clock, **({"channel": Channel.PHONE, "qualification_level": QualificationLevel.NONE} | overrides))


def course_email(clock: FixedClock, course: str, **overrides: Any) -> TrainingRequestReceived:
    """An e-mail naming a course of the online catalogue: BF espaces numériques."""
    return received(clock, **({"channel": Channel.EMAIL, "requested_course": course} | overrides))


async def outbox_events(db: MongoDatabase, request_id: str | None = None, *, arrivals: bool = False) -> list[Event]:
    """What routing stored for publishing, in publishing order, decoded from the wire.

    Without `arrivals`, the `TrainingRequestRouted` that `route` stores when a request arrives
    is left out: the tests of later steps (desk, timers) look at what those steps added.
    """
    docs = await db["routing_outbox"].find().sort("seq", 1).to_list(None)
    events = [decode(doc["value"], list(doc["headers"].items())) for doc in docs]
    return [
        e
        for e in events
        if (request_id is None or getattr(e, "request_id", None) == request_id)
        and (arrivals or not (isinstance(e, TrainingRequestRouted) and e.source == "/routing"))
    ]


async def routed_output(db: MongoDatabase, request: TrainingRequestReceived) -> list[Event]:
    """What `route` stored in routing's outbox when the request arrived (its relay publishes it)."""
    return [e for e in await outbox_events(db, request.request_id, arrivals=True) if e.source == "/routing"]


async def holder(service: RoutingService, request_id: str) -> str | None:
    """The worker the request is offered to or assigned to, if any."""
    routed = await service.assignment.get_request(request_id)
    assert routed is not None
    return routed.reservation.worker_id if routed.reservation else None


async def accepted(service: RoutingService, request_id: str) -> str:
    """The worker it was offered to accepts it; returns that worker."""
    worker_id = await holder(service, request_id)
    assert worker_id is not None, "the request was offered to nobody"
    assert await service.assignment.accept(request_id, worker_id)
    return worker_id


async def open_count(service: RoutingService, worker_id: str) -> int:
    worker = await service.assignment.get_worker(worker_id)
    assert worker is not None
    return worker.open_count


async def timer_state(service: RoutingService, kind: TimerKind, request_id: str) -> TimerState | None:
    timer = await service.timers.get(kind, request_id)
    return timer.state if timer else None


# --- a request arrives ---------------------------------------------------------------------


async def test_a_phone_request_without_certificate_is_decided_stored_timed_and_offered_once(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    routed = await service.route(request)

    assert routed is not None
    assert (routed.target, routed.rule_id) == (Target.ADVISORS, "phone-no-secondary-certificate")
    assert routed.priority == 75  # no certificate 40, phone 5, the particular attention 30
    assert routed.priority_parts == {"qualification": 40, "phone": 5, "vulnerable": 30}
    # Two working days of 8 h 45: Tuesday 10:00-17:15, Wednesday, then Thursday 08:30-10:00.
    deadline = callback_deadline(TUESDAY_10, service.policy.sla, service.policy.calendar, channel=Channel.PHONE)
    assert deadline == datetime(2026, 3, 5, 10, 0, tzinfo=BRUSSELS)
    # Four hours of opening time earlier: 1 h 30 on Thursday, 2 h 30 on Wednesday.
    due = due_at(deadline, service.policy.sla, service.policy.calendar, received_at=TUESDAY_10)
    assert due == datetime(2026, 3, 4, 14, 45, tzinfo=BRUSSELS)
    assert routed.callback_deadline == deadline
    assert await routed_output(mongo_db, request) == [routed]
    # The request starts the conversation; the case keeps it for the desk and the timers.
    assert (routed.correlation_id, routed.causation_id) == (request.id, request.id)

    decision = await service.decisions.find_one({"_id": request.request_id})
    assert decision is not None
    assert (decision["target"], decision["rule_id"], decision["priority"]) == ("advisors", "phone-no-secondary-certificate", 75)
    assert decision["priority_parts"] == {"qualification": 40, "phone": 5, "vulnerable": 30}
    assert decision["callback_deadline"] == deadline and decision["joined_to"] is None
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None
    assert (case["target"], case["sla"], case["deadline"], case["due_at"]) == ("advisors", "pending", deadline, due)
    assert (case["correlation_id"], case["routed_event_id"]) == (str(request.id), str(routed.id))

    due_timer = await service.timers.get(TimerKind.CALLBACK_DUE, request.request_id)
    breach_timer = await service.timers.get(TimerKind.SLA_BREACH, request.request_id)
    assert due_timer is not None and (due_timer.state, due_timer.fire_at) == (TimerState.PENDING, due)
    assert breach_timer is not None and (breach_timer.state, breach_timer.fire_at) == (TimerState.PENDING, deadline)

    queued = await service.assignment.get_request(request.request_id)
    assert queued is not None and queued.status == RequestStatus.RESERVED and queued.reservation is not None
    advisor = await service.assignment.get_worker(queued.reservation.worker_id)
    assert advisor is not None and advisor.team is Target.ADVISORS and not advisor.supervisor
    assert queued.reservation.expires_at == TUESDAY_10 + POLICY.desk.reservation_timeout

    # Kafka redelivers the same event: nothing is decided, stored, scheduled or offered twice.
    assert await service.route(request) is None
    assert await service.decisions.count_documents({}) == 1
    assert await service.cases.count_documents({}) == 1
    assert await mongo_db["routing_timers"].count_documents({"key": request.request_id}) == 2
    assert await mongo_db["processed_events"].count_documents({}) == 1
    history = [entry["event"] for entry in await service.assignment.history(request.request_id)]
    assert history == ["queued", "reserved"]
    assert sum([w.open_count for w in await service.assignment.list_workers()]) == 1
    assert await holder(service, request.request_id) == advisor.worker_id


async def test_a_named_online_course_goes_to_a_worker_with_its_language_and_skill(
    service: RoutingService, clock: FixedClock
) -> None:
    photoshop_fr = course_email(clock, "PHOTOSHOP")
    excel_nl = course_email(clock, "EXCEL", language=NL)
    excel_fr = course_email(clock, "EXCEL")
    for request in (photoshop_fr, excel_nl, excel_fr):
        routed = await service.route(request)
        assert routed is not None
        assert (routed.target, routed.rule_id, routed.callback_deadline) == (
            Target.ESPACES_NUMERIQUES,
            "named-online-course",
            None,
        )

    photoshop = await service.assignment.get_request(photoshop_fr.request_id)
    assert photoshop is not None and photoshop.required_skills == {"graphics"}
    # Only en-fr-1 speaks French and has the graphics skill.
    assert await holder(service, photoshop_fr.request_id) == "en-fr-1"
    # Only en-nl-1 speaks Dutch.
    assert await holder(service, excel_nl.request_id) == "en-nl-1"
    # Both French workers do office software; the one without an open request gets it.
    assert await holder(service, excel_fr.request_id) == "en-fr-2"


async def test_a_declined_offer_goes_to_another_eligible_worker(service: RoutingService, clock: FixedClock) -> None:
    request = course_email(clock, "EXCEL")
    await service.route(request)
    first = await holder(service, request.request_id)
    assert first == "en-fr-1"

    assert await service.assignment.decline(request.request_id, first)
    assert await service.dispatch_once() == 1

    assert await holder(service, request.request_id) == "en-fr-2"
    assert await open_count(service, first) == 0
    routed = await service.assignment.get_request(request.request_id)
    assert routed is not None and routed.declined_by == {first}


async def test_an_offer_not_accepted_in_time_is_offered_again(service: RoutingService, clock: FixedClock) -> None:
    request = course_email(clock, "EXCEL")
    await service.route(request)
    assert await holder(service, request.request_id) == "en-fr-1"

    clock.advance(POLICY.desk.reservation_timeout / 2)
    assert await service.dispatch_once() == 0
    assert await holder(service, request.request_id) == "en-fr-1"

    clock.advance(POLICY.desk.reservation_timeout)
    assert await service.dispatch_once() == 1
    assert await holder(service, request.request_id) == "en-fr-2"
    assert await open_count(service, "en-fr-1") == 0
    assert not await service.assignment.accept(request.request_id, "en-fr-1")
    history = [entry["event"] for entry in await service.assignment.history(request.request_id)]
    assert history == ["queued", "reserved", "timed_out", "reserved"]


# --- the desk ------------------------------------------------------------------------------


async def test_enrolment_publishes_the_contact_and_the_confirmation_meets_the_sla_and_frees_the_worker(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    await service.seats.plan_session("EXCEL", april_session(capacity=12), session_id="EXCEL-APR-FR")
    request = phone_call(clock, requested_course="EXCEL")
    routed = await service.route(request)
    assert routed is not None and routed.target is Target.ESPACES_NUMERIQUES and routed.callback_deadline is not None
    worker_id = await accepted(service, request.request_id)
    assert await open_count(service, worker_id) == 1
    clock.advance(timedelta(hours=1))

    published = await service.record_outcome(
        request.request_id, worker_id=worker_id, outcome=ContactOutcome.ENROLLED, course_code="excel"
    )

    events = await outbox_events(mongo_db, request.request_id)
    assert events == published
    # The call first, then what came of it and how the request ended (the order `record_outcome`
    # returns and stores them in).
    assert [type(e) for e in events] == [ContactAttempted, EnrolmentConfirmed, TrainingRequestClosed]
    contact, enrolment, ended = events
    assert isinstance(ended, TrainingRequestClosed) and ended.disposition is Disposition.REACHED
    assert isinstance(contact, ContactAttempted) and isinstance(enrolment, EnrolmentConfirmed)
    assert (contact.worker_id, contact.outcome, contact.attempt, contact.next_attempt_at) == (
        worker_id,
        ContactOutcome.ENROLLED,
        1,
        None,
    )
    assert (enrolment.course_code, enrolment.course_title, enrolment.language) == ("EXCEL", "Excel (tableur)", FR)
    assert (enrolment.session_id, enrolment.starts_on) == ("EXCEL-APR-FR", date(2026, 4, 1))
    assert enrolment.person_id == request.person_id
    # One conversation: the routed request caused the call, the call caused the enrolment.
    assert (contact.correlation_id, contact.causation_id) == (request.correlation_id, routed.id)
    assert (enrolment.correlation_id, enrolment.causation_id) == (request.correlation_id, contact.id)

    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None
    assert (case["sla"], case["outcome"], case["attempts"], case["first_contact_at"]) == ("met", "enrolled", 1, clock.now())
    assert await timer_state(service, TimerKind.CALLBACK_DUE, request.request_id) is TimerState.CANCELLED
    assert await timer_state(service, TimerKind.SLA_BREACH, request.request_id) is TimerState.CANCELLED
    closed = await service.assignment.get_request(request.request_id)
    assert closed is not None and closed.status == RequestStatus.CLOSED
    assert await open_count(service, worker_id) == 0
    assert await service.seats.seats_taken("EXCEL") == 1


async def test_a_full_session_puts_the_person_on_the_waitlist_the_call_is_recorded_and_a_drop_out_lets_them_in(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    await service.seats.plan_session("EXCEL", april_session(capacity=1), session_id="EXCEL-APR-FR")
    first, second = course_email(clock, "EXCEL"), course_email(clock, "EXCEL")
    first_routed = await service.route(first)
    await service.route(second)
    assert first_routed is not None
    for request in (first, second):
        worker_id = await accepted(service, request.request_id)
        await service.record_outcome(
            request.request_id, worker_id=worker_id, outcome=ContactOutcome.ENROLLED, course_code="EXCEL"
        )

    events = await outbox_events(mongo_db, second.request_id)
    assert [type(e) for e in events] == [ContactAttempted, EnrolmentWaitlisted, TrainingRequestClosed]
    _, waitlisted, closed = events
    assert isinstance(waitlisted, EnrolmentWaitlisted) and (waitlisted.course_code, waitlisted.session_id) == ("EXCEL", None)
    assert isinstance(closed, TrainingRequestClosed) and closed.disposition is Disposition.REACHED
    assert await service.seats.seats_taken("EXCEL") == 1

    published = await service.seats.finish(first.request_id, completed=False, reason="found_work")

    assert [type(e) for e in published] == [TrainingAbandoned, EnrolmentConfirmed]
    admitted = published[1]
    assert isinstance(admitted, EnrolmentConfirmed)
    assert (admitted.request_id, admitted.session_id, admitted.starts_on) == (second.request_id, "EXCEL-APR-FR", date(2026, 4, 1))
    # The drop-out follows the first request's conversation; the place is the second person's, caused by it.
    assert (published[0].correlation_id, published[0].causation_id) == (first.correlation_id, first_routed.id)
    assert (admitted.correlation_id, admitted.causation_id) == (second.correlation_id, published[0].id)
    assert await service.seats.seats_taken("EXCEL") == 1


async def test_an_outcome_needs_the_request_accepted_by_that_worker(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    await service.route(request)
    offered_to = await holder(service, request.request_id)
    assert offered_to is not None

    with pytest.raises(DeskError, match="accept it first"):
        await service.record_outcome(request.request_id, worker_id=offered_to, outcome=ContactOutcome.ADVICE_GIVEN)
    with pytest.raises(DeskError, match="unknown") as unknown:
        await service.record_outcome("no-such-request", worker_id=offered_to, outcome=ContactOutcome.ADVICE_GIVEN)
    assert unknown.value.status == 404
    assert await outbox_events(mongo_db) == []


async def test_no_answer_records_an_attempt_and_keeps_the_request_with_its_worker(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    routed = await service.route(request)
    assert routed is not None
    worker_id = await accepted(service, request.request_id)

    await service.record_outcome(request.request_id, worker_id=worker_id, outcome=ContactOutcome.NO_ANSWER, notes="messagerie")

    [sealed] = await outbox_events(mongo_db, request.request_id)
    assert isinstance(sealed, ContactAttempted)
    # The notes may hold personal data: they travel sealed with the person's key.
    assert sealed.notes is None and sealed.sealed is not None
    attempt = await service.personal.unseal(sealed)
    assert (attempt.outcome, attempt.attempt, attempt.notes) == (ContactOutcome.NO_ANSWER, 1, "messagerie")
    assert attempt.next_attempt_at == TUESDAY_10 + POLICY.desk.retry_after_no_answer
    assert (attempt.correlation_id, attempt.causation_id) == (request.correlation_id, routed.id)
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and (case["sla"], case["outcome"], case["attempts"], case["first_contact_at"]) == (
        "pending",
        None,
        1,
        None,
    )
    queued = await service.assignment.get_request(request.request_id)
    assert (
        queued is not None and queued.status == RequestStatus.ASSIGNED and await holder(service, request.request_id) == worker_id
    )
    assert await open_count(service, worker_id) == 1
    assert await timer_state(service, TimerKind.SLA_BREACH, request.request_id) is TimerState.PENDING

    # The second try is attempt 2.
    await service.record_outcome(request.request_id, worker_id=worker_id, outcome=ContactOutcome.NO_ANSWER)
    attempts = [e.attempt for e in await outbox_events(mongo_db, request.request_id) if isinstance(e, ContactAttempted)]
    assert attempts == [1, 2]


async def test_the_last_unanswered_call_closes_the_request_as_unreachable_with_the_joined_one_and_frees_the_worker(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    await service.route(request)
    worker_id = await accepted(service, request.request_id)
    joined = phone_call(clock, person_id=request.person_id, linked_request_ids=[request.request_id])
    await service.route(joined)
    assert POLICY.desk.max_attempts == 3

    # Late in the afternoon: the retry is two hours of opening time later, the next morning.
    clock.advance(timedelta(hours=5, minutes=30))
    for _ in range(POLICY.desk.max_attempts):
        await service.record_outcome(request.request_id, worker_id=worker_id, outcome=ContactOutcome.NO_ANSWER)
        planned = [e for e in await outbox_events(mongo_db, request.request_id) if isinstance(e, ContactAttempted)][-1]
        if planned.next_attempt_at is not None:
            assert service.policy.calendar.is_open(planned.next_attempt_at)
            clock.advance(planned.next_attempt_at - clock.now())

    events = await outbox_events(mongo_db, request.request_id)
    attempts = [e for e in events if isinstance(e, ContactAttempted)]
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert attempts[0].next_attempt_at == datetime(2026, 3, 4, 8, 45, tzinfo=BRUSSELS)
    assert attempts[-1].next_attempt_at is None
    [closed] = [e for e in events if isinstance(e, TrainingRequestClosed)]
    assert (closed.disposition, closed.attempts, closed.worker_id) == (Disposition.UNREACHABLE, 3, worker_id)
    assert (closed.correlation_id, closed.causation_id) == (request.correlation_id, attempts[-1].id)
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and (case["disposition"], case["outcome"], case["sla"], case["unanswered"]) == (
        "unreachable",
        "no_answer",
        "met",
        3,
    )
    # The worker is freed, the request closed, and neither request reminds or breaches later.
    routed = await service.assignment.get_request(request.request_id)
    assert routed is not None and routed.status == RequestStatus.CLOSED and await open_count(service, worker_id) == 0
    for request_id in (request.request_id, joined.request_id):
        assert await timer_state(service, TimerKind.SLA_BREACH, request_id) is TimerState.CANCELLED
    [joined_closed] = [e for e in await outbox_events(mongo_db, joined.request_id) if isinstance(e, TrainingRequestClosed)]
    assert (joined_closed.disposition, joined_closed.attempts) == (Disposition.UNREACHABLE, 3)
    with pytest.raises(DeskError):
        await service.record_outcome(request.request_id, worker_id=worker_id, outcome=ContactOutcome.NO_ANSWER)


async def test_a_wrong_number_closes_the_request_at_once_and_frees_the_worker(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    await service.route(request)
    worker_id = await accepted(service, request.request_id)

    events = await service.record_outcome(request.request_id, worker_id=worker_id, outcome=ContactOutcome.WRONG_NUMBER)

    assert [type(e) for e in events] == [ContactAttempted, TrainingRequestClosed]
    [closed] = [e for e in await outbox_events(mongo_db, request.request_id) if isinstance(e, TrainingRequestClosed)]
    assert closed.disposition is Disposition.WRONG_NUMBER and closed.attempts == 1
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and (case["disposition"], case["first_contact_at"]) == ("wrong_number", None)
    assert await open_count(service, worker_id) == 0


async def test_an_exam_wanted_requests_exam_scheduling(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    routed = await service.route(request)
    assert routed is not None
    worker_id = await accepted(service, request.request_id)

    await service.record_outcome(
        request.request_id, worker_id=worker_id, outcome=ContactOutcome.EXAM_WANTED, certification_code="mos-excel"
    )

    contact, exam, _ended = await outbox_events(mongo_db, request.request_id)
    assert isinstance(contact, ContactAttempted) and contact.outcome is ContactOutcome.EXAM_WANTED
    assert isinstance(exam, ExamSchedulingRequested)
    assert (exam.certification_code, exam.reason, exam.person_id) == ("MOS-EXCEL", ExamRequestReason.DESK, request.person_id)
    assert (contact.correlation_id, contact.causation_id) == (request.correlation_id, routed.id)
    assert (exam.correlation_id, exam.causation_id) == (request.correlation_id, contact.id)
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and (case["sla"], case["outcome"]) == ("met", "exam_wanted")


async def test_a_redirection_routes_the_request_again_to_the_other_team_and_offers_it(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    await service.route(request)
    advisor = await accepted(service, request.request_id)

    await service.record_outcome(
        request.request_id, worker_id=advisor, outcome=ContactOutcome.REDIRECTED, redirect_to=Target.CITE_DES_METIERS
    )

    contact, rerouted = await outbox_events(mongo_db, request.request_id)
    assert isinstance(contact, ContactAttempted) and contact.outcome is ContactOutcome.REDIRECTED
    assert isinstance(rerouted, TrainingRequestRouted)
    assert (rerouted.target, rerouted.rule_id, rerouted.priority) == (Target.CITE_DES_METIERS, "desk-redirect", 75)
    assert (rerouted.correlation_id, rerouted.causation_id) == (request.correlation_id, contact.id)
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None
    assert (case["target"], case["redirected_from"], case["outcome"]) == ("cite_des_metiers", "advisors", None)
    assert case["routed_event_id"] == str(rerouted.id)  # what the next call on it follows
    routed = await service.assignment.get_request(request.request_id)
    assert routed is not None and routed.team is Target.CITE_DES_METIERS and routed.status == RequestStatus.RESERVED
    assert await holder(service, request.request_id) == "cdm-1"
    assert await open_count(service, advisor) == 0


# --- the callback timers -------------------------------------------------------------------


async def test_callback_due_is_published_once_the_due_time_passes_before_the_deadline(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    routed = await service.route(request)
    assert routed is not None
    advisor = await accepted(service, request.request_id)
    handlers = service.timer_handlers()

    clock.advance(datetime(2026, 3, 4, 14, 44, tzinfo=BRUSSELS) - clock.now())
    assert await service.timers.run_once(handlers) == 0
    clock.advance(timedelta(minutes=2))
    assert await service.timers.run_once(handlers) == 1
    assert await service.timers.run_once(handlers) == 0

    [due] = await outbox_events(mongo_db, request.request_id)
    assert isinstance(due, CallbackDue)
    assert (due.assignee_id, due.deadline) == (advisor, datetime(2026, 3, 5, 10, 0, tzinfo=BRUSSELS))
    assert (due.correlation_id, due.causation_id) == (request.correlation_id, routed.id)
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and case["sla"] == "pending"
    assert await timer_state(service, TimerKind.SLA_BREACH, request.request_id) is TimerState.PENDING


async def test_a_missed_deadline_publishes_one_breach_to_the_supervisor_and_leaves_the_call_with_its_advisor(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    request = phone_call(clock)
    routed = await service.route(request)
    assert routed is not None
    advisor = await accepted(service, request.request_id)
    handlers = service.timer_handlers()

    clock.advance(datetime(2026, 3, 5, 10, 1, tzinfo=BRUSSELS) - clock.now())
    assert await service.timers.run_once(handlers) == 2  # the reminder, late, then the breach
    assert await service.timers.run_once(handlers) == 0

    breaches = [e for e in await outbox_events(mongo_db, request.request_id) if isinstance(e, CallbackSlaBreached)]
    assert len(breaches) == 1
    assert (breaches[0].escalated_to, breaches[0].assignee_id) == (
        "adv-sup",
        advisor,
    )  # the team's supervisor on the roster, by name
    assert breaches[0].deadline == datetime(2026, 3, 5, 10, 0, tzinfo=BRUSSELS)
    assert (breaches[0].correlation_id, breaches[0].causation_id) == (request.correlation_id, routed.id)
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and (case["sla"], case["escalated_to"]) == ("breached", "adv-sup")
    [row] = [r for r in await Desk(service).team_board(routed.target) if r.request_id == request.request_id]
    assert (row.urgency, row.escalated_to, row.dispatch_rank) == ("breached", "adv-sup", 1)

    # The advisor who holds the call keeps it: the supervisor is alerted, not handed the call.
    for _ in range(2):
        await service.dispatch_once()
        held = await service.assignment.get_request(request.request_id)
        assert held is not None and held.status == RequestStatus.ASSIGNED
        assert held.reservation is not None and held.reservation.worker_id == advisor
    assert "reassigned" not in [h["event"] for h in await service.assignment.history(request.request_id)]


async def test_a_backlog_arriving_past_its_deadlines_is_spread_over_the_team_ahead_of_fresh_calls(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    """After an outage or a replay, requests arrive already late: each is alerted once and heads
    its team's queue, shared by the team's advisors as usual, never piled onto the supervisor."""
    for worker in ROSTER:
        await service.assignment.set_availability(worker.worker_id, Availability.OFFLINE)
    received_at = clock.now()
    backlog = [phone_call(clock) for _ in range(4)]
    clock.advance(timedelta(days=6))  # the outage ends on Monday: the backlog is routed days late
    fresh = phone_call(clock)
    for request in [*backlog, fresh]:
        await service.route(request)
    assert all(r.received_at == received_at for r in backlog)

    assert await service.timers.run_once(service.timer_handlers()) >= len(backlog)
    breaches = [e for e in await outbox_events(mongo_db) if isinstance(e, CallbackSlaBreached)]
    assert sorted(e.request_id for e in breaches) == sorted(r.request_id for r in backlog)
    assert {e.escalated_to for e in breaches} == {"adv-sup"}

    queue = await service.assignment.queued(Target.ADVISORS, key=service.queue_key(clock.now()))
    assert [r.request_id for r in queue][-1] == fresh.request_id  # late ones first

    advisors = [w.worker_id for w in ROSTER if w.team is Target.ADVISORS and not w.supervisor]
    for worker_id in advisors:
        await service.assignment.set_availability(worker_id, Availability.AVAILABLE)
    await service.dispatch_once()
    holders = {r.request_id: await holder(service, r.request_id) for r in backlog}
    assert set(holders.values()) <= set(advisors), holders
    assert all(holders.values()), holders
    for request in backlog:
        history = [h["event"] for h in await service.assignment.history(request.request_id)]
        assert "reassigned" not in history and not any(e.startswith("escalated") for e in history), history


# --- linked requests -----------------------------------------------------------------------


async def test_a_linked_request_joins_the_open_request_of_the_same_person(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    first = phone_call(clock)
    await service.route(first)
    advisor = await accepted(service, first.request_id)
    clock.advance(timedelta(hours=1))
    second = course_email(clock, "EXCEL", person_id=first.person_id, linked_request_ids=[first.request_id])

    routed = await service.route(second)

    assert routed is not None and routed.rule_id == "joins-open-request"
    assert first.request_id[:8] in routed.explanation
    decision = await service.decisions.find_one({"_id": second.request_id})
    case = await service.cases.find_one({"_id": second.request_id})
    assert decision is not None and decision["joined_to"] == first.request_id
    assert case is not None and case["joined_to"] == first.request_id
    assert await service.assignment.get_request(second.request_id) is None
    assert await mongo_db["routing_requests"].count_documents({}) == 1
    assert await service.dispatch_once() == 0
    assert await open_count(service, advisor) == 1


async def test_a_joined_phone_request_keeps_its_promise_when_the_person_is_reached(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    first = phone_call(clock)
    await service.route(first)
    advisor = await accepted(service, first.request_id)
    clock.advance(timedelta(hours=1))
    second = phone_call(clock, person_id=first.person_id, linked_request_ids=[first.request_id])
    routed = await service.route(second)
    assert routed is not None and routed.rule_id == "joins-open-request" and routed.callback_deadline is not None

    clock.advance(timedelta(hours=1))
    await service.record_outcome(first.request_id, worker_id=advisor, outcome=ContactOutcome.ADVICE_GIVEN)

    # The person was called back: neither request reminds or breaches later.
    clock.advance(timedelta(days=7))
    assert await service.timers.run_once(service.timer_handlers()) == 0
    assert not [e for e in await outbox_events(mongo_db) if isinstance(e, CallbackDue | CallbackSlaBreached)]
    case = await service.cases.find_one({"_id": second.request_id})
    assert case is not None and (case["sla"], case["first_contact_at"]) == ("met", TUESDAY_10 + timedelta(hours=2))


# --- the digital-divide programme ----------------------------------------------------------


def closed_programme_to_advisors_rules() -> RuleSet:
    """The shipped rules as a deployment could change them (ROUTING_RULES_PATH): people without
    equipment go to an advisor while the programme is closed, instead of its waitlist."""
    data = yaml.safe_load(Path(RULES_PATH).read_text(encoding="utf-8"))
    [index] = [i for i, r in enumerate(data["rules"]) if r["id"] == "no-equipment-digital-divide"]
    to_programme = data["rules"][index]
    no_equipment = to_programme["when"]
    to_programme["when"] = {"all": [no_equipment, {"digital_divide_open": True}]}
    to_advisor = {
        "id": "no-equipment-programme-closed",
        "when": no_equipment,
        "target": "advisors",
        "explanation": {
            "fr": "Pas d'équipement et le programme fracture numérique est fermé : un conseiller cherche une solution.",
            "nl": "Geen uitrusting en het programma digitale kloof is gesloten: een adviseur zoekt een oplossing.",
            "en": "No equipment and the digital-divide programme is closed: an advisor looks for a workaround.",
        },
    }
    data["rules"].insert(index + 1, to_advisor)
    data["version"] += "-closed-to-advisors"
    return parse_rules(data, source="closed-programme-to-advisors rules")


async def test_a_suspended_programme_waitlists_people_who_stay_in_an_advisors_queue_until_it_resumes(
    service: RoutingService, clock: FixedClock
) -> None:
    # The shipped rules: people without equipment go to the programme even while it is suspended;
    # meanwhile they wait in an advisor's queue, and keep their place on its waitlist.
    await service.programme.suspend(2026)
    for advisor in ("adv-1", "adv-2", "adv-sup"):
        await service.assignment.set_availability(advisor, Availability.BUSY)
    low = received(clock, has_computer=False, qualification_level=QualificationLevel.HIGHER)
    clock.advance(timedelta(minutes=5))
    high = received(clock, has_computer=False, qualification_level=QualificationLevel.NONE)
    for request in (low, high):
        routed = await service.route(request)
        assert routed is not None and (routed.target, routed.rule_id) == (Target.DIGITAL_DIVIDE, "no-equipment-digital-divide")
        assert routed.programme is ProgrammePlace.WAITLISTED_SUSPENDED

    for request in (low, high):
        case = await service.cases.find_one({"_id": request.request_id})
        assert case is not None and case["programme"] == "waitlisted"
        queued = await service.assignment.get_request(request.request_id)
        assert queued is not None and queued.team is Target.ADVISORS
    assert [w["_id"] for w in await service.programme.waitlist(2026)] == [high.request_id, low.request_id]
    # Both wait in the advisors' queue: the advisors are all on the phone.
    assert {await holder(service, r.request_id) for r in (low, high)} == {None}

    status, admitted = await service.programme.resume(2026)
    await service.admit_waiting(admitted)

    assert admitted == [high.request_id, low.request_id]
    assert (status.admitted, status.waiting) == (2, 0)
    for request in (low, high):
        case = await service.cases.find_one({"_id": request.request_id})
        assert case is not None and case["programme"] == "admitted"
        # Nobody held them: the programme's team takes them over.
        assert await holder(service, request.request_id) == "dd-1"


async def test_a_caller_without_a_computer_keeps_an_advisor_callback_within_the_promise_and_a_place_on_top(
    service: RoutingService, clock: FixedClock
) -> None:
    for suspended in (False, True):
        if suspended:
            await service.programme.suspend(2026)
        call = phone_call(clock, has_computer=False)

        routed = await service.route(call)

        assert routed is not None and routed.target is Target.DIGITAL_DIVIDE and routed.callback_deadline is not None
        assert routed.programme is (ProgrammePlace.WAITLISTED_SUSPENDED if suspended else ProgrammePlace.ADMITTED)
        queued = await service.assignment.get_request(call.request_id)
        assert queued is not None and queued.team is Target.ADVISORS and queued.deadline == routed.callback_deadline
        assert await holder(service, call.request_id) in {"adv-1", "adv-2", "adv-sup"}


async def test_joining_a_request_never_leaves_the_caller_without_somebody_due_to_call(
    service: RoutingService, clock: FixedClock
) -> None:
    # A web request without a computer, while the programme is suspended: it waits with the advisors.
    await service.programme.suspend(2026)
    web = received(clock, has_computer=False)
    await service.route(web)
    clock.advance(timedelta(hours=1))
    # The same person calls the free line: the call joins the open web request...
    call = phone_call(
        clock, person_id=web.person_id, linked_request_ids=[web.request_id], qualification_level=QualificationLevel.NONE
    )

    routed = await service.route(call)

    assert routed is not None and routed.rule_id == "joins-open-request"
    # ...whose queue entry now carries the call's promise and the higher score.
    joined = await service.assignment.get_request(web.request_id)
    assert joined is not None and joined.team is Target.ADVISORS
    assert joined.deadline == routed.callback_deadline and joined.priority == max(routed.priority, joined.priority)
    assert joined.priority >= routed.priority


async def test_facts_recorded_on_a_joined_request_keep_the_joining_callers_promise_in_the_queue(
    service: RoutingService, clock: FixedClock
) -> None:
    # A web request (no promise) joined by a phone call (a 48-hour promise and a higher score).
    web = received(clock, has_computer=True)
    await service.route(web)
    clock.advance(timedelta(hours=1))
    call = phone_call(
        clock, person_id=web.person_id, linked_request_ids=[web.request_id], qualification_level=QualificationLevel.NONE
    )
    routed = await service.route(call)
    assert routed is not None and routed.rule_id == "joins-open-request" and routed.callback_deadline is not None
    before = await service.assignment.get_request(web.request_id)
    assert before is not None and before.deadline == routed.callback_deadline

    # The advisor then records what the person said about the web request: it is scored again...
    await service.record_facts(web.request_id, facts=CallFacts(has_internet=True), recorded_by="adv-1")

    # ...and its queue entry still carries the caller's deadline and score, not the web request's own.
    after = await service.assignment.get_request(web.request_id)
    assert after is not None
    assert after.deadline == routed.callback_deadline
    assert after.priority >= routed.priority


async def test_a_rule_set_that_reads_the_programme_state_sends_people_to_an_advisor_while_it_is_suspended(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    # The service gives the rules the programme's state of the moment.
    service = await build_service(mongo_client, mongo_db, clock, rules=closed_programme_to_advisors_rules())
    await service.programme.suspend(2026)
    request = received(clock, has_computer=False)

    routed = await service.route(request)

    assert routed is not None and (routed.target, routed.rule_id) == (Target.ADVISORS, "no-equipment-programme-closed")
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and case["programme"] is None
    assert await service.programme.waitlist(2026) == []
    assert await holder(service, request.request_id) == "adv-1"

    await service.programme.resume(2026)
    reopened = await service.route(received(clock, has_computer=False))
    assert reopened is not None and (reopened.target, reopened.rule_id) == (Target.DIGITAL_DIVIDE, "no-equipment-digital-divide")


async def test_a_redelivery_after_the_programme_reopens_keeps_the_first_decision(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    # A rule set under which the programme's state changes the decision (the shipped one reads
    # no state): the redelivery would be decided otherwise, and must not be.
    service = await build_service(mongo_client, mongo_db, clock, rules=closed_programme_to_advisors_rules())
    await service.programme.suspend(2026)
    request = received(clock, has_computer=False)
    routed = await service.route(request)
    assert routed is not None and routed.target is Target.ADVISORS
    await service.programme.resume(2026)

    assert await service.route(request) is None

    # Routed to an advisor the first time: the redelivery takes no place in the programme.
    assert (await service.programme.status(2026)).admitted == 0
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and (case["target"], case["programme"]) == ("advisors", None)
    assert await holder(service, request.request_id) == "adv-1"


async def test_a_redelivery_after_a_crash_before_the_commit_routes_the_request_with_one_place(
    service: RoutingService, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = received(clock, has_computer=False)

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the replica died before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(service.processed, "run_once", crash)
        with pytest.raises(ConnectionError):
            await service.route(request)
    assert await service.decisions.find_one({"_id": request.request_id}) is None

    routed = await service.route(request)

    assert routed is not None and routed.programme is ProgrammePlace.ADMITTED
    assert (await service.programme.status(2026)).admitted == 1
    case = await service.cases.find_one({"_id": request.request_id})
    assert case is not None and case["programme"] == "admitted"


# --- ageing ---------------------------------------------------------------------------------


async def test_ageing_puts_an_old_low_priority_request_ahead_of_a_fresh_high_priority_one(
    service: RoutingService, clock: FixedClock
) -> None:
    for worker in ROSTER:
        if worker.team is Target.ADVISORS:
            await service.assignment.set_availability(worker.worker_id, Availability.OFFLINE)
    old = received(clock, channel=Channel.WEB, qualification_level=QualificationLevel.HIGHER)
    await service.route(old)
    clock.advance(timedelta(hours=46))  # Thursday 08:00; the advisors' day starts at 08:30
    earlier = phone_call(clock)
    await service.route(earlier)
    clock.advance(timedelta(hours=2))
    fresh = phone_call(clock)
    await service.route(fresh)

    queue = await service.assignment.queued(Target.ADVISORS, key=service.queue_key(clock.now()))
    # Effective priorities now: 0 + 2 x 48 h, 75 + 2 x 2 h, 75 + 0.
    assert [(r.request_id, r.priority) for r in queue] == [(old.request_id, 0), (earlier.request_id, 75), (fresh.request_id, 75)]
    # Without ageing both high-priority requests would go first.
    no_ageing = service.policy.rules.priority.model_copy(update={"ageing_per_hour": 0.0})
    assert [
        r.request_id
        for r in sorted(
            queue,
            key=lambda r: queue_order(
                r.priority, waiting_since=r.created_at, deadline=r.deadline, now=clock.now(), weights=no_ageing
            ),
        )
    ] == [earlier.request_id, fresh.request_id, old.request_id]

    # The dispatcher serves that order: one advisor with room for two takes the first two.
    await service.assignment.set_availability("adv-1", Availability.AVAILABLE)
    assert await service.dispatch_once() == 2
    assert await holder(service, old.request_id) == "adv-1"
    assert await holder(service, earlier.request_id) == "adv-1"
    assert await holder(service, fresh.request_id) is None


# --- facts learned at the desk ---------------------------------------------------------------


async def test_facts_recorded_at_the_desk_rescore_the_request_and_the_queue_order_follows(
    service: RoutingService, mongo_db: MongoDatabase, clock: FixedClock
) -> None:
    for advisor in ("adv-1", "adv-2", "adv-sup"):
        await service.assignment.set_availability(advisor, Availability.BUSY)
    # Two callers the phone menu told nothing about: the first called first ranks first.
    first = phone_call(clock, qualification_level=None)
    await service.route(first)
    clock.advance(timedelta(minutes=1))
    second = phone_call(clock, qualification_level=None)
    await service.route(second)
    ahead = await service.assignment.queued(Target.ADVISORS, key=service.queue_key(clock.now()))
    assert [r.request_id for r in ahead] == [first.request_id, second.request_id]

    # The supervisor, on the phone with the second caller: no diploma, no computer at home.
    facts = CallFacts(qualification_level=QualificationLevel.NONE, has_computer=False)
    recorded = await service.record_facts(second.request_id, facts=facts, recorded_by="adv-sup")

    assert recorded is not None and recorded.fact_sources == {"qualification_level": "desk", "has_computer": "desk"}
    ahead = await service.assignment.queued(Target.ADVISORS, key=service.queue_key(clock.now()))
    assert [r.request_id for r in ahead] == [second.request_id, first.request_id]
    assert ahead[0].priority == recorded.priority
    [published] = [e for e in await outbox_events(mongo_db, second.request_id) if isinstance(e, RequestFactsRecorded)]
    assert published.id == recorded.id
    # The supervisor's board: the dispatcher's order, the parts, and where each fact came from.
    board = await Desk(service).team_board(Target.ADVISORS)
    assert [(r.request_id, r.dispatch_rank) for r in board] == [(second.request_id, 1), (first.request_id, 2)]
    assert board[0].priority_parts == recorded.priority_parts and board[0].score == recorded.priority
    assert board[0].fact_sources == {"qualification_level": "desk", "has_computer": "desk"}
    # Said again: nothing changes, nothing is published.
    assert await service.record_facts(second.request_id, facts=facts, recorded_by="adv-sup") is None
