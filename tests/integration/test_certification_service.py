"""Certification on the real mongod: candidates from enrolments, waitlists while centres are closed,
seats offered in order when a centre reopens (with two replicas racing, never overbooked), declines
and timeouts passing the seat on, acceptance writing `ExamScheduled` to the outbox, and results.

The service is wired as `certification.app` wires it, with a `FixedClock` and no Kafka: what it
publishes stays in `certification_outbox`, read back through the wire codec.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from pymongo import AsyncMongoClient

from certification.certifications import load_certifications
from certification.credentials import CredentialLinks, IssuerProfile
from certification.offer_links import OfferAction
from certification.seating import CandidateStatus, CentreState, OfferStatus, OfferTerms, WaitingReason
from certification.seats import OFFER_EXPIRY
from certification.service import CertificationService
from certification.store import CertificationError, candidate_id
from schemas import (
    ExamScheduled,
    ExamSeatOfferAccepted,
    ExamSeatOffered,
    decode,
)
from services.clock import FixedClock
from services.idempotency import ProcessedEvents
from services.mongo import MongoDatabase
from services.outbox import Outbox
from services.privacy import PersonalData, PersonKeys
from services.timers import TimerState, TimerStore
from tests.certification_fakes import OFFER_LINKS
from tests.conftest import MONGODB_URI, Figures
from tests.factories import enrolled, exam_requested

pytestmark = pytest.mark.integration

T0 = datetime(2020, 3, 20, 9, 0, tzinfo=UTC)
"""Friday 20 March 2020: the training centres are closed to the public."""
EXAM_DAY = datetime(2020, 6, 2, 7, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)
LINKS = CredentialLinks("https://certification.test")


async def build(
    client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, clock: FixedClock, *, owner: str = "replica-a"
) -> CertificationService:
    """A CertificationService wired as `certification.app.build_service` wires it."""
    processed = ProcessedEvents(client, db, consumer="certification")
    service = CertificationService(
        client,
        db,
        certifications=load_certifications(),
        clock=clock,
        processed=processed,
        outbox=Outbox(db, "certification_outbox"),
        timers=TimerStore(client, db, clock=clock, owner=owner, collection="certification_timers"),
        links=LINKS,
        issuer=IssuerProfile(id=LINKS.issuer, name="Bruxelles Formation", url="https://www.bruxellesformation.brussels"),
        offer_links=OFFER_LINKS,
        seal=PersonalData(PersonKeys(db)).seal,
        offer_terms=OfferTerms(window=WINDOW),
        what_to_bring=["Carte d'identité"],
    )
    await processed.ensure_indexes()
    await service.ensure_indexes()
    await service.outbox.ensure_indexes()
    await service.timers.ensure_indexes()
    return service


async def outbox_events(db: MongoDatabase) -> list[Any]:
    return [decode(doc["value"], list(doc["headers"].items())) async for doc in db["certification_outbox"].find().sort("seq", 1)]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
async def service(
    mongo_client: AsyncMongoClient[dict[str, Any]], mongo_db: MongoDatabase, clock: FixedClock
) -> CertificationService:
    return await build(mongo_client, mongo_db, clock)


@pytest.fixture
async def second_client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """Another connection pool, as another replica would have."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    yield client
    await client.close()


async def waitlisted(
    service: CertificationService, clock: FixedClock, people: list[tuple[str, int]], code: str = "MOS-EXCEL"
) -> None:
    """Each (person, priority) asks for an exam one hour after the previous one."""
    for person, priority in people:
        await service.candidates.on_exam_requested(exam_requested(person, code))
        if priority:
            await service.candidates.set_priority(candidate_id(person, code), priority)
        clock.advance(timedelta(hours=1))


async def closed_centre_with_session(service: CertificationService, *, seats: int, session_id: str = "ses-june") -> None:
    await service.seats.put_centre(
        "ctr-anderlecht", state=CentreState.CLOSED, name="Centre d'Anderlecht", address="Rue Exemple 1, 1070 Anderlecht"
    )
    await service.seats.add_session(
        session_id=session_id, centre_id="ctr-anderlecht", certifications=["MOS-EXCEL"], starts_at=EXAM_DAY, seats=seats
    )


