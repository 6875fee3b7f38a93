"""Routing's configuration, from `ROUTING_*` environment variables (plus the shared infrastructure ones)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTING_", extra="ignore")

    service_name: str = "routing"
    http_port: int = 8002

    rules_path: Path | None = Field(
        None,
        description=(
            "The policy document (rules, priority, SLA, desk pacing, quotas); the shipped routing/data/rules.yaml when unset."
        ),
    )
    workers_path: Path | None = Field(
        None, description="A YAML list of workers loaded (upserted) at start; the shipped roster when unset."
    )

    console_client_id: str = Field(
        "formation-console", description="The identity provider's public client the desk's browser console signs in with."
    )

    clock: Literal["system", "simulated"] = Field(
        "system", description="`simulated` lets POST /admin/clock/advance move time (demo only)."
    )
    clock_start: datetime | None = Field(None, description="With the simulated clock: the time it starts at.")
    dispatch_interval: timedelta = Field(timedelta(seconds=1), description="How often queues are re-offered.")
    timer_poll_interval: timedelta = Field(timedelta(milliseconds=500))

    batch_max_records: int = Field(
        200,
        ge=1,
        description=("At most this many requests are routed together (one transaction for the batch); 1 routes one at a time."),
    )
    batch_timeout_ms: int = Field(
        10,
        ge=0,
        description="How long a poll waits for requests to fill a batch: short, so that a lone request is not delayed.",
    )
