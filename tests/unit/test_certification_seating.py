"""Who gets the next exam seat: the waitlist order, the seat-offering decision, what a decline or a
timeout does, the deadline, and why a candidate waits (pure functions, no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certification.seating import (
    NoOffer,
    OfferTerms,
    SessionSeats,
    WaitingCandidate,
    WaitingReason,
    next_candidate,
    offer_deadline,
    passed_over,
    plan_offers,
    waiting_reason,
    waitlist_order,
    why_no_offer,
)

pytestmark = pytest.mark.unit

T0 = datetime(2020, 3, 17, 9, 0, tzinfo=UTC)
"""17 March 2020: the lockdown starts, candidates start waiting."""
EXCEL, WORD, AUTOCAD = "MOS-EXCEL", "MOS-WORD", "ACU-AUTOCAD"
OPEN = {EXCEL, WORD}


def waiting(name: str, *, priority: int = 0, hours: int = 0, code: str = EXCEL) -> WaitingCandidate:
    """`hours` after T0 they asked for an exam."""
    return WaitingCandidate(f"{code}:{name}", name, code, priority, T0 + timedelta(hours=hours))


def session(
    seats: int = 3, *, held: int = 0, booked: int = 0, codes: frozenset[str] = frozenset({EXCEL}), sid: str = "ses-1"
) -> SessionSeats:
    return SessionSeats(sid, "ctr-1", codes, T0 + timedelta(days=80), seats, held, booked)


def test_the_waitlist_is_ordered_by_priority_then_waiting_time() -> None:
    candidates = [
        waiting("late", hours=5),
        waiting("urgent-late", priority=2, hours=9),
        waiting("early", hours=1),
        waiting("urgent-early", priority=2, hours=3),
        waiting("demoted", priority=-1, hours=0),
    ]
    order = [c.person_id for c in waitlist_order(candidates)]
    assert order == ["urgent-early", "urgent-late", "early", "late", "demoted"]


def test_ties_are_broken_by_id_so_every_replica_computes_the_same_order() -> None:
    a, b = waiting("b"), waiting("a")
    assert [c.person_id for c in waitlist_order([a, b])] == [c.person_id for c in waitlist_order([b, a])] == ["a", "b"]


def test_seats_go_in_waitlist_order_and_no_more_than_are_free() -> None:
    candidates = [waiting(f"p{i}", priority=i % 3, hours=i) for i in range(8)]
    planned = plan_offers(candidates, session(seats=5, held=1, booked=1), open_certifications=OPEN)
    # 5 seats, 1 held, 1 booked: 3 free, for the two of priority 2 and the longest-waiting of priority 1.
    assert [c.person_id for c in planned] == ["p2", "p5", "p1"]
    assert plan_offers(candidates[:2], session(seats=5), open_certifications=OPEN) == waitlist_order(candidates[:2])


def test_a_session_only_takes_candidates_for_its_certifications() -> None:
    word_first = waiting("word", priority=9, code=WORD)
    excel = waiting("excel", hours=4)
    assert next_candidate([word_first, excel], session(), open_certifications=OPEN) == excel
    both = session(codes=frozenset({EXCEL, WORD}))
    assert next_candidate([word_first, excel], both, open_certifications=OPEN) == word_first


def test_a_certification_not_yet_open_gets_no_seat() -> None:
    drawing = waiting("drawer", priority=5, code=AUTOCAD)
    mixed = session(codes=frozenset({AUTOCAD, EXCEL}))
    assert next_candidate([drawing], mixed, open_certifications=OPEN) is None
    assert next_candidate([drawing], mixed, open_certifications=OPEN | {AUTOCAD}) == drawing


def test_a_decline_gives_the_seat_to_the_next_candidate_and_the_decliner_keeps_their_place() -> None:
    first, second, third = waiting("first", hours=0), waiting("second", hours=1), waiting("third", hours=2)
    june = session(seats=1)
    assert next_candidate([first, second, third], june, open_certifications=OPEN) == first

    declined = passed_over(first, june.session_id)
    assert declined.waiting_since == first.waiting_since and declined.priority == first.priority
    assert next_candidate([declined, second, third], june, open_certifications=OPEN) == second
    # The same candidate comes first again for another session.
    july = session(seats=1, sid="ses-2")
    assert next_candidate([declined, second, third], july, open_certifications=OPEN) == declined


def test_a_timeout_is_treated_like_a_decline_and_the_seat_moves_on_until_nobody_is_left() -> None:
    only_two = [waiting("a"), waiting("b", hours=1)]
    june = session(seats=1)
    after_a = [passed_over(only_two[0], june.session_id), only_two[1]]
    assert next_candidate(after_a, june, open_certifications=OPEN) == only_two[1]
    after_b = [after_a[0], passed_over(only_two[1], june.session_id)]
    assert next_candidate(after_b, june, open_certifications=OPEN) is None


def test_seats_are_offered_only_from_an_open_centre_before_the_session_starts() -> None:
    now = T0 + timedelta(days=60)
    assert why_no_offer(session(), centre_open=False, now=now) is NoOffer.CENTRE_CLOSED
    assert why_no_offer(session(), centre_open=True, now=now) is None
    assert why_no_offer(session(), centre_open=True, now=T0 + timedelta(days=80)) is NoOffer.STARTED
    assert why_no_offer(session(seats=2, held=1, booked=1), centre_open=True, now=now) is NoOffer.FULL
    assert session(seats=2, held=2, booked=1).free == 0


TERMS = OfferTerms(window=timedelta(hours=48), margin=timedelta(hours=24), minimum=timedelta(hours=2))


def test_the_deadline_is_the_window_when_the_exam_is_far() -> None:
    assert offer_deadline(T0, T0 + timedelta(days=10), TERMS) == T0 + timedelta(hours=48)
    assert offer_deadline(T0, T0 + timedelta(hours=72), TERMS) == T0 + timedelta(hours=48)  # exactly the margin


def test_the_deadline_is_never_later_than_the_margin_before_the_exam() -> None:
    exam = T0 + timedelta(hours=40)
    assert offer_deadline(T0, exam, TERMS) == exam - timedelta(hours=24)
    # A session minutes away no longer gets an offer that lapses minutes before it starts.
    assert offer_deadline(T0, T0 + timedelta(minutes=30), TERMS) is None


def test_no_offer_when_it_would_leave_less_than_the_minimum_to_answer() -> None:
    assert offer_deadline(T0, T0 + timedelta(hours=26), TERMS) == T0 + timedelta(hours=2)  # exactly the minimum
    assert offer_deadline(T0, T0 + timedelta(hours=26) - timedelta(seconds=1), TERMS) is None
    assert TERMS.last_offer_before(T0 + timedelta(hours=26)) == T0


@pytest.mark.parametrize("margin_hours", [0, 1, 24, 47, 100])
@pytest.mark.parametrize("hours_to_exam", [1, 3, 25, 26, 30, 49, 72, 500])
def test_the_deadline_keeps_its_promises_for_any_terms(margin_hours: int, hours_to_exam: int) -> None:
    terms = OfferTerms(window=timedelta(hours=48), margin=timedelta(hours=margin_hours), minimum=timedelta(hours=2))
    exam = T0 + timedelta(hours=hours_to_exam)
    deadline = offer_deadline(T0, exam, terms)
    if deadline is None:
        assert exam - terms.margin - T0 < terms.minimum
    else:
        assert T0 + terms.minimum <= deadline <= T0 + terms.window
        assert deadline <= exam - terms.margin


def test_a_session_too_close_to_leave_time_to_answer_is_offered_to_nobody() -> None:
    soon = SessionSeats("s", "ctr-1", frozenset({"MOS-EXCEL"}), T0 + timedelta(hours=25), seats=3)
    assert why_no_offer(soon, centre_open=True, now=T0, terms=TERMS) is NoOffer.TOO_LATE
    assert why_no_offer(soon, centre_open=True, now=T0 - timedelta(hours=1), terms=TERMS) is None


@pytest.mark.parametrize(
    ("window", "margin", "minimum"),
    [
        (timedelta(0), timedelta(hours=1), timedelta(hours=1)),
        (timedelta(hours=1), -timedelta(hours=1), timedelta(hours=1)),
        (timedelta(hours=1), timedelta(hours=1), timedelta(hours=2)),
        (timedelta(hours=1), timedelta(hours=1), timedelta(0)),
    ],
)
def test_terms_that_cannot_hold_are_refused(window: timedelta, margin: timedelta, minimum: timedelta) -> None:
    with pytest.raises(ValueError):
        OfferTerms(window=window, margin=margin, minimum=minimum)


@pytest.mark.parametrize(
    ("certification_open", "centres_open", "free_seats", "reason"),
    [
        (False, True, True, WaitingReason.CERTIFICATION_NOT_OPEN),
        (False, False, False, WaitingReason.CERTIFICATION_NOT_OPEN),
        (True, False, False, WaitingReason.CENTRES_CLOSED),
        (True, True, False, WaitingReason.NO_FREE_SEAT),
        (True, True, True, WaitingReason.AWAITING_OFFER),
    ],
)
def test_why_a_candidate_waits(certification_open: bool, centres_open: bool, free_seats: bool, reason: WaitingReason) -> None:
    assert waiting_reason(certification_open=certification_open, centres_open=centres_open, free_seats=free_seats) is reason
