"""Peak resident memory of the processes a bench run starts, per service (issue 15: < 150 MiB RSS per
service under load). Every process is read just before the bench stops it, after the load it was
started for: `VmHWM`, the kernel's high-water mark of its resident set, is its peak over its whole
life, so no sample between two polls can miss it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE = "service"
"""The role of a process started as ops start it (`python -m <service>`); baselines and processes
under an in-process profiler are read too but not counted against a service's target."""


def status_kib(status: str, field: str) -> int | None:
    """A `kB` field (`VmHWM`, `VmRSS`) of a /proc/<pid>/status text, in KiB."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == field:
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                return int(parts[0])
            return None
    return None


def read_status_mib(pid: int, field: str = "VmHWM") -> float | None:
    """A live process's `field` in MiB; None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    kib = status_kib(status, field)
    return None if kib is None else kib / 1024.0


@dataclass(frozen=True)
class PeakRss:
    service: str
    instance: str
    role: str
    mib: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "instance": self.instance, "role": self.role, "mib": self.mib}


def peaks_by_service(readings: Iterable[PeakRss]) -> dict[str, dict[str, Any]]:
    """Per service, the highest peak of the processes started as that service, which instance it was
    and how many were read; services in alphabetical order."""
    by_service: dict[str, dict[str, Any]] = {}
    for reading in readings:
        if reading.role != SERVICE or reading.mib is None:
            continue
        entry = by_service.setdefault(reading.service, {"peak_mib": reading.mib, "instance": reading.instance, "processes": 0})
        entry["processes"] += 1
        if reading.mib > entry["peak_mib"]:
            entry.update(peak_mib=reading.mib, instance=reading.instance)
    return dict(sorted(by_service.items()))
