"""Routing's use cases, between the handlers (Kafka, HTTP, timers) and the stores.

Each method translates one thing that happened - a request arrived, a timer fired, an advisor
recorded a call - into decisions (pure code in `decision`, `sla`, `workers`) and state changes,
and the events they produce go out through the routing outbox in the same MongoDB transaction
as the state change that caused them. A request's case is a typed aggregate (`routing.case`):
each use case loads it, decides purely and saves the result with its effects through a
`CaseStore` unit of work (`routing.case_repository`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from routing.assignment import Assignments, QueuedRequest, QueueKey, RequestStatus, RoutedRequest
from routing.batches import FailedRequest, RequestNotRoutedYet, offer_order, split_batch
from routing.case import (
    AdmitToProgramme,
    AskPartner,
    CallFacts,
    Case,
    ChooseSlot,
    Command,
    ConfirmContact,
    CorrectDetails,
    DeskError,
    Effects,
    EnrolledCourse,
    Erase,
    KeepPromiseOfJoined,
    MarkBreached,
    MarkCallbackDue,
    MarkPartnerOverdue,
    Opening,
    RecordContact,
    RecordFacts,
    RecordPartnerAnswer,
    Redirect,
    Withdraw,
    decide,
    open_case,
    slot_refusal,
)
from routing.case_repository import CASES_COLLECTION, CaseStore, CaseUnitOfWork, MongoCaseStore
from routing.decision import RouteDecision, RoutingState, decide_route
from routing.enrolment import CourseSeats, EnrolmentError
from routing.placement import callback_team, team_after_admission
from routing.priority import effective_priority, queue_order
from routing.programme import DigitalDivideProgramme
from routing.rules import RuleSet
from routing.sla import SlaPolicy, callback_deadline, due_at, later_by
from schemas import (
    CallbackSlaBreached,
    CallbackSlotChosen,
    ContactOutcome,
    Event,
    ProgrammePlace,
    RequestDetailsCorrected,
    RequestFactsRecorded,
    Target,
    TrainingRequestReceived,
    TrainingRequestRouted,
    TrainingRequestWithdrawn,
)
from schemas import Disposition as RequestDisposition
from services.calendar import BrusselsCalendar
from services.catalogue import Catalogue
from services.clock import Clock
from services.idempotency import ProcessedEvents
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.retries import Disposition, classify
from services.timers import Timer, TimerKind, TimerStore
from services.tracing import attached, carrier, outgoing_context

__all__ = ["DeskError", "PersonEvent", "RequestNotRoutedYet", "RoutingPolicy", "RoutingService", "required_skills"]

PersonEvent = CallbackSlotChosen | TrainingRequestWithdrawn | RequestDetailsCorrected
"""What the person does about their request (status page, phone menu), on the requests topic."""


log = structlog.get_logger(__name__)

_SKILL_BY_COURSE_KIND = {"software_path": "office", "design_path": "graphics", "basic_skills": "basic_skills"}


@dataclass
class RoutingPolicy:
    """What routing decides with: the policy document (`rules`) and the reference data beside it."""

    rules: RuleSet
    calendar: BrusselsCalendar
    catalogue: Catalogue
    team_sizes: dict[Target, int] = field(default_factory=dict)

    @property
    def sla(self) -> SlaPolicy:
        return self.rules.sla

    @property
    def retry_after_no_answer(self) -> timedelta:
        return self.rules.desk.retry_after_no_answer

    @property
    def max_attempts(self) -> int:
        return self.rules.desk.max_attempts


def required_skills(decision: RouteDecision, request: TrainingRequestReceived, catalogue: Catalogue) -> frozenset[str]:
    """Skills a worker needs for this request: the course family for the online team."""
    if decision.target is Target.ESPACES_NUMERIQUES and request.requested_course:
        course = catalogue.course(request.requested_course)
        if course and (skill := _SKILL_BY_COURSE_KIND.get(course.kind)):
            return frozenset({skill})
    return frozenset()


@dataclass(frozen=True)
class _Plan:
    """What `route` decides for a request, before anything is stored."""

    request: TrainingRequestReceived
    decision: RouteDecision
    team: Target
    skills: frozenset[str]
    """The skills the team's worker needs: none when the request waits for a team other than its target."""
    deadline: datetime | None
    opening: Opening
    place: ProgrammePlace | None = None
    joined_to: str | None = None

    def queued(self) -> QueuedRequest:
        """The entry of the team's queue."""
        return QueuedRequest(
            self.request.request_id, self.team, self.request.language, self.skills, self.decision.priority, self.deadline
        )

    def log_routed(self) -> None:
        log.info(
            "request.routed",
            request_id=self.request.request_id,
            target=self.decision.target.value,
            queued_to=self.team.value,
            rule_id=self.opening.routed.rule_id,
            priority=self.decision.priority,
            joined_to=self.joined_to,
            programme=self.place.value if self.place else None,
        )


