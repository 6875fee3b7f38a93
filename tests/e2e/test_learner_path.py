"""The learner's path, end to end (issue 14): routing, certification and notification as processes on
the real broker and mongod, the candidates' mailbox and phone the SMTP and SMS sink (`scripts.demo.Inbox`),
staff signed in through the real Keycloak (`scripts.tokens.Tokens`).

- Ana is enrolled in a course session, completes it (which asks for the exam by itself), receives a
  seat offer by e-mail and SMS, accepts it through the link (the page's form), passes the exam, and
  holds a credential that passes 1EdTech's official schema and an independent verifier.
- Bram completes the same session first and is offered the seat first, by e-mail and SMS, but never
  answers: once certification's (simulated) clock is past his deadline, the seat moves on to Ana and
  his link says it expired.
- Chloé finds the session full and is waitlisted; Dan leaves the course (`TrainingAbandoned`) and
  Chloé is admitted to his place.

Routing and notification run on the real clock; certification on a simulated one that starts at the
real time, so the test moves only the offers' deadlines.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from certification.signing import new_signing_key
from schemas import (
    CertificateIssued,
    Channel,
    Contact,
    EnrolmentConfirmed,
    EnrolmentWaitlisted,
    Event,
    ExamScheduled,
    ExamSchedulingRequested,
    ExamSeatOfferAccepted,
    ExamSeatOffered,
    ExamSeatOfferExpired,
    NotificationSent,
    TrainingAbandoned,
    TrainingCompleted,
    decode,
)
from schemas.topics import ALL_TOPICS
from scripts.demo import SEAT_OFFER_LINK, Inbox, free_port, page_form, plain_text
from scripts.tokens import Tokens
from services.calendar import BRUSSELS
from tests.conftest import KAFKA_CLIENT, Figures
from tests.credential_checks import independent_verification, schema_errors
from tests.factories import live_request
from tests.processes import Run, produce, roster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

COURSE = "EXCEL"
CERTIFICATION = "MOS-EXCEL"
SESSION = "EXCEL-E2E-FR"
EXAM_SESSION = "ses-learner-path"
E = TypeVar("E", bound=Event)


@dataclass
class Candidate:
    name: str
    email: str
    phone: str
    request_id: str = ""
    person_id: str = ""
    story: list[str] = field(default_factory=list)

    def told(self, line: str) -> None:
        self.story.append(line)


async def read_all(run: Run, *, until: Callable[[list[Event]], bool], timeout: float = 120) -> list[Event]:
    """Every event on the run's topics, in the order read, once `until` holds (or the time is up)."""
    consumer = AIOKafkaConsumer(
        *(run.topic(t.name) for t in ALL_TOPICS), **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest"
    )
    events: list[Event] = []
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(events) and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                events += [decode(r.value, r.headers) for r in records]
    finally:
        await consumer.stop()
    return events


def mails_to(inbox: Inbox, who: Candidate) -> list[EmailMessage]:
    return [m for m in list(inbox.mails) if who.email in str(m["To"])]


def sms_to(inbox: Inbox, who: Candidate) -> list[dict[str, Any]]:
    return [s for s in list(inbox.sms) if s.get("to") == who.phone]


def offer_links(inbox: Inbox, who: Candidate) -> tuple[list[str], list[str]] | None:
    """The seat-offer links `who` received: (in the e-mail, in the SMS), once both arrived."""
    in_mail = [link for m in mails_to(inbox, who) for link in SEAT_OFFER_LINK.findall(plain_text(m))]
    in_sms = [link for s in sms_to(inbox, who) for link in SEAT_OFFER_LINK.findall(str(s.get("text", "")))]
    return (in_mail, in_sms) if in_mail and in_sms else None


