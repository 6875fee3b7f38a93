"""A routed request and its reservation as a typed aggregate, with one pure `decide`.

`decide(state, command)` says what a command does to a request - the new state, one version
on, and the transitions to record - or refuses it with `Refused`. It reads no clock and no
database: the time comes in the command, and `routing.assignment` loads, decides and saves
(compare-and-set on `version`) in one transaction with the worker's capacity. A request moves
queued -> reserved -> assigned -> closed; a decline, a timed-out offer or a reassignment sends
it back to queued, a requeue sends a closed one to another team's queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from routing.workers import EscalationLevel, OfferRequest
from schemas import Language, Target

__all__ = [
    "Accept",
    "Cancel",
    "Command",
    "Complete",
    "Decline",
    "Escalate",
    "Expire",
    "Offer",
    "Reassign",
    "Refused",
    "Reprioritise",
    "RequestStatus",
    "Requeue",
    "Reservation",
    "Schedule",
    "RoutedRequest",
    "Transition",
    "decide",
    "queue_request",
]


class RequestStatus:
    """Values of `routing_requests.status` (plain strings: they are stored and queried as such)."""

    QUEUED = "queued"
    RESERVED = "reserved"
    ASSIGNED = "assigned"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Reservation:
    """An offer of one request to one worker, until `expires_at`."""

    request_id: str
    worker_id: str
    offered_at: datetime
    expires_at: datetime
    level: EscalationLevel = EscalationLevel.TEAM
    accepted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RoutedRequest:
    """A request as routing stores it (for queues, the desk and explanations).

    `version` counts the changes saved so far (0 for a request stored before versions
    existed); a save is a compare-and-set on it.
    """

    request_id: str
    team: Target
    language: Language
    required_skills: frozenset[str]
    priority: int
    """Higher is served first."""
    deadline: datetime | None
    status: str
    escalation: EscalationLevel
    declined_by: frozenset[str]
    created_at: datetime
    reservation: Reservation | None
    version: int = 0
    escalated_at: datetime | None = None
    closed_at: datetime | None = None
    updated_at: datetime | None = None
    not_before: datetime | None = None
    """A scheduled callback: the start of the window the person chose. The request is not offered
    before it (contact centres offer a scheduled callback to an agent when its window opens);
    None: offered at once."""

    def scheduled_after(self, now: datetime) -> bool:
        """Whether the request waits for the person's window to open."""
        return self.not_before is not None and self.not_before > now

    def offer_request(self) -> OfferRequest:
        return OfferRequest(
            request_id=self.request_id,
            team=self.team,
            language=self.language,
            required_skills=self.required_skills,
            declined_by=self.declined_by,
            escalation=self.escalation,
        )

    def held_by(self) -> str | None:
        """The worker the request is reserved for or assigned to, if any (an expired offer counts
        until it is released)."""
        if self.status in (RequestStatus.RESERVED, RequestStatus.ASSIGNED) and self.reservation is not None:
            return self.reservation.worker_id
        return None


@dataclass(frozen=True, slots=True)
class Transition:
    """What happened to a request, as its history records it, and its effect on the worker's
    open count: +1 when the worker takes a slot, -1 when it is freed."""

    event: str
    at: datetime
    worker_id: str | None = None
    reason: str | None = None
    worker_delta: Literal[-1, 0, 1] = 0

    def entry(self) -> dict[str, Any]:
        """The history entry (at, event, worker_id, reason if any), as stored and shown."""
        entry: dict[str, Any] = {"at": self.at, "event": self.event, "worker_id": self.worker_id}
        if self.reason:
            entry["reason"] = self.reason
        return entry


class Refused(Exception):
    """The command does not apply to the request in its current state: a late, duplicate or
    foreign call. The caller reports False and changes nothing."""

    def __init__(self, request_id: str, command: Command, why: str) -> None:
        super().__init__(f"{type(command).__name__} refused for {request_id}: {why}")
        self.request_id = request_id
        self.command = command
        self.why = why


# --- commands ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """Reserve the queued request for `worker_id` until `now + timeout`."""

    worker_id: str
    now: datetime
    timeout: timedelta
    level: EscalationLevel = EscalationLevel.TEAM
    reason: str = ""
    """Why this worker, when a person chose them (a supervisor's reassignment); kept in the history."""


