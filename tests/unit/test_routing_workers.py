"""Who may be offered a request, who is chosen, and how the pool widens: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from routing.workers import (
    Availability,
    EscalationLevel,
    OfferRequest,
    Worker,
    choose_worker,
    escalation_pool,
    in_pool,
    is_eligible,
    rank_candidates,
    why_not,
    worker_hours,
)
from schemas import Language, Target

pytestmark = pytest.mark.unit

WEEKDAYS = worker_hours({day: [("08:30", "12:30"), ("13:15", "17:00")] for day in range(5)})
# Monday 15 June 2026, 10:00 in Brussels (CEST, UTC+2).
NOW = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)


def worker(worker_id: str = "w1", **overrides: Any) -> Worker:
    fields: dict[str, Any] = {
        "worker_id": worker_id,
        "display_name": f"Staff {worker_id}",
        "team": Target.ESPACES_NUMERIQUES,
        "languages": frozenset({Language.FR}),
        "skills": frozenset({"enrolment", "office"}),
        "working_hours": WEEKDAYS,
        "availability": Availability.AVAILABLE,
        "capacity": 3,
    }
    fields.update(overrides)
    return Worker(**fields)


def request(**overrides: Any) -> OfferRequest:
    fields: dict[str, Any] = {
        "request_id": "r1",
        "team": Target.ESPACES_NUMERIQUES,
        "language": Language.FR,
        "required_skills": frozenset({"office"}),
    }
    fields.update(overrides)
    return OfferRequest(**fields)


def test_a_worker_who_meets_every_rule_is_eligible() -> None:
    assert why_not(worker(), request(), NOW) is None
    assert is_eligible(worker(), request(), NOW)


# --- eligibility, one rule at a time ---------------------------------------------------------


def test_another_team_is_not_eligible() -> None:
    reason = why_not(worker(team=Target.ADVISORS), request(), NOW)
    assert reason is not None and "espaces_numeriques pool" in reason


def test_the_request_language_is_required() -> None:
    assert why_not(worker(), request(language=Language.NL), NOW) == "does not speak nl"
    assert is_eligible(worker(languages=frozenset({Language.FR, Language.NL})), request(language=Language.NL), NOW)


def test_every_required_skill_is_required() -> None:
    needs_two = request(required_skills=frozenset({"office", "graphics"}))
    assert why_not(worker(), needs_two, NOW) == "lacks skills graphics"
    assert is_eligible(worker(skills=frozenset({"office", "graphics"})), needs_two, NOW)
    assert is_eligible(worker(skills=frozenset()), request(required_skills=frozenset()), NOW)


@pytest.mark.parametrize("availability", [Availability.BUSY, Availability.BREAK, Availability.OFFLINE])
def test_only_available_workers_are_eligible(availability: Availability) -> None:
    assert why_not(worker(availability=availability), request(), NOW) == f"is {availability.value}"


@pytest.mark.parametrize(
    ("utc", "eligible"),
    [
        # Summer (CEST, UTC+2): 08:30 Brussels is 06:30 UTC.
        (datetime(2026, 6, 15, 6, 29, tzinfo=UTC), False),
        (datetime(2026, 6, 15, 6, 29, 59, 999999, tzinfo=UTC), False),
        (datetime(2026, 6, 15, 6, 30, tzinfo=UTC), True),
        # Winter (CET, UTC+1): 08:30 Brussels is 07:30 UTC.
        (datetime(2026, 1, 12, 7, 29, tzinfo=UTC), False),
        (datetime(2026, 1, 12, 7, 30, tzinfo=UTC), True),
        # Lunch break 12:30-13:15, end exclusive; closing 17:00.
        (datetime(2026, 6, 15, 10, 29, tzinfo=UTC), True),
        (datetime(2026, 6, 15, 10, 30, tzinfo=UTC), False),
        (datetime(2026, 6, 15, 11, 15, tzinfo=UTC), True),
        (datetime(2026, 6, 15, 14, 59, tzinfo=UTC), True),
        (datetime(2026, 6, 15, 15, 0, tzinfo=UTC), False),
        # Saturday: no hours at all.
        (datetime(2026, 6, 20, 8, 0, tzinfo=UTC), False),
    ],
)
def test_working_hours_are_brussels_local_time(utc: datetime, eligible: bool) -> None:
    assert is_eligible(worker(), request(), utc) is eligible
    if not eligible:
        reason = why_not(worker(), request(), utc)
        assert reason is not None and reason.startswith("outside working hours")


def test_the_hours_follow_brussels_not_the_offset_of_now() -> None:
    # 08:29 in Brussels on Monday, given in another zone, is still before opening.
    new_york = datetime(2026, 6, 15, 2, 29, tzinfo=ZoneInfo("America/New_York"))
    assert not is_eligible(worker(), request(), new_york)
    assert is_eligible(worker(), request(), new_york + timedelta(minutes=1))


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_eligible(worker(), request(), datetime(2026, 6, 15, 10, 0))


def test_a_worker_at_capacity_is_not_eligible() -> None:
    assert is_eligible(worker(capacity=2, open_count=1), request(), NOW)
    assert why_not(worker(capacity=2, open_count=2), request(), NOW) == "at capacity (2/2)"
    assert not is_eligible(worker(capacity=0), request(), NOW)


def test_a_worker_who_declined_or_timed_out_is_not_offered_again() -> None:
    reason = why_not(worker("w1"), request(declined_by=frozenset({"w1"})), NOW)
    assert reason is not None and "declined" in reason
    assert is_eligible(worker("w2"), request(declined_by=frozenset({"w1"})), NOW)


def test_invalid_working_hours_are_rejected() -> None:
    with pytest.raises(ValidationError):
        worker(working_hours={7: [(time(9), time(10))]})
    with pytest.raises(ValidationError):
        worker(working_hours={0: [(time(12), time(9))]})


# --- choice ----------------------------------------------------------------------------------


def test_least_load_wins() -> None:
    busy = worker("a", open_count=2)
    light = worker("b", open_count=1)
    assert choose_worker([busy, light], request(), NOW) == light


def test_equal_open_count_prefers_the_larger_capacity() -> None:
    small = worker("a", open_count=1, capacity=2)
    large = worker("b", open_count=1, capacity=5)
    assert choose_worker([small, large], request(), NOW) == large


def test_equal_load_prefers_the_longest_idle_and_never_assigned_first() -> None:
    recent = worker("a", last_assigned_at=NOW - timedelta(minutes=5))
    idle = worker("b", last_assigned_at=NOW - timedelta(hours=2))
    never = worker("c", last_assigned_at=None)
    assert [w.worker_id for w in rank_candidates([recent, idle, never], request(), NOW)] == ["c", "b", "a"]


def test_load_comes_before_idleness() -> None:
    idle_but_loaded = worker("a", open_count=1, last_assigned_at=NOW - timedelta(hours=3))
    fresh_and_free = worker("b", open_count=0, last_assigned_at=NOW - timedelta(minutes=1))
    assert choose_worker([idle_but_loaded, fresh_and_free], request(), NOW) == fresh_and_free


def test_ties_are_broken_by_id_whatever_the_input_order() -> None:
    workers = [worker(w) for w in ("w3", "w1", "w2")]
    assert choose_worker(workers, request(), NOW) == workers[1]
    assert choose_worker(list(reversed(workers)), request(), NOW) == workers[1]


def test_ineligible_workers_are_never_chosen() -> None:
    assert choose_worker([worker(availability=Availability.BREAK), worker("w2", open_count=3)], request(), NOW) is None


# --- escalation ------------------------------------------------------------------------------

BACKUP_BY_SKILL = worker("by-skill", team=Target.ADVISORS, skills=frozenset({"office", "espaces_numeriques"}))
BACKUP_BY_FLAG = worker("by-flag", team=Target.CITE_DES_METIERS, backup_for=frozenset({Target.ESPACES_NUMERIQUES}))
SUPERVISOR = worker("boss", supervisor=True)
STRANGER = worker("stranger", team=Target.ADVISORS)


def test_pool_membership_widens_level_by_level() -> None:
    team = Target.ESPACES_NUMERIQUES
    member = worker("member")
    assert [in_pool(w, team, EscalationLevel.TEAM) for w in (member, BACKUP_BY_SKILL, BACKUP_BY_FLAG, SUPERVISOR)] == [
        True,
        False,
        False,
        False,
    ]
    assert [in_pool(w, team, EscalationLevel.BACKUP) for w in (member, BACKUP_BY_SKILL, BACKUP_BY_FLAG, SUPERVISOR)] == [
        True,
        True,
        True,
        False,
    ]
    assert all(in_pool(w, team, EscalationLevel.SUPERVISOR) for w in (member, BACKUP_BY_SKILL, BACKUP_BY_FLAG, SUPERVISOR))
    assert not any(in_pool(STRANGER, team, level) for level in EscalationLevel)
    # A supervisor is last resort for their own team only.
    assert not in_pool(SUPERVISOR, Target.ADVISORS, EscalationLevel.SUPERVISOR)


def test_the_team_pool_is_used_while_someone_in_it_is_eligible() -> None:
    workers = [worker("member"), BACKUP_BY_SKILL, SUPERVISOR]
    pool = escalation_pool(workers, request(), NOW, waiting_since=NOW - timedelta(hours=3), escalate_after=timedelta(minutes=30))
    assert pool.level is EscalationLevel.TEAM and not pool.escalated
    assert [w.worker_id for w in pool.candidates] == ["member"]


def test_no_one_in_the_team_waits_until_escalate_after() -> None:
    workers = [worker("member", availability=Availability.OFFLINE), BACKUP_BY_SKILL, SUPERVISOR]
    pool = escalation_pool(
        workers, request(), NOW, waiting_since=NOW - timedelta(minutes=29), escalate_after=timedelta(minutes=30)
    )
    assert pool.level is EscalationLevel.TEAM and pool.candidates == () and not pool.escalated
    assert "widens at 10:01" in pool.description


def test_after_escalate_after_backups_come_before_supervisors() -> None:
    workers = [worker("member", availability=Availability.OFFLINE), BACKUP_BY_SKILL, BACKUP_BY_FLAG, SUPERVISOR, STRANGER]
    pool = escalation_pool(
        workers, request(), NOW, waiting_since=NOW - timedelta(minutes=30), escalate_after=timedelta(minutes=30)
    )
    assert pool.level is EscalationLevel.BACKUP and pool.escalated
    assert [w.worker_id for w in pool.candidates] == ["by-flag", "by-skill"]
    assert "backups" in pool.description


def test_supervisors_when_no_backup_is_eligible() -> None:
    busy_backup = BACKUP_BY_SKILL.model_copy(update={"open_count": 3})
    workers = [worker("member", availability=Availability.OFFLINE), busy_backup, SUPERVISOR, STRANGER]
    pool = escalation_pool(workers, request(), NOW, waiting_since=NOW - timedelta(hours=1), escalate_after=timedelta(minutes=30))
    assert pool.level is EscalationLevel.SUPERVISOR and pool.escalated
    assert [w.worker_id for w in pool.candidates] == ["boss"]


def test_escalation_still_respects_language_hours_and_declines() -> None:
    workers = [
        BACKUP_BY_SKILL.model_copy(update={"languages": frozenset({Language.NL})}),
        BACKUP_BY_FLAG.model_copy(update={"working_hours": {}}),
        SUPERVISOR,
    ]
    pool = escalation_pool(
        workers,
        request(declined_by=frozenset({"boss"})),
        NOW,
        waiting_since=NOW - timedelta(hours=1),
        escalate_after=timedelta(minutes=30),
    )
    assert pool.level is EscalationLevel.SUPERVISOR and pool.candidates == ()
    assert "even with backups and supervisors" in pool.description


def test_an_escalated_request_starts_from_its_level_without_waiting() -> None:
    workers = [worker("member", open_count=3), BACKUP_BY_FLAG]
    pool = escalation_pool(
        workers,
        request(escalation=EscalationLevel.BACKUP),
        NOW,
        waiting_since=NOW,
        escalate_after=timedelta(minutes=30),
    )
    assert pool.level is EscalationLevel.BACKUP and not pool.escalated
    assert [w.worker_id for w in pool.candidates] == ["by-flag"]


def test_without_escalate_after_the_pool_never_widens_by_itself() -> None:
    pool = escalation_pool([BACKUP_BY_FLAG], request(), NOW, waiting_since=NOW - timedelta(days=2), escalate_after=None)
    assert pool.level is EscalationLevel.TEAM and pool.candidates == ()
    assert "never widens" in pool.description
