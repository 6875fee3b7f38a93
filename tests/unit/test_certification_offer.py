"""The seat offer's and the session's pure decisions: made (`ExamSeatOffered`), accepted (publishing
`ExamSeatOfferAccepted` and `ExamScheduled`), declined, expired (each with its event); repeats that
change nothing, refusals with their HTTP status (no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from certification.candidate import Trace
from certification.errors import OfferClosed, OfferPastDeadline, OfferTooLate
from certification.offer import Accept, Decline, Expire, MakeOffer, SeatOffer, decide
from certification.seating import OfferStatus, OfferTerms
from certification.sessions import Session, SessionFull
from schemas import ExamScheduled, ExamSeatOfferAccepted, ExamSeatOfferDeclined, ExamSeatOffered, ExamSeatOfferExpired

pytestmark = pytest.mark.unit

T0 = datetime(2020, 5, 18, 9, 0, tzinfo=UTC)
EXAM = datetime(2020, 6, 2, 7, 0, tzinfo=UTC)


TERMS = OfferTerms(window=timedelta(hours=48), margin=timedelta(hours=24), minimum=timedelta(hours=2))


def make(exam_at: datetime = EXAM, *, trace: Trace | None = None) -> MakeOffer:
    return MakeOffer("o1", "MOS-EXCEL:p1", "p1", "MOS-EXCEL", "ses-1", "ctr-1", exam_at, T0, TERMS, "Centre", trace)


def made(*, exam_at: datetime = EXAM) -> SeatOffer:
    offer, _ = decide(None, make(exam_at))
    return offer


def test_an_offer_is_made_with_a_deadline_never_later_than_the_margin_before_the_exam() -> None:
    offer = made()
    assert (offer.status, offer.offered_at, offer.expires_at, offer.version) == (
        OfferStatus.OFFERED,
        T0,
        T0 + timedelta(hours=48),
        0,
    )
    assert made(exam_at=T0 + timedelta(hours=30)).expires_at == T0 + timedelta(hours=6)
    with pytest.raises(ValueError, match="exists already"):
        decide(offer, make())


def test_an_offer_leaving_less_than_the_minimum_to_answer_is_not_made() -> None:
    with pytest.raises(OfferTooLate) as refused:
        decide(None, make(T0 + timedelta(hours=25)))
    assert refused.value.status == 409


def test_a_made_offer_announces_itself_without_its_links_in_the_exam_requests_conversation() -> None:
    request, call = uuid.uuid4(), uuid.uuid4()
    offer, [event] = decide(None, make(trace=Trace(str(request), str(call))))
    assert isinstance(event, ExamSeatOffered)
    assert (event.offer_id, event.person_id, event.session_id, event.centre_name, event.exam_at, event.respond_by) == (
        "o1",
        "p1",
        "ses-1",
        "Centre",
        EXAM,
        offer.expires_at,
    )
    assert (event.accept_url, event.decline_url, event.sealed) == (None, None, None)
    assert (event.correlation_id, event.causation_id) == (call, request)


def test_an_acceptance_publishes_exam_scheduled_in_the_exam_requests_conversation() -> None:
    request, call = uuid.uuid4(), uuid.uuid4()
    accepted, [answered, event] = decide(
        made(), Accept(T0 + timedelta(hours=1), "Centre d'Anderlecht", ["Carte d'identité"], Trace(str(request), str(call)))
    )
    assert (accepted.status, accepted.answered_at, accepted.event_id) == (
        OfferStatus.ACCEPTED,
        T0 + timedelta(hours=1),
        str(event.id),
    )
    assert isinstance(answered, ExamSeatOfferAccepted)
    assert (answered.offer_id, answered.closed_at, answered.correlation_id) == ("o1", T0 + timedelta(hours=1), call)
    assert isinstance(event, ExamScheduled)
    assert (event.person_id, event.session_id, event.centre_name, event.exam_at) == ("p1", "ses-1", "Centre d'Anderlecht", EXAM)
    assert (event.what_to_bring, event.correlation_id, event.causation_id, event.source) == (
        ["Carte d'identité"],
        call,
        request,
        "/certification",
    )


def test_accepting_again_answers_the_same_and_publishes_nothing() -> None:
    accepted, _ = decide(made(), Accept(T0, "Centre"))
    assert decide(accepted, Accept(T0 + timedelta(hours=1), "Centre")) == (accepted, [])


def test_an_offer_past_its_deadline_cannot_be_accepted_even_before_its_timer_fires() -> None:
    offer = made()
    with pytest.raises(OfferPastDeadline, match="past its deadline") as refused:
        decide(offer, Accept(offer.expires_at, "Centre"))
    assert refused.value.status == 409


@pytest.mark.parametrize("closing", [Decline(T0), Expire(T0)])
def test_a_declined_or_expired_offer_cannot_be_accepted(closing: Decline | Expire) -> None:
    closed, _ = decide(made(), closing)
    with pytest.raises(OfferClosed, match=f"is {closed.status.value}") as refused:
        decide(closed, Accept(T0, "Centre"))
    assert refused.value.status == 409


def test_a_decline_closes_the_offer_once() -> None:
    declined, [event] = decide(made(), Decline(T0))
    assert (declined.status, declined.answered_at) == (OfferStatus.DECLINED, T0)
    assert isinstance(event, ExamSeatOfferDeclined)
    assert (event.offer_id, event.person_id, event.closed_at) == ("o1", "p1", T0)
    assert decide(declined, Decline(T0 + timedelta(hours=1))) == (declined, [])
    accepted, _ = decide(made(), Accept(T0, "Centre"))
    with pytest.raises(OfferClosed, match="is accepted"):
        decide(accepted, Decline(T0))


def test_a_deadline_expires_only_a_pending_offer() -> None:
    expired, [event] = decide(made(), Expire(T0))
    assert expired.status is OfferStatus.EXPIRED
    assert isinstance(event, ExamSeatOfferExpired)
    assert decide(expired, Expire(T0)) == (expired, [])
    accepted, _ = decide(made(), Accept(T0, "Centre"))
    assert decide(accepted, Expire(T0)) == (accepted, [])


def test_answers_need_an_offer() -> None:
    with pytest.raises(ValueError, match="needs an offer"):
        decide(None, Decline(T0))


def test_a_session_holds_books_and_frees_seats_and_never_holds_more_than_it_has() -> None:
    session = Session("ses-1", "ctr-1", ("MOS-EXCEL",), EXAM, seats=2)
    full = session.hold_seat().hold_seat()
    assert (full.held, full.seating.free) == (2, 0)
    with pytest.raises(SessionFull):
        full.hold_seat()
    booked = full.book_seat()
    assert (booked.held, booked.booked) == (1, 1)
    assert booked.free_seat().held == 0
    with pytest.raises(RuntimeError, match="out of step"):
        session.book_seat()


def test_an_offer_reads_back_from_its_document() -> None:
    accepted, _ = decide(made(), Accept(T0, "Centre"))
    assert SeatOffer.from_document(accepted.as_document()) == accepted
    old = {k: v for k, v in made().as_document().items() if k not in ("version", "event_id")}
    assert SeatOffer.from_document(old) == made()
