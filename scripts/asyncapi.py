"""`make docs`: write the AsyncAPI document FastStream generates for each service, and the
JSON Schemas of the event contracts, under the folder given (default docs/asyncapi)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

from faststream.specification import AsyncAPI

from schemas import json_schemas
from scripts.launch import SERVICES

# Intake runs as two processes (the public surface and the DPOs' privacy surface); its document
# describes both, whatever INTAKE_SURFACES says in the shell that writes it. Routing consumes
# requests in batches, but each record on the wire is one TrainingRequestReceived: its document is
# written from the one-record subscriber, whose signature names that payload.
_DOCUMENTED_ENV = {
    "intake": {"INTAKE_SURFACES": "public,privacy"},
    "routing": {"ROUTING_BATCH_MAX_RECORDS": "1"},
}


def main(out: str = "docs/asyncapi") -> int:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SERVICES:
        saved = {key: os.environ.get(key) for key in _DOCUMENTED_ENV.get(name, {})}
        os.environ.update(_DOCUMENTED_ENV.get(name, {}))
        try:
            app = importlib.import_module(f"{name}.app").create_app()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        runtime = app.state.runtime
        spec = AsyncAPI(
            runtime.broker,
            title=f"formation-events {name}",
            version="1.0.0",
            description=app.description,
            schema_version="3.0.0",
        )
        (folder / f"{name}.json").write_text(spec.to_specification().to_json() + "\n")
        print(f"wrote {folder / f'{name}.json'}")
    (folder / "event-schemas.json").write_text(json.dumps(json_schemas(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {folder / 'event-schemas.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
