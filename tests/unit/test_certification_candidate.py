"""The candidate's pure decisions: every transition of its lifecycle, its no-op answers to repeats,
its refusals, and the round trip through the stored document (no database)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from certification.candidate import (
    BoostPriority,
    Candidate,
    ExplainWait,
    JoinWaitlist,
    Offer,
    RecordResult,
    Register,
    Release,
    Schedule,
    SetPriority,
    Trace,
    decide,
)
from certification.errors import NotWaiting
from certification.seating import CandidateStatus, OfferStatus, WaitingReason

pytestmark = pytest.mark.unit

T0 = datetime(2020, 3, 17, 9, 0, tzinfo=UTC)
CALL = str(uuid.uuid4())


def registered(*, hint: int = 0) -> Candidate:
    enrolment = str(uuid.uuid4())
    candidate, _ = decide(
        None,
        Register(
            "p1",
            "MOS-EXCEL",
            T0,
            "enrolment.confirmed",
            enrolment,
            course="EXCEL",
            enrolled_by=Trace(enrolment, CALL),
            priority_hint=hint,
        ),
    )
    return candidate


def join(candidate: Candidate, *, root: bool = True, at: datetime = T0) -> Candidate:
    event_id = str(uuid.uuid4())
    joined, _ = decide(
        candidate,
        JoinWaitlist(at, WaitingReason.CENTRES_CLOSED, event_id, event_id if root else str(uuid.uuid4()), "path_completed"),
    )
    return joined


def offered(offer_id: str = "o1", session_id: str = "ses-1") -> Candidate:
    candidate, _ = decide(join(registered()), Offer(offer_id, session_id, T0))
    return candidate


def test_a_first_registration_makes_a_preparing_candidate_with_the_persons_boost() -> None:
    candidate, facts = decide(None, Register("p1", "mos-excel", T0, "enrolment.confirmed", "e1", course="EXCEL", priority_hint=2))
    assert (candidate.candidate_id, candidate.status, candidate.priority) == ("MOS-EXCEL:p1", CandidateStatus.PREPARING, 2)
    assert (candidate.courses, candidate.version, len(candidate.history)) == (("EXCEL",), 0, 1)
    assert [f.what for f in facts] == ["registered"]


def test_a_second_registration_adds_a_course_once_and_a_history_line_and_ignores_the_hint() -> None:
    candidate = registered()
    again, facts = decide(candidate, Register("p1", "MOS-EXCEL", T0, "exam.requested", "e2", course="EXCEL", priority_hint=5))
    assert (again.courses, again.priority, len(again.history), facts) == (("EXCEL",), 0, 2, [])
    assert again.enrolled_by == candidate.enrolled_by  # an exam request does not replace the enrolment
    assert len(candidate.history) == 1  # the input is unchanged: states are frozen


def test_an_exam_request_puts_a_preparing_candidate_on_the_waitlist() -> None:
    candidate = join(registered(), root=False)
    assert (candidate.status, candidate.waiting_since, candidate.waiting_reason) == (
        CandidateStatus.WAITING,
        T0,
        WaitingReason.CENTRES_CLOSED,
    )
    assert candidate.requested_by is not None and candidate.requested_by.reason == "path_completed"
    assert candidate.history[-1].what == "joined_waitlist"


def test_a_root_exam_request_continues_the_enrolments_conversation() -> None:
    candidate = join(registered(), root=True)
    assert candidate.requested_by is not None and candidate.requested_by.correlation_id == CALL
    own = join(registered(), root=False)
    assert own.requested_by is not None and own.requested_by.correlation_id != CALL


def test_an_exam_request_while_waiting_offered_or_booked_changes_nothing() -> None:
    waiting = join(registered())
    for candidate in (waiting, offered()):
        again, facts = decide(candidate, JoinWaitlist(T0 + timedelta(days=1), WaitingReason.NO_FREE_SEAT, "e", "e", "x"))
        assert (again, facts) == (candidate, [])


def test_a_failed_candidate_asking_again_goes_to_the_end_of_the_waitlist() -> None:
    failed = replace(offered(), status=CandidateStatus.FAILED)
    later = T0 + timedelta(days=60)
    again = join(failed, at=later)
    assert (again.status, again.waiting_since, again.offer_id, again.session_id) == (CandidateStatus.WAITING, later, None, None)


def test_staff_set_any_priority_with_a_history_line() -> None:
    candidate, facts = decide(registered(hint=3), SetPriority(1, T0))
    assert (candidate.priority, candidate.history[-1].what, [f.what for f in facts]) == (1, "priority", ["priority"])


def test_a_boost_only_raises_a_preparing_or_waiting_candidates_priority() -> None:
    boosted, facts = decide(registered(), BoostPriority(2))
    assert (boosted.priority, len(facts)) == (2, 1)
    assert decide(boosted, BoostPriority(1)) == (boosted, [])
    booked = replace(offered(), status=CandidateStatus.SCHEDULED)
    assert decide(booked, BoostPriority(5)) == (booked, [])


def test_a_waiting_reason_is_said_again_only_when_it_changed_and_only_while_waiting() -> None:
    waiting = join(registered())
    explained, facts = decide(waiting, ExplainWait(WaitingReason.NO_FREE_SEAT))
    assert (explained.waiting_reason, len(facts)) == (WaitingReason.NO_FREE_SEAT, 1)
    assert decide(explained, ExplainWait(WaitingReason.NO_FREE_SEAT)) == (explained, [])
    assert decide(registered(), ExplainWait(WaitingReason.NO_FREE_SEAT))[1] == []


def test_an_offer_claims_a_waiting_candidate() -> None:
    candidate = offered("o1", "ses-1")
    assert (candidate.status, candidate.offer_id, candidate.waiting_reason) == (CandidateStatus.OFFERED, "o1", None)


@pytest.mark.parametrize("status", [CandidateStatus.PREPARING, CandidateStatus.OFFERED, CandidateStatus.SCHEDULED])
def test_an_offer_to_someone_not_waiting_is_refused(status: CandidateStatus) -> None:
    with pytest.raises(NotWaiting) as refused:
        decide(replace(join(registered()), status=status), Offer("o2", "ses-1", T0))
    assert refused.value.status == 409


def test_an_offer_of_a_session_the_candidate_turned_down_is_refused() -> None:
    released, _ = decide(offered(), Release("o1", "ses-1", OfferStatus.DECLINED, T0))
    with pytest.raises(NotWaiting, match="turned session ses-1 down"):
        decide(released, Offer("o2", "ses-1", T0))
    assert decide(released, Offer("o2", "ses-2", T0))[0].status is CandidateStatus.OFFERED


def test_an_acceptance_books_the_candidate_in_the_session() -> None:
    exam = T0 + timedelta(days=70)
    booked, facts = decide(offered(), Schedule("o1", "ses-1", exam, "ev-1", T0))
    assert (booked.status, booked.session_id, booked.exam_at, booked.scheduled_event_id) == (
        CandidateStatus.SCHEDULED,
        "ses-1",
        exam,
        "ev-1",
    )
    assert [f.what for f in facts] == ["scheduled"]
    with pytest.raises(NotWaiting):
        decide(offered(), Schedule("another", "ses-1", exam, "ev-1", T0))


@pytest.mark.parametrize(("outcome", "missed", "declined"), [(OfferStatus.DECLINED, 0, 1), (OfferStatus.EXPIRED, 1, 0)])
def test_a_declined_or_expired_offer_puts_the_candidate_back_in_their_place(
    outcome: OfferStatus, missed: int, declined: int
) -> None:
    before = offered()
    released, facts = decide(before, Release("o1", "ses-1", outcome, T0 + timedelta(hours=3)))
    assert (released.status, released.offer_id, released.passed_over_sessions) == (CandidateStatus.WAITING, None, ("ses-1",))
    assert (released.missed_offers, released.declined_offers) == (missed, declined)
    assert (released.waiting_since, released.priority) == (before.waiting_since, before.priority)
    assert [f.what for f in facts] == [outcome.value]
    assert decide(released, Release("o1", "ses-1", outcome, T0)) == (released, [])  # released once


@pytest.mark.parametrize(("passed", "status"), [(True, CandidateStatus.PASSED), (False, CandidateStatus.FAILED)])
def test_a_result_closes_a_scheduled_candidacy(passed: bool, status: CandidateStatus) -> None:
    booked, _ = decide(offered(), Schedule("o1", "ses-1", T0, "ev", T0))
    done, _ = decide(booked, RecordResult(passed, "ses-1:p1", "cred" if passed else None, T0))
    assert (done.status, done.result_id) == (status, "ses-1:p1")
    with pytest.raises(NotWaiting):
        decide(join(registered()), RecordResult(passed, "r", None, T0))


def test_commands_other_than_register_need_a_candidate() -> None:
    with pytest.raises(ValueError, match="needs a candidate"):
        decide(None, SetPriority(1, T0))


def test_a_candidate_reads_back_from_its_document_and_an_old_one_without_version_is_version_0() -> None:
    candidate = replace(offered(), version=4)
    assert Candidate.from_document(candidate.as_document()) == candidate
    old = {k: v for k, v in registered().as_document().items() if k != "version"}
    assert Candidate.from_document(old).version == 0
