"""Configuration run by staff, owned by routing: the history of every change, the use case behind the
staff API, and how a routing replica applies a setting to what it decides with.

A change is one MongoDB transaction: a line of the append-only `configuration_changes` history
(unique per setting and version, so two supervisors racing on the same version cannot both win) and
the `ConfigurationChanged` in `routing_outbox`, which the relay publishes on `configuration.v1`.
Every replica (this one at once, the others from Kafka) then applies it through `RoutingSettingsApplier`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from routing.programme import DigitalDivideProgramme
from routing.programme_rules import QuotaBelowAdmitted
from routing.roster import workers_from_entries
from routing.rules import RuleSet, RuleSetError, parse_rules
from routing.service import RoutingPolicy
from routing.workers import Availability
from schemas import ConfigurationChanged
from schemas.events import ConfigurationSetting
from services.calendar import LiveCalendar
from services.catalogue import Catalogue
from services.clock import Clock
from services.configuration import SETTINGS, Configuration, ConfigurationFeed, VersionConflict, parse_value
from services.mongo import MongoDatabase
from services.outbox import Outbox

__all__ = ["CHANGES_COLLECTION", "ConfigurationStore", "InvalidSetting", "RoutingSettingsApplier", "StaffConfiguration"]

log = structlog.get_logger(__name__)

CHANGES_COLLECTION = "configuration_changes"
SOURCE = "/routing/configuration"


class InvalidSetting(ValueError):
    """A value staff sent that routing cannot use; the message says why (a 422)."""


class ConfigurationStore:
    """The append-only history of changes; the current configuration is its latest line per setting."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db: MongoDatabase, *, outbox: Outbox) -> None:
        self._client = client
        self._changes = db[CHANGES_COLLECTION]
        self._outbox = outbox

    async def ensure_indexes(self) -> None:
        await self._changes.create_index([("setting", ASCENDING), ("version", ASCENDING)], unique=True, name="one_per_version")

    async def current(self) -> Configuration:
        config = Configuration()
        async for doc in self._changes.find({}).sort([("setting", ASCENDING), ("version", ASCENDING)]):
            config = config.apply(_event(doc))
        return config

    async def latest(self, setting: ConfigurationSetting) -> ConfigurationChanged | None:
        doc = await self._changes.find_one({"setting": setting}, sort=[("version", DESCENDING)])
        return _event(doc) if doc else None

    async def uploaded_rule_set(self, version: str) -> dict[str, Any] | None:
        """The document of rule set `version` as once uploaded, if it was."""
        doc = await self._changes.find_one(
            {"setting": "rule_set", "value.version": version, "value.document": {"$ne": None}}, sort=[("version", DESCENDING)]
        )
        return doc["value"]["document"] if doc else None

    async def history(self, setting: ConfigurationSetting) -> list[dict[str, Any]]:
        """The setting's changes, latest first."""
        docs = await self._changes.find({"setting": setting}, {"_id": 0}).sort("version", DESCENDING).to_list(None)
        return docs

    async def record(
        self,
        setting: ConfigurationSetting,
        value: Mapping[str, Any],
        *,
        expected_version: int,
        changed_by: str,
        changed_at: datetime,
        reason: str | None = None,
    ) -> ConfigurationChanged:
        """Store version `expected_version + 1` and its event, in one transaction; `VersionConflict` if stale."""

        async def transaction(session: AsyncClientSession) -> ConfigurationChanged:
            latest = await self._changes.find_one(
                {"setting": setting}, {"version": 1}, sort=[("version", DESCENDING)], session=session
            )
            current = int(latest["version"]) if latest else 0
            if current != expected_version:
                raise VersionConflict(setting, expected_version, current)
            event = ConfigurationChanged(
                source=SOURCE,
                setting=setting,
                value=dict(value),
                version=current + 1,
                changed_by=changed_by,
                changed_at=changed_at,
                reason=reason,
                actor=changed_by,
            )
            await self._changes.insert_one(
                {
                    "setting": setting,
                    "version": event.version,
                    "value": event.value,
                    "changed_by": changed_by,
                    "changed_at": changed_at,
                    "reason": reason,
                    "event_id": str(event.id),
                },
                session=session,
            )
            await self._outbox.add([event], session=session)
            return event

        try:
            async with self._client.start_session() as session:
                event: ConfigurationChanged = await session.with_transaction(transaction)
        except DuplicateKeyError:
            # Another replica committed the same version between our read and our insert.
            latest = await self._changes.find_one({"setting": setting}, sort=[("version", DESCENDING)])
            raise VersionConflict(setting, expected_version, int(latest["version"]) if latest else 0) from None
        return event


def _event(doc: Mapping[str, Any]) -> ConfigurationChanged:
    return ConfigurationChanged(
        source=SOURCE,
        setting=doc["setting"],
        value=doc["value"],
        version=doc["version"],
        changed_by=doc["changed_by"],
        changed_at=doc["changed_at"],
        reason=doc.get("reason"),
    )


class RoutingSettingsApplier:
    """What a routing replica does with each setting, in memory (and the roster in MongoDB, idempotently):
    closures into the live calendar (deadlines, timers), the quota as the programme's yearly default,
    the active rule set into the policy, the roster upserted."""

    def __init__(
        self, policy: RoutingPolicy, programme: DigitalDivideProgramme, assignment: Any, *, shipped_rules: RuleSet
    ) -> None:
        if not isinstance(policy.calendar, LiveCalendar):
            raise TypeError("routing's calendar must be a LiveCalendar for closures to change without a restart")
        self.policy = policy
        self.programme = programme
        self.assignment = assignment
        self.shipped_rules = shipped_rules

    async def __call__(self, setting: ConfigurationSetting, config: Configuration) -> None:
        if setting == "closures" and config.closures is not None:
            self.policy.calendar.replace_closures(config.closures.as_mapping())  # type: ignore[attr-defined]
        elif setting == "quotas" and config.quotas is not None:
            self.programme.default_quota = config.quotas.digital_divide_per_year
        elif setting == "rule_set" and config.rule_set is not None:
            active = config.rule_set
            rules = (
                self.shipped_rules
                if active.document is None
                else parse_rules(active.document, source=f"rule set {active.version}", catalogue=self.policy.catalogue)
            )
            self.policy.rules = rules
        elif setting == "roster" and config.roster is not None:
            for worker in workers_from_entries(config.roster.workers):
                await self.assignment.upsert_worker(worker)
            for worker_id in config.roster.removed:
                await self.assignment.set_availability(worker_id, Availability.OFFLINE)


