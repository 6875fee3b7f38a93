"""Every service's HTTP app, built by its own `create_app` (no I/O) with the demo's simulated clocks, so
the clock admin routes are in the table too: for the tests that read or walk every route."""

from __future__ import annotations

from fastapi import FastAPI

from certification.app import create_app as create_certification
from certification.settings import CertificationSettings
from intake.app import create_app as create_intake
from intake.settings import IntakeSettings
from notification.app import create_app as create_notification
from notification.settings import NotificationSettings
from routing.app import create_app as create_routing
from routing.settings import RoutingSettings


def every_app(
    intake: IntakeSettings | None = None,
    routing: RoutingSettings | None = None,
    notification: NotificationSettings | None = None,
    certification: CertificationSettings | None = None,
) -> dict[str, FastAPI]:
    return {
        "intake": create_intake(intake or IntakeSettings()),
        "routing": create_routing(routing or RoutingSettings(clock="simulated")),
        "notification": create_notification(notification or NotificationSettings()),
        "certification": create_certification(certification or CertificationSettings(clock="simulated")),
    }
