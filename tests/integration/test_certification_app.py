"""The certification app as it runs (its lifespan, subscribers, outbox relay and offer timers) on the
real broker and mongod, driven over HTTP: enrolment and exam request from Kafka, a centre reopening,
a session, a decline, a timeout, an acceptance that reaches the topic as `ExamScheduled`, a pass
that issues a signed Open Badges 3.0 credential, fetched, verified and revoked.

Each test has its own database and topic prefix; the clock is a `FixedClock` the test moves.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from pydantic import SecretStr

from certification.app import create_app
from certification.credentials import identity_hash, status_bit
from certification.settings import CertificationSettings
from certification.signing import new_signing_key, public_key_from_multibase, verify_proof
from schemas import (
    CertificateIssued,
    Contact,
    EnrolmentConfirmed,
    Event,
    ExamRequestReason,
    ExamScheduled,
    ExamSchedulingRequested,
    ExamSeatOffered,
    Language,
    PersonDataErased,
    decode,
)
from services.clock import FixedClock
from services.kafka import delete_topics_with_prefix, use_topic_prefix, wire
from services.privacy import PersonalData, PersonKeys
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_CLIENT
from tests.credential_checks import independent_verification, schema_errors
from tests.factories import make_request
from tests.identity_provider import SignIn

pytestmark = pytest.mark.integration

BASE_URL = "https://certification.bruxellesformation.test"
NOW = datetime.now(UTC).replace(microsecond=0)
EXAM_AT = NOW + timedelta(days=10)


@dataclass
class Running:
    app: FastAPI
    http: httpx.AsyncClient
    clock: FixedClock
    prefix: str
    db: Any

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"


@pytest.fixture
async def running(
    unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[Running]:
    prefix = f"test_cert_{unique}."
    settings = CertificationSettings(
        kafka=kafka_settings.model_copy(update={"topic_prefix": prefix}),
        mongo=mongo_settings,
        public_base_url=BASE_URL,
        signing_key=SecretStr(new_signing_key()),
        timer_poll_interval=timedelta(milliseconds=100),
        instance_id=f"certification-{unique}",
    )
    clock = FixedClock(NOW)
    sign_in = SignIn()
    app = sign_in.install(create_app(settings, clock=clock))
    staff = sign_in.as_user("cert-1")
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=30, headers=staff) as http,
        ):
            yield Running(app, http, clock, prefix, mongo_db)
    finally:
        use_topic_prefix("")
        await delete_topics_with_prefix(kafka_settings, prefix)


async def produce(topic: str, *events: Event) -> None:
    producer = AIOKafkaProducer(**KAFKA_CLIENT, enable_idempotence=True)
    try:
        await producer.start()
        for event in events:
            _, key, value, headers = wire(event)
            await producer.send_and_wait(topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
    finally:
        await producer.stop()


async def read_events(topic: str, *, until: Callable[[list[Event]], bool], timeout: float = 30) -> list[Event]:
    events: list[Event] = []
    consumer = AIOKafkaConsumer(topic, **KAFKA_CLIENT, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(events) and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                events += [decode(r.value or b"", list(r.headers or ())) for r in records]
    finally:
        await consumer.stop()
    return events


async def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def candidates_from_kafka(run: Running, *people: str) -> None:
    """Each person enrols in the Excel path and asks for the exam, in that order."""
    events: list[Event] = []
    for person in people:
        events.append(
            EnrolmentConfirmed(
                source="/tests",
                subject=person,
                request_id=f"req-{person}",
                person_id=person,
                course_code="EXCEL",
                course_title="Excel",
                language=Language.FR,
            )
        )
        events.append(
            ExamSchedulingRequested(
                source="/tests",
                subject=person,
                person_id=person,
                certification_code="MOS-EXCEL",
                reason=ExamRequestReason.PATH_COMPLETED,
            )
        )
    await produce(run.topic("training.enrolments.v1"), *events)

    async def all_waiting() -> bool:
        response = await run.http.get("/waitlist", params={"certification": "MOS-EXCEL"})
        return len(response.json()) == len(people)

    await eventually(all_waiting)


async def open_centre_with_session(run: Running, *, seats: int) -> list[dict[str, Any]]:
    closed = await run.http.put(
        "/centres/ctr-1", json={"state": "closed", "name": "Centre 1", "address": "Rue Exemple 1, 1000 Bruxelles"}
    )
    assert closed.status_code == 200 and closed.json()["offers"] == []
    added = await run.http.post(
        "/sessions",
        json={
            "session_id": "ses-1",
            "centre_id": "ctr-1",
            "certifications": ["MOS-EXCEL"],
            "starts_at": EXAM_AT.isoformat(),
            "seats": seats,
        },
    )
    assert added.status_code == 201 and added.json()["offers"] == []  # the centre is closed
    waitlist = (await run.http.get("/waitlist", params={"certification": "MOS-EXCEL"})).json()
    assert {c["waiting_reason"] for c in waitlist} == {"training_centres_closed"}
    opened = await run.http.put("/centres/ctr-1", json={"state": "open"})
    assert opened.status_code == 200
    return opened.json()["offers"]  # type: ignore[no-any-return]


async def test_from_enrolment_to_a_revoked_credential_over_http(running: Running) -> None:
    run = running
    await candidates_from_kafka(run, "prs_ada", "prs_bob", "prs_cleo")
    [offer] = await open_centre_with_session(run, seats=1)
    assert offer["person_id"] == "prs_ada"

    # Ada declines: the seat goes to Bob. Bob does not answer in time: it goes to Cleo.
    declined = await run.http.post(f"/offers/{offer['offer_id']}/decline")
    assert declined.status_code == 200
    [to_bob] = declined.json()["next_offers"]
    assert to_bob["person_id"] == "prs_bob"
    run.clock.advance(timedelta(hours=48, seconds=1))

    async def offered_to_cleo() -> list[dict[str, Any]]:
        candidates = (await run.http.get("/candidates", params={"status": "offered"})).json()
        return [c for c in candidates if c["person_id"] == "prs_cleo"]

    [cleo] = await eventually(offered_to_cleo)
    assert (await run.http.get(f"/offers/{to_bob['offer_id']}")).json()["status"] == "expired"
    refused = await run.http.post(f"/offers/{to_bob['offer_id']}/accept")
    assert refused.status_code == 409

    # Cleo accepts through the link of her message: the offer reached the topic with its links sealed.
    def offer_to_cleo(events: list[Event]) -> bool:
        return any(isinstance(e, ExamSeatOffered) and e.person_id == "prs_cleo" for e in events)

    on_topic = await read_events(run.topic("certification.exams.v1"), until=offer_to_cleo)
    [sealed] = [e for e in on_topic if isinstance(e, ExamSeatOffered) and e.person_id == "prs_cleo"]
    assert sealed.accept_url is None and sealed.sealed is not None and sealed.offer_id == cleo["offer_id"]
    opened = await PersonalData(PersonKeys(run.db)).unseal(sealed)
    assert opened.accept_url is not None and opened.accept_url.startswith(f"{BASE_URL}/seat-offers/respond?token=")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=run.app), base_url=BASE_URL) as candidate:
        page = await candidate.get(opened.accept_url.removeprefix(BASE_URL) + "&lang=nl")
        assert page.status_code == 200 and '<html lang="nl">' in page.text and "Centre 1" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert (await run.http.get(f"/offers/{cleo['offer_id']}")).json()["status"] == "offered"  # GET changed nothing
        token = parse_qs(urlsplit(opened.accept_url).query)["token"][0]
        accepted = await candidate.post("/seat-offers/respond", data={"token": token, "lang": "nl"})
        assert accepted.status_code == 200 and "gereserveerd" in accepted.text
        again = await candidate.post("/seat-offers/respond", data={"token": token, "lang": "nl"})
        assert again.status_code == 409  # single use
        forged = await candidate.post("/seat-offers/respond", data={"token": token[:-3] + "AAA"})
        assert forged.status_code == 404
    assert (await run.http.get(f"/offers/{cleo['offer_id']}")).json()["status"] == "accepted"
    session = (await run.http.get("/sessions/ses-1")).json()
    assert (session["seats"], session["held"], session["booked"], session["free"]) == (1, 0, 1, 0)

    result = await run.http.post(
        "/sessions/ses-1/results",
        json={"person_id": "prs_cleo", "passed": True, "score": 870, "email": "Cleo.Martin@example.org"},
    )
    assert result.status_code == 200
    credential_id = result.json()["credential_id"]
    assert result.json()["credential_url"] == f"{BASE_URL}/credentials/{credential_id}"

    exams = await read_events(run.topic("certification.exams.v1"), until=lambda e: len(e) >= 8)
    assert [(e.type.rsplit(".", 2)[-2:], getattr(e, "person_id", None)) for e in exams] == [
        (["exam_seat", "offered"], "prs_ada"),
        (["exam_seat", "offer_declined"], "prs_ada"),
        (["exam_seat", "offered"], "prs_bob"),
        (["exam_seat", "offer_expired"], "prs_bob"),
        (["exam_seat", "offered"], "prs_cleo"),
        (["exam_seat", "offer_accepted"], "prs_cleo"),
        (["exam", "scheduled"], "prs_cleo"),
        (["certificate", "issued"], "prs_cleo"),
    ]
    scheduled, issued = exams[-2:]
    assert isinstance(scheduled, ExamScheduled) and isinstance(issued, CertificateIssued)
    assert (scheduled.person_id, scheduled.session_id, scheduled.centre_name, scheduled.exam_at) == (
        "prs_cleo",
        "ses-1",
        "Centre 1",
        EXAM_AT,
    )
    assert (issued.person_id, issued.credential_id, issued.credential_url) == (
        "prs_cleo",
        credential_id,
        f"{BASE_URL}/credentials/{credential_id}",
    )

    fetched = await run.http.get(f"/credentials/{credential_id}")
    assert fetched.status_code == 200
    document = fetched.json()
    assert document["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert document["id"] == f"{BASE_URL}/credentials/{credential_id}"
    assert document["credentialSubject"]["achievement"]["id"] == f"{BASE_URL}/achievements/MOS-EXCEL"
    assert "prs_cleo" not in fetched.text
    assert "cleo" not in fetched.text.lower()
    [identity] = document["credentialSubject"]["identifier"]
    assert identity["identityType"] == "emailAddress"
    assert identity["identityHash"] == identity_hash("cleo.martin@example.org", identity["salt"])
    assert any("Microsoft Office Specialist: Excel" in e["name"] for e in document["evidence"])
    assert (result.json()["vendor_exam"], result.json()["vendor"]) == ("Microsoft Office Specialist: Excel", "Microsoft")
    # The vendor exam, the BF certification it pairs with and the score are recorded on the candidate.
    cleo = (await run.http.get("/candidates/MOS-EXCEL:prs_cleo")).json()
    assert cleo["status"] == "passed"
    assert cleo["exam"] == {
        "session_id": "ses-1",
        "passed": True,
        "score": 870,
        "bf_certification": "Certification Bruxelles Formation : tableur (Excel)",
        "vendor_exam": "Microsoft Office Specialist: Excel",
        "vendor_programme": "Microsoft Office Specialist",
        "vendor": "Microsoft",
    }
    assert (cleo["history"][-1]["what"], cleo["history"][-1]["vendor_exam"], cleo["history"][-1]["score"]) == (
        "passed",
        "Microsoft Office Specialist: Excel",
        870,
    )

    # The issuer's controller document asserts the key that signed it; the proofs check here and elsewhere.
    issuer = (await run.http.get("/issuer")).json()
    assert issuer["@context"] == ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
    [key] = issuer["verificationMethod"]
    [proof] = document["proof"]
    assert key["id"] == proof["verificationMethod"] == f"{BASE_URL}/issuer#key-1"
    assert issuer["assertionMethod"] == [key["id"]] and key["type"] == "Multikey"
    assert verify_proof(document, public_key_from_multibase(key["publicKeyMultibase"]))
    assert schema_errors(document) == []  # 1EdTech's official AchievementCredential schema
    status_list_url = document["credentialStatus"]["statusListCredential"]
    assert status_list_url == f"{BASE_URL}/status-lists/revocation"
    listed = (await run.http.get("/status-lists/revocation")).json()
    published = {f"{BASE_URL}/issuer": issuer, status_list_url: listed}
    verdict = independent_verification(document, published, now=run.clock.now())
    assert verdict == {"verified": True, "revoked": False, "errors": []}
    assert (await run.http.get("/achievements/MOS-EXCEL")).json() == document["credentialSubject"]["achievement"]
    assert (await run.http.get(f"/credentials/{credential_id}/status")).json()["status"] == "active"
    page = await run.http.get(f"/verify/{credential_id}", params={"lang": "nl"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="nl">' in page.text and "echt en geldig" in page.text
    assert page.headers["content-language"] == "nl" and "default-src 'none'" in page.headers["content-security-policy"]

    revoked = await run.http.post(f"/credentials/{credential_id}/revoke", json={"reason": "Résultat encodé par erreur"})
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    status = (await run.http.get(f"/credentials/{credential_id}/status")).json()
    assert (status["status"], status["revocation_reason"]) == ("revoked", "Résultat encodé par erreur")
    after = (await run.http.get(f"/credentials/{credential_id}")).json()
    assert after["revoked"] is True and after["revocationReason"] == "Résultat encodé par erreur" and "proof" not in after
    # The copy a holder kept still carries its proof: the status list says it is revoked.
    listed = (await run.http.get("/status-lists/revocation")).json()
    index = int(document["credentialStatus"]["statusListIndex"])
    assert status_bit(listed["credentialSubject"]["encodedList"], index)
    published[status_list_url] = listed
    verdict = independent_verification(document, published, now=run.clock.now())
    assert (verdict["verified"], verdict["revoked"]) == (True, True)
    page = await run.http.get(f"/verify/{credential_id}", params={"lang": "en"})
    assert "revoked" in page.text and "Résultat encodé par erreur" in page.text
    listing = (await run.http.get("/revocations")).json()
    assert listing["revokedCredentials"] == [{"id": document["id"], "revocationReason": "Résultat encodé par erreur"}]
    assert (await run.http.get("/credentials/unknown")).status_code == 404


async def test_the_holder_is_named_by_the_email_they_gave_intake_until_it_is_erased(running: Running) -> None:
    """Issue 14, item 4: staff type no e-mail; the credential names the holder by a salted hash of the
    address the person gave intake (sealed on `training.requests.v1`, kept by certification), and by a
    hash of their id once `privacy.v1` erased it."""
    run = running
    personal = PersonalData(PersonKeys(run.db))
    requests = [
        await personal.seal(
            make_request(person_id=person, received_at=NOW - timedelta(hours=1), contact=Contact(name="X", email=email))
        )
        for person, email in (("prs_dana", " Dana.Holder@Example.org"), ("prs_eli", "eli@example.org"))
    ]
    assert all(r.sealed is not None and r.contact.email is None for r in requests)  # not in clear on the topic
    await produce(run.topic("training.requests.v1"), *requests)
    contacts = run.db["certification_contacts"]

    async def both_known() -> bool:
        return bool(await contacts.count_documents({"email": {"$ne": None}}) == 2)

    await eventually(both_known)
    assert (await contacts.find_one({"_id": "prs_dana"}))["email"] == "dana.holder@example.org"

    erasure = PersonDataErased(source="/tests", subject="prs_eli", person_id="prs_eli", erased_at=NOW, requested_by="dpo-1")
    await produce(run.topic("privacy.v1"), erasure)

    async def eli_erased() -> Any:
        return await contacts.find_one({"_id": "prs_eli", "email": None, "erased_at": {"$ne": None}})

    await eventually(eli_erased)

    await candidates_from_kafka(run, "prs_dana", "prs_eli")
    offers = await open_centre_with_session(run, seats=2)
    assert {o["person_id"] for o in offers} == {"prs_dana", "prs_eli"}
    for offer in offers:
        assert (await run.http.post(f"/offers/{offer['offer_id']}/accept")).status_code == 200

    identities = {}
    for person in ("prs_dana", "prs_eli"):
        result = await run.http.post("/sessions/ses-1/results", json={"person_id": person, "passed": True, "score": 900})
        assert result.status_code == 200
        document = (await run.http.get(f"/credentials/{result.json()['credential_id']}")).json()
        assert "example.org" not in str(document)  # the address is hashed, never in clear
        [identities[person]] = document["credentialSubject"]["identifier"]
        assert schema_errors(document) == []

    dana, eli = identities["prs_dana"], identities["prs_eli"]
    assert (dana["identityType"], dana["hashed"]) == ("emailAddress", True)
    # What a verifier told the address computes: sha256 of the address (trimmed, lower-cased) and the salt.
    assert dana["identityHash"] == "sha256$" + hashlib.sha256(("dana.holder@example.org" + dana["salt"]).encode()).hexdigest()
    # Erased: the person id, hashed, which only certification can check.
    assert (eli["identityType"], eli["hashed"]) == ("identifier", True)
    assert eli["identityHash"] == identity_hash("prs_eli", eli["salt"])


async def test_staff_api_refusals_and_priorities(running: Running) -> None:
    run = running
    await candidates_from_kafka(run, "prs_1", "prs_2")
    raised = await run.http.put("/candidates/MOS-EXCEL:prs_2/priority", json={"priority": 5})
    assert raised.status_code == 200 and raised.json()["priority"] == 5
    waitlist = (await run.http.get("/waitlist", params={"certification": "MOS-EXCEL"})).json()
    assert [(c["position"], c["person_id"]) for c in waitlist] == [(1, "prs_2"), (2, "prs_1")]

    assert (await run.http.put("/centres/new", json={"state": "open"})).status_code == 422  # no name or address
    await run.http.put("/centres/ctr-2", json={"state": "open", "name": "Centre 2", "address": "Rue Exemple 2, 1000 Bruxelles"})
    drawing = await run.http.post(
        "/sessions", json={"centre_id": "ctr-2", "certifications": ["ACU-AUTOCAD"], "starts_at": EXAM_AT.isoformat(), "seats": 3}
    )
    assert drawing.status_code == 422 and "not open yet" in drawing.json()["detail"]
    past = await run.http.post(
        "/sessions",
        json={
            "centre_id": "ctr-2",
            "certifications": ["MOS-EXCEL"],
            "starts_at": (NOW - timedelta(days=1)).isoformat(),
            "seats": 3,
        },
    )
    assert past.status_code == 422
    unknown = await run.http.post(
        "/sessions", json={"centre_id": "nowhere", "certifications": ["MOS-EXCEL"], "starts_at": EXAM_AT.isoformat(), "seats": 3}
    )
    assert unknown.status_code == 404
    added = await run.http.post(
        "/sessions",
        json={"centre_id": "ctr-2", "certifications": ["MOS-EXCEL", "MOS-WORD"], "starts_at": EXAM_AT.isoformat(), "seats": 3},
    )
    assert added.status_code == 201
    assert [o["person_id"] for o in added.json()["offers"]] == ["prs_2", "prs_1"]
    assert (await run.http.post("/offers/nope/accept")).status_code == 404
    assert (await run.http.get("/waitlist", params={"certification": "NOPE"})).status_code == 404
    certifications = (await run.http.get("/certifications")).json()
    assert len(certifications) == 11 and sum(1 for c in certifications if not c["open"]) == 2
    assert "/waitlist" in (await run.http.get("/openapi.json")).json()["paths"]


async def test_the_public_surface_alone_verifies_without_kafka_and_serves_no_staff_route(
    unique: str, mongo_settings: MongoSettings, mongo_db: Any
) -> None:
    settings = CertificationSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix=f"test_cert_public_{unique}."),  # nobody there
        mongo=mongo_settings,
        public_base_url=BASE_URL,
        signing_key=SecretStr(new_signing_key()),
        surfaces=frozenset({"public"}),
        instance_id=f"certification-public-{unique}",
        offer_page_rate_per_minute=3,
    )
    app = create_app(settings, clock=FixedClock(NOW))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=30) as http,
        ):
            ready = await http.get("/health/ready")
            assert (ready.status_code, ready.json()["mongodb"]) == (200, "up"), "ready on MongoDB alone"
            assert (await http.get("/revocations")).status_code == 200
            listed = (await http.get("/status-lists/revocation")).json()
            assert listed["type"] == ["VerifiableCredential", "BitstringStatusListCredential"] and listed["proof"]
            issuer = (await http.get("/issuer")).json()
            assert issuer["id"] == f"{BASE_URL}/issuer" and issuer["assertionMethod"] == [f"{BASE_URL}/issuer#key-1"]
            assert (await http.get("/verify/unknown")).status_code == 404
            assert (await http.get("/credentials/unknown")).status_code == 404
            for staff_route in ("/centres", "/certifications", "/waitlist?certification=MOS-WORD", "/offers/o-1"):
                assert (await http.get(staff_route)).status_code == 404, staff_route
            assert (await http.post("/credentials/c-1/revoke", json={"reason": "x"})).status_code in {404, 405}
            # The seat-offer page answers links here, within a rate per client network shared by the replicas.
            statuses = [(await http.get("/seat-offers/respond", params={"token": "v1.x.y"})).status_code for _ in range(3)]
            assert statuses == [404, 404, 404]
            refused = await http.post("/seat-offers/respond", data={"token": "v1.x.y"})
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    finally:
        use_topic_prefix("")
