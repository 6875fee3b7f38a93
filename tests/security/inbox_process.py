"""The SMTP inbox alone in a process of its own, so that a test can measure its memory: `python -m
tests.security.inbox_process <max_message_bytes> <max_connections>` prints the port, serves until killed.
Requests go to the in-memory `RecordingPipeline`: what is measured is the inbox, not a database driver."""

from __future__ import annotations

import asyncio
import sys

from intake.email_server import EmailInbox, EmailInboxSettings
from tests.fakes import RecordingPipeline


async def main(max_message_bytes: int, max_connections: int) -> None:
    settings = EmailInboxSettings(
        port=0, hostname="intake.test", max_message_bytes=max_message_bytes, max_connections=max_connections
    )
    inbox = EmailInbox(RecordingPipeline(), settings)
    await inbox.start()
    print(inbox.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
