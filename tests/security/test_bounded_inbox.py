"""Unbounded entries on the SMTP inbox: thousands of recipients, relaying, oversize mail, too many
connections, and many maximum-size messages at once; over real TCP, spoken to by the standard
library's client, with the requests stored by the real pipeline on the running mongod."""

from __future__ import annotations

import asyncio
import os
import smtplib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any, TypeVar

import pytest

from intake.email_server import EmailInbox, EmailInboxSettings
from intake.pipeline import IntakePipeline
from services.outbox import Outbox
from tests.security.conftest import Attacks

pytestmark = [pytest.mark.security, pytest.mark.integration]

INBOX = "formations-en-ligne@bruxellesformation.brussels"
LIMIT = 200_000
MAX_CONNECTIONS = 4
MAX_RECIPIENTS = 20
T = TypeVar("T")


@pytest.fixture
async def pipeline(mongo_client: Any, mongo_db: Any) -> IntakePipeline:
    pipeline = IntakePipeline(mongo_client, mongo_db, Outbox(mongo_db, "intake_outbox"))
    await pipeline.ensure_indexes()
    return pipeline


@pytest.fixture
async def inbox(pipeline: IntakePipeline) -> AsyncIterator[EmailInbox]:
    settings = EmailInboxSettings(
        port=0,
        hostname="intake.test",
        max_message_bytes=LIMIT,
        max_connections=MAX_CONNECTIONS,
        max_recipients=MAX_RECIPIENTS,
        spool_memory_bytes=10_000,
        shutdown_grace_s=2,
    )
    inbox = EmailInbox(pipeline, settings)
    await inbox.start()
    yield inbox
    await inbox.stop()


async def with_client(inbox: EmailInbox, use: Callable[[smtplib.SMTP], T]) -> T:
    def run() -> T:
        with smtplib.SMTP("127.0.0.1", inbox.port, timeout=30) as client:
            return use(client)

    return await asyncio.to_thread(run)


