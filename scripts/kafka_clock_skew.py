"""Let the local broker take record timestamps from a client whose clock runs ahead, and take it back.

`make test-any-date` runs the tests and services under libfaketime, a year ahead, while the
broker keeps the real time. Since Kafka 4.0 (KIP-1030) a broker refuses a record stamped more
than `log.message.timestamp.after.max.ms` (one hour by default) ahead of its own clock, so every
produce of the dated run would fail with InvalidTimestampError. A machine whose whole date moved
would have no such skew: for that run only, the local broker accepts it.

    python -m scripts.kafka_clock_skew allow     # before the dated run
    python -m scripts.kafka_clock_skew restore   # after it: back to the broker's default

A dynamic, per-broker setting (no restart): nothing is written to server.properties, so a broker
started afterwards has the default whatever happened.
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from scripts.launch import kafka_client

SETTING = "log.message.timestamp.after.max.ms"
ANY_SKEW = str(2**63 - 1)  # Kafka's "no limit" (the default before 4.0)


async def set_skew(allow: bool) -> None:
    admin = AIOKafkaAdminClient(**kafka_client())
    await admin.start()
    try:
        metadata = await admin.describe_cluster()
        for broker in metadata["brokers"]:
            # AlterConfigs replaces the broker's dynamic settings as a whole: an empty set
            # removes the override, and the broker's default applies again.
            configs = {SETTING: ANY_SKEW} if allow else {}
            resource = ConfigResource(ConfigResourceType.BROKER, str(broker["node_id"]), configs=configs)
            for response in await admin.alter_configs([resource]):
                # aiokafka's protocol responses are untyped structs: read the field by name.
                results: list[tuple[int, str | None, int, str]] = getattr(response, "resources", [])
                for error_code, error_message, *_ in results:
                    if error_code:
                        raise SystemExit(f"broker {broker['node_id']} refused {SETTING}: {error_message}")
    finally:
        await admin.close()


def main(argv: list[str]) -> None:
    if argv not in (["allow"], ["restore"]):
        raise SystemExit("usage: python -m scripts.kafka_clock_skew allow|restore")
    asyncio.run(set_skew(argv[0] == "allow"))
    print(f"[kafka] {SETTING} {'unlimited' if argv[0] == 'allow' else 'back to the default'}")


if __name__ == "__main__":
    main(sys.argv[1:])