class StaffConfiguration:
    """The staff API's use cases: read the settings and their history, change one (validated, versioned)."""

    def __init__(
        self,
        store: ConfigurationStore,
        feed: ConfigurationFeed,
        *,
        policy: RoutingPolicy,
        shipped_rules: RuleSet,
        programme: DigitalDivideProgramme,
        clock: Clock,
        on_admitted: Callable[[Sequence[str]], Awaitable[None]] | None = None,
    ) -> None:
        # Requests a raised quota admits from the waitlist join the programme team's queue through it.
        self.on_admitted = on_admitted
        self.store = store
        self.feed = feed
        self.policy = policy
        self.shipped_rules = shipped_rules
        self.programme = programme
        self.clock = clock

    @property
    def catalogue(self) -> Catalogue:
        return self.policy.catalogue

    async def load(self) -> Configuration:
        """At start: apply what the store holds (the outbox may not have published the latest yet)."""
        for setting in SETTINGS:
            if (latest := await self.store.latest(setting)) is not None:
                await self.feed.apply(latest)
        return self.feed.current

    def current(self) -> dict[str, Any]:
        """Each setting's value and version, as this replica applies them (defaults where never set)."""
        config = self.feed.current
        calendar = self.policy.calendar
        closures = calendar.closures if isinstance(calendar, LiveCalendar) else {}
        defaults: dict[str, dict[str, Any]] = {
            "closures": {"days": [{"date": d.isoformat(), "name": n} for d, n in closures.items()]},
            "certifications": {"codes": sorted(c.code for c in self.catalogue.certifications if c.open)},
            "quotas": {"digital_divide_per_year": self.programme.default_quota},
            "rule_set": {"version": self.policy.rules.version, "document": None},
            "roster": {"workers": [], "removed": []},
        }
        return {
            setting: {
                "version": config.version(setting),
                "value": config.values[setting].model_dump(mode="json") if setting in config.values else defaults[setting],
            }
            for setting in SETTINGS
        }

    async def history(self, setting: ConfigurationSetting) -> list[dict[str, Any]]:
        return await self.store.history(setting)

    async def change(
        self,
        setting: ConfigurationSetting,
        value: Mapping[str, Any],
        *,
        expected_version: int,
        changed_by: str,
        reason: str | None = None,
    ) -> ConfigurationChanged:
        """Validate, record and apply here at once; other replicas apply it from `configuration.v1`."""
        checked = self.validate(setting, value)
        if setting == "rule_set" and checked["document"] is None and checked["version"] != self.shipped_rules.version:
            checked["document"] = await self.store.uploaded_rule_set(checked["version"])
            if checked["document"] is None:
                raise InvalidSetting(
                    f"rule set {checked['version']!r} is neither the shipped one ({self.shipped_rules.version}) "
                    "nor one uploaded before: send its document"
                )
        event = await self.store.record(
            setting, checked, expected_version=expected_version, changed_by=changed_by, changed_at=self.clock.now(), reason=reason
        )
        await self.feed.apply(event)
        if setting == "quotas":
            # This year's programme was created with the previous default: the new quota is this year's
            # too. Once, here, rather than on every replica (the desk may set a year's quota afterwards).
            year = self.clock.now().year
            try:
                _, admitted = await self.programme.set_quota(year, int(checked["digital_divide_per_year"]), changed_by=changed_by)
            except QuotaBelowAdmitted:
                # The default applies to the years to come; this year keeps a quota no lower than its members.
                log.warning("programme.quota_kept", year=year, reason="below_admitted")
            else:
                if self.on_admitted is not None:
                    await self.on_admitted(admitted)
        log.info("configuration.changed", setting=setting, version=event.version, by=changed_by)
        return event

    def validate(self, setting: ConfigurationSetting, value: Mapping[str, Any]) -> dict[str, Any]:
        """The value as it will be stored and published, or `InvalidSetting` saying what is wrong."""
        try:
            parsed = parse_value(setting, value)
        except ValueError as error:
            raise InvalidSetting(str(error)) from None
        checked: dict[str, Any] = parsed.model_dump(mode="json")
        if setting == "certifications":
            unknown = sorted(set(checked["codes"]) - {c.code for c in self.catalogue.certifications})
            if unknown:
                raise InvalidSetting(f"not in the catalogue: {', '.join(unknown)}")
        elif setting == "roster":
            try:
                workers_from_entries(checked["workers"])
            except ValueError as error:
                raise InvalidSetting(str(error)) from None
        elif setting == "rule_set":
            checked = self._rule_set(checked)
        return checked

    def _rule_set(self, value: dict[str, Any]) -> dict[str, Any]:
        version, document = value["version"], value.get("document")
        if document is not None:
            try:
                parse_rules(document, source=f"rule set {version}", catalogue=self.catalogue)
            except RuleSetError as error:
                raise InvalidSetting(str(error)) from None
            return value
        # No document: the shipped rule set, or one uploaded before (looked up in the history by `change`).
        return {"version": version, "document": None}
