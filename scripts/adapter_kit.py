"""Writes the channel adapters' request schema (docs/adapters/request.schema.json): the JSON Schema of
`intake.adapters.AdapterSubmission`, self-contained, with the shipped catalogue's course codes. A unit
test regenerates it and compares, so the file never drifts from the model intake validates with.

    python -m scripts.adapter_kit docs/adapters
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from intake.adapters import AdapterSubmission
from intake.web.api import request_body_schema
from services.catalogue import load_catalogue

SCHEMA_FILE = "request.schema.json"


def request_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "AdapterSubmission",
        **request_body_schema(load_catalogue(), AdapterSubmission),
    }


def main(out: str = "docs/adapters") -> int:
    path = Path(out) / SCHEMA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
