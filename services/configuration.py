"""Configuration run by staff: closure days, open certifications, quotas, the active rule set and
the roster, each changed as a whole through routing's staff API and published as a
`ConfigurationChanged` on the compacted `configuration.v1`.

`Configuration` is the pure value every service holds: what each setting is now and at which
version; `Configuration.apply(event)` is the one way it changes, and ignores a change it already
has (Kafka delivers at least once; a replica may also have loaded it from the store first).
`ConfigurationFeed` is the Kafka side: each replica reads the topic from the beginning without a
consumer group (every replica must see every change), reads it to its end before the service
starts serving, then follows it and tells the service's listeners what changed.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, get_args

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas import CONFIGURATION, ConfigurationChanged, codec
from schemas.errors import ContractError
from schemas.events import ConfigurationSetting
from services.kafka import admin_client_kwargs, topic_name
from services.settings import KafkaSettings

__all__ = [
    "SETTINGS",
    "ActiveRuleSet",
    "ClosureDay",
    "Closures",
    "Configuration",
    "ConfigurationFeed",
    "OpenCertifications",
    "Quotas",
    "Roster",
    "VersionConflict",
    "parse_value",
]

log = structlog.get_logger(__name__)

SETTINGS: tuple[ConfigurationSetting, ...] = get_args(ConfigurationSetting)


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClosureDay(_Value):
    date: date
    name: str = Field(min_length=1, max_length=100, examples=["Christmas Eve"])


class Closures(_Value):
    """Extra closure days (bridge days, 26 December...), besides the legal holidays the calendar knows."""

    days: tuple[ClosureDay, ...] = ()

    @field_validator("days")
    @classmethod
    def _one_name_a_day(cls, days: tuple[ClosureDay, ...]) -> tuple[ClosureDay, ...]:
        seen = [d.date for d in days]
        if len(seen) != len(set(seen)):
            raise ValueError("a date is listed twice")
        return tuple(sorted(days, key=lambda d: d.date))

    def as_mapping(self) -> dict[date, str]:
        return {d.date: d.name for d in self.days}


class OpenCertifications(_Value):
    """The catalogue's certification codes open for exam scheduling now."""

    codes: tuple[str, ...] = ()

    @field_validator("codes")
    @classmethod
    def _distinct(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        if any(not c.strip() for c in codes):
            raise ValueError("a certification code is blank")
        return tuple(sorted(set(codes)))


class Quotas(_Value):
    digital_divide_per_year: int = Field(ge=0, le=100_000, description="People the digital-divide programme admits a year.")


class ActiveRuleSet(_Value):
    """The routing rule set in force: its version id, and the document when it is not the shipped one."""

    version: str = Field(min_length=1, max_length=100)
    document: dict[str, Any] | None = Field(
        None, description="An uploaded rule set (routing.rules' format); none: the shipped one."
    )

    @model_validator(mode="after")
    def _document_is_that_version(self) -> ActiveRuleSet:
        if self.document is not None and str(self.document.get("version")) != self.version:
            raise ValueError("the document's own `version` must be the version activated")
        return self


_CONTACT_FIELDS = frozenset({"email", "e_mail", "phone", "mobile", "telephone", "address"})


class Roster(_Value):
    """Staff profiles (routing's `Worker` fields: id, team, languages, skills, hours...), never their
    contact details; `removed` are worker ids taken off the roster (set offline, never offered)."""

    workers: tuple[dict[str, Any], ...] = ()
    removed: tuple[str, ...] = ()

    @field_validator("workers")
    @classmethod
    def _no_contact_details(cls, workers: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for worker in workers:
            if contact := _CONTACT_FIELDS & set(worker):
                raise ValueError(f"a roster entry carries contact details ({', '.join(sorted(contact))}): leave them out")
            if not str(worker.get("worker_id", "")).strip():
                raise ValueError("every roster entry needs a `worker_id`")
        return workers


VALUE_MODELS: Mapping[ConfigurationSetting, type[_Value]] = MappingProxyType(
    {
        "closures": Closures,
        "certifications": OpenCertifications,
        "quotas": Quotas,
        "rule_set": ActiveRuleSet,
        "roster": Roster,
    }
)


def parse_value(setting: ConfigurationSetting, value: Mapping[str, Any]) -> _Value:
    """The typed value of `setting`; raises `pydantic.ValidationError` (a `ValueError`) when invalid."""
    return VALUE_MODELS[setting].model_validate(dict(value))


class VersionConflict(Exception):
    """A change was decided on another version of the setting than the current one."""

    def __init__(self, setting: str, expected: int, current: int) -> None:
        super().__init__(f"{setting} is at version {current}, not {expected}: read it again and retry")
        self.setting = setting
        self.expected = expected
        self.current = current


@dataclass(frozen=True)
class Configuration:
    """Every setting's current value and version; a setting never changed is absent (version 0)."""

    values: Mapping[str, _Value] = field(default_factory=dict)
    versions: Mapping[str, int] = field(default_factory=dict)

    def version(self, setting: str) -> int:
        return self.versions.get(setting, 0)

    def check(self, setting: str, expected_version: int) -> int:
        """The next version of `setting` if `expected_version` is its current one; `VersionConflict` otherwise."""
        current = self.version(setting)
        if expected_version != current:
            raise VersionConflict(setting, expected_version, current)
        return current + 1

    def apply(self, event: ConfigurationChanged) -> Configuration:
        """This configuration with `event` applied; itself when it already has that version or a later one."""
        if event.version <= self.version(event.setting):
            return self
        value = parse_value(event.setting, event.value)
        return Configuration(
            values={**self.values, event.setting: value}, versions={**self.versions, event.setting: event.version}
        )

    # Typed readers of each setting: None while staff never set it (the service keeps its default).

    @property
    def closures(self) -> Closures | None:
        return self.values.get("closures")  # type: ignore[return-value]

    @property
    def certifications(self) -> OpenCertifications | None:
        return self.values.get("certifications")  # type: ignore[return-value]

    @property
    def quotas(self) -> Quotas | None:
        return self.values.get("quotas")  # type: ignore[return-value]

    @property
    def rule_set(self) -> ActiveRuleSet | None:
        return self.values.get("rule_set")  # type: ignore[return-value]

    @property
    def roster(self) -> Roster | None:
        return self.values.get("roster")  # type: ignore[return-value]


Listener = Callable[[ConfigurationSetting, Configuration], Awaitable[None] | None]


class ConfigurationFeed:
    """`configuration.v1` as one replica sees it: `current` is the configuration read so far.

    `catch_up()` reads the topic from its beginning to its end (startup waits for it, so the service
    never serves with stale settings); `follow()` then applies each new change. Listeners are told
    the setting that changed and the new configuration; they must be idempotent, since `apply` hands
    them each version once per replica but a restart replays the topic.
    """

    def __init__(self, settings: KafkaSettings, *, client_id: str, poll_timeout_ms: int = 500) -> None:
        self._settings = settings
        self._client_id = client_id
        self._poll_timeout_ms = poll_timeout_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._listeners: list[Listener] = []
        self.current = Configuration()

    def on_change(self, listener: Listener) -> Listener:
        self._listeners.append(listener)
        return listener

    async def apply(self, event: ConfigurationChanged) -> bool:
        """Apply one change and tell the listeners; False if it was already applied."""
        updated = self.current.apply(event)
        if updated is self.current:
            return False
        self.current = updated
        for listener in self._listeners:
            outcome = listener(event.setting, updated)
            if inspect.isawaitable(outcome):
                await outcome
        log.info("configuration.applied", setting=event.setting, version=event.version, by=event.changed_by)
        return True

    async def _start(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            # No group: every replica reads every change, and nothing is committed (it starts over each time).
            consumer = AIOKafkaConsumer(
                **admin_client_kwargs(self._settings), client_id=self._client_id, group_id=None, enable_auto_commit=False
            )
            await consumer.start()
            name = topic_name(CONFIGURATION)
            partitions = [TopicPartition(name, p) for p in range(CONFIGURATION.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self._consumer = consumer
        return self._consumer

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=self._poll_timeout_ms, max_records=500)
        for records in batches.values():
            for record in records:
                try:
                    event = codec.decode(record.value, record.headers)
                except ContractError as error:
                    log.warning("configuration.unreadable", offset=record.offset, error_type=type(error).__name__)
                    continue
                if not isinstance(event, ConfigurationChanged):
                    continue
                try:
                    await self.apply(event)
                except ValueError as error:
                    # A value this version of the service cannot read: keep the previous one, say so.
                    log.error("configuration.rejected", setting=event.setting, version=event.version, error=str(error))

    async def catch_up(self) -> Configuration:
        """Read the topic to the end offsets it has now; returns the configuration then."""
        consumer = await self._start()
        ends: dict[TopicPartition, int] = await consumer.end_offsets(list(consumer.assignment()))
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            await self._poll(consumer)
        log.info("configuration.loaded", keys=sorted(self.current.versions))
        return self.current

    async def follow(self) -> None:
        consumer = await self._start()
        while True:
            await self._poll(consumer)

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    def attach(self, runtime: Any, *, before_ready: bool = True) -> None:
        """Read to the end before the service is up (`before_ready`), follow in the background, stop at shutdown.

        A service that starts while Kafka is down (intake) passes `before_ready=False`: it catches up
        in the background once Kafka answers, and serves with its defaults until then.
        """

        async def catch_up(_: Any) -> None:
            await asyncio.wait_for(self.catch_up(), timeout=120.0)

        async def close(_: Any) -> None:
            await self.close()

        async def catch_up_then_follow() -> None:
            await runtime.kafka_connected.wait()
            await self.catch_up()
            await self.follow()

        if before_ready:
            runtime.on_startup(catch_up)
            runtime.run_in_background("configuration.feed", self.follow)
        else:
            runtime.run_in_background("configuration.feed", catch_up_then_follow)
        runtime.on_shutdown(close)
