"""Configuration run by staff, without a broker: applying a change, version conflicts, validation,
and a configured closure moving a working-day deadline (services.configuration, routing.configuration)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from routing.configuration import InvalidSetting, RoutingSettingsApplier, StaffConfiguration
from routing.rules import DEFAULT_PATH as RULES_PATH
from routing.rules import load_rules
from routing.service import RoutingPolicy
from routing.sla import callback_deadline, due_at
from routing.workers import Availability, Worker
from schemas import Channel, ConfigurationChanged
from services.calendar import BRUSSELS, BrusselsCalendar, LiveCalendar
from services.catalogue import load_catalogue
from services.clock import FixedClock
from services.configuration import Configuration, ConfigurationFeed, VersionConflict, parse_value
from services.settings import KafkaSettings

pytestmark = pytest.mark.unit

TUESDAY_10 = datetime(2026, 3, 3, 10, 0, tzinfo=BRUSSELS)
"""Tuesday 3 March 2026, 10:00 in Brussels: a plain working week around it."""
WEDNESDAY = date(2026, 3, 4)


def changed(setting: str, value: dict[str, Any], version: int, *, by: str = "sup-1") -> ConfigurationChanged:
    return ConfigurationChanged(
        source="/test",
        setting=setting,  # type: ignore[arg-type]
        value=value,
        version=version,
        changed_by=by,
        changed_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    )


def closures(*days: tuple[date, str]) -> dict[str, Any]:
    return {"days": [{"date": d.isoformat(), "name": name} for d, name in days]}


# --- the pure value -----------------------------------------------------------------------------


def test_a_change_applies_and_an_older_or_repeated_one_does_not() -> None:
    first = Configuration().apply(changed("closures", closures((WEDNESDAY, "Bridge day")), 1))
    second = first.apply(changed("closures", closures(), 2))

    assert first.version("closures") == 1
    assert first.closures is not None and first.closures.as_mapping() == {WEDNESDAY: "Bridge day"}
    assert second.closures is not None and second.closures.as_mapping() == {}
    assert second.apply(changed("closures", closures((WEDNESDAY, "Bridge day")), 1)) is second
    assert second.apply(changed("closures", closures((WEDNESDAY, "Bridge day")), 2)) is second
    assert second.version("quotas") == 0


def test_a_change_decided_on_a_stale_version_is_a_conflict() -> None:
    config = Configuration().apply(changed("quotas", {"digital_divide_per_year": 300}, 1))

    assert config.check("quotas", 1) == 2
    assert config.check("closures", 0) == 1
    with pytest.raises(VersionConflict) as conflict:
        config.check("quotas", 0)
    assert (conflict.value.expected, conflict.value.current) == (0, 1)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("closures", closures((WEDNESDAY, "a"), (WEDNESDAY, "b"))),
        ("closures", {"days": [{"date": "2026-02-30", "name": "no such day"}]}),
        ("quotas", {"digital_divide_per_year": -1}),
        ("quotas", {"digital_divide_per_year": 300, "other": 1}),
        ("roster", {"workers": [{"worker_id": "adv-9", "email": "someone@example.org"}]}),
        ("roster", {"workers": [{"team": "advisors"}]}),
        ("rule_set", {"version": "2026.9", "document": {"version": "2026.8"}}),
        ("certifications", {"codes": [" "]}),
    ],
)
def test_an_invalid_value_is_refused(setting: str, value: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_value(setting, value)  # type: ignore[arg-type]


# --- closures everywhere: the 48-hour callback --------------------------------------------------


def test_a_configured_closure_moves_a_48_hour_deadline_by_one_working_day() -> None:
    sla = load_rules().sla  # working days: 48 h are two working days of opening time
    calendar = LiveCalendar()
    before = callback_deadline(TUESDAY_10, sla, calendar, channel=Channel.PHONE)

    calendar.replace_closures({WEDNESDAY: "Bridge day"})
    after = callback_deadline(TUESDAY_10, sla, calendar, channel=Channel.PHONE)

    assert before == datetime(2026, 3, 5, 10, 0, tzinfo=BRUSSELS)  # Thursday
    assert after == datetime(2026, 3, 6, 10, 0, tzinfo=BRUSSELS)  # Friday: one working day later
    assert after == callback_deadline(TUESDAY_10, sla, BrusselsCalendar({WEDNESDAY: "Bridge day"}), channel=Channel.PHONE)
    # The callback timer (due 4 working hours before) moves with it.
    assert before is not None and after is not None
    assert due_at(after, sla, calendar, received_at=TUESDAY_10) == due_at(before, sla, LiveCalendar(), received_at=TUESDAY_10) + (
        after - before
    )
    assert calendar.holiday_name(WEDNESDAY) == "Bridge day" and not calendar.is_working_day(WEDNESDAY)


# --- a replica applying what it reads -----------------------------------------------------------


class FakeAssignment:
    def __init__(self) -> None:
        self.workers: dict[str, Worker] = {}
        self.availability: dict[str, Availability] = {}

    async def upsert_worker(self, worker: Worker) -> bool:
        new = worker.worker_id not in self.workers
        self.workers[worker.worker_id] = worker
        return new

    async def set_availability(self, worker_id: str, availability: Availability) -> bool:
        self.availability[worker_id] = availability
        return worker_id in self.workers


def routing_replica() -> tuple[ConfigurationFeed, RoutingPolicy, Any, FakeAssignment]:
    rules = load_rules()
    policy = RoutingPolicy(rules=rules, calendar=LiveCalendar(), catalogue=load_catalogue())
    programme = SimpleNamespace(default_quota=350)
    assignment = FakeAssignment()
    feed = ConfigurationFeed(KafkaSettings(), client_id="test")
    feed.on_change(RoutingSettingsApplier(policy, programme, assignment, shipped_rules=rules))  # type: ignore[arg-type]
    return feed, policy, programme, assignment


async def test_a_routing_replica_applies_each_setting_once() -> None:
    feed, policy, programme, assignment = routing_replica()
    uploaded = copy.deepcopy(yaml.safe_load(RULES_PATH.read_text(encoding="utf-8")))
    uploaded["version"] = "2026.9-test"
    worker = {
        "worker_id": "adv-9",
        "display_name": "Nine",
        "team": "advisors",
        "languages": ["fr"],
        "working_hours": {0: [["08:30", "17:15"]]},
    }

    assert await feed.apply(changed("closures", closures((WEDNESDAY, "Bridge day")), 1))
    assert not await feed.apply(changed("closures", closures((WEDNESDAY, "Bridge day")), 1))  # a redelivery
    assert await feed.apply(changed("quotas", {"digital_divide_per_year": 120}, 1))
    assert await feed.apply(changed("rule_set", {"version": "2026.9-test", "document": uploaded}, 1))
    assert await feed.apply(changed("roster", {"workers": [worker], "removed": ["adv-2"]}, 1))

    assert policy.calendar.holiday_name(WEDNESDAY) == "Bridge day"
    assert programme.default_quota == 120
    assert policy.rules.version == "2026.9-test"
    assert assignment.workers["adv-9"].languages == frozenset({"fr"})
    assert assignment.availability == {"adv-2": Availability.OFFLINE}

    await feed.apply(changed("rule_set", {"version": load_rules().version, "document": None}, 2))
    assert policy.rules is load_rules()


def staff_configuration() -> StaffConfiguration:
    feed, policy, programme, _ = routing_replica()
    return StaffConfiguration(
        None,  # type: ignore[arg-type]  # validation and reading never touch the store
        feed,
        policy=policy,
        shipped_rules=load_rules(),
        programme=programme,
        clock=FixedClock(TUESDAY_10),
    )


def test_staff_values_are_checked_against_the_catalogue_and_the_rule_format() -> None:
    staff = staff_configuration()

    assert staff.validate("certifications", {"codes": ["MOS-WORD", "ACU-AUTOCAD"]}) == {"codes": ["ACU-AUTOCAD", "MOS-WORD"]}
    with pytest.raises(InvalidSetting, match="not in the catalogue: NOPE"):
        staff.validate("certifications", {"codes": ["NOPE"]})
    with pytest.raises(InvalidSetting, match="invalid rule set"):
        staff.validate("rule_set", {"version": "x", "document": {"version": "x", "rules": "not a list"}})
    with pytest.raises(InvalidSetting, match="worker #0"):
        staff.validate("roster", {"workers": [{"worker_id": "adv-9", "team": "nobody"}]})
    assert staff.validate("closures", closures((WEDNESDAY, "Bridge day"))) == closures((WEDNESDAY, "Bridge day"))


def test_reading_the_settings_gives_defaults_until_staff_set_them() -> None:
    staff = staff_configuration()

    current = staff.current()

    assert current["closures"] == {"version": 0, "value": {"days": []}}
    assert current["quotas"]["value"] == {"digital_divide_per_year": 350}
    assert current["rule_set"]["value"]["version"] == load_rules().version
    assert "ACU-AUTOCAD" not in current["certifications"]["value"]["codes"]


def test_the_deadline_of_a_request_received_the_day_before_a_closure_moves_only_once_applied() -> None:
    # The same request decided before and after the change: in-flight ones keep their stored deadline.
    sla = load_rules().sla
    calendar = LiveCalendar()
    monday = TUESDAY_10 - timedelta(days=1)
    calendar.replace_closures({date(2026, 3, 3): "Staff day"})

    assert callback_deadline(monday, sla, calendar, channel=Channel.PHONE) == datetime(2026, 3, 5, 10, 0, tzinfo=BRUSSELS)


def test_a_report_counts_working_time_with_the_closures_the_replay_holds() -> None:
    from analytics.report import configured_calendar

    documents = [
        {"event": "ConfigurationChanged", "setting": "closures", "version": 1, "value": closures((WEDNESDAY, "old"))},
        {"event": "ConfigurationChanged", "setting": "closures", "version": 2, "value": closures((WEDNESDAY, "Bridge day"))},
        {"event": "ConfigurationChanged", "setting": "roster", "version": 5},
    ]

    calendar = configured_calendar(documents, BrusselsCalendar())

    assert calendar.holiday_name(WEDNESDAY) == "Bridge day"
    assert configured_calendar([], plain := BrusselsCalendar()) is plain