@dataclass(frozen=True, slots=True)
class Accept:
    """The worker takes their offer (before it expires)."""

    worker_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Decline:
    """The worker refuses their offer; it is never offered to them again."""

    worker_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Expire:
    """Release the offer if it has expired by `now` (the worker counts as having declined)."""

    now: datetime


@dataclass(frozen=True, slots=True)
class Complete:
    """The worker's contact is done: the request is closed."""

    worker_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Requeue:
    """Send a closed request to `team`'s queue (redirected after a call), or move a queued one that
    nobody holds yet (admitted to the digital-divide programme from its waitlist)."""

    team: Target
    now: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reprioritise:
    """New facts about the person (or a more urgent request of theirs joining this one) change how
    urgent the request is: `priority` replaces the score, `deadline` the callback deadline. An open
    request keeps its place in every other respect (its holder, its pool, its history)."""

    priority: int
    deadline: datetime | None
    now: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Escalate:
    """Widen a queued request's pool to `level`."""

    level: EscalationLevel
    now: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reassign:
    """Take a reserved or assigned request back from `worker_id` and queue it again, widening its
    pool to `level` if that is wider."""

    worker_id: str
    now: datetime
    level: EscalationLevel | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Schedule:
    """The person chose a window: the request is not offered before `not_before`, and its queue
    deadline becomes `deadline` (the case's, moved to the window's end when that is later)."""

    not_before: datetime | None
    deadline: datetime | None
    now: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Cancel:
    """The person withdrew the request: it leaves every queue, and the worker holding it is freed."""

    now: datetime
    reason: str = ""


Command = Offer | Accept | Decline | Expire | Complete | Requeue | Reprioritise | Escalate | Reassign | Schedule | Cancel


def queue_request(
    request_id: str,
    team: Target,
    language: Language,
    now: datetime,
    required_skills: Iterable[str] = (),
    priority: int = 0,
    deadline: datetime | None = None,
    *,
    escalation: EscalationLevel = EscalationLevel.TEAM,
) -> tuple[RoutedRequest, list[Transition]]:
    """A new request in its team's queue (version 1) and its first transition, `queued`."""
    request = RoutedRequest(
        request_id=request_id,
        team=Target(team),
        language=Language(language),
        required_skills=frozenset(required_skills),
        priority=priority,
        deadline=deadline,
        status=RequestStatus.QUEUED,
        escalation=EscalationLevel(escalation),
        declined_by=frozenset(),
        created_at=now,
        reservation=None,
        version=1,
        updated_at=now,
    )
    return request, [Transition("queued", now)]


# --- decisions ---------------------------------------------------------------------------


