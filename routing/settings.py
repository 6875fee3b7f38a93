"""Routing's configuration, from `ROUTING_*` environment variables (plus the shared infrastructure ones)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas import Channel, KnownChannel
from services.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTING_", extra="ignore")

    service_name: str = "routing"
    http_port: int = 8002

    rules_path: Path | None = Field(None, description="A rule-set YAML; the shipped one when unset.")
    workers_path: Path | None = Field(
        None, description="A YAML list of workers loaded (upserted) at start; the shipped roster when unset."
    )

    sla_mode: Literal["calendar", "working_days"] = Field(
        "working_days", description="48 hours of the clock, or two working days of the Brussels calendar."
    )
    sla_promise: timedelta = Field(timedelta(hours=48), description="The callback promise (ISO 8601 duration, e.g. PT48H).")
    sla_due_before: timedelta = Field(timedelta(hours=4), description="CallbackDue is published this long before the deadline.")
    sla_channels: frozenset[KnownChannel] = Field(
        frozenset({Channel.PHONE}), description="Channels whose requests get a callback deadline (JSON list)."
    )

    reservation_timeout: timedelta = Field(timedelta(minutes=2), description="How long a worker has to accept an offer.")
    escalate_after: timedelta = Field(
        timedelta(minutes=30), description="Queued this long with no eligible worker: widen the pool."
    )
    retry_after_no_answer: timedelta = Field(timedelta(hours=2), description="When to call again after no answer.")
    digital_divide_quota: int = Field(350, ge=0, description="Job seekers admitted to the digital-divide programme per year.")

    clock: Literal["system", "simulated"] = Field(
        "system", description="`simulated` lets POST /admin/clock/advance move time (demo only)."
    )
    clock_start: datetime | None = Field(None, description="With the simulated clock: the time it starts at.")
    dispatch_interval: timedelta = Field(timedelta(seconds=1), description="How often queues are re-offered.")
    timer_poll_interval: timedelta = Field(timedelta(milliseconds=500))