# --- candidates and waitlists --------------------------------------------------------


async def test_an_enrolment_in_a_certifying_path_makes_a_candidate_once(service: CertificationService) -> None:
    event = enrolled("p1", "EXCEL")
    assert await service.candidates.on_enrolment(event)
    assert not await service.candidates.on_enrolment(event)  # redelivered
    assert not await service.candidates.on_enrolment(enrolled("p1", "FR-BASE"))  # prepares for no certification
    [candidate] = await service.candidates.list_candidates()
    assert candidate["_id"] == "MOS-EXCEL:p1"
    assert (candidate["status"], candidate["priority"], candidate["courses"]) == ("preparing", 0, ["EXCEL"])
    assert len((await service.candidates.candidate("MOS-EXCEL:p1"))["history"]) == 1


async def test_while_centres_are_closed_candidates_wait_and_say_why(service: CertificationService, clock: FixedClock) -> None:
    await service.candidates.on_enrolment(enrolled("p1"))
    await waitlisted(service, clock, [("p1", 0), ("p2", 0)])
    await closed_centre_with_session(service, seats=10)
    waitlist = await service.candidates.waitlist("MOS-EXCEL")
    assert [(c["person_id"], c["status"], c["waiting_reason"]) for c in waitlist] == [
        ("p1", "waiting", WaitingReason.CENTRES_CLOSED.value),
        ("p2", "waiting", WaitingReason.CENTRES_CLOSED.value),
    ]
    assert (await service.seats.session("ses-june")).held == 0
    # A second request while waiting changes nothing: the candidate keeps their place.
    await service.candidates.on_exam_requested(exam_requested("p1"))
    assert [c["person_id"] for c in await service.candidates.waitlist("MOS-EXCEL")] == ["p1", "p2"]


async def test_a_certification_not_yet_open_keeps_its_candidates_waiting(
    service: CertificationService, clock: FixedClock
) -> None:
    await service.seats.put_centre("ctr-1", state=CentreState.OPEN, name="Centre", address="Rue Exemple 1, 1000 Bruxelles")
    await service.candidates.on_enrolment(enrolled("drafter", "AUTOCAD"))
    await waitlisted(service, clock, [("drafter", 0)], code="ACU-AUTOCAD")
    [candidate] = await service.candidates.waitlist("ACU-AUTOCAD")
    assert candidate["waiting_reason"] == WaitingReason.CERTIFICATION_NOT_OPEN.value
    with pytest.raises(CertificationError, match="not open yet") as refused:
        await service.seats.add_session(centre_id="ctr-1", certifications=["ACU-AUTOCAD"], starts_at=EXAM_DAY, seats=4)
    assert refused.value.status == 422
    await service.seats.fill_all()
    assert (await service.candidates.candidate("ACU-AUTOCAD:drafter"))["status"] == "waiting"


# --- offering seats ------------------------------------------------------------------


async def test_reopening_a_centre_offers_seats_in_priority_then_waiting_order(
    service: CertificationService, clock: FixedClock
) -> None:
    await closed_centre_with_session(service, seats=3)
    await waitlisted(service, clock, [("early", 0), ("middle", 0), ("urgent", 2), ("late", 0), ("flagged", 1)])
    assert (await service.seats.session("ses-june")).held == 0

    centre, offers = await service.seats.put_centre("ctr-anderlecht", state=CentreState.OPEN)
    assert centre.state is CentreState.OPEN
    assert [o.person_id for o in offers] == ["urgent", "flagged", "early"]
    assert all(o.expires_at == clock.now() + WINDOW and o.status is OfferStatus.OFFERED for o in offers)
    session = await service.seats.session("ses-june")
    assert (session.held, session.booked, session.seating.free) == (3, 0, 0)
    waitlist = await service.candidates.waitlist("MOS-EXCEL")
    assert [(c["person_id"], c["waiting_reason"]) for c in waitlist] == [("middle", "no_free_seat"), ("late", "no_free_seat")]
    # Opening it again offers nothing more: every seat is held.
    assert (await service.seats.put_centre("ctr-anderlecht", state=CentreState.OPEN))[1] == []