class RoutingService:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: MongoDatabase,
        *,
        policy: RoutingPolicy,
        clock: Clock,
        processed: ProcessedEvents,
        assignment: Assignments,
        timers: TimerStore,
        programme: DigitalDivideProgramme,
        seats: CourseSeats,
        outbox: Outbox,
        personal: PersonalData | None = None,
        case_store: CaseStore | None = None,
    ) -> None:
        self._client = client
        self.personal = personal or PersonalData(PersonKeys(db))
        self.policy = policy
        self.clock = clock
        self.processed = processed
        self.assignment = assignment
        self.timers = timers
        self.programme = programme
        self.seats = seats
        self.outbox = outbox
        self.decisions = db["routing_decisions"]
        self._rules_read_programme = "digital_divide_open" in policy.rules.model_dump_json(by_alias=True)
        self.case_store = case_store or MongoCaseStore(client, db, outbox=outbox, timers=timers, personal=self.personal)
        # The documents, for readers (the desk, reports); changes go through `case_store`.
        self.cases = db[CASES_COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.cases.create_index("person_id", name="by_person")
        await self.decisions.create_index("decided_at", name="by_time")

    # --- a request arrives -------------------------------------------------------------------

    async def route(self, request: TrainingRequestReceived) -> TrainingRequestRouted | None:
        """Decide, store and queue a request once; returns the routed event when it was new."""
        # The desk needs the contact details: routing is one of the services that hold the keys.
        request = await self.personal.unseal(request)
        decision, deadline, due = self._decide(request, await self._routing_state(request.received_at.year))
        joined_to = await self._open_linked_request(request)
        place = None
        if decision.target is Target.DIGITAL_DIVIDE and not joined_to and not await self._decided(request.request_id):
            # Before the transaction, so that the routed event can tell the person where they stand;
            # idempotent (one membership per person and year, one waitlist entry per request), so a
            # redelivery after a crash asks again and gets the same answer or a better one.
            place = await self._programme_place(request, decision)
        plan = self._plan(request, decision, deadline, due, place=place, joined_to=joined_to)
        routed = plan.opening.routed

        async def effect(session: AsyncClientSession) -> list[Event]:
            await self.decisions.insert_one(_decision_document(plan, self.clock.now()), session=session)
            uow = self.case_store.within(session)
            await uow.cases.add(plan.opening.case)
            await uow.apply(plan.opening.effects)
            if not joined_to:
                await self.assignment.add_request(
                    request.request_id, plan.team, request.language, plan.skills, decision.priority, deadline, session=session
                )
            return [routed]

        outcome = await self.processed.run_once(request, effect, outbox=self.outbox)
        if outcome.applied:
            plan.log_routed()
        if joined_to:
            # The request it joined is called for both: as urgently as the more urgent of the two.
            # Idempotent (a no-op once done), so a redelivery repairs a crash before it.
            await self._keep_joined_promise(joined_to, decision.priority, deadline)
        await self.assignment.offer_next(request.request_id)
        return routed if outcome.applied else None

    async def _routing_state(self, year: int) -> RoutingState:
        return RoutingState(digital_divide_open=await self._programme_open(year), team_sizes=self.policy.team_sizes)

    def _decide(
        self, request: TrainingRequestReceived, state: RoutingState
    ) -> tuple[RouteDecision, datetime | None, datetime | None]:
        """The rules' decision, the callback deadline and when the callback falls due."""
        decision = decide_route(request, rules=self.policy.rules, state=state, now=request.received_at)
        sla = self.policy.sla.for_kind(request.kind)  # a learner question has its own, shorter promise
        deadline = callback_deadline(request.received_at, sla, self.policy.calendar, channel=request.channel, kind=request.kind)
        due = due_at(deadline, sla, self.policy.calendar, received_at=request.received_at) if deadline else None
        return decision, deadline, due

    def _plan(
        self,
        request: TrainingRequestReceived,
        decision: RouteDecision,
        deadline: datetime | None,
        due: datetime | None,
        *,
        place: ProgrammePlace | None = None,
        joined_to: str | None = None,
    ) -> _Plan:
        """Which team calls, with which skills, and the case opened for the decision."""
        team = callback_team(decision.target, place, promised=deadline is not None)
        skills = required_skills(decision, request, self.policy.catalogue) if team is decision.target else frozenset()
        opening = open_case(request, decision, joined_to=joined_to, deadline=deadline, due=due, programme=place)
        return _Plan(request, decision, team, skills, deadline, opening, place, joined_to)

    async def route_batch(self, requests: Sequence[TrainingRequestReceived]) -> list[FailedRequest]:
        """Route a batch of requests with the effects `route` gives each: those it can route together
        in one transaction with bulk writes, the rest (`routing.batches.split_batch`, and requests
        sent to the digital-divide programme) one by one through `route` after them.

        Returns the requests whose routing failed, with their error, for the caller to retry or
        dead-letter as it does a request routed alone. A failure of the shared transaction that is
        not the infrastructure's (a request the bulk write refuses, a replica that processed one
        meanwhile) routes the batch one by one instead, so that one bad request holds up no other.
        An infrastructure failure (MongoDB unreachable) is raised: the whole batch comes again.
        """
        split = split_batch(requests, await self.processed.seen_among(request.id for request in requests))
        alone = split.alone
        if split.together:
            try:
                plans = await self._plan_together(split.together)
                routed_together = [plan for plan in plans if plan.decision.target is not Target.DIGITAL_DIVIDE]
                await self._commit_together(routed_together)
            except Exception as error:
                if classify(error) is Disposition.RETRY_IN_PLACE:
                    raise
                log.warning("routing.batch_routed_one_by_one", requests=len(requests), error_type=type(error).__name__)
                return await self._route_alone(list(requests))
            # A programme place is taken before the transaction that records it: one by one, in order.
            alone = [plan.request for plan in plans if plan.decision.target is Target.DIGITAL_DIVIDE] + alone
            for plan in routed_together:
                with attached(outgoing_context(plan.request.id)):  # the line in the request's trace
                    plan.log_routed()
            await self._offer_together(routed_together)
        return await self._route_alone(alone)

    async def _route_alone(self, requests: Sequence[TrainingRequestReceived]) -> list[FailedRequest]:
        failed: list[FailedRequest] = []
        for request in requests:
            try:
                await self.route(request)
            except Exception as error:
                if classify(error) is Disposition.RETRY_IN_PLACE:
                    raise
                failed.append(FailedRequest(request, error))
        return failed

    async def _plan_together(self, requests: Sequence[TrainingRequestReceived]) -> list[_Plan]:
        """Decide each request as `route` does, the keys and the programme's state read once for all."""
        unsealed = await self.personal.unseal_many(requests)
        states = {year: await self._routing_state(year) for year in sorted({request.received_at.year for request in unsealed})}
        return [self._plan(request, *self._decide(request, states[request.received_at.year])) for request in unsealed]

    async def _commit_together(self, plans: Sequence[_Plan]) -> None:
        """Write what `route` writes for each plan - processed-event record, decision, case, timers,
        outbox entry, queue entry - in one transaction, one bulk write per collection."""
        if not plans:
            return

        async def transaction(session: AsyncClientSession) -> None:
            now = self.clock.now()
            # The processed-events records first, as in `ProcessedEvents.run_once`: a replica that
            # processed one of these meanwhile makes the transaction fail before anything else.
            await self.processed.record_many([(plan.request, [plan.opening.routed]) for plan in plans], session=session)
            await self.decisions.insert_many(
                [_decision_document(plan, now) for plan in plans],
                ordered=True,
                session=session,
            )
            uow = self.case_store.within(session)
            await uow.cases.add_many([plan.opening.case for plan in plans])
            await uow.apply_all([plan.opening.effects for plan in plans])
            await self.outbox.add([plan.opening.routed for plan in plans], session=session)
            await self.assignment.add_requests([plan.queued() for plan in plans], session=session)

        async with self._client.start_session() as session:
            await session.with_transaction(transaction)

    async def _offer_together(self, plans: Sequence[_Plan]) -> None:
        """Offer the requests just queued, most urgent first, in one transaction
        (`Assignments.offer_together`): those nobody is free for wait for the dispatcher."""
        ordered = sorted(
            plans, key=lambda p: offer_order(p.decision.priority, p.deadline, p.request.received_at, p.request.request_id)
        )
        await self.assignment.offer_together([plan.request.request_id for plan in ordered])

    async def _decided(self, request_id: str) -> bool:
        """Whether a first delivery already routed this request: a redelivery takes no programme place
        (the first decision stands, whatever the programme's state is now)."""
        return await self.decisions.find_one({"_id": request_id}, {"_id": 1}) is not None

    async def _programme_open(self, year: int) -> bool:
        """Whether the digital-divide programme takes people - read only when the rule set looks at
        it (the shipped one does not: it waitlists instead), since it costs two round trips."""
        if not self._rules_read_programme:
            return True
        return (await self.programme.status(year)).open

    async def _open_linked_request(self, request: TrainingRequestReceived) -> str | None:
        """An earlier request of the same person still open and in a worker's queue: the new one joins
        it (one advisor per person). One that waits in no queue (a waitlist entry routed before
        waitlisted people kept an advisor) is not joined: that would leave both without a caller."""
        if not request.linked_request_ids:
            return None
        linked = await self.case_store.within(None).cases.open_linked(request.linked_request_ids)
        if linked is None:
            return None
        queued = await self.assignment.get_request(linked.request_id)
        return linked.request_id if queued is not None and queued.status != RequestStatus.CLOSED else None

    async def _keep_joined_promise(self, joined_to: str, priority: int, deadline: datetime | None) -> None:
        queued = await self.assignment.get_request(joined_to)
        if queued is None or queued.status == RequestStatus.CLOSED:
            return
        deadlines = [d for d in (queued.deadline, deadline) if d is not None]
        await self.assignment.reprioritise(
            joined_to,
            max(queued.priority, priority),
            min(deadlines) if deadlines else None,
            reason="a request of the same person joined it",
        )

    async def _programme_place(self, request: TrainingRequestReceived, decision: RouteDecision) -> ProgrammePlace:
        year = request.received_at.year
        earlier: list[str] = []
        admitted = await self.programme.admit_or_waitlist(
            year=year,
            request_id=request.request_id,
            person_id=request.person_id,
            priority=decision.priority,
            since=request.received_at,
            admitted_before=earlier,
        )
        # Those waiting went first (the waitlist carried into a new year, a place freed meanwhile).
        await self.admit_waiting([r for r in earlier if r != request.request_id])
        if admitted:
            return ProgrammePlace.ADMITTED
        status = await self.programme.status(year)
        log.info("programme.waitlisted", request_id=request.request_id, priority=decision.priority, suspended=status.suspended)
        return ProgrammePlace.WAITLISTED_SUSPENDED if status.suspended else ProgrammePlace.WAITLISTED_FULL

    async def admit_waiting(self, request_ids: Sequence[str]) -> None:
        """Requests just admitted from the programme's waitlist: the case records the place, and the
        programme's team takes over those no advisor holds or promised to call (`team_after_admission`)."""
        for request_id in request_ids:
            admitted = await self._change(request_id, AdmitToProgramme(admitted=True))
            if admitted is None:
                continue
            case = admitted[0]
            if case.disposition is RequestDisposition.WITHDRAWN:
                continue  # nobody is to call a person who withdrew

            queued = await self.assignment.get_request(request_id)
            if queued is None:
                # Waitlisted before waitlisted people kept an advisor: in no queue until now.
                await self.assignment.add_request(
                    request_id, Target.DIGITAL_DIVIDE, case.language, (), case.priority, case.deadline
                )
            else:
                team = team_after_admission(
                    promised=case.deadline is not None,
                    queued=queued.status == RequestStatus.QUEUED,
                    closed=queued.status == RequestStatus.CLOSED,
                )
                if team is not None:
                    await self.assignment.requeue(request_id, team, reason="admitted to the digital-divide programme")
            await self.assignment.offer_next(request_id)

    # --- what the person does about their request -------------------------------------------

    async def apply_person_event(self, event: PersonEvent) -> Case | None:
        """Apply one of the person's events once (processed-events record, case, timers and outbox in
        one transaction), then bring the request's queue entry in line with its case (idempotent, so
        a redelivery after a crash repairs it). Raises `RequestNotRoutedYet` when routing has no case
        of the request yet. Returns the case as it stands, or None when the event changes nothing."""
        match event:
            case CallbackSlotChosen():
                return await self.choose_slot(event)
            case TrainingRequestWithdrawn():
                return await self.withdraw(event)
            case RequestDetailsCorrected():
                return await self.correct_details(event)

    async def choose_slot(self, event: CallbackSlotChosen) -> Case | None:
        """The person chose a window: the deadline follows it (`routing.case.ChooseSlot`) and the
        request is offered when the window opens. A window outside the opening hours is ignored,
        with the reason logged; the request keeps its place and its promise."""
        now = self.clock.now()
        if reason := slot_refusal(event.slot_start, event.slot_end, self.policy.calendar, now):
            log.warning("callback.slot_refused", request_id=event.request_id, reason=reason, chosen_through=event.chosen_through)
            return None
        command = ChooseSlot(
            slot_start=event.slot_start,
            slot_end=event.slot_end,
            chosen_through=event.chosen_through,
            now=now,
            sla=self.policy.sla,
            calendar=self.policy.calendar,
        )
        case, _ = await self._once(event, command)
        if case.disposition is not None or case.callback_slot_start is None:
            log.info("callback.slot_ignored", request_id=event.request_id, reason="request_closed")
            return None
        await self.assignment.schedule(
            event.request_id,
            case.callback_slot_start,
            case.deadline,
            reason=f"window chosen through {case.callback_slot_through}",
        )
        await self.assignment.offer_next(event.request_id)  # a window already open: offered at once
        log.info(
            "callback.slot_chosen",
            request_id=event.request_id,
            slot_start=case.callback_slot_start,
            slot_end=case.callback_slot_end,
            deadline=case.deadline,
            deadline_by_choice=case.deadline_by_choice,
            chosen_through=case.callback_slot_through,
        )
        return case

    async def withdraw(self, event: TrainingRequestWithdrawn) -> Case | None:
        """The person withdrew the request: it is closed as `withdrawn` (`TrainingRequestClosed`, no
        worker), its timers cancelled, and it leaves every queue, freeing the worker holding it.
        Withdrawing a closed request changes nothing."""
        command = Withdraw(now=self.clock.now(), withdrawn_through=event.withdrawn_through, cause=event)
        case, changed = await self._once(event, command)
        if case.disposition is RequestDisposition.WITHDRAWN:
            # Idempotent, and done again on a redelivery: repairs a crash after the case's commit.
            await self.assignment.cancel(event.request_id, reason=f"withdrawn through {case.withdrawn_through}")
            if case.programme == "waitlisted":
                await self.programme.withdraw(event.request_id)  # a place freed later goes to someone else
        if case.disposition is not RequestDisposition.WITHDRAWN or changed is False:
            # Closed before (reached, unreachable, withdrawn already): nobody is to call, nothing to do.
            log.info("request.withdraw_ignored", request_id=event.request_id, reason="request_closed")
            return None
        log.info("request.withdrawn", request_id=event.request_id, withdrawn_through=case.withdrawn_through)
        return case

    async def correct_details(self, event: RequestDetailsCorrected) -> Case | None:
        """The person corrected their need, the course or their contact details: the desk shows them,
        the new contact marked unverified. The team stays (the desk redirects if the new need calls
        for another), and so does the score: no priority point depends on the course."""
        unsealed = await self.personal.unseal(event)
        command = CorrectDetails(
            now=self.clock.now(),
            corrected_through=unsealed.corrected_through,
            need=unsealed.need,
            requested_course=unsealed.requested_course,
            contact=unsealed.contact.model_dump(mode="json") if unsealed.contact is not None else None,
        )
        case, _ = await self._once(event, command)
        log.info(
            "request.details_corrected",
            request_id=event.request_id,
            corrected_through=event.corrected_through,
            facts=sorted(name for name in ("need", "requested_course", "contact") if getattr(unsealed, name) is not None),
        )
        return case

    async def _once(self, event: PersonEvent, command: Command) -> tuple[Case, bool | None]:
        """Decide `command` on the event's case and save it, once per event: the case as it stands
        afterwards, and whether the command changed it (None: the event was processed before)."""
        changed: list[bool] = []

        async def effect(session: AsyncClientSession) -> list[Event]:
            uow = self.case_store.within(session)
            case = await uow.cases.get(event.request_id)
            if case is None:
                raise RequestNotRoutedYet(event.request_id)
            decided, effects = decide(case, command)
            await self._save(uow, case, decided, effects)
            changed[:] = [decided != case]
            if isinstance(command, Withdraw) and decided.disposition is RequestDisposition.WITHDRAWN and decided != case:
                # Requests of the person that joined this one (a call about the same need) end with it,
                # as they do when the desk closes it: nobody is to call them about it any more.
                ended = KeepPromiseOfJoined(
                    now=command.now, disposition=RequestDisposition.WITHDRAWN, attempts=decided.attempts, cause=effects.events[0]
                )
                for joined in await uow.cases.joined_pending(event.request_id):
                    await self._save(uow, joined, *decide(joined, ended))
            return []  # the decision's events went to the outbox with `uow.apply`

        outcome = await self.processed.run_once(event, effect, outbox=self.outbox)
        case = await self.case_store.within(None).cases.get(event.request_id)
        if case is None:  # pragma: no cover - a case is never deleted
            raise RequestNotRoutedYet(event.request_id)
        if not outcome.applied:
            log.info("person_event.duplicate", request_id=event.request_id, event_type=event.type)
            return case, None
        return case, changed[0] if changed else None

    # --- the dispatcher ----------------------------------------------------------------------

    def queue_key(self, now: datetime) -> QueueKey:
        """The queue order as of `now` (`routing.priority.queue_order`, ageing from the rule set)."""

        def key(request: RoutedRequest) -> tuple[bool, int, bool, datetime, datetime, str]:
            return queue_order(
                request.priority,
                waiting_since=request.created_at,
                deadline=request.deadline,
                now=now,
                weights=self.policy.rules.priority,
                tiebreak=request.request_id,
            )

        return key

    def effective_priority(self, request: RoutedRequest, now: datetime) -> int:
        """The priority the dispatcher uses now: the decision's score plus ageing."""
        weights = self.policy.rules.priority
        return effective_priority(
            request.priority, now - request.created_at, per_hour=weights.ageing_per_hour, cap=weights.ageing_cap
        )

    async def dispatch_once(self, *, per_team: int = 200) -> int:
        """Expire stale offers and offer queued requests, most urgent first; returns offers made."""
        offered = 0
        for request_id in await self.assignment.expire_reservations(self.clock.now()):
            log.info("reservation.expired", request_id=request_id)
        # A request past its deadline is not taken from the worker who holds it, nor handed to a
        # supervisor: `queue_order` puts it at the head of its team's queue, and the breach event
        # alerts the supervisor. Moving breaches wholesale would land a backlog that arrives late
        # (after an outage, a replay) on one person within a second.
        now = self.clock.now()
        for team in Target:
            for request in await self.assignment.queued(team, key=self.queue_key(now), limit=per_team):
                if await self.assignment.offer_next(request.request_id):
                    offered += 1
        return offered

    # --- timers ------------------------------------------------------------------------------

    def timer_handlers(self) -> dict[str, Any]:
        return {
            TimerKind.CALLBACK_DUE.value: self._on_callback_due,
            TimerKind.SLA_BREACH.value: self._on_sla_deadline,
            TimerKind.PARTNER_REMINDER.value: self._on_partner_reminder,
        }

    async def _on_callback_due(self, timer: Timer, session: AsyncClientSession) -> None:
        uow = self.case_store.within(session)
        if (case := await self._awaiting_callback(uow, timer)) is None:
            return
        command = MarkCallbackDue(
            now=self.clock.now(), event_id=_timer_event_id(timer), assignee_id=await self._assignee(timer.key)
        )
        await self._save(uow, case, *decide(case, command))

    async def _on_sla_deadline(self, timer: Timer, session: AsyncClientSession) -> None:
        uow = self.case_store.within(session)
        if (case := await self._awaiting_callback(uow, timer)) is None:
            return
        routed = await self.assignment.get_request(timer.key)
        command = MarkBreached(
            now=self.clock.now(),
            event_id=_timer_event_id(timer),
            assignee_id=routed.held_by() if routed else None,
            escalate=self.policy.sla.escalate_after_breach,
            supervisor=await self.supervisor_of(routed.team if routed else case.target),
        )
        breached, effects = decide(case, command)
        await self._save(uow, case, breached, effects)
        for breach in effects.events:
            if isinstance(breach, CallbackSlaBreached):
                log.warning(
                    "callback.sla_breached",
                    request_id=timer.key,
                    assignee_id=breach.assignee_id,
                    escalated_to=breach.escalated_to,
                )

    async def _on_partner_reminder(self, timer: Timer, session: AsyncClientSession) -> None:
        uow = self.case_store.within(session)
        case = await uow.cases.get(timer.key)
        if case is None or not case.waiting_for_partner:
            return
        asked_at = datetime.fromisoformat(timer.payload["asked_at"])
        command = MarkPartnerOverdue(
            now=self.clock.now(),
            # One reminder per question: a later question re-arms the same timer id.
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"formation-events:{timer.id}:{asked_at.isoformat()}"),
            asked_at=asked_at,
            assignee_id=await self._assignee(timer.key),
        )
        await self._save(uow, case, *decide(case, command))
        log.info("partner.information_overdue", request_id=timer.key, partner=case.partner)

    async def _awaiting_callback(self, uow: CaseUnitOfWork, timer: Timer) -> Case | None:
        """The timer's case while nobody reached the person yet, else None (the timer is late: a no-op)."""
        case = await uow.cases.get(timer.key)
        return case if case is not None and case.awaits_callback else None

    async def supervisor_of(self, team: Target) -> str | None:
        """The team's supervisor on the roster - its own first, then one who supervises it besides their
        own team (the first by id when several) - else None."""
        workers = await self.assignment.list_workers()
        own = sorted(w.worker_id for w in workers if w.answers_for(team) and w.team == team)
        besides = sorted(w.worker_id for w in workers if w.answers_for(team) and w.team != team)
        return (own + besides)[0] if own or besides else None

    async def _assignee(self, request_id: str) -> str | None:
        routed = await self.assignment.get_request(request_id)
        return routed.reservation.worker_id if routed and routed.reservation else None

    # --- load, decide, save ------------------------------------------------------------------

    @staticmethod
    async def _save(uow: CaseUnitOfWork, case: Case, changed: Case, effects: Effects) -> Case:
        """Save what a decision changed (nothing when it changed nothing) and apply its effects."""
        saved = await uow.cases.save(changed) if changed != case else case
        if effects:
            await uow.apply(effects)
        return saved

    async def _change(self, request_id: str, command: Command) -> tuple[Case, Effects] | None:
        """Load a case, decide `command` and save the result in a transaction of its own;
        None when the case is unknown."""

        async def work(uow: CaseUnitOfWork) -> tuple[Case, Effects] | None:
            case = await uow.cases.get(request_id)
            if case is None:
                return None
            changed, effects = decide(case, command)
            return await self._save(uow, case, changed, effects), effects

        return await self.case_store.run(work)

    # --- privacy ---------------------------------------------------------------------------

    async def erase_person(self, person_id: str) -> int:
        """Blank what routing holds of an erased person: contact details and free text."""
        self.personal.keys.forget(person_id)

        async def work(uow: CaseUnitOfWork) -> int:
            erased = 0
            for case in await uow.cases.for_person(person_id):
                blanked, effects = decide(case, Erase())
                if blanked != case:
                    await self._save(uow, case, blanked, effects)
                    erased += 1
            return erased

        erased = await self.case_store.run(work)
        log.info("person.erased", person_id=person_id, cases=erased)
        return erased

    # --- the desk ----------------------------------------------------------------------------

    async def record_outcome(
        self,
        request_id: str,
        *,
        worker_id: str,
        outcome: ContactOutcome,
        notes: str | None = None,
        redirect_to: Target | None = None,
        course_code: str | None = None,
        certification_code: str | None = None,
        retry_at: datetime | None = None,
        facts: CallFacts | None = None,
        session_id: str | None = None,
    ) -> list[Event]:
        """What came of a call; publishes what it means and frees or keeps the worker. `facts` are what
        the person said of their situation on the call; `ContactAttempted` carries them."""
        routed = await self.assignment.get_request(request_id)
        case = await self.case_store.within(None).cases.get(request_id)
        if routed is None or case is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        if routed.status != RequestStatus.ASSIGNED or routed.reservation is None or routed.reservation.worker_id != worker_id:
            raise DeskError(f"request {request_id} is not assigned to {worker_id} (status {routed.status}); accept it first")
        enrolment = None
        if outcome is ContactOutcome.ENROLLED and course_code:
            try:
                enrolled = await self.seats.enrol(
                    course_code=course_code,
                    person_id=case.person_id,
                    request_id=request_id,
                    language=case.language,
                    session_id=session_id,
                    correlation_id=case.correlation_id,
                    causation_id=case.routed_event_id,
                )
            except EnrolmentError as error:
                raise DeskError(str(error)) from error
            session = enrolled.session
            enrolment = EnrolledCourse(
                code=enrolled.course.code,
                title=enrolled.course.title_in(case.language),
                starts_on=session.starts_on if session else None,
                session_id=session.session_id if session else None,
                waitlisted=enrolled.waitlisted,
                online=session is None or session.mode == "online",
            )
            if enrolled.course.certification and (cert := self.policy.catalogue.certification(enrolled.course.certification)):
                log.info("candidate.path_enrolled", request_id=request_id, certification=cert.code)
        known = certification_code and self.policy.catalogue.certification(certification_code) is not None
        command = RecordContact(
            worker_id=worker_id,
            outcome=outcome,
            now=self.clock.now(),
            retry_after=self.policy.retry_after_no_answer,
            notes=notes,
            retry_at=retry_at,
            redirect_to=redirect_to,
            enrolment=enrolment,
            exam_certification=certification_code if known else None,
            facts=facts or CallFacts(),
            max_attempts=self.policy.max_attempts,
            calendar=self.policy.calendar,
        )

        async def work(uow: CaseUnitOfWork) -> tuple[Case, Effects]:
            case = await uow.cases.get(request_id)
            if case is None:
                raise DeskError(f"request {request_id} is unknown", status=404)
            recorded, effects = decide(case, command)
            saved = await self._save(uow, case, recorded, effects)
            if _settled(saved):
                # Requests that joined this one wait for the same call, which settles their promise
                # too, and ends them as it ends this one.
                joined_end = KeepPromiseOfJoined(
                    now=command.now,
                    disposition=saved.disposition,
                    attempts=saved.attempts,
                    worker_id=worker_id,
                    cause=effects.events[0],
                )
                for joined in await uow.cases.joined_pending(request_id):
                    await self._save(uow, joined, *decide(joined, joined_end))
            return saved, effects

        recorded, effects = await self.case_store.run(work)
        if _settled(recorded):
            # Closed (reached, unreachable, wrong number, withdrawn) or redirected: the worker is freed.
            await self.assignment.complete(request_id, worker_id)
        attempted = effects.events[0]
        if outcome is ContactOutcome.REDIRECTED and redirect_to is not None:
            await self._redirect(request_id, redirect_to, worker_id, attempted)
        log.info(
            "contact.recorded",
            request_id=request_id,
            worker_id=worker_id,
            outcome=outcome.value,
            attempt=recorded.attempts,
            disposition=recorded.disposition and recorded.disposition.value,
        )
        return list(effects.events)

    async def record_facts(self, request_id: str, *, facts: CallFacts, recorded_by: str) -> RequestFactsRecorded | None:
        """What the person said of their situation, recorded by a worker: the request is scored again
        and its place in the queue follows. None when the facts were already known as said."""
        command = RecordFacts(facts=facts, recorded_by=recorded_by, now=self.clock.now(), weights=self.policy.rules.priority)
        changed = await self._change(request_id, command)
        if changed is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        case, effects = changed
        if not effects:
            return None
        await self._reprioritise_keeping_joined(case, reason=f"facts recorded by {recorded_by}")
        log.info(
            "request.facts_recorded",
            request_id=request_id,
            worker_id=recorded_by,
            priority=case.priority,
            facts=sorted(facts.learned()),
        )
        recorded = effects.events[0]
        assert isinstance(recorded, RequestFactsRecorded)
        return recorded

    async def ask_partner(self, request_id: str, *, worker_id: str, question: str) -> Event:
        """The worker holding a handed-over request asks the referring partner for more information:
        the callback clock stops until the answer and a reminder is set (`routing.case.AskPartner`)."""
        await self._held_by(request_id, worker_id)
        now = self.clock.now()
        remind_at = later_by(now, self.policy.rules.desk.partner_reminder_after, self.policy.sla, self.policy.calendar)
        changed = await self._change(request_id, AskPartner(worker_id=worker_id, question=question, now=now, remind_at=remind_at))
        if changed is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        case, effects = changed
        log.info(
            "partner.information_requested", request_id=request_id, worker_id=worker_id, partner=case.partner, remind_at=remind_at
        )
        return effects.events[0]

    async def record_partner_answer(self, request_id: str, *, recorded_by: str, answer: str) -> Event:
        """The partner answered: the callback clock runs again with its deadline moved by the wait,
        and the request keeps its place with its worker, its queue deadline moved too."""
        command = RecordPartnerAnswer(
            recorded_by=recorded_by, answer=answer, now=self.clock.now(), sla=self.policy.sla, calendar=self.policy.calendar
        )
        changed = await self._change(request_id, command)
        if changed is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        case, effects = changed
        if case.deadline is not None:
            await self._reprioritise_keeping_joined(case, reason=f"{case.partner} answered")
        log.info("partner.information_received", request_id=request_id, worker_id=recorded_by, deadline=case.deadline)
        return effects.events[0]

    async def _reprioritise_keeping_joined(self, case: Case, *, reason: str) -> None:
        """The queue entry follows the case's new score and deadline, and still keeps the promises of
        the requests that joined it: the highest score and the earliest deadline of them all, as
        `_keep_joined_promise` set them (a caller joined to this request is called back through it)."""

        async def joined(uow: CaseUnitOfWork) -> list[Case]:
            return await uow.cases.joined_pending(case.request_id)

        promises = [case, *await self.case_store.run(joined)]
        deadlines = [c.deadline for c in promises if c.deadline is not None]
        await self.assignment.reprioritise(
            case.request_id, max(c.priority for c in promises), min(deadlines) if deadlines else None, reason=reason
        )

    async def confirm_contact(self, request_id: str, *, worker_id: str) -> Event:
        """The worker checked with the person the details given on their status page: messages go
        there from now on (`ContactDetailsConfirmed`, sealed)."""
        changed = await self._change(request_id, ConfirmContact(worker_id=worker_id, now=self.clock.now()))
        if changed is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        _, effects = changed
        log.info("contact.confirmed", request_id=request_id, worker_id=worker_id)
        return effects.events[0]

    async def _held_by(self, request_id: str, worker_id: str) -> None:
        routed = await self.assignment.get_request(request_id)
        if routed is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        if routed.status != RequestStatus.ASSIGNED or routed.reservation is None or routed.reservation.worker_id != worker_id:
            raise DeskError(f"request {request_id} is not assigned to {worker_id} (status {routed.status}); accept it first")

    async def _redirect(self, request_id: str, target: Target, worker_id: str, attempted: Event) -> None:
        """A redirected request goes to the other team's queue and is announced as routed again."""
        await self._change(
            request_id, Redirect(target=target, worker_id=worker_id, rule_set_version=self.policy.rules.version, cause=attempted)
        )
        await self.assignment.requeue(request_id, target, reason=f"redirected by {worker_id}")
        await self.assignment.offer_next(request_id)


