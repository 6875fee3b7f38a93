"""The roster file: who can be offered requests, in which team, languages and hours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from routing.workers import Worker, worker_hours

DEFAULT_PATH = Path(__file__).with_name("data") / "workers.yaml"


def load_roster(path: Path | None = None) -> list[Worker]:
    """Workers from a YAML file with optional `defaults`; errors name the worker at fault."""
    data: dict[str, Any] = yaml.safe_load((path or DEFAULT_PATH).read_text(encoding="utf-8")) or {}
    defaults = data.get("defaults", {})
    workers = []
    for index, entry in enumerate(data.get("workers", [])):
        merged = {**defaults, **entry}
        merged["working_hours"] = worker_hours(
            {int(day): [tuple(i) for i in spans] for day, spans in merged.get("working_hours", {}).items()}
        )
        try:
            workers.append(Worker.model_validate(merged))
        except ValueError as error:
            raise ValueError(f"{path or DEFAULT_PATH}: worker #{index} ({entry.get('worker_id', '?')}): {error}") from error
    return workers
