"""The roster file: who can be offered requests, in which team, languages and hours."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from routing.workers import Worker, worker_hours

DEFAULT_PATH = Path(__file__).with_name("data") / "workers.yaml"


def load_roster(path: Path | None = None) -> list[Worker]:
    """Workers from a YAML file with optional `defaults`; errors name the worker at fault."""
    data: dict[str, Any] = yaml.safe_load((path or DEFAULT_PATH).read_text(encoding="utf-8")) or {}
    return workers_from_entries(data.get("workers", []), defaults=data.get("defaults", {}), source=str(path or DEFAULT_PATH))


def workers_from_entries(
    entries: Iterable[Mapping[str, Any]], *, defaults: Mapping[str, Any] | None = None, source: str = "roster"
) -> list[Worker]:
    """Workers from roster entries (the file's, or staff's through the configuration API), working
    hours as {weekday: [["HH:MM", "HH:MM"], ...]}; `ValueError` names the worker at fault."""
    workers = []
    for index, entry in enumerate(entries):
        merged = {**(defaults or {}), **entry}
        try:
            merged["working_hours"] = worker_hours(
                {int(day): [tuple(i) for i in spans] for day, spans in merged.get("working_hours", {}).items()}
            )
            workers.append(Worker.model_validate(merged))
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{source}: worker #{index} ({entry.get('worker_id', '?')}): {error}") from error
    return workers