async def test_the_learner_path_from_a_course_session_to_a_verified_credential(
    run: Run, tokens: Tokens, figures: Figures
) -> None:
    ana = Candidate("Ana", "ana.learner@example.org", "+32470100001")
    bram = Candidate("Bram", "bram.learner@example.org", "+32470100002")
    chloe = Candidate("Chloé", "chloe.learner@example.org", "+32470100003")
    dan = Candidate("Dan", "dan.learner@example.org", "+32470100004")
    everyone = (ana, bram, chloe, dan)

    inbox = Inbox()
    smtp_port, sms_port = inbox.start()
    try:
        certification_port = free_port()
        certification_url = f"http://127.0.0.1:{certification_port}"
        run.env |= {
            "ROUTING_WORKERS_PATH": str(roster(run.tmp / "roster.yaml", per_team=1, capacity=8)),
            "NOTIFICATION_SMTP_PORT": str(smtp_port),
            "NOTIFICATION_SMS_URL": f"http://127.0.0.1:{sms_port}/sms",
            "NOTIFICATION_QUIET_HOURS_START": "23:59",  # equal: no quiet hours, whenever the test runs
            "NOTIFICATION_QUIET_HOURS_END": "23:59",
            "NOTIFICATION_SENDER_POLL_INTERVAL": "PT0.2S",
            "CERTIFICATION_CLOCK": "simulated",
            "CERTIFICATION_SIGNING_KEY": new_signing_key(),
            "CERTIFICATION_PUBLIC_BASE_URL": certification_url,
            "CERTIFICATION_TIMER_POLL_INTERVAL": "PT0.2S",
        }
        routing = run.start("routing", free_port())
        certification = run.start("certification", certification_port)
        run.start("notification", free_port())

        # Four people ask for Excel in French, now: the services run on the real clock.
        requests = []
        for who in everyone:
            request = live_request(
                channel=Channel.EMAIL,
                requested_course=COURSE,
                contact=Contact(name=f"{who.name} Test", phone=who.phone, email=who.email),
            )
            who.request_id, who.person_id = request.request_id, request.person_id
            requests.append(request)
        await produce(run.topic("training.requests.v1"), requests)

        supervisor = tokens.headers("adv-sup")
        today = datetime.now(BRUSSELS).date()
        async with httpx.AsyncClient(base_url=routing.url, timeout=15) as desk:
            # The desk's supervisor plans an online session of three places, from today.
            planned = await desk.post(
                f"/desk/courses/{COURSE}/sessions",
                json={
                    "session_id": SESSION,
                    "starts_on": today.isoformat(),
                    "ends_on": (today + timedelta(weeks=6)).isoformat(),
                    "capacity": 3,
                    "mode": "online",
                    "language": "fr",
                },
                headers=supervisor,
            )
            assert planned.status_code == 201, planned.text

            async def offered_to(who: Candidate) -> str | None:
                view = await desk.get(f"/desk/requests/{who.request_id}", headers=supervisor)
                body = view.json() if view.status_code == 200 else {}
                return body.get("assignee_id") if body.get("status") == "reserved" else None

            # Each call at the desk: whoever the request is offered to accepts it and enrols the person.
            answers: dict[str, dict[str, Any]] = {}
            for who in (ana, bram, dan, chloe):

                async def is_offered(who: Candidate = who) -> bool:
                    return await offered_to(who) is not None

                await wait_for(is_offered)
                worker = await offered_to(who)
                assert worker is not None
                as_worker = tokens.headers(worker)
                accepted = await desk.post(f"/desk/requests/{who.request_id}/accept", headers=as_worker)
                assert accepted.status_code == 200, accepted.text
                outcome = await desk.post(
                    f"/desk/requests/{who.request_id}/outcome",
                    json={"outcome": "enrolled", "course_code": COURSE, "session_id": SESSION},
                    headers=as_worker,
                )
                assert outcome.status_code == 200, outcome.text
                answers[who.name] = outcome.json()["enrolment"]
            for who in (ana, bram, dan):
                assert answers[who.name] == {
                    "course_code": COURSE,
                    "session_id": SESSION,
                    "starts_on": today.isoformat(),
                    "waitlisted": False,
                }
                who.told(f"enrolled in course session {SESSION} (online, fr) from {today}")
            # Three places, three people: Chloé finds the session full and waits for it.
            assert answers[chloe.name] == {"course_code": COURSE, "session_id": SESSION, "starts_on": None, "waitlisted": True}
            chloe.told(f"course session {SESSION} full: waitlisted")
            listed = (await desk.get(f"/desk/courses/{COURSE}/sessions", headers=supervisor)).json()
            [session_view] = listed["sessions"]
            assert (session_view["capacity"], session_view["enrolled"], session_view["waiting"]) == (3, 3, 1)

            # Dan leaves the course: his place goes to Chloé, who waited for it.
            left = await desk.post(
                f"/desk/enrolments/{dan.request_id}/abandoned", json={"reason": "found_work"}, headers=supervisor
            )
            assert left.status_code == 200, left.text
            assert left.json()["admitted"] == [chloe.request_id]
            dan.told("abandoned the course (found work): TrainingAbandoned, his place freed")
            chloe.told(f"admitted to {SESSION} in Dan's place (EnrolmentConfirmed)")
            [session_view] = (await desk.get(f"/desk/courses/{COURSE}/sessions", headers=supervisor)).json()["sessions"]
            assert (session_view["enrolled"], session_view["waiting"]) == (3, 0)

            # Bram completes the course first: the Excel path asks for the MOS-EXCEL exam by itself.
            done = await desk.post(f"/desk/enrolments/{bram.request_id}/completed", json={}, headers=supervisor)
            assert done.status_code == 200, done.text
            assert [t.rsplit(".", 2)[-2] + "." + t.rsplit(".", 1)[-1] for t in done.json()["published"]] == [
                "course.completed",
                "exam_scheduling.requested",
            ]
            bram.told("completed the course: TrainingCompleted, ExamSchedulingRequested (path_completed)")

        async with (
            httpx.AsyncClient(base_url=certification.url, timeout=15, headers=tokens.headers("cert-1")) as staff,
            httpx.AsyncClient(base_url=certification.url, timeout=15) as anyone,
        ):

            async def waitlist() -> list[str]:
                listed = (await staff.get("/waitlist", params={"certification": CERTIFICATION})).json()
                return [c["person_id"] for c in listed]

            async def bram_waits() -> bool:
                return await waitlist() == [bram.person_id]

            await wait_for(bram_waits)
            centre = {"state": "open", "name": "Centre d'examens d'Anderlecht", "address": "Rue Exemple 1, 1070 Anderlecht"}
            assert (await staff.put("/centres/ctr-learner-path", json=centre)).status_code == 200
            exam_at = (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0)
            added = await staff.post(
                "/sessions",
                json={
                    "session_id": EXAM_SESSION,
                    "centre_id": "ctr-learner-path",
                    "certifications": [CERTIFICATION],
                    "starts_at": exam_at.isoformat(),
                    "seats": 1,
                },
            )
            assert added.status_code == 201, added.text
            [to_bram] = added.json()["offers"]
            assert to_bram["person_id"] == bram.person_id
            bram.told(f"offered the only seat of exam session {EXAM_SESSION}, to answer by {to_bram['expires_at']}")

            # The offer reaches Bram by e-mail and by SMS, with its links.
            async def bram_told() -> bool:
                return offer_links(inbox, bram) is not None

            await wait_for(bram_told)
            bram_links = offer_links(inbox, bram)
            assert bram_links is not None
            bram_mail_links, bram_sms_links = bram_links
            assert len(bram_mail_links) == 2 and len(bram_sms_links) == 1  # accept and decline; the SMS has room for one
            assert all(link.startswith(f"{certification_url}/seat-offers/respond?token=") for link in bram_mail_links)
            bram.told("received the offer by e-mail (accept and decline links) and SMS (accept link); never answered")

            # Ana completes the course too: she waits, the only seat being held for Bram.
            async with httpx.AsyncClient(base_url=routing.url, timeout=15, headers=supervisor) as desk:
                done = await desk.post(f"/desk/enrolments/{ana.request_id}/completed", json={})
                assert done.status_code == 200, done.text
            ana.told("completed the course: TrainingCompleted, ExamSchedulingRequested (path_completed)")

            async def ana_waits() -> bool:
                return await waitlist() == [ana.person_id]

            await wait_for(ana_waits)
            [ana_waiting] = (await staff.get("/waitlist", params={"certification": CERTIFICATION})).json()
            assert ana_waiting["waiting_reason"] == "no_free_seat"
            ana.told("waits for a seat: the only one is held for Bram")
            held = (await staff.get(f"/sessions/{EXAM_SESSION}")).json()
            assert (held["seats"], held["held"], held["booked"]) == (1, 1, 0)

            # Bram lets the deadline pass: certification's clock moves past it and the seat moves on.
            moved = await anyone.post("/admin/clock/advance", params={"hours": 49}, headers=tokens.headers("ops-1"))
            assert moved.status_code == 200, moved.text

            async def ana_told() -> bool:
                return offer_links(inbox, ana) is not None

            await wait_for(ana_told)
            bram_offer = (await staff.get(f"/offers/{to_bram['offer_id']}")).json()
            assert bram_offer["status"] == "expired"
            bram_now = (await staff.get(f"/candidates/{CERTIFICATION}:{bram.person_id}")).json()
            assert (bram_now["status"], bram_now["offer_id"]) == ("waiting", None)
            bram.told("deadline passed: ExamSeatOfferExpired, back on the waitlist")
            late = await anyone.get(bram_sms_links[0])
            assert late.status_code == 410, late.text
            bram.told(f"opening his link afterwards: {late.status_code} (expired)")

            ana_links = offer_links(inbox, ana)
            assert ana_links is not None
            ana_mail_links, ana_sms_links = ana_links
            assert len(ana_mail_links) == 2 and len(ana_sms_links) == 1
            ana.told("received the seat Bram let go by e-mail and SMS, with its links")

            # Ana opens the link of her SMS (which changes nothing), then presses "accept" on the page.
            page = await anyone.get(ana_sms_links[0])
            assert page.status_code == 200, page.text
            assert CERTIFICATION in page.text and "Centre d'examens d'Anderlecht" in unescape(page.text)
            answered = await anyone.post("/seat-offers/respond", data=page_form(page.text, "accept"))
            assert answered.status_code == 200, answered.text
            assert "votre place est réservée" in unescape(answered.text)
            again = await anyone.post("/seat-offers/respond", data=page_form(page.text, "accept"))
            assert again.status_code == 409  # the link works once
            booked = (await staff.get(f"/sessions/{EXAM_SESSION}")).json()
            assert (booked["seats"], booked["held"], booked["booked"]) == (1, 0, 1)
            ana.told("accepted through the link (the page's form): ExamScheduled; a second click: 409")

            # The exam: staff record Ana's result; a pass issues her credential.
            result = await staff.post(
                f"/sessions/{EXAM_SESSION}/results",
                json={"person_id": ana.person_id, "passed": True, "score": 870, "email": ana.email},
            )
            assert result.status_code == 200, result.text
            credential_id = result.json()["credential_id"]
            ana.told(f"passed with 870: CertificateIssued, credential {credential_id}")

            document = (await anyone.get(f"/credentials/{credential_id}")).json()
            assert schema_errors(document) == []  # 1EdTech's official AchievementCredential schema
            issuer = (await anyone.get("/issuer")).json()
            status_list_url = document["credentialStatus"]["statusListCredential"]
            published = {issuer["id"]: issuer, status_list_url: (await anyone.get(status_list_url)).json()}
            clock = (await anyone.get("/admin/clock", headers=tokens.headers("ops-1"))).json()["now"]
            verdict = independent_verification(document, published, now=datetime.fromisoformat(clock))
            assert verdict == {"verified": True, "revoked": False, "errors": []}
            assert any("Microsoft Office Specialist" in e["name"] for e in document["evidence"])
            ana.told("credential passes 1EdTech's OB 3.0 schema and Digital Bazaar's verifier (eddsa-rdfc-2022)")
            verification = await anyone.get(f"/verify/{credential_id}", params={"lang": "en"})
            assert verification.status_code == 200
            shown = re.search(r'<p role="status"><strong>(.*?)</strong>', verification.text)
            assert shown is not None
            ana.told(f"verification page {verification.url}: {unescape(shown.group(1))}")

        # What went over the broker, person by person.
        def the_path_told(events: list[Event]) -> bool:
            told = {e.about_event_id for e in events if isinstance(e, NotificationSent)}
            about = [
                e
                for e in events
                if isinstance(e, CertificateIssued)
                or (isinstance(e, EnrolmentWaitlisted | EnrolmentConfirmed) and e.person_id == chloe.person_id)
            ]
            return len(about) == 3 and all(e.id in told for e in about)

        events = await read_all(run, until=the_path_told)
    finally:
        inbox.stop()

    def of(who: Candidate, kind: type[E]) -> list[E]:
        return [e for e in events if isinstance(e, kind) and getattr(e, "person_id", None) == who.person_id]

    def path_of(who: Candidate, *kinds: type[Event]) -> list[str]:
        return [type(e).__name__ for e in events if isinstance(e, kinds) and getattr(e, "person_id", None) == who.person_id]

    # Ana: completed, asked for the exam, offered the seat, accepted, scheduled, certified.
    [completed] = of(ana, TrainingCompleted)
    [asked] = of(ana, ExamSchedulingRequested)
    assert (asked.certification_code, asked.reason.value, asked.causation_id) == (CERTIFICATION, "path_completed", completed.id)
    assert path_of(ana, ExamSeatOffered, ExamSeatOfferAccepted, ExamScheduled, CertificateIssued) == [
        "ExamSeatOffered",
        "ExamSeatOfferAccepted",
        "ExamScheduled",
        "CertificateIssued",
    ]
    # Bram: offered first, the offer lapsed, never scheduled.
    assert path_of(bram, ExamSeatOffered, ExamSeatOfferExpired, ExamScheduled) == ["ExamSeatOffered", "ExamSeatOfferExpired"]
    # Chloé: waitlisted, then enrolled by Dan's drop-out.
    [waited] = of(chloe, EnrolmentWaitlisted)
    [admitted] = of(chloe, EnrolmentConfirmed)
    [dropped] = of(dan, TrainingAbandoned)
    assert (waited.session_id, admitted.session_id, admitted.causation_id) == (SESSION, SESSION, dropped.id)
    assert dropped.reason == "found_work"
    # Every offer on the topic carries its links sealed, never in clear.
    for offer in (e for e in events if isinstance(e, ExamSeatOffered)):
        assert offer.accept_url is None and offer.decline_url is None and offer.sealed is not None
    # Chloé was told both: that she waits, then that she has her place.
    told_chloe = {e.about_event_id for e in events if isinstance(e, NotificationSent)}
    assert waited.id in told_chloe and admitted.id in told_chloe

    figures.record(
        "the learner's path, per candidate",
        "\n".join(f"{who.name}: " + "\n  ".join(who.story) for who in everyone),
    )
