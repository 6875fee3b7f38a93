"""Routing's use cases, between the handlers (Kafka, HTTP, timers) and the stores.

Each method translates one thing that happened - a request arrived, a timer fired, an advisor
recorded a call - into decisions (pure code in `decision`, `sla`, `workers`) and state changes,
and the events they produce go out through the routing outbox in the same MongoDB transaction
as the state change that caused them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from routing.assignment import AssignmentStore, QueueKey, RequestStatus, RoutedRequest
from routing.decision import RouteDecision, RoutingState, decide_route
from routing.enrolment import CourseSeats, EnrolmentError
from routing.priority import effective_priority, queue_order
from routing.programme import DigitalDivideProgramme
from routing.rules import RuleSet
from routing.sla import SlaOutcome, SlaPolicy, callback_deadline, due_at, sla_outcome
from schemas import (
    CallbackDue,
    CallbackSlaBreached,
    ContactAttempted,
    ContactOutcome,
    EnrolmentConfirmed,
    Event,
    ExamRequestReason,
    ExamSchedulingRequested,
    Language,
    Target,
    TrainingRequestReceived,
    TrainingRequestRouted,
)
from services.calendar import BrusselsCalendar
from services.catalogue import Catalogue
from services.clock import Clock
from services.idempotency import ProcessedEvents
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.timers import Timer, TimerKind, TimerStore

log = structlog.get_logger(__name__)

SOURCE = "/routing"

_SKILL_BY_COURSE_KIND = {"software_path": "office", "design_path": "graphics", "basic_skills": "basic_skills"}


class DeskError(Exception):
    """A desk action that cannot be done, with the reason the advisor sees."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


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


def following_case(case: Mapping[str, Any], cause: Event | None = None) -> dict[str, Any]:
    """The envelope of an event about a case: the request's correlation, caused by `cause`, else by
    the event that routed the request.

    A case keeps both ids so that desk actions, timers and redirects - which have no event in hand -
    carry one person's request from the phone call to the certificate. Cases stored before they
    kept them have neither, and their events start a conversation of their own.
    """
    chain: dict[str, Any] = {}
    if case.get("correlation_id"):
        chain["correlation_id"] = uuid.UUID(case["correlation_id"])
    if cause is not None:
        chain["causation_id"] = cause.id
    elif case.get("routed_event_id"):
        chain["causation_id"] = uuid.UUID(case["routed_event_id"])
    return chain


def required_skills(decision: RouteDecision, request: TrainingRequestReceived, catalogue: Catalogue) -> frozenset[str]:
    """Skills a worker needs for this request: the course family for the online team."""
    if decision.target is Target.ESPACES_NUMERIQUES and request.requested_course:
        course = catalogue.course(request.requested_course)
        if course and (skill := _SKILL_BY_COURSE_KIND.get(course.kind)):
            return frozenset({skill})
    return frozenset()


