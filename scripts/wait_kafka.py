"""Wait until a Kafka broker genuinely accepts clients (used by scripts/infra.sh).

An open TCP port is not enough: a KRaft broker listens before its controller
has elected itself and before it can host partitions. So we do what a client
does: bootstrap, create the topic ``_infra.ready`` if absent, and check that
its partition has a leader. Exit 0 when ready, 1 on timeout (with the last
error on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

READY_TOPIC = "_infra.ready"
# CreateTopics error code for "topic already exists": fine, someone got there first.
TOPIC_ALREADY_EXISTS = 36


def sasl_from_environment() -> dict[str, Any]:
    """SASL keywords from KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_MECHANISM / KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD,
    as the services read them (scripts/infra.sh sets them to the local broker's admin)."""
    protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT"
    if not protocol.startswith("SASL"):
        return {}
    return {
        "security_protocol": protocol,
        "sasl_mechanism": os.environ.get("KAFKA_SASL_MECHANISM") or "PLAIN",
        "sasl_plain_username": os.environ.get("KAFKA_SASL_USERNAME"),
        "sasl_plain_password": os.environ.get("KAFKA_SASL_PASSWORD"),
    }


async def probe(bootstrap: str) -> None:
    """Raise unless the broker serves metadata and has a led ``_infra.ready`` partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **sasl_from_environment())
    try:
        await admin.start()
        if READY_TOPIC not in await admin.list_topics():
            response = await admin.create_topics([NewTopic(READY_TOPIC, 1, 1)])
            for topic_error in response.to_object().get("topic_errors", []):
                code = topic_error["error_code"]
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise for_code(code)(topic_error.get("error_message"))
        (described,) = await admin.describe_topics([READY_TOPIC])
        if described["error_code"] != 0:
            raise for_code(described["error_code"])(READY_TOPIC)
        partitions = described["partitions"]
        if not partitions or any(p["leader"] < 0 for p in partitions):
            raise RuntimeError(f"{READY_TOPIC} has no partition leader yet")
    finally:
        await admin.close()


def process_alive(pid: int) -> bool:
    """True if pid runs and is not a zombie (no /proc: assume alive)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return True


async def wait(bootstrap: str, timeout: float, pid: int | None = None) -> int:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if pid and not process_alive(pid):
            print(f"Kafka process {pid} exited before it was ready", file=sys.stderr)
            return 1
        try:
            await asyncio.wait_for(probe(bootstrap), timeout=max(1.0, deadline - time.monotonic()))
            return 0
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
        await asyncio.sleep(0.5)
    print(
        f"Kafka at {bootstrap} not ready after {timeout:.0f}s: {type(last_error).__name__}: {last_error}",
        file=sys.stderr,
    )
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--pid", type=int, help="broker process: give up at once if it dies")
    args = parser.parse_args()
    # While the broker boots, aiokafka logs every refused connection; we report
    # only the final error ourselves.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return asyncio.run(wait(args.bootstrap, args.timeout, args.pid))


if __name__ == "__main__":
    sys.exit(main())
