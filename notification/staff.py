"""Staff alerts, the pure part: who on the staff hears of a callback due or a broken promise.

Job seekers are told by `notification.notices`; the people who call them back are told here.
A `CallbackDue` warns the worker holding the request; a `CallbackSlaBreached` tells the team's
supervisor (routing names them in `escalated_to`) and copies the worker who held it. The
e-mails carry ids and times only, never the job seeker's data: the desk has the rest.

The staff directory is read from the roster routing loads (worker id -> work e-mail and first
language), as a plain YAML file: notification does not import routing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from schemas import CallbackDue, CallbackSlaBreached, Event, PartnerInformationOverdue

__all__ = [
    "DEFAULT_DIRECTORY_PATH",
    "STAFF_TEMPLATES",
    "AlertRole",
    "PlannedAlert",
    "StaffDirectory",
    "StaffMember",
    "alert_id",
    "load_staff_directory",
    "staff_alerts_for",
]

DEFAULT_DIRECTORY_PATH = Path(__file__).resolve().parent.parent / "routing" / "data" / "workers.yaml"
"""The roster shipped with routing, read as a file."""

CALLBACK_DUE = "staff_callback_due"
SLA_BREACHED = "staff_sla_breached"
PARTNER_OVERDUE = "staff_partner_overdue"
STAFF_TEMPLATES = frozenset({CALLBACK_DUE, SLA_BREACHED, PARTNER_OVERDUE})
"""Templates for staff, next to the job seekers' ones (`templates/<lang>/<name>.j2`)."""


class AlertRole(StrEnum):
    """Why this member of staff is told."""

    ASSIGNEE = "assignee"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True, slots=True)
class StaffMember:
    worker_id: str
    email: str
    language: str
    """The first of the roster's `languages`."""


class StaffDirectory:
    """Worker id -> work e-mail and language; a worker without an e-mail is not in it.

    Staff change the roster through routing's configuration API while the services run, and the
    roster published on `configuration.v1` names no e-mail addresses (personal data stays off the
    topics). A worker added that way is reached through `address_pattern` (the organisation's
    scheme for work addresses, say `{worker_id}@bruxellesformation.brussels`), in French until the
    roster file names their language; without a pattern they are not in the directory."""

    def __init__(self, members: Mapping[str, StaffMember] | None = None, *, address_pattern: str | None = None) -> None:
        self._members = dict(members or {})
        if address_pattern is not None and "{worker_id}" not in address_pattern:
            raise ValueError("a staff address pattern names {worker_id}")
        self._pattern = address_pattern

    @classmethod
    def of(cls, *members: StaffMember, address_pattern: str | None = None) -> StaffDirectory:
        return cls({m.worker_id: m for m in members}, address_pattern=address_pattern)

    def get(self, worker_id: str | None) -> StaffMember | None:
        if worker_id is None:
            return None
        known = self._members.get(worker_id)
        if known is not None or self._pattern is None or not _WORKER_ID.fullmatch(worker_id):
            return known
        return StaffMember(worker_id=worker_id, email=self._pattern.format(worker_id=worker_id), language="fr")

    def __len__(self) -> int:
        return len(self._members)


_WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A worker id that can stand in an address; anything else (a team's `advisors:supervisor`) is nobody to write to."""


def load_staff_directory(path: Path | None = None, *, address_pattern: str | None = None) -> StaffDirectory:
    """The directory from a roster file (`workers` with optional `defaults`, as routing reads it)."""
    source = path or DEFAULT_DIRECTORY_PATH
    data: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    defaults = data.get("defaults") or {}
    members: dict[str, StaffMember] = {}
    for index, entry in enumerate(data.get("workers") or []):
        merged = {**defaults, **entry}
        worker_id = merged.get("worker_id")
        if not isinstance(worker_id, str) or not worker_id:
            raise ValueError(f"{source}: worker #{index} has no worker_id")
        email = merged.get("email")
        if not email:
            continue  # nobody to write to: an alert for them is recorded as skipped
        if not isinstance(email, str) or "@" not in email:
            raise ValueError(f"{source}: worker #{index} ({worker_id}): email is not an address")
        languages = merged.get("languages") or ["fr"]
        members[worker_id] = StaffMember(worker_id=worker_id, email=email, language=str(languages[0]))
    return StaffDirectory(members, address_pattern=address_pattern)


def alert_id(event_id: object, recipient_id: str) -> str:
    """The one alert an event can give one member of staff: the guard against sending twice."""
    return f"{event_id}:{recipient_id}"


@dataclass(frozen=True, slots=True)
class PlannedAlert:
    recipient_id: str
    role: AlertRole
    template: str
    facts: dict[str, Any]
    language: str | None
    """The recipient's language, None when the directory does not know them (then skipped)."""
    known: bool


StaffEvent = CallbackDue | CallbackSlaBreached | PartnerInformationOverdue
"""The events that tell staff something."""


def _facts(event: StaffEvent, console_url: str) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "request_id": event.request_id,
        "short_id": str(event.request_id)[:8],
        "assignee_id": event.assignee_id,
        "console_url": console_url.rstrip("/"),
    }
    if isinstance(event, PartnerInformationOverdue):
        return facts | {"partner": event.partner, "asked_at": event.asked_at.isoformat()}
    return facts | {"deadline": event.deadline.isoformat()}


def staff_alerts_for(event: Event, directory: StaffDirectory, *, console_url: str) -> list[PlannedAlert]:
    """The alerts `event` gives staff: the assignee of a callback due; the supervisor, then the
    assignee, of a breach; the assignee of a question a partner has not answered in time (the desk's
    reminder). An id the directory does not know is planned as unknown (recorded as skipped);
    `<team>:supervisor` - a team whose roster names no supervisor - is such an id."""
    wanted: list[tuple[str, AlertRole, str]] = []
    if isinstance(event, PartnerInformationOverdue):
        if event.assignee_id:
            wanted.append((event.assignee_id, AlertRole.ASSIGNEE, PARTNER_OVERDUE))
    elif isinstance(event, CallbackDue):
        if event.assignee_id:
            wanted.append((event.assignee_id, AlertRole.ASSIGNEE, CALLBACK_DUE))
    elif isinstance(event, CallbackSlaBreached):
        if event.escalated_to:
            wanted.append((event.escalated_to, AlertRole.SUPERVISOR, SLA_BREACHED))
        if event.assignee_id and event.assignee_id != event.escalated_to:
            wanted.append((event.assignee_id, AlertRole.ASSIGNEE, SLA_BREACHED))
    else:
        return []
    facts = _facts(event, console_url)
    planned = []
    for recipient, role, template in wanted:
        member = directory.get(recipient)
        planned.append(
            PlannedAlert(
                recipient_id=recipient,
                role=role,
                template=template,
                facts=facts,
                language=member.language if member else None,
                known=member is not None,
            )
        )
    return planned
