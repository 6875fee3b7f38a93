"""Nobody is left without a person due to call them back, and what the desk learns re-scores the
request: the pure parts (`routing.placement`, `RecordFacts`, `Reprioritise`), without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from routing.case import CallFacts, DeskError, RecordFacts, decide, open_case
from routing.decision import decide_route
from routing.placement import callback_team, team_after_admission
from routing.priority import DEFAULT_WEIGHTS
from routing.reservation import Accept, Offer, Refused, Reprioritise, RequestStatus, queue_request
from routing.reservation import decide as decide_request
from routing.workers import EscalationLevel
from schemas import (
    Channel,
    FactSource,
    Language,
    ProgrammePlace,
    QualificationLevel,
    RequestFactsRecorded,
    Target,
)
from tests.factories import make_request

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)


# --- whose queue ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("place", "promised", "team"),
    [
        # A caller of the free line is called back by an advisor, whatever the programme says.
        (ProgrammePlace.ADMITTED, True, Target.ADVISORS),
        (ProgrammePlace.WAITLISTED_SUSPENDED, True, Target.ADVISORS),
        (ProgrammePlace.WAITLISTED_FULL, True, Target.ADVISORS),
        # Without a promise: the programme's team when admitted, an advisor while waiting.
        (ProgrammePlace.ADMITTED, False, Target.DIGITAL_DIVIDE),
        (ProgrammePlace.WAITLISTED_SUSPENDED, False, Target.ADVISORS),
        (ProgrammePlace.WAITLISTED_FULL, False, Target.ADVISORS),
    ],
)
def test_a_person_sent_to_the_programme_always_has_somebody_due_to_call(
    place: ProgrammePlace, promised: bool, team: Target
) -> None:
    assert callback_team(Target.DIGITAL_DIVIDE, place, promised=promised) is team


@pytest.mark.parametrize("target", [t for t in Target if t is not Target.DIGITAL_DIVIDE])
def test_other_decisions_are_queued_where_the_rules_said(target: Target) -> None:
    assert callback_team(target, None, promised=True) is target


@pytest.mark.parametrize(
    ("promised", "queued", "closed", "team"),
    [
        (False, True, False, Target.DIGITAL_DIVIDE),  # nobody holds it: the programme's team takes over
        (True, True, False, None),  # an advisor promised the call: it stays with the advisors
        (False, False, False, None),  # an advisor holds it: they keep it
        (True, False, True, Target.DIGITAL_DIVIDE),  # already called back: the programme calls to start
    ],
)
def test_an_admission_from_the_waitlist_moves_only_what_nobody_holds_or_promised(
    promised: bool, queued: bool, closed: bool, team: Target | None
) -> None:
    assert team_after_admission(promised=promised, queued=queued, closed=closed) is team


def test_the_routed_event_tells_where_the_person_stands_in_the_programme() -> None:
    request = make_request(has_computer=False, channel=Channel.WEB)
    decision = decide_route(request)

    opening = open_case(request, decision, joined_to=None, deadline=None, due=None, programme=ProgrammePlace.WAITLISTED_SUSPENDED)

    assert opening.routed.target is Target.DIGITAL_DIVIDE
    assert opening.routed.programme is ProgrammePlace.WAITLISTED_SUSPENDED
    assert opening.case.programme == "waitlisted"


# --- facts and scores -----------------------------------------------------------------------


def test_a_case_remembers_the_facts_it_arrived_with_and_where_they_came_from() -> None:
    request = make_request(channel=Channel.PHONE, qualification_level=QualificationLevel.PRIMARY, has_computer=None)

    case = open_case(request, decide_route(request), joined_to=None, deadline=None, due=None).case

    assert case.qualification_level is QualificationLevel.PRIMARY and case.has_computer is None
    assert case.fact_sources == {"qualification_level": FactSource.PHONE_IVR}


def test_facts_said_on_a_call_rescore_the_request_and_say_where_each_fact_came_from() -> None:
    request = make_request(channel=Channel.PHONE, qualification_level=None, has_computer=None, language=Language.FR)
    case = open_case(request, decide_route(request), joined_to=None, deadline=None, due=None).case
    before = case.priority

    command = RecordFacts(
        facts=CallFacts(qualification_level=QualificationLevel.NONE, has_computer=False),
        recorded_by="adv-1",
        now=NOW,
        weights=DEFAULT_WEIGHTS,
    )
    rescored, effects = decide(case, command)

    # unknown qualification (15) becomes none (40), no computer adds 15, and the particular attention 30.
    assert rescored.priority == before - 15 + 40 + 15 + 30
    assert rescored.priority_parts["qualification"] == 40 and rescored.priority_parts["no_computer"] == 15
    assert rescored.fact_sources == {"qualification_level": FactSource.DESK, "has_computer": FactSource.DESK}
    [event] = effects.events
    assert isinstance(event, RequestFactsRecorded)
    assert (event.recorded_by, event.has_computer, event.priority) == ("adv-1", False, rescored.priority)
    assert event.qualification_level is QualificationLevel.NONE and event.has_internet is None
    assert str(event.correlation_id) == case.correlation_id

    # Said again: nothing new, nothing published.
    assert decide(rescored, command) == (rescored, effects.__class__())


def test_recording_no_fact_is_refused() -> None:
    request = make_request()
    case = open_case(request, decide_route(request), joined_to=None, deadline=None, due=None).case

    with pytest.raises(DeskError) as refused:
        decide(case, RecordFacts(facts=CallFacts(), recorded_by="adv-1", now=NOW, weights=DEFAULT_WEIGHTS))
    assert refused.value.status == 422


def test_a_long_unemployment_learned_on_the_call_counts() -> None:
    request = make_request(unemployed_since=None)
    case = open_case(request, decide_route(request), joined_to=None, deadline=None, due=None).case

    command = RecordFacts(
        facts=CallFacts(unemployed_since=date(NOW.year - 3, 1, 1)), recorded_by="adv-1", now=NOW, weights=DEFAULT_WEIGHTS
    )
    rescored, _ = decide(case, command)

    assert rescored.priority_parts["long_unemployment"] == DEFAULT_WEIGHTS.unemployed_24_months


# --- the queue follows ----------------------------------------------------------------------


def test_a_reprioritised_request_keeps_its_holder_and_changes_its_score_and_deadline() -> None:
    queued, _ = queue_request("r1", Target.ADVISORS, Language.FR, NOW, (), priority=20)
    offered = decide_request(queued, Offer("adv-1", NOW, timedelta(minutes=2), EscalationLevel.TEAM))[0]
    assigned = decide_request(offered, Accept("adv-1", NOW))[0]
    deadline = NOW + timedelta(hours=48)

    changed, [transition] = decide_request(assigned, Reprioritise(70, deadline, NOW, "facts recorded by adv-1"))

    assert (changed.priority, changed.deadline, changed.status, changed.held_by()) == (
        70,
        deadline,
        RequestStatus.ASSIGNED,
        "adv-1",
    )
    assert (transition.event, transition.reason, transition.worker_delta) == ("reprioritised", "facts recorded by adv-1", 0)
    with pytest.raises(Refused):
        decide_request(changed, Reprioritise(70, deadline, NOW))


def test_a_case_keeps_the_sources_intake_gave_for_each_fact() -> None:
    request = make_request(
        channel=Channel.EMAIL,
        has_computer=False,
        unemployed_since=date(2024, 1, 1),
        fact_sources={"has_computer": "email_text", "unemployed_since": "email_text"},
    )

    case = open_case(request, decide_route(request), joined_to=None, deadline=None, due=None).case

    assert case.fact_sources == {"has_computer": "email_text", "unemployed_since": "email_text"}