async def test_two_replicas_racing_never_overbook_and_offer_each_candidate_one_seat(
    mongo_client: AsyncMongoClient[dict[str, Any]],
    second_client: AsyncMongoClient[dict[str, Any]],
    mongo_db: MongoDatabase,
    clock: FixedClock,
) -> None:
    replicas = [
        await build(mongo_client, mongo_db, clock, owner="replica-a"),
        await build(second_client, second_client[mongo_db.name], clock, owner="replica-b"),
    ]
    first = replicas[0]
    people = [(f"p{i:02d}", i % 4) for i in range(40)]
    await waitlisted(first, clock, people)
    await first.seats.put_centre("ctr-1", state=CentreState.CLOSED, name="Centre 1", address="Rue Exemple 1, 1000 Bruxelles")
    seats = {"ses-a": 5, "ses-b": 4, "ses-c": 3}
    for i, (session_id, count) in enumerate(seats.items()):
        await first.seats.add_session(
            session_id=session_id,
            centre_id="ctr-1",
            certifications=["MOS-EXCEL"],
            starts_at=EXAM_DAY + timedelta(days=i),
            seats=count,
        )

    # Both replicas open the centre and fill every session, several times over, all at once.
    async def replica_work(service: CertificationService) -> int:
        made = len((await service.seats.put_centre("ctr-1", state=CentreState.OPEN))[1])
        results = await asyncio.gather(
            *(service.seats.fill_session(sid) for sid in seats for _ in range(3)), service.seats.fill_all()
        )
        return made + sum(len(r) for r in results)

    started = asyncio.get_running_loop().time()
    per_replica = await asyncio.gather(*(replica_work(r) for r in replicas))
    elapsed = asyncio.get_running_loop().time() - started

    offers = await mongo_db["certification_offers"].find().to_list(None)
    by_candidate = Counter(o["candidate_id"] for o in offers)
    sessions = {doc["_id"]: doc async for doc in mongo_db["certification_sessions"].find()}
    print(
        f"\nrace: candidates={len(people)} sessions={seats} offers_per_replica={per_replica} offers={len(offers)} "
        f"held={ {sid: s['held'] for sid, s in sessions.items()} } max_offers_per_candidate={max(by_candidate.values())} "
        f"attempts={[dict(r.seats.offer_attempts) for r in replicas]} elapsed={elapsed:.2f}s"
    )
    for sid, doc in sessions.items():
        assert doc["held"] + doc["booked"] <= doc["seats"], sid
        assert doc["held"] == seats[sid] == sum(1 for o in offers if o["session_id"] == sid)
    assert sum(per_replica) == len(offers) == sum(seats.values())
    assert max(by_candidate.values()) == 1
    # The seats went to the first 12 in line (priority, then who asked first), whoever raced.
    in_line = [f"MOS-EXCEL:{person}" for person, _ in sorted(people, key=lambda p: (-p[1], people.index(p)))]
    assert set(by_candidate) == set(in_line[:12])
    assert await mongo_db["certification_timers"].count_documents({"kind": OFFER_EXPIRY, "state": "pending"}) == 12


async def test_a_decline_offers_the_seat_to_the_next_candidate(service: CertificationService, clock: FixedClock) -> None:
    await closed_centre_with_session(service, seats=1)
    await waitlisted(service, clock, [("first", 0), ("second", 0), ("third", 0)])
    [offer] = (await service.seats.put_centre("ctr-anderlecht", state=CentreState.OPEN))[1]
    assert offer.person_id == "first"

    declined, [next_offer] = await service.seats.decline(offer.offer_id)
    assert declined.status is OfferStatus.DECLINED
    assert next_offer.person_id == "second"
    assert (await service.seats.session("ses-june")).held == 1
    first = await service.candidates.candidate("MOS-EXCEL:first")
    assert (first["status"], first["passed_over_sessions"], first["declined_offers"]) == ("waiting", ["ses-june"], 1)
    assert (await service.timers.get(OFFER_EXPIRY, offer.offer_id)).state is TimerState.CANCELLED  # type: ignore[union-attr]
    # Declining again is the same answer; accepting a declined offer is refused.
    assert (await service.seats.decline(offer.offer_id)) == (declined, [])
    with pytest.raises(CertificationError, match="declined"):
        await service.seats.accept(offer.offer_id)
    # A new session for the same certification: the decliner is first in line again there.
    _, [july] = await service.seats.add_session(
        session_id="ses-july",
        centre_id="ctr-anderlecht",
        certifications=["MOS-EXCEL"],
        starts_at=EXAM_DAY + timedelta(days=30),
        seats=1,
    )
    assert july.person_id == "first"