class RoutingService:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: MongoDatabase,
        *,
        policy: RoutingPolicy,
        clock: Clock,
        processed: ProcessedEvents,
        assignment: AssignmentStore,
        timers: TimerStore,
        programme: DigitalDivideProgramme,
        seats: CourseSeats,
        outbox: Outbox,
        personal: PersonalData | None = None,
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
        self.cases = db["routing_cases"]

    async def ensure_indexes(self) -> None:
        await self.cases.create_index("person_id", name="by_person")
        await self.decisions.create_index("decided_at", name="by_time")

    # --- a request arrives -------------------------------------------------------------------

    async def route(self, request: TrainingRequestReceived) -> TrainingRequestRouted | None:
        """Decide, store and queue a request once; returns the routed event when it was new."""
        # The desk needs the contact details: routing is one of the services that hold the keys.
        request = await self.personal.unseal(request)
        state = RoutingState(
            digital_divide_open=await self._programme_open(request.received_at.year), team_sizes=self.policy.team_sizes
        )
        decision = decide_route(request, rules=self.policy.rules, state=state, now=request.received_at)
        joined_to = await self._open_linked_request(request)
        deadline = callback_deadline(request.received_at, self.policy.sla, self.policy.calendar, channel=request.channel)
        due = due_at(deadline, self.policy.sla, self.policy.calendar, received_at=request.received_at) if deadline else None
        skills = required_skills(decision, request, self.policy.catalogue)
        routed = TrainingRequestRouted.following(
            request,
            source=SOURCE,
            request_id=request.request_id,
            person_id=request.person_id,
            target=decision.target,
            rule_id="joins-open-request" if joined_to else decision.rule_id,
            rule_set_version=decision.rule_set_version,
            explanation=(
                f"Rejoint la demande {joined_to[:8]} déjà en cours pour la même personne. {decision.explanation_fr}"
                if joined_to
                else decision.explanation
            ),
            priority=decision.priority,
            priority_parts=dict(decision.priority_parts),
            callback_deadline=deadline,
            assignee_id=None,
        )

        async def effect(session: AsyncClientSession) -> list[Event]:
            now = self.clock.now()
            await self.decisions.insert_one(
                {
                    "_id": request.request_id,
                    "person_id": request.person_id,
                    "channel": request.channel.value,
                    "language": request.language.value,
                    "target": decision.target.value,
                    "rule_id": routed.rule_id,
                    "rule_set_version": decision.rule_set_version,
                    "explanation": routed.explanation,
                    "explanation_fr": decision.explanation_fr,
                    "matched_conditions": list(decision.matched_conditions),
                    "priority": decision.priority,
                    "priority_parts": dict(decision.priority_parts),
                    "priority_band": decision.priority_band,
                    "received_at": request.received_at,
                    "decided_at": now,
                    "callback_deadline": deadline,
                    "joined_to": joined_to,
                    "campaign": request.campaign.utm_campaign if request.campaign else None,
                    "routed_event_id": str(routed.id),
                },
                session=session,
            )
            await self.cases.insert_one(
                {
                    "_id": request.request_id,
                    "person_id": request.person_id,
                    "channel": request.channel.value,
                    "language": request.language.value,
                    "target": decision.target.value,
                    "received_at": request.received_at,
                    "deadline": deadline,
                    "due_at": due,
                    "sla": "pending" if deadline else None,
                    "first_contact_at": None,
                    "attempts": 0,
                    "outcome": None,
                    "joined_to": joined_to,
                    "contact": request.contact.model_dump(mode="json"),
                    "need": request.need,
                    "requested_course": request.requested_course,
                    "needs_triage": request.needs_triage,
                    "priority": decision.priority,
                    "programme": None,
                    "correlation_id": str(request.correlation_id),
                    "routed_event_id": str(routed.id),
                },
                session=session,
            )
            if deadline is not None and due is not None:
                payload = {"request_id": request.request_id, "person_id": request.person_id, "deadline": deadline.isoformat()}
                await self.timers.schedule(TimerKind.CALLBACK_DUE, request.request_id, due, payload, session=session)
                await self.timers.schedule(TimerKind.SLA_BREACH, request.request_id, deadline, payload, session=session)
            if not joined_to and decision.target is not Target.DIGITAL_DIVIDE:
                await self.assignment.add_request(
                    request.request_id, decision.target, request.language, skills, decision.priority, deadline, session=session
                )
            return [routed]

        outcome = await self.processed.run_once(request, effect, outbox=self.outbox)
        target, joined = decision.target, joined_to
        if not outcome.applied:
            # A redelivery: the decision stored the first time stands, whatever the programme's
            # state or the linked requests are now.
            stored = await self.decisions.find_one({"_id": request.request_id}, {"target": 1, "joined_to": 1})
            if stored is not None:
                target, joined = Target(stored["target"]), stored.get("joined_to")
        if target is Target.DIGITAL_DIVIDE and not joined:
            # Idempotent, so it runs on every delivery: a crash after the commit above is repaired here.
            await self._admit_to_programme(request, decision, deadline, skills)
        if outcome.applied:
            log.info(
                "request.routed",
                request_id=request.request_id,
                target=decision.target.value,
                rule_id=routed.rule_id,
                priority=decision.priority,
                joined_to=joined_to,
            )
        await self.assignment.offer_next(request.request_id)
        return routed if outcome.applied else None

    async def _programme_open(self, year: int) -> bool:
        """Whether the digital-divide programme takes people - read only when the rule set looks at
        it (the shipped one does not: it waitlists instead), since it costs two round trips."""
        if not self._rules_read_programme:
            return True
        return (await self.programme.status(year)).open

    async def _open_linked_request(self, request: TrainingRequestReceived) -> str | None:
        """An earlier request of the same person still open: the new one joins it (one advisor per person)."""
        if not request.linked_request_ids:
            return None
        open_case = await self.cases.find_one(
            {"_id": {"$in": list(request.linked_request_ids)}, "outcome": None, "joined_to": None},
            sort=[("received_at", 1)],
        )
        return str(open_case["_id"]) if open_case else None

    async def _admit_to_programme(
        self, request: TrainingRequestReceived, decision: RouteDecision, deadline: datetime | None, skills: frozenset[str]
    ) -> None:
        admitted = await self.programme.admit_or_waitlist(
            year=request.received_at.year,
            request_id=request.request_id,
            person_id=request.person_id,
            priority=decision.priority,
            since=request.received_at,
        )
        await self.cases.update_one(
            {"_id": request.request_id}, {"$set": {"programme": "admitted" if admitted else "waitlisted"}}
        )
        if admitted:
            await self.assignment.add_request(
                request.request_id, Target.DIGITAL_DIVIDE, request.language, skills, decision.priority, deadline
            )
        else:
            log.info("programme.waitlisted", request_id=request.request_id, priority=decision.priority)

    async def admit_waiting(self, request_ids: Sequence[str]) -> None:
        """Requests just admitted from the programme's waitlist join the team's queue."""
        for request_id in request_ids:
            case = await self.cases.find_one({"_id": request_id})
            if case is None:
                continue
            await self.cases.update_one({"_id": request_id}, {"$set": {"programme": "admitted"}})
            await self.assignment.add_request(
                request_id, Target.DIGITAL_DIVIDE, Language(case["language"]), (), case["priority"], case["deadline"]
            )
            await self.assignment.offer_next(request_id)

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
        return {TimerKind.CALLBACK_DUE.value: self._on_callback_due, TimerKind.SLA_BREACH.value: self._on_sla_deadline}

    async def _callback_facts(self, timer: Timer, session: AsyncClientSession) -> dict[str, Any] | None:
        """The envelope and payload both callback events share, or None once the person was reached."""
        case = await self.cases.find_one({"_id": timer.key}, session=session)
        if case is None or case["sla"] != "pending":
            return None
        routed = await self.assignment.get_request(timer.key)
        return {
            # Derived from the timer: a timer fired again after a crash publishes the same event.
            "id": uuid.uuid5(uuid.NAMESPACE_URL, f"formation-events:{timer.id}"),
            "source": SOURCE,
            "subject": timer.key,
            "request_id": timer.key,
            "person_id": case["person_id"],
            "assignee_id": routed.reservation.worker_id if routed and routed.reservation else None,
            "deadline": case["deadline"],
            **following_case(case),
        }

    async def _on_callback_due(self, timer: Timer, session: AsyncClientSession) -> None:
        if (facts := await self._callback_facts(timer, session)) is None:
            return
        await self.outbox.add([CallbackDue(**facts)], session=session)
        await self.cases.update_one({"_id": timer.key}, {"$set": {"due_sent_at": self.clock.now()}}, session=session)

    async def _on_sla_deadline(self, timer: Timer, session: AsyncClientSession) -> None:
        if (facts := await self._callback_facts(timer, session)) is None:
            return
        escalated_to = "supervisor" if self.policy.sla.escalate_after_breach else None
        await self.outbox.add([CallbackSlaBreached(**facts, escalated_to=escalated_to)], session=session)
        await self.cases.update_one(
            {"_id": timer.key}, {"$set": {"sla": "breached", "breached_at": self.clock.now()}}, session=session
        )
        log.warning("callback.sla_breached", request_id=timer.key, assignee_id=facts["assignee_id"], escalated_to=escalated_to)

    # --- privacy ---------------------------------------------------------------------------

    async def erase_person(self, person_id: str) -> int:
        """Blank what routing holds of an erased person: contact details and free text."""
        self.personal.keys.forget(person_id)
        result = await self.cases.update_many({"person_id": person_id}, {"$set": {"contact": {}, "need": "", "erased": True}})
        log.info("person.erased", person_id=person_id, cases=result.modified_count)
        return result.modified_count

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
    ) -> list[Event]:
        """What came of a call; publishes what it means and frees or keeps the worker."""
        routed = await self.assignment.get_request(request_id)
        case = await self.cases.find_one({"_id": request_id})
        if routed is None or case is None:
            raise DeskError(f"request {request_id} is unknown", status=404)
        if routed.status != RequestStatus.ASSIGNED or routed.reservation is None or routed.reservation.worker_id != worker_id:
            raise DeskError(f"request {request_id} is not assigned to {worker_id} (status {routed.status}); accept it first")
        now = self.clock.now()
        attempt = case["attempts"] + 1
        person_id = case["person_id"]
        language = Language(case["language"])
        next_attempt_at = (retry_at or now + self.policy.retry_after_no_answer) if outcome is ContactOutcome.NO_ANSWER else None
        common = {"source": f"{SOURCE}/desk", "subject": request_id, "request_id": request_id, "person_id": person_id}
        # The call is the cause of what it leads to: an enrolment, an exam request, a redirection.
        attempted = ContactAttempted(
            **common,
            **following_case(case),
            worker_id=worker_id,
            outcome=outcome,
            attempt=attempt,
            next_attempt_at=next_attempt_at,
            notes=notes,
        )
        events: list[Event] = [attempted]

        if outcome is ContactOutcome.ENROLLED:
            if not course_code:
                raise DeskError("an enrolment needs a course_code from the catalogue", status=422)
            try:
                enrolment = await self.seats.enrol(
                    course_code=course_code, person_id=person_id, request_id=request_id, language=language
                )
            except EnrolmentError as error:
                raise DeskError(str(error)) from error
            events.append(
                EnrolmentConfirmed(
                    **common,
                    **following_case(case, attempted),
                    course_code=enrolment.course.code,
                    course_title=enrolment.course.title_in(language),
                    starts_on=None,
                    language=language,
                    login_instructions="https://formation.bruxellesformation.brussels — identifiant envoyé par e-mail",
                )
            )
            if enrolment.course.certification and (cert := self.policy.catalogue.certification(enrolment.course.certification)):
                log.info("candidate.path_enrolled", request_id=request_id, certification=cert.code)
        if outcome is ContactOutcome.EXAM_WANTED:
            if not certification_code or self.policy.catalogue.certification(certification_code) is None:
                raise DeskError("an exam request needs a certification_code from the catalogue", status=422)
            events.append(
                ExamSchedulingRequested(
                    **common,
                    **following_case(case, attempted),
                    certification_code=certification_code.upper(),
                    reason=ExamRequestReason.DESK,
                )
            )
        if outcome is ContactOutcome.REDIRECTED and redirect_to is None:
            raise DeskError("a redirection needs redirect_to (a target)", status=422)

        reached = outcome is not ContactOutcome.NO_ANSWER

        async def store(session: AsyncClientSession) -> None:
            update: dict[str, Any] = {"attempts": attempt, "last_attempt_at": now}
            if reached:
                update |= {"outcome": outcome.value, "first_contact_at": case["first_contact_at"] or now, "closed_by": worker_id}
                if case["sla"] == "pending":
                    update["sla"] = _promise_outcome(case, now)
                await self.timers.cancel(TimerKind.CALLBACK_DUE, request_id, session=session)
                await self.timers.cancel(TimerKind.SLA_BREACH, request_id, session=session)
                # Requests that joined this one wait for the same call, which keeps their promise too.
                for joined in await self.cases.find({"joined_to": request_id, "sla": "pending"}, session=session).to_list(None):
                    await self.timers.cancel(TimerKind.CALLBACK_DUE, joined["_id"], session=session)
                    await self.timers.cancel(TimerKind.SLA_BREACH, joined["_id"], session=session)
                    await self.cases.update_one(
                        {"_id": joined["_id"]},
                        {"$set": {"sla": _promise_outcome(joined, now), "first_contact_at": now}},
                        session=session,
                    )
            await self.cases.update_one({"_id": request_id}, {"$set": update}, session=session)
            await self.outbox.add([await self.personal.seal(e, session=session) for e in events], session=session)

        async with self._client.start_session() as session:
            await session.with_transaction(store)

        if reached:
            await self.assignment.complete(request_id, worker_id)
        if outcome is ContactOutcome.REDIRECTED and redirect_to is not None:
            await self._redirect(request_id, case, redirect_to, worker_id, attempted)
        log.info("contact.recorded", request_id=request_id, worker_id=worker_id, outcome=outcome.value, attempt=attempt)
        return events

    async def _redirect(self, request_id: str, case: dict[str, Any], target: Target, worker_id: str, attempted: Event) -> None:
        """A redirected request goes to the other team's queue and is announced as routed again."""
        routed = TrainingRequestRouted(
            **following_case(case, attempted),
            source=f"{SOURCE}/desk",
            subject=request_id,
            request_id=request_id,
            person_id=case["person_id"],
            target=target,
            rule_id="desk-redirect",
            rule_set_version=self.policy.rules.version,
            explanation=f"Redirected by {worker_id} after a call.",
            priority=case["priority"],
            priority_parts={},
            callback_deadline=None,
            assignee_id=None,
        )

        async def store(session: AsyncClientSession) -> None:
            await self.cases.update_one(
                {"_id": request_id},
                {
                    "$set": {
                        "target": target.value,
                        "outcome": None,
                        "redirected_from": case["target"],
                        "routed_event_id": str(routed.id),
                    }
                },
                session=session,
            )
            await self.outbox.add([routed], session=session)

        async with self._client.start_session() as session:
            await session.with_transaction(store)
        await self.assignment.requeue(request_id, target, reason=f"redirected by {worker_id}")
        await self.assignment.offer_next(request_id)


def _promise_outcome(case: Mapping[str, Any], contacted_at: datetime) -> SlaOutcome:
    """Whether a case's callback promise was kept by a contact at `contacted_at` (`routing.sla`).

    A case without a deadline had no promise to break. A contact stamped before the request
    (intake's clock ahead of routing's) counts as made on receipt rather than failing the desk.
    """
    if case["deadline"] is None:
        return "met"
    return sla_outcome(case["received_at"], max(contacted_at, case["received_at"]), case["deadline"])