def request_mail(text: str = "Bonjour, je voudrais suivre la formation Excel.", *, padding: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Sender {uuid.uuid4().hex[:6]} <sender-{uuid.uuid4().hex[:8]}@example.be>"
    msg["To"] = INBOX
    msg["Subject"] = "Formation"
    msg["Message-ID"] = f"<{uuid.uuid4()}@mail.example.be>"
    msg.set_content(text + "\n")
    if padding:
        msg.add_attachment(os.urandom(padding), maintype="application", subtype="pdf", filename="cv.pdf")
    return msg


async def stored(mongo_db: Any, message_ids: list[str]) -> int:
    return int(await mongo_db["intake_requests"].count_documents({"dedup_key": {"$in": [f"email:{m}" for m in message_ids]}}))


async def test_five_thousand_recipients_in_one_session(inbox: EmailInbox, mongo_db: Any, attacks: Attacks) -> None:
    mail = request_mail()

    def flood(client: smtplib.SMTP) -> tuple[list[int], tuple[int, bytes]]:
        client.ehlo("attacker.example")
        client.mail("spam@attacker.example")
        codes = [client.rcpt(INBOX)[0] for _ in range(5_000)]
        return codes, client.data(mail.as_bytes(policy=SMTP_POLICY))

    codes, (data_code, _) = await with_client(inbox, flood)

    assert codes[:MAX_RECIPIENTS] == [250] * MAX_RECIPIENTS
    assert set(codes[MAX_RECIPIENTS:]) == {452}
    assert data_code == 250  # the recipients within the cap still get their one message
    assert await stored(mongo_db, [mail["Message-ID"]]) == 1
    attacks.record("SMTP: 5,000 RCPT in one session", tried="5,000 RCPT", refused=True, nothing_lost=True)


async def test_relay_attempt(inbox: EmailInbox, attacks: Attacks) -> None:
    def relay(client: smtplib.SMTP) -> tuple[int, int]:
        client.ehlo("attacker.example")
        client.mail("spam@attacker.example")
        code, _ = client.rcpt("victim@gmail.com")
        data_code, _ = client.docmd("DATA")
        return code, data_code

    rcpt_code, data_code = await with_client(inbox, relay)

    assert rcpt_code == 550
    assert data_code == 503  # no recipient: no message is taken at all
    attacks.record("SMTP: relay to an outside address", tried="RCPT victim@gmail.com", refused=True, nothing_lost=True)


async def test_oversize_message(inbox: EmailInbox, mongo_db: Any, attacks: Attacks) -> None:
    big = request_mail(padding=LIMIT)

    def send(client: smtplib.SMTP) -> tuple[str, int, int]:
        client.ehlo("attacker.example")
        announced = client.esmtp_features.get("size", "")
        client.mail("a@attacker.example")  # no SIZE parameter: only the DATA stream says how big it is
        client.rcpt(INBOX)
        code, _ = client.data(big.as_bytes(policy=SMTP_POLICY))
        declared = client.docmd("MAIL FROM:<a@attacker.example> SIZE=999999999")[0]
        return announced, code, declared

    announced, data_code, declared_code = await with_client(inbox, send)

    assert announced == str(LIMIT)
    assert data_code == 552
    assert declared_code == 552
    assert await stored(mongo_db, [big["Message-ID"]]) == 0
    # The same session still delivers a normal message afterwards.
    small = request_mail()
    await with_client(inbox, lambda client: client.sendmail("a@example.be", [INBOX], small.as_bytes(policy=SMTP_POLICY)))
    assert await stored(mongo_db, [small["Message-ID"]]) == 1
    attacks.record(
        "SMTP: oversize message",
        tried=f"{len(big.as_bytes(policy=SMTP_POLICY))} bytes, SIZE=999999999",
        refused=True,
        nothing_lost=True,
    )


async def test_connections_beyond_the_cap(inbox: EmailInbox, mongo_db: Any, attacks: Attacks) -> None:
    async def greeting(reader: asyncio.StreamReader) -> int:
        return int((await asyncio.wait_for(reader.readline(), 10))[:3])

    held = [await asyncio.open_connection("127.0.0.1", inbox.port) for _ in range(MAX_CONNECTIONS)]
    try:
        assert [await greeting(reader) for reader, _ in held] == [220] * MAX_CONNECTIONS
        extra = []
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", inbox.port)
            extra.append(await greeting(reader))
            assert await asyncio.wait_for(reader.read(), 10) == b""  # and hung up on
            writer.close()
        assert extra == [421] * 20
    finally:
        for _, writer in held:
            writer.close()
    # Once they hang up, mail flows again.
    mail = request_mail()
    for _ in range(50):
        if inbox.open_sessions < MAX_CONNECTIONS:
            break
        await asyncio.sleep(0.05)
    await with_client(inbox, lambda client: client.sendmail("a@example.be", [INBOX], mail.as_bytes(policy=SMTP_POLICY)))
    assert await stored(mongo_db, [mail["Message-ID"]]) == 1
    attacks.record("SMTP: connections beyond the cap", tried=f"{MAX_CONNECTIONS} held + 20 more", refused=True, nothing_lost=True)


async def test_every_accepted_message_is_stored(inbox: EmailInbox, mongo_db: Any, attacks: Attacks) -> None:
    mails = [request_mail(f"Bonjour, formation numéro {i}.", padding=LIMIT // 2) for i in range(MAX_CONNECTIONS)]

    def send(mail: EmailMessage) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", inbox.port, timeout=60) as client:
            return client.sendmail("a@example.be", [INBOX], mail.as_bytes(policy=SMTP_POLICY))

    with ThreadPoolExecutor(MAX_CONNECTIONS) as pool:
        refusals = await asyncio.gather(*(asyncio.get_running_loop().run_in_executor(pool, send, m) for m in mails))

    assert refusals == [{}] * len(mails)
    assert await stored(mongo_db, [m["Message-ID"] for m in mails]) == len(mails)
    attacks.record(
        "SMTP: concurrent large messages, all accepted",
        tried=f"{len(mails)} x {LIMIT // 2} bytes",
        refused=True,
        nothing_lost=True,
    )


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the peak RSS")
def test_memory_stays_bounded_with_concurrent_maximum_size_messages(attacks: Attacks) -> None:
    concurrent, max_bytes = 8, 10 * 1024 * 1024
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.security.inbox_process", str(max_bytes), "50"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first_line = ""
        while not first_line.strip().isdigit():  # the inbox's own log lines come first
            first_line = server.stdout.readline()
            assert first_line, "the inbox process ended"
        port = int(first_line)
        mails = [request_mail(padding=int(max_bytes * 0.72)).as_bytes(policy=SMTP_POLICY) for _ in range(concurrent)]
        assert all(max_bytes * 0.9 < len(mail) <= max_bytes for mail in mails)
        before = _status(server.pid, "VmRSS")

        def send(mail: bytes) -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                return client.sendmail("a@example.be", [INBOX], mail)

        with ThreadPoolExecutor(concurrent) as pool:
            refusals = list(pool.map(send, mails))
        peak = _status(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()

    increase_mib = (peak - before) / 2**20
    print(
        f"MEASURE | SMTP inbox peak RSS increase | {concurrent} concurrent x {max_bytes // 2**20} MiB | +{increase_mib:.0f} MiB"
    )
    assert refusals == [{}] * concurrent
    # Before the spool and the parse slots: +338 MiB for the same load.
    assert increase_mib < 338
    attacks.record(
        "SMTP: concurrent maximum-size messages (memory)",
        tried=f"{concurrent} x {max_bytes // 2**20} MiB at once, peak RSS +{increase_mib:.0f} MiB",
        refused=True,
        nothing_lost=True,
    )
