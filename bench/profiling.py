"""The profile of routing's hot path: py-spy attached to a routing process while it routes the
pipeline's pre-loaded requests, and the profile's top entries for the report.

py-spy samples from outside the process (ptrace, root here), so the routing process runs its own
code only: no profiler in its interpreter. `--nonblocking` does not pause it to take a sample, and
threads py-spy sees idle (the event loop waiting in `select`) are left out, so a share is of the
samples in which routing was doing something or was about to. py-spy's idle test is the thread's
state in the kernel: on a busy machine a thread that waits for a core in a system call counts as
active, so a `send` or a `select` can look costly there that is cheap on a quiet machine.

`uv tool run py-spy` fetches py-spy from PyPI when it is not on the PATH (as it is under
`uv run --with py-spy python -m bench`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import figures
from bench.harness import Bench
from schemas import TrainingRequestReceived
from scripts.launch import ServiceProcess

SAMPLES_PER_SECOND = 100


def py_spy_command() -> list[str] | None:
    """How to run py-spy here, or None when neither py-spy nor uv can be found."""
    if found := shutil.which("py-spy"):
        return [found]
    if uv := shutil.which("uv"):
        return [uv, "tool", "run", "py-spy"]
    return None


@dataclass(frozen=True)
class Entry:
    """One function of a profile: the share of samples in which it ran its own code (`own`) and in
    which it was anywhere on the stack (`total`)."""

    function: str
    own: float
    total: float

    def as_dict(self) -> dict[str, Any]:
        return {"function": self.function, "own": self.own, "total": self.total}


def parse_collapsed(text: str) -> tuple[Counter[str], Counter[str], int]:
    """Own and total sample counts per frame of collapsed stacks (`root;...;leaf count` per line, as
    py-spy's raw format and flamegraph.pl write them), and the number of samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):  # a recursive function counts once per sample
            total[frame] += count
    return own, total, samples


PROJECT_PACKAGES = ("routing", "services", "schemas")
"""Our own code on routing's hot path, for the ranking by total share (the top of every stack,
asyncio's loop and FastStream's consumer, is 100% and says nothing)."""


def in_packages(frame: str, packages: Sequence[str]) -> bool:
    """Whether a py-spy frame (`function (package/module.py)`) is code of one of `packages`."""
    _, _, location = frame.rpartition(" (")
    return location.split("/", 1)[0] in packages and "/" in location


def top_entries(text: str, *, limit: int = 15, by: str = "own", within: Sequence[str] | None = None) -> list[Entry]:
    """The `limit` functions of a collapsed-stack profile with the largest `own` (or `total`) share,
    among the frames of the packages `within` if given."""
    own, total, samples = parse_collapsed(text)
    if samples == 0:
        return []
    ranking = own if by == "own" else total
    candidates = [item for item in ranking.items() if within is None or in_packages(item[0], within)]
    ranked = sorted(candidates, key=lambda item: (-item[1], item[0]))[:limit]
    return [Entry(frame, own[frame] / samples, total[frame] / samples) for frame, _ in ranked]


def entries_markdown(entries: Sequence[Entry], *, title: str) -> str:
    """A markdown table of a profile's top entries."""
    lines = [f"| {title} | own | total |", "|---|---|---|"]
    lines += [f"| `{e.function.replace('|', '/')}` | {e.own:.1%} | {e.total:.1%} |" for e in entries]
    return "\n".join(lines) + "\n"


class PySpy:
    """py-spy recording one process into a collapsed-stack file, from `attached(process)` entered to
    left: the `alongside` of `figures.pipeline`."""

    def __init__(self, output: Path, *, command: list[str], rate: int = SAMPLES_PER_SECOND) -> None:
        self.output = output
        self.command = command
        self.rate = rate
        self.log = output.with_suffix(".log")

    @contextlib.asynccontextmanager
    async def attached(self, process: ServiceProcess) -> AsyncIterator[None]:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            *self.command,
            "record",
            "--pid",
            str(process.process.pid),
            "--format",
            "raw",
            "--nolineno",
            "--nonblocking",
            "--rate",
            str(self.rate),
            "--output",
            str(self.output),
        ]
        with self.log.open("wb") as log:
            spy = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            # py-spy writes its file when interrupted (or when the process it watches exits).
            if spy.returncode is None:
                spy.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(spy.wait(), timeout=30)
            except TimeoutError:
                spy.kill()
                await spy.wait()


def read_text(path: Path) -> str:
    """A file's text, empty when there is no file."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


async def hotpath(
    bench: Bench, events: list[TrainingRequestReceived], *, roster: Path, budget: float, output: Path
) -> dict[str, Any]:
    """The pipeline once more (services), py-spy attached to routing while it routes; the collapsed
    stacks go to `output`, and the result holds the top entries by own share and, among our own
    packages, by total share."""
    command = py_spy_command()
    if command is None:
        return {"pending": "not run: neither py-spy nor uv found"}
    spy = PySpy(output, command=command)
    result = await figures.pipeline(bench, "services", events, roster=roster, budget=budget, run=90, alongside=spy.attached)
    text = read_text(output)
    if not text:
        log = read_text(spy.log)[-500:]
        return {"pending": f"failed: py-spy wrote no profile ({' '.join(log.split())[:200]})", "failed": True}
    return {
        "file": str(output),
        "samples": parse_collapsed(text)[2],
        "per_s_while_sampled": result["per_s"],
        "routed": result["routed"],
        "top_own": [e.as_dict() for e in top_entries(text, by="own")],
        "top_total_own_code": [e.as_dict() for e in top_entries(text, by="total", within=PROJECT_PACKAGES)],
    }


def hotpath_markdown(result: dict[str, Any]) -> str:
    """The report's section on the profile (empty when it was not run)."""
    if not result.get("top_own"):
        return f"## Routing hot path (py-spy)\n\n{result.get('pending', 'not run')}\n"

    def entries(key: str) -> list[Entry]:
        return [Entry(**e) for e in result[key]]

    return "\n".join(
        [
            "## Routing hot path (py-spy)",
            "",
            f"{result['samples']} samples of `python -m routing` routing the pre-loaded requests at "
            f"{result['per_s_while_sampled']:.0f} req/s ({SAMPLES_PER_SECOND}/s, threads seen idle left out; collapsed stacks in "
            f"`{Path(result['file']).name}`). Own: samples in which the function itself ran; total: in which it was on "
            "the stack.",
            "",
            entries_markdown(entries("top_own"), title="top by own share"),
            entries_markdown(entries("top_total_own_code"), title=f"top of our code ({', '.join(PROJECT_PACKAGES)}) by total"),
        ]
    )