async def test_an_offer_not_answered_in_time_goes_to_the_next_candidate(service: CertificationService, clock: FixedClock) -> None:
    await closed_centre_with_session(service, seats=1)
    await waitlisted(service, clock, [("silent", 0), ("next", 0)])
    [offer] = (await service.seats.put_centre("ctr-anderlecht", state=CentreState.OPEN))[1]

    clock.advance(WINDOW - timedelta(seconds=1))
    assert await service.seats.run_timers_once() == 0
    clock.advance(timedelta(seconds=1))
    # Past the deadline the offer cannot be accepted, even before the timer has run.
    with pytest.raises(CertificationError, match="past its deadline"):
        await service.seats.accept(offer.offer_id)
    assert await service.seats.run_timers_once() == 1

    assert (await service.seats.offer(offer.offer_id)).status is OfferStatus.EXPIRED
    [next_offer] = await service.store.offers.find({"status": "offered"}).to_list(None)
    assert next_offer["person_id"] == "next"
    assert next_offer["expires_at"] == clock.now() + WINDOW
    silent = await service.candidates.candidate("MOS-EXCEL:silent")
    assert (silent["status"], silent["missed_offers"], silent["passed_over_sessions"]) == ("waiting", 1, ["ses-june"])
    assert (await service.seats.session("ses-june")).held == 1
    assert await service.seats.run_timers_once() == 0  # fired once


async def test_acceptance_books_the_seat_and_writes_exam_scheduled_to_the_outbox(
    service: CertificationService, clock: FixedClock, mongo_db: MongoDatabase
) -> None:
    request = exam_requested("p1")
    await service.candidates.on_exam_requested(request)
    await closed_centre_with_session(service, seats=2)
    [offer] = (await service.seats.put_centre("ctr-anderlecht", state=CentreState.OPEN))[1]

    accepted, event = await service.seats.accept(offer.offer_id)
    assert accepted.status is OfferStatus.ACCEPTED and isinstance(event, ExamScheduled)
    session = await service.seats.session("ses-june")
    assert (session.held, session.booked) == (0, 1)
    candidate = await service.candidates.candidate("MOS-EXCEL:p1")
    assert (candidate["status"], candidate["session_id"]) == (CandidateStatus.SCHEDULED.value, "ses-june")
    assert (await service.timers.get(OFFER_EXPIRY, offer.offer_id)).state is TimerState.CANCELLED  # type: ignore[union-attr]

    again, none = await service.seats.accept(offer.offer_id)  # a retried click
    assert again.status is OfferStatus.ACCEPTED and none is None
    offered, answered, published = await outbox_events(mongo_db)
    assert isinstance(offered, ExamSeatOffered) and isinstance(answered, ExamSeatOfferAccepted)
    assert published == event
    assert (published.person_id, published.certification_code, published.session_id) == ("p1", "MOS-EXCEL", "ses-june")
    assert (published.centre_id, published.centre_name, published.exam_at) == ("ctr-anderlecht", "Centre d'Anderlecht", EXAM_DAY)
    assert published.what_to_bring == ["Carte d'identité"]
    assert (published.correlation_id, published.causation_id) == (request.correlation_id, request.id)


