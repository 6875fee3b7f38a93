"""Retention by design: what each topic declares, how a drift is found, logged and fixed (no broker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from structlog.testing import capture_logs

from schemas.topics import (
    ALL_TOPICS,
    CERTIFICATION_EXAMS,
    CONFIGURATION,
    DAY_MS,
    TRAINING_ENROLMENTS,
    TRAINING_REQUESTS,
    TRAINING_ROUTING,
    TopicSpec,
)
from services import kafka
from services.consumers import service_topics
from services.kafka import ConfigMismatch, TopicConfigs, config_mismatches
from services.retention import declared_on_cluster, parse_args, replacement_configs, table

OWN_TOPICS = service_topics("routing", 3)
RETRIES = OWN_TOPICS[:-1]
DEAD_LETTERS = OWN_TOPICS[-1]


def days(spec: TopicSpec) -> float:
    assert spec.retention_ms is not None, spec.name
    return spec.retention_ms / DAY_MS


# -- declarations ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", [*ALL_TOPICS, *OWN_TOPICS], ids=lambda spec: spec.name)
def test_every_topic_declares_how_long_it_keeps_its_records(spec: TopicSpec) -> None:
    policy = spec.configs["cleanup.policy"]
    assert policy in ("delete", "compact")
    if policy == "delete":
        assert spec.retention_ms is not None and spec.retention_ms > 0
        assert spec.configs["retention.bytes"] == "-1"  # time alone decides
    else:
        assert spec.retention_ms is None


@pytest.mark.parametrize(
    "spec", [TRAINING_REQUESTS, TRAINING_ROUTING, TRAINING_ENROLMENTS, CERTIFICATION_EXAMS], ids=lambda spec: spec.name
)
def test_the_business_streams_keep_a_year_of_replay_with_a_margin(spec: TopicSpec) -> None:
    assert days(spec) >= 365 + 30


def test_retry_topics_keep_less_than_dead_letters_which_keep_less_than_any_main_topic() -> None:
    shortest_main = min(days(spec) for spec in ALL_TOPICS if spec.retention_ms is not None)
    for retry in RETRIES:
        assert days(retry) < days(DEAD_LETTERS) < shortest_main
    # Long enough to survive a consumer down over a weekend, and for an operator to redrive.
    assert min(days(retry) for retry in RETRIES) >= 3
    assert days(DEAD_LETTERS) >= 14


def test_the_configuration_topic_stays_compacted() -> None:
    assert CONFIGURATION.configs["cleanup.policy"] == "compact"
    assert [spec.name for spec in ALL_TOPICS if spec.configs.get("cleanup.policy") == "compact"] == [CONFIGURATION.name]


# -- drift: the pure comparison ------------------------------------------------------------

DECLARED = {"t.v1": {"cleanup.policy": "delete", "retention.ms": "100"}, "c.v1": {"cleanup.policy": "compact"}}


def test_no_mismatch_when_the_cluster_has_the_declared_values_whatever_else_it_has() -> None:
    actual = {
        "t.v1": {"cleanup.policy": "delete", "retention.ms": "100", "segment.ms": "5"},
        "c.v1": {"cleanup.policy": "compact", "retention.ms": "604800000"},
    }
    assert config_mismatches(DECLARED, actual) == []


def test_a_different_value_is_a_mismatch_naming_both_values() -> None:
    actual = {"t.v1": {"cleanup.policy": "delete", "retention.ms": "604800000"}, "c.v1": {"cleanup.policy": "delete"}}
    assert config_mismatches(DECLARED, actual) == [
        ConfigMismatch("c.v1", "cleanup.policy", "compact", "delete"),
        ConfigMismatch("t.v1", "retention.ms", "100", "604800000"),
    ]


def test_a_missing_topic_is_a_mismatch_of_each_declared_setting_with_no_actual_value() -> None:
    assert config_mismatches(DECLARED, {"c.v1": {"cleanup.policy": "compact"}}) == [
        ConfigMismatch("t.v1", "cleanup.policy", "delete", None),
        ConfigMismatch("t.v1", "retention.ms", "100", None),
    ]


# -- start-up: a drift is logged, never fatal -------------------------------------------------


@dataclass
class _Described:
    """The shape of aiokafka's DescribeConfigsResponse v1+ that `describe_topic_configs` reads."""

    resources: list[tuple[Any, ...]]
    API_VERSION: int = 1


@dataclass
class FakeAdmin:
    """Answers DescribeConfigs from `topics` (name -> {setting: (value, config_source)}); `denied` are refused."""

    topics: dict[str, dict[str, tuple[str, int]]]
    denied: set[str] = field(default_factory=set)

    async def describe_configs(self, resources: list[Any]) -> list[_Described]:
        results: list[tuple[Any, ...]] = []
        for resource in resources:
            if resource.name in self.denied:
                results.append((29, "Topic authorization failed.", 2, resource.name, []))
            else:
                configs = self.topics[resource.name]
                entries: list[tuple[Any, ...]] = [
                    (name, value, False, source, False, []) for name, (value, source) in configs.items()
                ]
                results.append((0, None, 2, resource.name, entries))
        return [_Described(results)]


