"""Candidates and Seats on the in-memory fakes: the integration scenarios of certification, in milliseconds.

Enrolments make candidates once, waitlists say why they wait, seats go in priority then waiting
order, declines and deadlines pass the seat on, an acceptance publishes `ExamScheduled` once, and
concurrent tasks racing for one offer or one seat never overbook (the fakes interleave at every read).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import uuid4

import pytest

from certification.api import CandidateOut
from certification.awards import Awards, exam_outcome
from certification.candidate import candidate_id
from certification.certifications import load_certifications
from certification.credentials import CredentialLinks, IssuerProfile
from certification.errors import CertificationError, OfferClosed, OfferPastDeadline, Unknown
from certification.seating import CandidateStatus, CentreState, OfferStatus, WaitingReason
from certification.seats import OFFER_EXPIRY
from certification.sessions import Session
from certification.store import CertificationStore
from schemas import (
    ExamScheduled,
    ExamSeatOfferAccepted,
    ExamSeatOffered,
    Target,
    TrainingRequestRouted,
)
from services.clock import FixedClock
from tests.certification_fakes import FakeCertification, fake_certification
from tests.factories import enrolled, exam_requested

pytestmark = pytest.mark.unit

T0 = datetime(2020, 3, 20, 9, 0, tzinfo=UTC)
EXAM_DAY = datetime(2020, 6, 2, 7, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)


def routed(person_id: str, *, priority: int) -> TrainingRequestRouted:
    target = next(iter(Target))
    return TrainingRequestRouted(
        source="/tests",
        request_id=f"req-{person_id}",
        person_id=person_id,
        target=target,
        rule_id="r",
        rule_set_version="v1",
        explanation="test",
        priority=priority,
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def cert(clock: FixedClock) -> FakeCertification:
    return fake_certification(clock, offer_window=WINDOW, what_to_bring=["Carte d'identité"], routed_priority_from=3)


async def waitlisted(cert: FakeCertification, clock: FixedClock, people: list[tuple[str, int]]) -> None:
    for person, priority in people:
        await cert.candidates.on_exam_requested(exam_requested(person))
        if priority:
            await cert.candidates.set_priority(candidate_id(person, "MOS-EXCEL"), priority)
        clock.advance(timedelta(hours=1))


async def closed_centre_with_session(cert: FakeCertification, *, seats: int, session_id: str = "ses-june") -> None:
    await cert.seats.put_centre("ctr-1", state=CentreState.CLOSED, name="Centre d'Anderlecht", address="Rue Exemple 1")
    await cert.seats.add_session(
        session_id=session_id, centre_id="ctr-1", certifications=["MOS-EXCEL"], starts_at=EXAM_DAY, seats=seats
    )


async def test_an_enrolment_makes_a_candidate_once(cert: FakeCertification) -> None:
    event = enrolled("p1")
    assert await cert.candidates.on_enrolment(event)
    assert not await cert.candidates.on_enrolment(event)
    assert not await cert.candidates.on_enrolment(enrolled("p1", "FR-BASE"))
    [candidate] = await cert.candidates.list_candidates()
    assert (candidate["_id"], candidate["status"], candidate["courses"]) == ("MOS-EXCEL:p1", "preparing", ["EXCEL"])
    assert "history" not in candidate
    assert len((await cert.candidates.candidate("MOS-EXCEL:p1"))["history"]) == 1


async def test_while_centres_are_closed_candidates_wait_and_say_why(cert: FakeCertification, clock: FixedClock) -> None:
    await waitlisted(cert, clock, [("p1", 0), ("p2", 0)])
    await closed_centre_with_session(cert, seats=10)
    waitlist = await cert.candidates.waitlist("MOS-EXCEL")
    assert [(c["person_id"], c["waiting_reason"]) for c in waitlist] == [
        ("p1", WaitingReason.CENTRES_CLOSED.value),
        ("p2", WaitingReason.CENTRES_CLOSED.value),
    ]
    await cert.candidates.on_exam_requested(exam_requested("p1"))
    assert [c["person_id"] for c in await cert.candidates.waitlist("MOS-EXCEL")] == ["p1", "p2"]


async def test_reopening_a_centre_offers_seats_in_priority_then_waiting_order(cert: FakeCertification, clock: FixedClock) -> None:
    await closed_centre_with_session(cert, seats=3)
    await waitlisted(cert, clock, [("early", 0), ("middle", 0), ("urgent", 2), ("late", 0), ("flagged", 1)])
    centre, offers = await cert.seats.put_centre("ctr-1", state=CentreState.OPEN)
    assert centre.state is CentreState.OPEN
    assert [o.person_id for o in offers] == ["urgent", "flagged", "early"]
    assert all(o.expires_at == clock.now() + WINDOW for o in offers)
    assert offers[0] == await cert.seats.offer(offers[0].offer_id)
    session = await cert.seats.session("ses-june")
    assert (session.held, session.seating.free) == (3, 0)
    waitlist = await cert.candidates.waitlist("MOS-EXCEL")
    assert [(c["person_id"], c["waiting_reason"]) for c in waitlist] == [("middle", "no_free_seat"), ("late", "no_free_seat")]
    assert (await cert.seats.put_centre("ctr-1", state=CentreState.OPEN))[1] == []
    assert {key for (_, key), t in cert.storage.timers.items() if t.state == "pending"} == {o.offer_id for o in offers}


async def test_staff_refusals_carry_their_http_status(cert: FakeCertification) -> None:
    with pytest.raises(CertificationError, match="give its name") as new:
        await cert.seats.put_centre("ctr-9", state=CentreState.OPEN)
    assert new.value.status == 422
    with pytest.raises(Unknown):
        await cert.seats.add_session(centre_id="ctr-9", certifications=["MOS-EXCEL"], starts_at=EXAM_DAY, seats=1)
    await closed_centre_with_session(cert, seats=1)
    with pytest.raises(CertificationError, match="exists already") as twice:
        await closed_centre_with_session(cert, seats=1)
    assert twice.value.status == 409
    with pytest.raises(CertificationError, match="not open yet") as announced:
        await cert.seats.add_session(centre_id="ctr-1", certifications=["ACU-AUTOCAD"], starts_at=EXAM_DAY, seats=1)
    assert announced.value.status == 422
    for missing in (cert.candidates.candidate("X:nobody"), cert.candidates.set_priority("X:nobody", 1), cert.seats.offer("o")):
        with pytest.raises(Unknown):
            await missing


async def test_a_decline_offers_the_seat_to_the_next_candidate(cert: FakeCertification, clock: FixedClock) -> None:
    await closed_centre_with_session(cert, seats=1)
    await waitlisted(cert, clock, [("first", 0), ("second", 0)])
    [offer] = (await cert.seats.put_centre("ctr-1", state=CentreState.OPEN))[1]
    declined, [next_offer] = await cert.seats.decline(offer.offer_id)
    assert (declined.status, next_offer.person_id) == (OfferStatus.DECLINED, "second")
    first = await cert.candidates.candidate("MOS-EXCEL:first")
    assert (first["status"], first["passed_over_sessions"], first["declined_offers"]) == ("waiting", ["ses-june"], 1)
    assert cert.storage.timers[(OFFER_EXPIRY, offer.offer_id)].state == "cancelled"
    assert await cert.seats.decline(offer.offer_id) == (declined, [])
    with pytest.raises(OfferClosed, match="declined"):
        await cert.seats.accept(offer.offer_id)
    _, [july] = await cert.seats.add_session(
        session_id="ses-july", centre_id="ctr-1", certifications=["MOS-EXCEL"], starts_at=EXAM_DAY + timedelta(days=30), seats=1
    )
    assert july.person_id == "first"


async def test_an_offer_not_answered_in_time_goes_to_the_next_candidate(cert: FakeCertification, clock: FixedClock) -> None:
    await closed_centre_with_session(cert, seats=1)
    await waitlisted(cert, clock, [("silent", 0), ("next", 0)])
    [offer] = (await cert.seats.put_centre("ctr-1", state=CentreState.OPEN))[1]
    clock.advance(WINDOW - timedelta(seconds=1))
    assert await cert.seats.run_timers_once() == 0
    clock.advance(timedelta(seconds=1))
    with pytest.raises(OfferPastDeadline):
        await cert.seats.accept(offer.offer_id)
    assert await cert.seats.run_timers_once() == 1
    assert (await cert.seats.offer(offer.offer_id)).status is OfferStatus.EXPIRED
    [pending] = [o for o in cert.storage.offers.values() if o.status is OfferStatus.OFFERED]
    assert (pending.person_id, pending.expires_at) == ("next", clock.now() + WINDOW)
    silent = await cert.candidates.candidate("MOS-EXCEL:silent")
    assert (silent["status"], silent["missed_offers"]) == ("waiting", 1)
    assert await cert.seats.run_timers_once() == 0


async def test_acceptance_books_the_seat_and_publishes_exam_scheduled_once(cert: FakeCertification, clock: FixedClock) -> None:
    request = exam_requested("p1")
    await cert.candidates.on_exam_requested(request)
    await closed_centre_with_session(cert, seats=2)
    [offer] = (await cert.seats.put_centre("ctr-1", state=CentreState.OPEN))[1]
    accepted, event = await cert.seats.accept(offer.offer_id)
    assert accepted.status is OfferStatus.ACCEPTED and isinstance(event, ExamScheduled)
    assert [type(e) for e in cert.storage.outbox] == [ExamSeatOffered, ExamSeatOfferAccepted, ExamScheduled]
    assert cert.storage.outbox[-1] == event
    assert (event.centre_name, event.what_to_bring) == ("Centre d'Anderlecht", ["Carte d'identité"])
    assert (event.correlation_id, event.causation_id) == (request.correlation_id, request.id)
    session = await cert.seats.session("ses-june")
    assert (session.held, session.booked) == (0, 1)
    candidate = await cert.candidates.candidate("MOS-EXCEL:p1")
    assert (candidate["status"], candidate["session_id"]) == (CandidateStatus.SCHEDULED.value, "ses-june")
    assert await cert.seats.accept(offer.offer_id) == (accepted, None)


async def test_an_exam_request_from_outside_continues_the_enrolments_conversation(cert: FakeCertification) -> None:
    call = uuid4()
    await cert.candidates.on_enrolment(enrolled("p1").model_copy(update={"correlation_id": call}))
    completed = exam_requested("p1")
    await cert.candidates.on_exam_requested(completed)
    await closed_centre_with_session(cert, seats=1)
    [offer] = (await cert.seats.put_centre("ctr-1", state=CentreState.OPEN))[1]
    _, scheduled = await cert.seats.accept(offer.offer_id)
    assert scheduled is not None and (scheduled.correlation_id, scheduled.causation_id) == (call, completed.id)


async def test_a_high_priority_routing_boosts_candidates_and_later_candidacies(cert: FakeCertification) -> None:
    await cert.candidates.on_enrolment(enrolled("p1"))
    assert await cert.candidates.on_routed(routed("p1", priority=3))
    assert not await cert.candidates.on_routed(routed("p1", priority=1))
    assert (await cert.candidates.candidate("MOS-EXCEL:p1"))["priority"] == 1
    await cert.candidates.on_enrolment(enrolled("p1", "WORD"))
    assert (await cert.candidates.candidate("MOS-WORD:p1"))["priority"] == 1


async def test_concurrent_accepts_of_one_offer_book_one_seat_and_publish_once(cert: FakeCertification, clock: FixedClock) -> None:
    await cert.candidates.on_exam_requested(exam_requested("p1"))
    await closed_centre_with_session(cert, seats=1)
    [offer] = (await cert.seats.put_centre("ctr-1", state=CentreState.OPEN))[1]
    answers = await asyncio.gather(*(cert.seats.accept(offer.offer_id) for _ in range(4)))
    assert sum(event is not None for _, event in answers) == 1
    assert [type(e) for e in cert.storage.outbox] == [ExamSeatOffered, ExamSeatOfferAccepted, ExamScheduled]
    session = await cert.seats.session("ses-june")
    assert (session.held, session.booked) == (0, 1)


async def test_concurrent_fills_never_overbook_and_offer_each_candidate_one_seat(
    cert: FakeCertification, clock: FixedClock
) -> None:
    people = [(f"p{i:02d}", i % 4) for i in range(20)]
    await waitlisted(cert, clock, people)
    await cert.seats.put_centre("ctr-1", state=CentreState.OPEN, name="Centre", address="Rue Exemple 1")
    seats = {"ses-a": 3, "ses-b": 2}
    for i, (sid, count) in enumerate(seats.items()):
        # Stored directly, so that no fill ran yet and every task finds all the seats free.
        cert.storage.sessions[sid] = Session(sid, "ctr-1", ("MOS-EXCEL",), EXAM_DAY + timedelta(days=i), count, version=1)
    made = await asyncio.gather(*(cert.seats.fill_session(sid) for sid in seats for _ in range(3)), cert.seats.fill_all())
    offers = [o for batch in made for o in batch]
    assert len(offers) == len(cert.storage.offers) == 5
    assert max(Counter(o.candidate_id for o in offers).values()) == 1
    for sid, count in seats.items():
        session = cert.storage.sessions[sid]
        assert session.held == count == sum(1 for o in offers if o.session_id == sid)
    in_line = [p for p, _ in sorted(people, key=lambda p: (-p[1], people.index(p)))]
    assert {o.person_id for o in offers} == set(in_line[:5])
    assert cert.seats.offer_attempts["conflict"] > 0  # the tasks did race


async def test_declines_and_lapses_are_published_and_the_seat_moves_on(cert: FakeCertification, clock: FixedClock) -> None:
    await closed_centre_with_session(cert, seats=1)
    await waitlisted(cert, clock, [("decliner", 0), ("silent", 0), ("third", 0)])
    [offer] = (await cert.seats.put_centre("ctr-1", state=CentreState.OPEN))[1]
    await cert.seats.decline(offer.offer_id)
    clock.advance(WINDOW)
    assert await cert.seats.run_timers_once() == 1
    assert [(type(e).__name__, getattr(e, "person_id", None)) for e in cert.storage.outbox] == [
        ("ExamSeatOffered", "decliner"),
        ("ExamSeatOfferDeclined", "decliner"),
        ("ExamSeatOffered", "silent"),
        ("ExamSeatOfferExpired", "silent"),
        ("ExamSeatOffered", "third"),
    ]
    session = await cert.seats.session("ses-june")
    assert (session.held, session.booked) == (1, 0)


async def test_a_session_too_close_to_leave_time_to_answer_is_offered_to_nobody(
    cert: FakeCertification, clock: FixedClock
) -> None:
    await waitlisted(cert, clock, [("p1", 0)])
    await cert.seats.put_centre("ctr-1", state=CentreState.OPEN, name="Centre d'Anderlecht", address="Rue Exemple 1")
    # 24 h margin + 2 h minimum: a session 25 h away cannot get an offer a candidate could answer.
    _, offers = await cert.seats.add_session(
        session_id="ses-soon",
        centre_id="ctr-1",
        certifications=["MOS-EXCEL"],
        starts_at=clock.now() + timedelta(hours=25),
        seats=3,
    )
    assert offers == [] and cert.storage.outbox == []
    assert (await cert.candidates.candidate("MOS-EXCEL:p1"))["waiting_reason"] == WaitingReason.NO_FREE_SEAT.value
    _, [later] = await cert.seats.add_session(
        session_id="ses-later",
        centre_id="ctr-1",
        certifications=["MOS-EXCEL"],
        starts_at=clock.now() + timedelta(hours=30),
        seats=1,
    )
    assert later.expires_at == clock.now() + timedelta(hours=6)  # the margin, not the 48-hour window


def awards_over(cert: FakeCertification, clock: FixedClock) -> Awards:
    """`Awards` over the fakes: recording a result reads and writes only through the unit of work
    (the store serves issued credentials, which these tests do not read)."""
    links = CredentialLinks("https://certification.test")
    return Awards(
        cast(CertificationStore, None),
        cert.seats,
        uow=cert.uow,
        certifications=cert.seats.certifications,
        clock=clock,
        links=links,
        issuer=IssuerProfile(id=links.issuer, name="Bruxelles Formation", url="https://www.bruxellesformation.brussels"),
    )


async def test_a_result_records_the_vendor_exam_and_the_bf_certification_it_pairs_with_on_the_candidate(
    cert: FakeCertification, clock: FixedClock
) -> None:
    await waitlisted(cert, clock, [("pass", 0), ("fail", 0)])
    await closed_centre_with_session(cert, seats=2)
    for offer in (await cert.seats.put_centre("ctr-1", state=CentreState.OPEN))[1]:
        await cert.seats.accept(offer.offer_id)
    awards = awards_over(cert, clock)

    passed = await awards.record_result("ses-june", person_id="pass", passed=True, score=870)
    failed = await awards.record_result("ses-june", person_id="fail", passed=False, score=420)

    assert (passed["vendor_exam"], passed["vendor"]) == ("Microsoft Office Specialist: Excel", "Microsoft")
    assert passed["bf_certification"] == "Certification Bruxelles Formation : tableur (Excel)"
    stored = cert.storage.results["ses-june:pass"].exam
    assert stored is not None and (stored.vendor_exam, stored.score, stored.passed) == (
        "Microsoft Office Specialist: Excel",
        870,
        True,
    )
    assert failed["credential_id"] is None and failed["vendor_exam"] == "Microsoft Office Specialist: Excel"

    doc = await cert.candidates.candidate("MOS-EXCEL:pass")
    assert doc["exam"] == {
        "session_id": "ses-june",
        "passed": True,
        "score": 870,
        "bf_certification": "Certification Bruxelles Formation : tableur (Excel)",
        "vendor_exam": "Microsoft Office Specialist: Excel",
        "vendor_programme": "Microsoft Office Specialist",
        "vendor": "Microsoft",
    }
    last = doc["history"][-1]
    assert (last["what"], last["score"], last["vendor_exam"], last["vendor"]) == (
        "passed",
        870,
        "Microsoft Office Specialist: Excel",
        "Microsoft",
    )
    out = CandidateOut.of(await cert.candidates.candidate("MOS-EXCEL:fail"))
    assert out.exam is not None and (out.exam.passed, out.exam.score, out.exam.vendor_exam) == (
        False,
        420,
        "Microsoft Office Specialist: Excel",
    )
    # Recorded again, the same result answers the same (read back from what was stored).
    assert await awards.record_result("ses-june", person_id="pass", passed=True, score=870) == passed


def test_a_certification_without_a_vendor_pair_records_no_vendor_exam() -> None:
    cert = load_certifications().get("BF-NUMERIQUE")
    assert cert is not None and cert.private is None
    exam = exam_outcome(cert, "ses-1", passed=True, score=None)
    assert (exam.bf_certification, exam.vendor_exam, exam.vendor) == (cert.bf_title, None, None)
    paired = exam_outcome(load_certifications().by_code["ACP-PHOTOSHOP"], "ses-1", passed=False, score=300)
    assert (paired.vendor, paired.vendor_programme) == ("Adobe", "Adobe Certified Professional")
