"""Every transition of a routed request and every refusal: `routing.reservation.decide`, pure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from routing.reservation import (
    Accept,
    Command,
    Complete,
    Decline,
    Escalate,
    Expire,
    Offer,
    Reassign,
    Refused,
    RequestStatus,
    Requeue,
    RoutedRequest,
    Transition,
    decide,
    queue_request,
)
from routing.workers import EscalationLevel
from schemas import Language, Target

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=2)
TEAM = Target.ESPACES_NUMERIQUES
LATER = NOW + timedelta(minutes=1)


def queued() -> RoutedRequest:
    request, _ = queue_request("r1", TEAM, Language.FR, NOW, ["office", "office"], priority=2)
    return request


def reserved(worker_id: str = "w1") -> RoutedRequest:
    return decide(queued(), Offer(worker_id, NOW, TIMEOUT, EscalationLevel.BACKUP))[0]


def assigned(worker_id: str = "w1") -> RoutedRequest:
    return decide(reserved(worker_id), Accept(worker_id, LATER))[0]


def closed() -> RoutedRequest:
    return decide(assigned(), Complete("w1", LATER))[0]


def test_a_new_request_is_queued_at_version_1() -> None:
    request, transitions = queue_request("r1", TEAM, Language.FR, NOW, ["office", "office"], priority=2)
    assert request.status == RequestStatus.QUEUED and request.version == 1
    assert request.required_skills == {"office"} and request.escalation is EscalationLevel.TEAM
    assert request.reservation is None and request.held_by() is None
    assert transitions == [Transition("queued", NOW)]


def test_an_offer_reserves_and_takes_a_slot() -> None:
    state, transitions = decide(queued(), Offer("w1", NOW, TIMEOUT, EscalationLevel.BACKUP))
    assert state.status == RequestStatus.RESERVED and state.version == 2 and state.updated_at == NOW
    assert state.reservation is not None and state.held_by() == "w1"
    assert (state.reservation.expires_at, state.reservation.level, state.reservation.accepted_at) == (
        NOW + TIMEOUT,
        EscalationLevel.BACKUP,
        None,
    )
    assert state.escalation is EscalationLevel.TEAM, "the request's own pool is widened by Escalate only"
    assert transitions == [Transition("reserved", NOW, "w1", worker_delta=1)]


def test_an_accept_before_expiry_assigns() -> None:
    state, transitions = decide(reserved(), Accept("w1", LATER))
    assert state.status == RequestStatus.ASSIGNED and state.held_by() == "w1"
    assert state.reservation is not None and state.reservation.accepted_at == LATER
    assert transitions == [Transition("accepted", LATER, "w1")]


def test_a_decline_requeues_and_frees_the_slot() -> None:
    state, transitions = decide(reserved(), Decline("w1", LATER))
    assert state.status == RequestStatus.QUEUED and state.reservation is None
    assert state.declined_by == {"w1"}
    assert transitions == [Transition("declined", LATER, "w1", worker_delta=-1)]


def test_an_expired_offer_is_released_as_a_decline() -> None:
    state, transitions = decide(reserved(), Expire(NOW + TIMEOUT))
    assert state.status == RequestStatus.QUEUED and state.declined_by == {"w1"}
    assert transitions == [Transition("timed_out", NOW + TIMEOUT, "w1", worker_delta=-1)]


def test_a_completed_request_is_closed_and_frees_the_slot() -> None:
    state, transitions = decide(assigned(), Complete("w1", LATER))
    assert state.status == RequestStatus.CLOSED and state.closed_at == LATER
    assert transitions == [Transition("closed", LATER, "w1", worker_delta=-1)]


def test_a_requeue_sends_a_closed_request_to_another_team_afresh() -> None:
    state, transitions = decide(closed(), Requeue(Target.ADVISORS, LATER, "redirected by w1"))
    assert state.status == RequestStatus.QUEUED and state.team is Target.ADVISORS
    assert state.reservation is None and state.declined_by == frozenset() and state.escalation is EscalationLevel.TEAM
    assert transitions == [Transition("requeued", LATER, None, "redirected by w1")]
    assert decide(closed(), Requeue(TEAM, LATER))[1][0].reason is None


def test_an_escalation_widens_a_queued_request() -> None:
    state, transitions = decide(queued(), Escalate(EscalationLevel.BACKUP, LATER, "no one for 30 min"))
    assert state.escalation is EscalationLevel.BACKUP and state.escalated_at == LATER
    assert transitions == [Transition("escalated:backup", LATER, None, "no one for 30 min")]
    assert transitions[0].entry() == {"at": LATER, "event": "escalated:backup", "worker_id": None, "reason": "no one for 30 min"}


@pytest.mark.parametrize("held", [reserved, assigned], ids=["reserved", "assigned"])
def test_a_reassignment_requeues_and_widens_never_narrows(held: Callable[[], RoutedRequest]) -> None:
    state, transitions = decide(held(), Reassign("w1", LATER, EscalationLevel.BACKUP, "w1 fell ill"))
    assert state.status == RequestStatus.QUEUED and state.declined_by == {"w1"}
    assert state.escalation is EscalationLevel.BACKUP and state.escalated_at == LATER
    assert transitions == [Transition("reassigned", LATER, "w1", "w1 fell ill", worker_delta=-1)]

    widened = decide(decide(state, Offer("w2", LATER, TIMEOUT))[0], Reassign("w2", LATER, EscalationLevel.TEAM))[0]
    assert widened.escalation is EscalationLevel.BACKUP and widened.escalated_at == LATER
    plain = decide(held(), Reassign("w1", LATER))[0]
    assert plain.escalation is EscalationLevel.TEAM and plain.escalated_at is None


def test_each_change_is_one_version_on() -> None:
    state = queued()
    commands: list[Command] = [
        Escalate(EscalationLevel.BACKUP, NOW),
        Offer("w1", NOW, TIMEOUT),
        Decline("w1", NOW),
        Offer("w2", NOW, TIMEOUT),
        Accept("w2", NOW),
        Complete("w2", NOW),
        Requeue(TEAM, NOW),
    ]
    for command in commands:
        before = state.version
        state, _ = decide(state, command)
        assert state.version == before + 1
    assert state.version == 8


REFUSALS: list[tuple[str, RoutedRequest, Command]] = [
    ("offer-reserved", reserved(), Offer("w2", LATER, TIMEOUT)),
    ("offer-assigned", assigned(), Offer("w2", LATER, TIMEOUT)),
    ("offer-to-a-decliner", decide(reserved(), Decline("w1", LATER))[0], Offer("w1", LATER, TIMEOUT)),
    ("accept-queued", queued(), Accept("w1", LATER)),
    ("accept-someone-elses", reserved(), Accept("w2", LATER)),
    ("accept-twice", assigned(), Accept("w1", LATER)),
    ("accept-at-expiry", reserved(), Accept("w1", NOW + TIMEOUT)),
    ("decline-queued", queued(), Decline("w1", LATER)),
    ("decline-someone-elses", reserved(), Decline("w2", LATER)),
    ("decline-assigned", assigned(), Decline("w1", LATER)),
    ("expire-before-expiry", reserved(), Expire(NOW + TIMEOUT - timedelta(microseconds=1))),
    ("expire-assigned", assigned(), Expire(NOW + timedelta(days=1))),
    ("expire-queued", queued(), Expire(NOW + timedelta(days=1))),
    ("complete-reserved", reserved(), Complete("w1", LATER)),
    ("complete-someone-elses", assigned(), Complete("w2", LATER)),
    ("complete-twice", closed(), Complete("w1", LATER)),
    ("requeue-queued-same-team", queued(), Requeue(TEAM, LATER)),
    ("requeue-assigned", assigned(), Requeue(Target.ADVISORS, LATER)),
    ("escalate-reserved", reserved(), Escalate(EscalationLevel.BACKUP, LATER)),
    ("escalate-as-wide", decide(queued(), Escalate(EscalationLevel.BACKUP, NOW))[0], Escalate(EscalationLevel.BACKUP, LATER)),
    ("escalate-narrower", decide(queued(), Escalate(EscalationLevel.SUPERVISOR, NOW))[0], Escalate(EscalationLevel.TEAM, LATER)),
    ("reassign-queued", queued(), Reassign("w1", LATER)),
    ("reassign-someone-elses", assigned(), Reassign("w2", LATER)),
    ("reassign-closed", closed(), Reassign("w1", LATER)),
]


@pytest.mark.parametrize(("state", "command"), [(s, c) for _, s, c in REFUSALS], ids=[name for name, _, _ in REFUSALS])
def test_a_command_that_does_not_apply_is_refused(state: RoutedRequest, command: Command) -> None:
    with pytest.raises(Refused) as refused:
        decide(state, command)
    assert refused.value.request_id == "r1" and refused.value.command is command and refused.value.why
