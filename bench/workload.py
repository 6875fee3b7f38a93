"""What the figures send: a mix of requests like the real traffic, and a roster that never says no."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from schemas import (
    Channel,
    Contact,
    Language,
    QualificationLevel,
    Target,
    TrainingRequestReceived,
    TrainingRequestRouted,
)

ALWAYS = {day: [["00:00", "23:59"]] for day in range(7)}
TEAMS = {
    "espaces_numeriques": ["office", "graphics", "basic_skills", "enrolment"],
    "advisors": ["orientation"],
    "digital_divide": ["digital_divide"],
    "cite_des_metiers": ["orientation"],
}
_CHANNELS = (Channel.PHONE, Channel.WEB, Channel.EMAIL)
_LANGUAGES = (Language.FR, Language.FR, Language.NL, Language.EN)


def requests(count: int, *, received_at: datetime | None = None) -> list[TrainingRequestReceived]:
    """`count` requests of distinct people: a third by phone (callback deadline, two timers), a half
    asking for a catalogue course (the online team), one in ten with little schooling (the
    digital-divide programme)."""
    at = received_at or datetime.now(UTC)
    events = []
    for i in range(count):
        request_id = str(uuid.uuid4())
        events.append(
            TrainingRequestReceived(
                source="/bench",
                subject=request_id,
                request_id=request_id,
                person_id=f"per_{uuid.uuid4().hex}",
                channel=_CHANNELS[i % 3],
                received_at=at,
                contact=Contact(name=f"Bench {i}", phone=f"+3247{i % 10_000_000:07d}", email=f"bench{i}@example.org"),
                language=_LANGUAGES[i % 4],
                need="Je voudrais apprendre Excel en ligne." if i % 2 else "Je cherche une formation.",
                requested_course="EXCEL" if i % 2 else None,
                qualification_level=QualificationLevel.PRIMARY if i % 10 == 0 else None,
                consent_to_contact=True,
            )
        )
    return events


def api_body(i: int, run: str) -> dict[str, Any]:
    """A JSON API submission of a new person (the phone and e-mail are unique within a run)."""
    body: dict[str, Any] = {
        "name": f"Bench {i}",
        "phone": f"+3247{i % 10_000_000:07d}",
        "email": f"bench{i}.{run}@example.org",
        "language": ("fr", "fr", "nl", "en")[i % 4],
        "need": "Je voudrais apprendre Excel en ligne." if i % 2 else "Je cherche une formation.",
        "consent_to_contact": True,
    }
    if i % 2:
        body["requested_course"] = "EXCEL"
    if i % 10 == 0:
        body["qualification_level"] = "primary"
    return body


def roster(path: Path, *, capacity: int, per_team: int = 3) -> Path:
    """Workers on duty around the clock in every team, each with room for `capacity` requests, so
    every request is offered at once and none waits for the dispatcher."""
    workers = [
        {
            "worker_id": f"{team[:3]}-{i}",
            "display_name": f"{team} {i}",
            "team": team,
            "languages": ["fr", "nl", "en"],
            "skills": skills,
            "capacity": capacity,
        }
        for team, skills in TEAMS.items()
        for i in range(per_team)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"defaults": {"availability": "available", "working_hours": ALWAYS}, "workers": workers}))
    return path


def routed(request: TrainingRequestReceived) -> TrainingRequestRouted:
    """The decision routing would publish for `request` (for the replay figure's topics)."""
    return TrainingRequestRouted.following(
        request,
        source="/routing",
        request_id=request.request_id,
        person_id=request.person_id,
        target=Target.ESPACES_NUMERIQUES if request.requested_course else Target.ADVISORS,
        rule_id="bench",
        rule_set_version="bench",
        explanation="Benchmark decision.",
        priority=20,
        priority_parts={},
        callback_deadline=None,
        assignee_id=None,
    )