async def test_an_exam_request_from_outside_continues_the_conversation_of_the_enrolment(
    service: CertificationService, mongo_db: MongoDatabase
) -> None:
    # Enrolled at the desk after a phone call (its conversation); the e-learning platform, which knows
    # nothing of it, reports the path completed with an exam request of its own.
    call, contact = uuid4(), uuid4()
    enrolment = enrolled("p1").model_copy(update={"correlation_id": call, "causation_id": contact})
    await service.candidates.on_enrolment(enrolment)
    completed = exam_requested("p1")
    assert completed.correlation_id == completed.id
    await service.candidates.on_exam_requested(completed)
    await closed_centre_with_session(service, seats=1)
    [offer] = (await service.seats.put_centre("ctr-anderlecht", state=CentreState.OPEN))[1]

    _, scheduled = await service.seats.accept(offer.offer_id)
    await service.awards.record_result("ses-june", person_id="p1", passed=True, score=900)

    offered, answered, published, issued = await outbox_events(mongo_db)
    assert scheduled is not None and published == scheduled
    # The offer and its answer are in the exam request's conversation too.
    assert (offered.correlation_id, answered.correlation_id) == (call, call)
    assert (published.correlation_id, published.causation_id) == (call, completed.id)
    assert (issued.correlation_id, issued.causation_id) == (call, published.id)
    # An exam request that belongs to a conversation already keeps it.
    other = exam_requested("p2").model_copy(update={"correlation_id": uuid4()})
    await service.candidates.on_enrolment(enrolled("p2"))
    await service.candidates.on_exam_requested(other)
    assert (await service.candidates.candidate("MOS-EXCEL:p2"))["requested_by"]["correlation_id"] == str(other.correlation_id)


async def test_results_issue_a_credential_once_and_a_failure_can_try_again(
    service: CertificationService, clock: FixedClock, mongo_db: MongoDatabase
) -> None:
    await closed_centre_with_session(service, seats=2)
    await waitlisted(service, clock, [("pass", 0), ("fail", 0)])
    for offer in (await service.seats.put_centre("ctr-anderlecht", state=CentreState.OPEN))[1]:
        await service.seats.accept(offer.offer_id)

    passed = await service.awards.record_result("ses-june", person_id="pass", passed=True, score=812)
    assert passed["credential_url"] == f"https://certification.test/credentials/{passed['credential_id']}"
    assert await service.awards.record_result("ses-june", person_id="pass", passed=True, score=812) == passed
    with pytest.raises(CertificationError, match="different result"):
        await service.awards.record_result("ses-june", person_id="pass", passed=False, score=300)
    failed = await service.awards.record_result("ses-june", person_id="fail", passed=False, score=540)
    assert failed["credential_id"] is None
    with pytest.raises(CertificationError, match="no seat booked") as unknown:
        await service.awards.record_result("ses-june", person_id="nobody", passed=True, score=None)
    assert unknown.value.status == 404

    issued = [e for e in await outbox_events(mongo_db) if e.type.endswith("certificate.issued")]
    assert [(e.person_id, e.credential_id) for e in issued] == [("pass", passed["credential_id"])]
    assert (await service.candidates.candidate("MOS-EXCEL:pass"))["status"] == "passed"
    # A failed candidate who asks again goes back to the end of the waitlist.
    await service.candidates.on_exam_requested(exam_requested("fail"))
    assert (await service.candidates.candidate("MOS-EXCEL:fail"))["status"] == "waiting"


# --- seat offers that reach people --------------------------------------------------------


async def test_an_offer_is_published_with_its_links_sealed_for_the_person(
    service: CertificationService, clock: FixedClock, mongo_db: MongoDatabase
) -> None:
    await service.candidates.on_exam_requested(exam_requested("p1"))
    await closed_centre_with_session(service, seats=1)
    [offer] = (await service.seats.put_centre("ctr-anderlecht", state=CentreState.OPEN))[1]
    [event] = [e for e in await outbox_events(mongo_db) if isinstance(e, ExamSeatOffered)]
    raw = (await mongo_db["certification_outbox"].find_one())["value"]  # type: ignore[index]
    assert b"token=" not in raw and event.accept_url is None and event.sealed is not None
    assert (event.offer_id, event.respond_by, event.centre_name) == (offer.offer_id, offer.expires_at, "Centre d'Anderlecht")
    opened = await PersonalData(PersonKeys(mongo_db)).unseal(event)
    assert opened.accept_url is not None and opened.accept_url.startswith(OFFER_LINKS.public_base_url)
    token = opened.accept_url.split("token=", 1)[1]
    found = OFFER_LINKS.tokens.verify(token, now=clock.now())
    assert (found.offer_id, found.action, found.expires_at) == (offer.offer_id, OfferAction.ACCEPT, offer.expires_at)


