"""Configuration of the analysts' tools, from `ANALYTICS_*` variables plus the shared `KAFKA_*` and `MONGODB_*` ones."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from routing.rules import load_rules
from services.settings import KafkaSettings, MongoSettings

__all__ = ["AnalyticsSettings"]


class AnalyticsSettings(BaseSettings):
    """Where the events and the read models are, and the knobs of replay, what-if and reports.

    `kafka.topic_prefix` (`KAFKA_TOPIC_PREFIX`) picks the environment whose topics are read,
    as it does for the services. `mongo.database` (`MONGODB_DATABASE`) is the services'
    database: analytics only ever writes to a database of its own and refuses that one.
    """

    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)

    fetch_max_records: int = Field(
        5_000,
        ge=1,
        description=(
            "Records per `getmany` call (a replay makes one per partition at a time): small enough that MongoDB "
            "inserts while the next are parsed."
        ),
    )
    write_batch: int = Field(1_000, ge=1, description="Documents per `insert_many` of a replay.")
    writers: int = Field(
        4,
        ge=1,
        le=16,
        description="Concurrent `insert_many` calls of a replay's partition readers: MongoDB inserts on several threads.",
    )
    idle_timeout_s: float = Field(
        30.0, gt=0, description="A replay that gets no record for this long before its end offsets fails."
    )

    handling_time: timedelta = Field(timedelta(minutes=20), description="What-if: working time one contact takes.")
    sla_promise: timedelta = Field(
        default_factory=lambda: load_rules().sla.promise,
        description=(
            "The callback promise the what-if simulation measures; routing's policy document by default. "
            "Reports judge each request against the deadline routing recorded for it."
        ),
    )
    digital_divide_quota: int = Field(
        default_factory=lambda: load_rules().quotas.digital_divide_per_year,
        ge=0,
        description="People the digital-divide programme admits per year; routing's policy document by default.",
    )