def decide(state: RoutedRequest, command: Command) -> tuple[RoutedRequest, list[Transition]]:
    """The request after `command` (version + 1) and what happened; raises `Refused` when the
    command does not apply, so a late or duplicate call changes nothing."""
    match command:
        case Offer():
            new, transition = _offer(state, command)
        case Accept():
            new, transition = _accept(state, command)
        case Decline():
            _require_held(state, command, command.worker_id, RequestStatus.RESERVED)
            new, transition = _release(state, command.worker_id, command.now, "declined")
        case Expire():
            _require_status(state, command, RequestStatus.RESERVED)
            assert state.reservation is not None
            if state.reservation.expires_at > command.now:
                raise Refused(state.request_id, command, "the offer has not expired")
            new, transition = _release(state, state.reservation.worker_id, command.now, "timed_out")
        case Complete():
            _require_held(state, command, command.worker_id, RequestStatus.ASSIGNED)
            new = replace(state, status=RequestStatus.CLOSED, closed_at=command.now)
            transition = Transition("closed", command.now, command.worker_id, worker_delta=-1)
        case Requeue():
            _require_status(state, command, RequestStatus.CLOSED, RequestStatus.QUEUED)
            if state.status == RequestStatus.QUEUED and state.team == command.team:
                raise Refused(state.request_id, command, f"already queued for {state.team.value}")
            new = replace(
                state,
                team=Target(command.team),
                status=RequestStatus.QUEUED,
                reservation=None,
                declined_by=frozenset(),
                escalation=EscalationLevel.TEAM,
            )
            transition = Transition("requeued", command.now, None, command.reason or None)
        case Reprioritise():
            _require_status(state, command, RequestStatus.QUEUED, RequestStatus.RESERVED, RequestStatus.ASSIGNED)
            if (state.priority, state.deadline) == (command.priority, command.deadline):
                raise Refused(state.request_id, command, "nothing changes")
            new = replace(state, priority=command.priority, deadline=command.deadline)
            transition = Transition(
                "reprioritised", command.now, None, command.reason or f"priority {state.priority} -> {command.priority}"
            )
        case Escalate():
            _require_status(state, command, RequestStatus.QUEUED)
            level = EscalationLevel(command.level)
            if not level.wider_than(state.escalation):
                raise Refused(state.request_id, command, f"already at {state.escalation.value}")
            new = replace(state, escalation=level, escalated_at=command.now)
            transition = Transition(f"escalated:{level.value}", command.now, None, command.reason or None)
        case Schedule():
            _require_status(state, command, RequestStatus.QUEUED, RequestStatus.RESERVED, RequestStatus.ASSIGNED)
            if (state.not_before, state.deadline) == (command.not_before, command.deadline):
                raise Refused(state.request_id, command, "nothing changes")
            new = replace(state, not_before=command.not_before, deadline=command.deadline)
            at = command.not_before.isoformat() if command.not_before else "-"
            transition = Transition("scheduled", command.now, None, command.reason or f"not before {at}")
        case Cancel():
            _require_status(state, command, RequestStatus.QUEUED, RequestStatus.RESERVED, RequestStatus.ASSIGNED)
            holder = state.held_by()
            new = replace(state, status=RequestStatus.CLOSED, closed_at=command.now, reservation=None)
            transition = Transition("withdrawn", command.now, holder, command.reason or None, worker_delta=-1 if holder else 0)
        case Reassign():
            _require_held(state, command, command.worker_id, RequestStatus.RESERVED, RequestStatus.ASSIGNED)
            new, transition = _release(state, command.worker_id, command.now, "reassigned", command.reason or None)
            if command.level is not None and EscalationLevel(command.level).wider_than(state.escalation):
                # Widened, never narrowed: a supervisor's "team" does not undo an escalation.
                new = replace(new, escalation=EscalationLevel(command.level), escalated_at=command.now)
    return replace(new, version=state.version + 1, updated_at=command.now), [transition]


def _offer(state: RoutedRequest, command: Offer) -> tuple[RoutedRequest, Transition]:
    _require_status(state, command, RequestStatus.QUEUED)
    if command.worker_id in state.declined_by:
        raise Refused(state.request_id, command, f"{command.worker_id} declined it before")
    reservation = Reservation(
        request_id=state.request_id,
        worker_id=command.worker_id,
        offered_at=command.now,
        expires_at=command.now + command.timeout,
        level=EscalationLevel(command.level),
    )
    new = replace(state, status=RequestStatus.RESERVED, reservation=reservation)
    return new, Transition("reserved", command.now, command.worker_id, command.reason or None, worker_delta=1)


def _accept(state: RoutedRequest, command: Accept) -> tuple[RoutedRequest, Transition]:
    _require_held(state, command, command.worker_id, RequestStatus.RESERVED)
    assert state.reservation is not None
    if state.reservation.expires_at <= command.now:
        raise Refused(state.request_id, command, "the offer has expired")
    new = replace(
        state,
        status=RequestStatus.ASSIGNED,
        reservation=replace(state.reservation, accepted_at=command.now),
    )
    return new, Transition("accepted", command.now, command.worker_id)


def _release(
    state: RoutedRequest, worker_id: str, now: datetime, event: str, reason: str | None = None
) -> tuple[RoutedRequest, Transition]:
    # Back to the queue, never to be offered to this worker again; their slot is freed.
    new = replace(
        state,
        status=RequestStatus.QUEUED,
        reservation=None,
        declined_by=state.declined_by | {worker_id},
    )
    return new, Transition(event, now, worker_id, reason, worker_delta=-1)


def _require_status(state: RoutedRequest, command: Command, *statuses: str) -> None:
    if state.status not in statuses:
        raise Refused(state.request_id, command, f"the request is {state.status}")


def _require_held(state: RoutedRequest, command: Command, worker_id: str, *statuses: str) -> None:
    _require_status(state, command, *statuses)
    if state.held_by() != worker_id:
        raise Refused(state.request_id, command, f"not held by {worker_id}")
