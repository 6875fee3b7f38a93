"""Show and fix the retention (and compaction) of the topics on the cluster.

    python -m services.retention --check   # the table; exit 1 if a topic differs from its declaration
    python -m services.retention --apply   # set the declared configs where they differ, then check

Services create their topics with the declared configs (`schemas.topics`) and log a drift at start
(`kafka.topic_config_mismatch`) without fixing it: changing how long a topic keeps its records is
an operator's decision, taken here. The declared topics come from `schemas.topics`; each service's
retry and dead-letter topics are found by name on the cluster, since their number of levels is a
service setting. Connection settings are the services' `KAFKA_*` variables (prefix included).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Iterable, Mapping, Sequence

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from rich.console import Console

from schemas.topics import ALL_TOPICS
from services.consumers import service_topics
from services.kafka import (
    ConfigMismatch,
    TopicConfigs,
    admin_client_kwargs,
    config_mismatches,
    describe_topic_configs,
)
from services.settings import KafkaSettings

__all__ = ["declared_on_cluster", "main", "parse_args", "replacement_configs", "table"]

_SERVICE_TOPIC = re.compile(r"^(?P<service>[A-Za-z0-9_-]+)\.(?:retry\.(?P<level>\d+)|dead-letters)\.v1$")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """`--check` or `--apply`, exactly one (`apply` is True for the latter)."""
    parser = argparse.ArgumentParser(
        prog="python -m services.retention", description="Show and fix the retention of the topics on the cluster."
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="print declared and actual configs; exit 1 on a mismatch")
    mode.add_argument("--apply", action="store_true", help="alter the topics whose configs differ, then check")
    return parser.parse_args(argv)


def declared_on_cluster(existing: Iterable[str], prefix: str) -> dict[str, Mapping[str, str]]:
    """Topic name (prefixed) -> declared configs: every declared topic, and the services' retry and
    dead-letter topics among `existing`."""
    declared = {prefix + t.name: t.configs for t in ALL_TOPICS if t.configs}
    for name in existing:
        if not name.startswith(prefix):
            continue
        match = _SERVICE_TOPIC.match(name.removeprefix(prefix))
        if match is None:
            continue
        levels = int(match["level"] or 1)
        own = {prefix + t.name: t.configs for t in service_topics(match["service"], levels)}
        if name in own:
            declared[name] = own[name]
    return dict(sorted(declared.items()))


def replacement_configs(overrides: Mapping[str, str | None], declared: Mapping[str, str]) -> dict[str, str]:
    """The full set of topic overrides to send: AlterConfigs replaces a topic's overrides as a
    whole (aiokafka has no incremental variant), so those set by hand are kept beside the declared ones."""
    kept = {name: value for name, value in overrides.items() if value is not None}
    return {**kept, **declared}


def table(declared: Mapping[str, Mapping[str, str]], actual: Mapping[str, TopicConfigs]) -> list[str]:
    """One line per declared (topic, setting): declared value, actual value, and whether they agree."""
    rows = [("topic", "setting", "declared", "actual", "")]
    for topic, configs in declared.items():
        for setting, value in sorted(configs.items()):
            current = actual[topic].effective.get(setting) if topic in actual else None
            status = "ok" if current == value else ("MISSING" if topic not in actual else "MISMATCH")
            rows.append((topic, setting, value, current if current is not None else "-", status))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def _print(text: str) -> None:
    Console(highlight=False, soft_wrap=True, markup=False).print(text)


async def _alter(admin: AIOKafkaAdminClient, topic: str, configs: Mapping[str, str]) -> None:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(configs))
    for response in await admin.alter_configs([resource]):
        # aiokafka's protocol responses are untyped structs: read the field by name.
        results: list[tuple[int, str | None, int, str]] = getattr(response, "resources", [])
        for error_code, error_message, *_ in results:
            if error_code:
                raise SystemExit(f"{topic}: the cluster refused the new configs: {error_message}")


async def run(settings: KafkaSettings, *, apply: bool) -> int:
    admin = AIOKafkaAdminClient(**admin_client_kwargs(settings), client_id="formation-events-retention")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        declared = declared_on_cluster(existing, settings.topic_prefix)
        # Described only once they exist: asking about a missing topic is an error, not a default.
        actual, refused = await describe_topic_configs(admin, [name for name in declared if name in existing])
        mismatches = _mismatches(declared, actual)
        if apply:
            for topic in sorted({m.topic for m in mismatches if m.topic in actual}):
                await _alter(admin, topic, replacement_configs(actual[topic].overrides, declared[topic]))
                _print(f"[retention] {topic}: set {dict(declared[topic])}")
            actual, refused, mismatches = await _applied(admin, declared, [name for name in declared if name in existing])
        _print("\n".join(table(declared, actual)))
        for topic, error in sorted(refused.items()):
            _print(f"[retention] {topic}: not described: {error}")
        missing = sorted({m.topic for m in mismatches if m.topic not in existing})
        if missing:
            _print(f"[retention] {len(missing)} topics missing: each service creates its topics at start")
        return 1 if mismatches or refused else 0
    finally:
        await admin.close()


APPLIED_WITHIN_S = 15.0
"""How long `--apply` waits for the brokers to show the new configs: an accepted change reaches
each broker's view of the topic a moment later, through the cluster's metadata."""


async def _applied(
    admin: AIOKafkaAdminClient, declared: Mapping[str, Mapping[str, str]], names: list[str]
) -> tuple[dict[str, TopicConfigs], dict[str, str], list[ConfigMismatch]]:
    deadline = asyncio.get_running_loop().time() + APPLIED_WITHIN_S
    while True:
        actual, refused = await describe_topic_configs(admin, names)
        mismatches = _mismatches(declared, actual)
        if not any(m.topic in actual for m in mismatches) or asyncio.get_running_loop().time() > deadline:
            return actual, refused, mismatches
        await asyncio.sleep(0.2)


def _mismatches(declared: Mapping[str, Mapping[str, str]], actual: Mapping[str, TopicConfigs]) -> list[ConfigMismatch]:
    return config_mismatches(declared, {name: configs.effective for name, configs in actual.items()})


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    return asyncio.run(run(KafkaSettings(), apply=args.apply))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