def _settled(case: Case) -> bool:
    """Whether the call just recorded ended the case's attempts: closed with a disposition, or redirected."""
    return case.disposition is not None or case.outcome is ContactOutcome.REDIRECTED


def _timer_event_id(timer: Timer) -> uuid.UUID:
    """Derived from the timer: a timer fired again after a crash publishes the same event."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"formation-events:{timer.id}")


def _decision_document(plan: _Plan, now: datetime) -> dict[str, Any]:
    """The `routing_decisions` document of a request routed at `now`."""
    request, decision, routed = plan.request, plan.decision, plan.opening.routed
    place = plan.place
    return {
        "_id": request.request_id,
        "person_id": request.person_id,
        "channel": request.channel.value,
        "language": request.language.value,
        "target": decision.target.value,
        "queued_to": plan.team.value,
        "programme": place.value if place else None,
        "rule_id": routed.rule_id,
        "rule_set_version": decision.rule_set_version,
        "explanation": routed.explanation,
        "explanation_fr": decision.explanation_fr,
        "matched_conditions": list(decision.matched_conditions),
        "priority": decision.priority,
        "priority_parts": dict(decision.priority_parts),
        "priority_band": decision.priority_band,
        "fact_sources": dict(plan.opening.case.fact_sources),
        "received_at": request.received_at,
        "decided_at": now,
        "callback_deadline": plan.deadline,
        "joined_to": plan.joined_to,
        "campaign": request.campaign.utm_campaign if request.campaign else None,
        "routed_event_id": str(routed.id),
        # The request's trace, for the desk's later actions on it to continue (`routing.desk`).
        "trace": carrier(outgoing_context(request.id)),
    }