async def test_start_up_logs_each_drift_and_each_topic_it_could_not_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "_topic_prefix", "")
    admin = FakeAdmin(
        topics={
            TRAINING_REQUESTS.name: {
                "cleanup.policy": ("delete", 5),
                "retention.ms": ("604800000", 5),
                "retention.bytes": ("-1", 1),
            },
            CONFIGURATION.name: {"cleanup.policy": ("compact", 1)},
        },
        denied={TRAINING_ROUTING.name},
    )
    with capture_logs() as logs:
        await kafka._log_config_mismatches(admin, [TRAINING_REQUESTS, TRAINING_ROUTING, CONFIGURATION])  # type: ignore[arg-type]
    assert [(entry["event"], entry["topic"]) for entry in logs] == [
        ("kafka.topic_configs_unchecked", TRAINING_ROUTING.name),
        ("kafka.topic_config_mismatch", TRAINING_REQUESTS.name),
    ]
    assert logs[1]["setting"] == "retention.ms"
    assert logs[1]["declared"] == TRAINING_REQUESTS.configs["retention.ms"]
    assert logs[1]["actual"] == "604800000"


async def test_start_up_goes_on_when_the_cluster_cannot_describe_configs_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "_topic_prefix", "")

    class Unreachable:
        async def describe_configs(self, resources: list[Any]) -> list[Any]:
            raise KafkaConnectionError("gone")

    with capture_logs() as logs:
        await kafka._log_config_mismatches(Unreachable(), [TRAINING_REQUESTS])  # type: ignore[arg-type]
    assert [(entry["event"], entry["error_type"]) for entry in logs] == [
        ("kafka.topic_configs_unchecked", "KafkaConnectionError")
    ]


async def test_describing_separates_the_topics_own_overrides_from_defaults() -> None:
    admin = FakeAdmin(topics={"t.v1": {"retention.ms": ("100", 1), "min.insync.replicas": ("2", 1), "segment.ms": ("9", 5)}})
    configs, refused = await kafka.describe_topic_configs(admin, ["t.v1"])  # type: ignore[arg-type]
    assert refused == {}
    assert configs["t.v1"].effective == {"retention.ms": "100", "min.insync.replicas": "2", "segment.ms": "9"}
    assert configs["t.v1"].overrides == {"retention.ms": "100", "min.insync.replicas": "2"}


# -- the command --------------------------------------------------------------------------------


def test_the_command_takes_exactly_one_of_check_and_apply(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--check"]).apply is False
    assert parse_args(["--apply"]).apply is True
    for argv in ([], ["--check", "--apply"], ["--fix"]):
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2
    capsys.readouterr()


def test_the_command_covers_the_declared_topics_and_the_services_own_ones_under_its_prefix() -> None:
    existing = ["p.routing.retry.2.v1", "p.intake.dead-letters.v1", "other.intake.dead-letters.v1", "p.random.v1"]
    declared = declared_on_cluster(existing, "p.")
    assert set(declared) == {
        *(f"p.{spec.name}" for spec in ALL_TOPICS),
        "p.routing.retry.2.v1",
        "p.intake.dead-letters.v1",
    }
    assert declared["p.routing.retry.2.v1"] == RETRIES[1].configs
    assert declared["p.intake.dead-letters.v1"] == DEAD_LETTERS.configs


def test_applying_keeps_the_overrides_set_by_hand_and_sets_the_declared_values() -> None:
    overrides = {"min.insync.replicas": "2", "retention.ms": "604800000", "secret": None}
    assert replacement_configs(overrides, {"cleanup.policy": "delete", "retention.ms": "100"}) == {
        "min.insync.replicas": "2",
        "cleanup.policy": "delete",
        "retention.ms": "100",
    }


def test_the_table_marks_each_declared_setting_ok_mismatched_or_missing() -> None:
    actual = {"t.v1": TopicConfigs(effective={"cleanup.policy": "delete", "retention.ms": "7"}, overrides={})}
    lines = table({"t.v1": {"cleanup.policy": "delete", "retention.ms": "100"}, "u.v1": {"cleanup.policy": "compact"}}, actual)
    assert [line.split() for line in lines] == [
        ["topic", "setting", "declared", "actual"],
        ["t.v1", "cleanup.policy", "delete", "delete", "ok"],
        ["t.v1", "retention.ms", "100", "7", "MISMATCH"],
        ["u.v1", "cleanup.policy", "compact", "-", "MISSING"],
    ]
