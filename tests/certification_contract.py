"""One contract for every backend of `certification.repositories`, so the fakes cannot drift from MongoDB.

A backend subclasses `UnitOfWorkContract` and supplies the `backend` fixture: a fresh unit of
work, what its outbox holds, and which timers are pending (eventsourcing's `create_recorder()`
idea). `tests/unit/test_certification_fakes.py` runs it on the fakes,
`tests/integration/test_certification_repositories.py` on the real mongod.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from certification.candidate import Candidate, ExamOutcome, JoinWaitlist, Register, SetPriority, decide
from certification.errors import ConcurrencyConflict
from certification.offer import MakeOffer, SeatOffer
from certification.offer import decide as decide_offer
from certification.repositories import CertificationUnitOfWork
from certification.result import ExamResult, IssuedCredential
from certification.seating import CandidateStatus, CentreState, OfferTerms, WaitingReason
from certification.sessions import Centre, Session
from schemas import EnrolmentConfirmed, Event, Language

T0 = datetime(2020, 3, 20, 9, 0, tzinfo=UTC)
EXAM = datetime(2020, 6, 2, 7, 0, tzinfo=UTC)


@dataclass
class Backend:
    uow: Callable[[], CertificationUnitOfWork]
    published: Callable[[], Awaitable[list[str]]]
    """Ids of the events in the outbox, in order."""
    pending_timers: Callable[[], Awaitable[set[tuple[str, str]]]]
    """(kind, key) of the timers still to fire."""


def new_candidate(person: str, *, priority: int = 0, hours: int = 0) -> Candidate:
    at = T0 + timedelta(hours=hours)
    candidate, _ = decide(None, Register(person, "MOS-EXCEL", at, "test", f"e-{person}"))
    waiting, _ = decide(candidate, JoinWaitlist(at, WaitingReason.CENTRES_CLOSED, "r", "r", "path_completed"))
    return replace(waiting, priority=priority)


def new_offer(offer_id: str = "o1") -> SeatOffer:
    offer, _ = decide_offer(
        None, MakeOffer(offer_id, "MOS-EXCEL:p1", "p1", "MOS-EXCEL", "ses-1", "ctr-1", EXAM, T0, OfferTerms())
    )
    return offer


def an_event(person: str = "p1") -> Event:
    return EnrolmentConfirmed(
        source="/tests",
        subject=person,
        request_id=f"req-{person}",
        person_id=person,
        course_code="EXCEL",
        course_title="Excel",
        language=Language.FR,
    )


async def stored(backend: Backend, *candidates: Candidate) -> None:
    async with backend.uow() as uow:
        for candidate in candidates:
            uow.candidates.add(candidate)
        await uow.commit()


class UnitOfWorkContract:
    """What every backend of the certification repositories does."""

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError

    async def test_an_added_state_reads_back_at_version_1(self, backend: Backend) -> None:
        candidate = new_candidate("p1")
        await stored(backend, candidate)
        assert await backend.uow().candidates.get("MOS-EXCEL:p1") == replace(candidate, version=1)
        assert await backend.uow().candidates.get("MOS-EXCEL:nobody") is None

    async def test_a_save_bumps_the_version_and_a_stale_save_conflicts(self, backend: Backend) -> None:
        await stored(backend, new_candidate("p1"))
        loaded = await backend.uow().candidates.get("MOS-EXCEL:p1")
        assert loaded is not None
        async with backend.uow() as uow:
            uow.candidates.save(decide(loaded, SetPriority(3, T0))[0])
            await uow.commit()
        async with backend.uow() as uow:
            uow.candidates.save(decide(loaded, SetPriority(7, T0))[0])  # loaded at version 1, stored is 2
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()
        after = await backend.uow().candidates.get("MOS-EXCEL:p1")
        assert after is not None and (after.version, after.priority) == (2, 3)

    async def test_adding_an_id_that_exists_conflicts(self, backend: Backend) -> None:
        await stored(backend, new_candidate("p1"))
        async with backend.uow() as uow:
            uow.candidates.add(new_candidate("p1", priority=9))
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()

    async def test_a_conflict_writes_nothing_of_the_unit_neither_states_nor_outbox_nor_timers(self, backend: Backend) -> None:
        await stored(backend, new_candidate("p1"))
        stale = await backend.uow().candidates.get("MOS-EXCEL:p1")
        assert stale is not None
        await stored(backend, new_candidate("p2"))
        async with backend.uow() as uow:
            uow.candidates.save(decide(stale, SetPriority(1, T0))[0])
            await uow.commit()
        event = an_event()
        async with backend.uow() as uow:
            uow.offers.add(new_offer())
            uow.candidates.save(decide(stale, SetPriority(2, T0))[0])
            uow.publish([event])
            uow.schedule("offer_expiry", "o1", EXAM)
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()
        assert await backend.uow().offers.get("o1") is None
        assert str(event.id) not in await backend.published()
        assert await backend.pending_timers() == set()

    async def test_leaving_without_commit_discards_everything(self, backend: Backend) -> None:
        uow = backend.uow()
        async with uow:
            uow.candidates.add(new_candidate("p1"))
            uow.publish([an_event()])
            uow.schedule("offer_expiry", "o1", EXAM)
        async with uow:
            await uow.commit()  # the same unit, committed later: nothing is left over from before
        assert await backend.uow().candidates.get("MOS-EXCEL:p1") is None
        assert await backend.published() == []
        assert await backend.pending_timers() == set()

    async def test_states_outbox_and_timers_commit_together(self, backend: Backend) -> None:
        first, second = an_event("p1"), an_event("p2")
        async with backend.uow() as uow:
            uow.offers.add(new_offer("o1"))
            uow.publish([first, second])
            uow.schedule("offer_expiry", "o1", EXAM, {"session_id": "ses-1"})
            uow.schedule("offer_expiry", "o2", EXAM)
            await uow.commit()
        async with backend.uow() as uow:
            uow.cancel("offer_expiry", "o2")
            await uow.commit()
        assert await backend.uow().offers.get("o1") == replace(new_offer("o1"), version=1)
        assert await backend.published() == [str(first.id), str(second.id)]
        assert await backend.pending_timers() == {("offer_expiry", "o1")}

    async def test_a_commit_for_an_event_applies_once(self, backend: Backend) -> None:
        event = an_event()
        for person, applied in (("p1", True), ("p2", False)):
            async with backend.uow() as uow:
                uow.candidates.add(new_candidate(person))
                assert await uow.commit(once_for=event) is applied
        assert await backend.uow().candidates.get("MOS-EXCEL:p2") is None

    async def test_the_waitlist_reads_first_in_line_first(self, backend: Backend) -> None:
        passed_over = replace(new_candidate("declined", priority=5), passed_over_sessions=("ses-1",))
        preparing = replace(new_candidate("preparing", priority=9), status=CandidateStatus.PREPARING)
        other = replace(new_candidate("wordsmith"), certification_code="MOS-WORD", candidate_id="MOS-WORD:wordsmith")
        await stored(
            backend,
            new_candidate("late", hours=3),
            new_candidate("early", hours=1),
            new_candidate("urgent", priority=2, hours=5),
            passed_over,
            preparing,
            other,
        )
        uow = backend.uow()
        waiting = await uow.candidates.waiting(["MOS-EXCEL"])
        assert [c.person_id for c in waiting] == ["declined", "urgent", "early", "late"]
        assert [c.person_id for c in await uow.candidates.waiting(["MOS-EXCEL"], not_passed_over="ses-1", limit=2)] == [
            "urgent",
            "early",
        ]
        assert [c.person_id for c in await uow.candidates.find(status=CandidateStatus.PREPARING)] == ["preparing"]
        assert [c.candidate_id for c in await uow.candidates.find()][-1] == "MOS-WORD:wordsmith"
        assert [c.person_id for c in await uow.candidates.find(certification="mos-word")] == ["wordsmith"]
        assert [c.person_id for c in await uow.candidates.of_person("early", [CandidateStatus.WAITING])] == ["early"]
        assert await uow.candidates.of_person("early", [CandidateStatus.PREPARING]) == []

    async def test_sessions_and_centres_are_found_by_centre_certification_and_start(self, backend: Backend) -> None:
        async with backend.uow() as uow:
            uow.centres.add(Centre("ctr-1", "One", "Rue 1", CentreState.OPEN))
            uow.centres.add(Centre("ctr-2", "Two", "Rue 2", CentreState.CLOSED))
            uow.sessions.add(Session("ses-b", "ctr-1", ("MOS-EXCEL",), EXAM + timedelta(days=1), 3))
            uow.sessions.add(Session("ses-a", "ctr-1", ("MOS-EXCEL", "MOS-WORD"), EXAM, 3))
            uow.sessions.add(Session("ses-c", "ctr-2", ("MOS-WORD",), EXAM, 3))
            uow.sessions.add(Session("ses-old", "ctr-1", ("MOS-EXCEL",), T0, 3))
            await uow.commit()
        uow = backend.uow()
        assert [c.centre_id for c in await uow.centres.find()] == ["ctr-1", "ctr-2"]
        assert [c.centre_id for c in await uow.centres.find(open_only=True)] == ["ctr-1"]
        found = await uow.sessions.find(certification="MOS-EXCEL", centre_ids=["ctr-1"], starting_after=T0)
        assert [s.session_id for s in found] == ["ses-a", "ses-b"]
        assert [s.session_id for s in await uow.sessions.find(centre_id="ctr-2")] == ["ses-c"]
        assert [s.session_id for s in await uow.sessions.find(certification="mos-word")] == ["ses-a", "ses-c"]
        assert await uow.sessions.get("ses-a") == Session("ses-a", "ctr-1", ("MOS-EXCEL", "MOS-WORD"), EXAM, 3, version=1)

    async def test_a_centre_required_unchanged_conflicts_once_it_changed_and_keeps_its_version(self, backend: Backend) -> None:
        async with backend.uow() as uow:
            uow.centres.add(Centre("ctr-1", "One", "Rue 1", CentreState.OPEN))
            await uow.commit()
        centre = await backend.uow().centres.get("ctr-1")
        assert centre is not None
        async with backend.uow() as uow:
            uow.centres.require_unchanged(centre)
            await uow.commit()
        assert await backend.uow().centres.get("ctr-1") == centre  # not a new version
        async with backend.uow() as uow:
            uow.centres.save(replace(centre, state=CentreState.CLOSED))
            await uow.commit()
        async with backend.uow() as uow:
            uow.centres.require_unchanged(centre)
            uow.offers.add(new_offer())
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()
        assert await backend.uow().offers.get("o1") is None

    async def test_a_result_is_recorded_once_with_its_credential(self, backend: Backend) -> None:
        exam = ExamOutcome("ses-1", True, 812.0, "Certification BF : tableur", "MOS: Excel", "MOS", "Microsoft")
        result = ExamResult("ses-1:p1", "ses-1", "p1", "MOS-EXCEL:p1", "MOS-EXCEL", True, 812.0, T0, "cred-1", exam=exam)
        credential = IssuedCredential("cred-1", "p1", "MOS-EXCEL", "ses-1", T0, {"type": ["VerifiableCredential"]})
        async with backend.uow() as uow:
            uow.results.add(result)
            uow.credentials.add(credential)
            await uow.commit()
        assert await backend.uow().results.get("ses-1:p1") == replace(result, version=1)
        async with backend.uow() as uow:
            uow.results.add(replace(result, passed=False, credential_id=None))
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()
        async with backend.uow() as uow:
            uow.credentials.add(credential)
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()
        assert await backend.uow().results.get("ses-1:p1") == replace(result, version=1)

    async def test_two_credentials_never_share_a_bit_of_the_status_list(self, backend: Backend) -> None:
        first = IssuedCredential("cred-a", "p1", "MOS-EXCEL", "ses-1", T0, {"type": ["VerifiableCredential"]}, status_index=7)
        async with backend.uow() as uow:
            uow.credentials.add(first)
            await uow.commit()
        async with backend.uow() as uow:
            uow.credentials.add(replace(first, credential_id="cred-b"))
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()
        async with backend.uow() as uow:
            uow.credentials.add(replace(first, credential_id="cred-b", status_index=8))
            uow.credentials.add(replace(first, credential_id="cred-c", status_index=None))
            uow.credentials.add(replace(first, credential_id="cred-d", status_index=None))
            await uow.commit()

    async def test_priority_hints_keep_the_highest_boost(self, backend: Backend) -> None:
        hints = backend.uow().hints
        assert await hints.boost("p1") == 0
        for boost in (2, 1, 3):
            await hints.raise_to("p1", boost)
        assert await hints.boost("p1") == 3

    async def test_of_two_racing_saves_of_one_version_exactly_one_commits(self, backend: Backend) -> None:
        await stored(backend, new_candidate("p1"))

        async def save(priority: int) -> bool:
            async with backend.uow() as uow:
                loaded = await uow.candidates.get("MOS-EXCEL:p1")
                assert loaded is not None
                await asyncio.sleep(0.01)  # both load before either commits
                uow.candidates.save(decide(loaded, SetPriority(priority, T0))[0])
                try:
                    await uow.commit()
                except ConcurrencyConflict:
                    return False
                return True

        assert sorted(await asyncio.gather(save(1), save(2))) == [False, True]
        after = await backend.uow().candidates.get("MOS-EXCEL:p1")
        assert after is not None and after.version == 2
