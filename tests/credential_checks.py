"""Checks of issued credentials against published material that no one here wrote:

- `schema_errors`: 1EdTech's Open Badges 3.0 AchievementCredential JSON schema
  (`tests/data/ob_v3p0_achievementcredential_schema.json`, from 1EdTech/openbadges-specification,
  gh-pages `docs/schema/achievementcredential.json`; licence beside it), with `jsonschema`;
- `independent_verification`: Digital Bazaar's Data Integrity verifier (`@digitalbazaar/vc` with the
  `eddsa-rdfc-2022` cryptosuite and the Bitstring Status List checker), run with node from
  `tests/verifier/` (packages pinned by its package-lock.json, installed by scripts/setup.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

__all__ = ["independent_verification", "schema_errors"]

_ROOT = Path(__file__).parent
SCHEMA = _ROOT / "data" / "ob_v3p0_achievementcredential_schema.json"
VERIFIER = _ROOT / "verifier"


@cache
def _validator() -> Any:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(credential: Mapping[str, Any]) -> list[str]:
    """What 1EdTech's AchievementCredential schema finds wrong with `credential` (empty: it passes)."""
    return [f"{error.json_path}: {error.message}" for error in _validator().iter_errors(credential)]


def independent_verification(
    credential: Mapping[str, Any], documents: Mapping[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """Digital Bazaar's verdict on `credential`: {"verified": bool, "revoked": bool, "errors": [...]}.

    `documents` is what a verifier would fetch by URL (the issuer's controller document, the status
    list credential); `now`, the time to verify at (the service's clock; the real time if None).
    Skips when node or the packages are missing, except in CI, where it fails."""
    node = shutil.which("node")
    if node is None or not (VERIFIER / "node_modules" / "@digitalbazaar" / "vc").is_dir():
        message = "node or tests/verifier/node_modules is missing (scripts/setup.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [node, str(VERIFIER / "verify.mjs")],
        input=json.dumps(
            {"credential": credential, "documents": documents, **({"now": now.isoformat()} if now is not None else {})}
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]
