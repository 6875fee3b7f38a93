"""Every service's HTTP app, built by its own `create_app` (no I/O) with the demo's simulated clocks, so
the clock admin routes are in the table too: for the tests that read or walk every route."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from certification.app import create_app as create_certification
from certification.settings import CertificationSettings
from intake.app import create_app as create_intake
from intake.email_server import EmailInboxSettings
from intake.settings import IntakeSettings
from notification.app import create_app as create_notification
from notification.settings import NotificationSettings
from routing.app import create_app as create_routing
from routing.settings import RoutingSettings


def every_app(**common: Any) -> dict[str, FastAPI]:
    """The apps as deployed; `common` are settings every service gets (kafka, mongo, instance_id, ...).

    Intake is two apps, its public one and its privacy surface (the DPOs' erasures); certification serves
    both its surfaces. Intake's SMTP inbox is off: it would take a port, and its routes are all HTTP ones."""
    return {
        "intake": create_intake(IntakeSettings(**common), email=EmailInboxSettings(enabled=False)),
        "intake-privacy": create_intake(
            IntakeSettings(surfaces=frozenset({"privacy"}), **common), email=EmailInboxSettings(enabled=False)
        ),
        "routing": create_routing(RoutingSettings(clock="simulated", **common)),
        "notification": create_notification(NotificationSettings(**common)),
        "certification": create_certification(CertificationSettings(clock="simulated", **common)),
    }