async def test_two_replicas_passing_seats_on_never_overbook(
    mongo_client: AsyncMongoClient[dict[str, Any]],
    second_client: AsyncMongoClient[dict[str, Any]],
    mongo_db: MongoDatabase,
    clock: FixedClock,
    figures: Figures,
) -> None:
    """60 candidates, 15 seats, two replicas: each round every pending offer is accepted, declined (the
    same answer sent to both replicas at once, a double click) or left to lapse (both replicas' timers
    firing together), and the freed seats are offered on; a watcher reads the sessions all along."""
    replicas = [
        await build(mongo_client, mongo_db, clock, owner="replica-a"),
        await build(second_client, second_client[mongo_db.name], clock, owner="replica-b"),
    ]
    first = replicas[0]
    people = [(f"p{i:02d}", i % 3) for i in range(60)]
    await waitlisted(first, clock, people)
    await first.seats.put_centre("ctr-1", state=CentreState.CLOSED, name="Centre 1", address="Rue Exemple 1, 1000 Bruxelles")
    seats = {"ses-a": 6, "ses-b": 5, "ses-c": 4}
    for i, (session_id, count) in enumerate(seats.items()):
        await first.seats.add_session(
            session_id=session_id,
            centre_id="ctr-1",
            certifications=["MOS-EXCEL"],
            starts_at=EXAM_DAY + timedelta(days=i),
            seats=count,
        )

    worst = dict.fromkeys(seats, 0)
    watching = True
    samples = 0

    async def watch() -> None:
        nonlocal samples
        while watching:
            samples += 1
            async for doc in mongo_db["certification_sessions"].find():
                worst[doc["_id"]] = max(worst[doc["_id"]], doc["held"] + doc["booked"])
                assert doc["held"] + doc["booked"] <= doc["seats"], doc
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(r.seats.put_centre("ctr-1", state=CentreState.OPEN) for r in replicas))
    rounds = 0
    try:
        while pending := await mongo_db["certification_offers"].find({"status": "offered"}).to_list(None):
            rounds += 1
            assert rounds <= 40, "the seats never settled"
            answers: list[Awaitable[object]] = []
            for doc in pending:
                choice = (int(doc["person_id"][1:]) // 3 + rounds) % 3  # a mix within each priority
                for replica in replicas:
                    if choice == 0:
                        answers.append(replica.seats.accept(doc["_id"]))
                    elif choice == 1:
                        answers.append(replica.seats.decline(doc["_id"]))
            await asyncio.gather(*answers)
            clock.advance(WINDOW)  # whatever is still pending lapses, on both replicas at once
            await asyncio.gather(*(r.seats.run_timers_once() for r in replicas))
    finally:
        watching = False
        await watcher

    offers = await mongo_db["certification_offers"].find().to_list(None)
    sessions = {doc["_id"]: doc async for doc in mongo_db["certification_sessions"].find()}
    statuses = Counter(o["status"] for o in offers)
    events = Counter(type(e).__name__ for e in await outbox_events(mongo_db))
    final = {sid: (d["held"], d["booked"], d["seats"]) for sid, d in sessions.items()}
    for sid, doc in sessions.items():
        assert doc["held"] + doc["booked"] <= doc["seats"], sid
        assert doc["held"] == 0  # every offer was answered or lapsed
        assert doc["booked"] == sum(1 for o in offers if o["session_id"] == sid and o["status"] == "accepted")
    accepted = [o["candidate_id"] for o in offers if o["status"] == "accepted"]
    assert len(accepted) == len(set(accepted)) and len(accepted) <= sum(seats.values())
    # Each answer or lapse published once, however many replicas handled it.
    assert events["ExamSeatOffered"] == len(offers)
    assert (events["ExamSeatOfferAccepted"], events["ExamScheduled"]) == (statuses["accepted"], statuses["accepted"])
    assert events["ExamSeatOfferDeclined"] == statuses["declined"]
    assert events["ExamSeatOfferExpired"] == statuses["expired"]
    figures.record(
        "seat offers, 2 replicas, 60 candidates, 15 seats",
        f"candidates={len(people)} seats={sum(seats.values())} replicas=2 rounds={rounds} offers={len(offers)} "
        f"statuses={dict(statuses)}\nmax(held+booked) seen by the watcher={worst} (seats {seats}, {samples} reads): "
        f"never above seats\nfinal (held, booked, seats)={final}",
    )
