"""The intake figure's load generator: vegeta, a Go program, so that the client's CPU is not Python's.

A Python client on this machine's two cores spends as much CPU per request as the endpoint it
measures and caps both figures itself. vegeta (github.com/tsenart/vegeta) is installed with `go
install`, pinned, into `.local/bin` the first time it is needed. It is chosen over `hey` because a
figure needs one body per request (each submission from a new person, as the pipeline's figures
send): hey sends one body over and over, which makes every request the same person's, and intake
then measures 32 transactions writing the same identity documents instead of its work.

`attack` runs `vegeta attack` in its maximum-rate mode (`-rate=0`, a fixed number of workers,
each sending its next request when the previous one is answered) on a file of targets, and reads
`vegeta report -type=json`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.launch import REPO

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
BIN_DIR = REPO / ".local" / "bin"
GO_CANDIDATES = ("go", "/usr/local/go/bin/go")
NO_MORE_TARGETS = "no targets to attack"


def _go() -> str:
    for candidate in GO_CANDIDATES:
        if found := shutil.which(candidate):
            return found
    raise RuntimeError(f"vegeta is not installed in {BIN_DIR} and no Go toolchain was found to install it")


def vegeta_path() -> Path:
    """The pinned vegeta in `.local/bin`, installed with `go install` when missing (or another version)."""
    binary = BIN_DIR / "vegeta"
    marker = BIN_DIR / "vegeta.version"
    if binary.exists() and marker.exists() and marker.read_text().strip() == VEGETA_VERSION:
        return binary
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_go(), "install", f"{VEGETA_MODULE}@{VEGETA_VERSION}"],
        env={**os.environ, "GOBIN": str(BIN_DIR), "GOFLAGS": "-mod=mod"},
        check=True,
        capture_output=True,
    )
    marker.write_text(VEGETA_VERSION + "\n")
    return binary


def write_targets(path: Path, url: str, bodies: Iterable[Mapping[str, Any]], headers: Mapping[str, str]) -> int:
    """vegeta's JSON targets, one POST per body; returns how many were written."""
    header = {name: [value] for name, value in headers.items()}
    count = 0
    with path.open("w") as targets:
        for body in bodies:
            encoded = base64.b64encode(json.dumps(body).encode()).decode()
            targets.write(json.dumps({"method": "POST", "url": url, "body": encoded, "header": header}) + "\n")
            count += 1
    return count


@dataclass(frozen=True)
class AttackReport:
    """What one attack did: answers by status, and the seconds from its first request to its last answer."""

    status_codes: dict[str, int]
    seconds: float
    requests: int
    errors: list[str]

    def count(self, status: int) -> int:
        return self.status_codes.get(str(status), 0)

    def per_s(self, status: int) -> float:
        return self.count(status) / self.seconds if self.seconds > 0 else 0.0


async def attack(targets: Path, *, workers: int, budget_s: float, timeout_s: float = 30.0) -> AttackReport:
    """Every target once (or until `budget_s`), by `workers` workers as fast as the server answers."""
    vegeta = await asyncio.to_thread(vegeta_path)
    results = targets.with_suffix(".results")
    attack_process = await asyncio.create_subprocess_exec(
        str(vegeta),
        "attack",
        "-format=json",
        "-lazy",  # read the targets as they are sent, once each: the attack ends with the file
        f"-targets={targets}",
        "-rate=0",
        f"-workers={workers}",
        f"-max-workers={workers}",
        f"-duration={budget_s}s",
        f"-timeout={timeout_s}s",
        f"-output={results}",
        stderr=asyncio.subprocess.PIPE,
    )
    _, attack_errors = await attack_process.communicate()
    if attack_process.returncode != 0:
        raise RuntimeError(f"vegeta attack exited with {attack_process.returncode}: {attack_errors.decode()[-500:]}")
    report_process = await asyncio.create_subprocess_exec(
        str(vegeta), "report", "-type=json", str(results), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, report_errors = await report_process.communicate()
    if report_process.returncode != 0:
        raise RuntimeError(f"vegeta report exited with {report_process.returncode}: {report_errors.decode()[-500:]}")
    report = json.loads(out)
    # Each worker that finds the targets file at its end reports one more request, failed with status 0
    # and "no targets to attack" (vegeta lists each error message once): without another error, every
    # status 0 is one of those.
    codes: dict[str, int] = dict(report.get("status_codes") or {})
    errors = [error for error in report.get("errors") or [] if NO_MORE_TARGETS not in error]
    if not errors:
        codes.pop("0", None)
    return AttackReport(
        status_codes=codes,
        seconds=(report["duration"] + report["wait"]) / 1e9,
        requests=sum(codes.values()),
        errors=errors,
    )
