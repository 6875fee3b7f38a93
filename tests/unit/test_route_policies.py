"""Every route of every service declares who may call it, and what it declares is the role table's.

The apps are built by each service's own `create_app` (with the simulated clocks, so the clock admin
is in the table), and their route tables are read back: a route added without a policy fails here,
so none is ever born open, and a route whose roles drift from `services.auth.roles` fails too."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from certification.app import create_app as create_certification
from certification.settings import CertificationSettings
from intake.settings import IntakeSettings
from services.auth import Public, RolesRequired, declared_policies, undeclared_routes
from services.auth import roles as table
from services.auth.roles import (
    ACTIONS,
    CERTIFICATION_ADMIN,
    CONFIGURATION,
    DESK_OWN_WORK,
    DESK_READ,
    DESK_TEAM,
    DESK_WORKER,
    IDENTITY_CONFIRMATION,
    INTAKE_ADAPTER,
    NOTIFICATION_PREFERENCES,
    NOTIFICATION_SUPPORT,
    OPERATIONS,
    PRIVACY_ERASURE,
    PUBLIC_CONSOLE_SIGN_IN,
    PUBLIC_CONSOLE_SIGN_OUT,
    PUBLIC_INTAKE,
    PUBLIC_LIVENESS,
    PUBLIC_PHONE_WEBHOOK,
    PUBLIC_READINESS,
    PUBLIC_SEAT_OFFER_ANSWER,
    PUBLIC_STATUS_PAGE,
    PUBLIC_VERIFICATION,
    ROLES,
)
from tests.realm import ROLES as REALM_ROLES
from tests.service_apps import every_app

pytestmark = pytest.mark.unit

EVERY_SERVICE = {
    "GET /health/live": PUBLIC_LIVENESS,
    "GET /health/ready": PUBLIC_READINESS,
    "GET /metrics": OPERATIONS,
}
CLOCK = {"POST /admin/clock/advance": OPERATIONS, "GET /admin/clock": OPERATIONS}

# Each route and the action of the role table it is (or the reason it is public): the whole surface.
EXPECTED: dict[str, dict[str, str]] = {
    "intake": {
        **EVERY_SERVICE,
        "POST /api/v1/requests": PUBLIC_INTAKE,
        "GET,HEAD /": PUBLIC_INTAKE,
        "GET,HEAD /{lang}/": PUBLIC_INTAKE,
        "POST /{lang}/": PUBLIC_INTAKE,
        "POST /webhooks/phone": PUBLIC_PHONE_WEBHOOK,
        "POST /webhooks/phone/twilio": PUBLIC_PHONE_WEBHOOK,
        "POST /adapters/v1/requests": INTAKE_ADAPTER,
        "GET /{lang}/status/{token}": PUBLIC_STATUS_PAGE,
        "POST /{lang}/status/{token}/slot": PUBLIC_STATUS_PAGE,
        "GET /{lang}/status/{token}/withdraw": PUBLIC_STATUS_PAGE,
        "POST /{lang}/status/{token}/withdraw": PUBLIC_STATUS_PAGE,
        "POST /{lang}/status/{token}/details": PUBLIC_STATUS_PAGE,
        "POST /{lang}/status/{token}/revoke": PUBLIC_STATUS_PAGE,
    },
    "intake-privacy": {
        **EVERY_SERVICE,
        "POST /api/v1/privacy/erasures": PRIVACY_ERASURE,
        "POST /api/v1/privacy/erasures/{erasure_id}/approval": PRIVACY_ERASURE,
        "POST /api/v1/identities/confirmations": IDENTITY_CONFIRMATION,
    },
    "routing": {
        **EVERY_SERVICE,
        **CLOCK,
        "GET /desk/workers": DESK_TEAM,
        "PUT /desk/workers/{worker_id}/availability": DESK_WORKER,
        "GET /desk/workers/{worker_id}/queue": DESK_WORKER,
        "GET /desk/ui/{worker_id}": DESK_WORKER,
        "POST /desk/requests/{request_id}/accept": DESK_OWN_WORK,
        "POST /desk/requests/{request_id}/decline": DESK_OWN_WORK,
        "POST /desk/requests/{request_id}/outcome": DESK_OWN_WORK,
        "GET /desk/requests/{request_id}": DESK_READ,
        "GET /desk/teams/{team}/board": DESK_TEAM,
        "POST /desk/requests/{request_id}/reassign": DESK_TEAM,
        "POST /desk/requests/{request_id}/facts": DESK_READ,
        "POST /desk/requests/{request_id}/contact-confirmations": DESK_READ,
        "POST /desk/requests/{request_id}/partner-questions": DESK_OWN_WORK,
        "POST /desk/requests/{request_id}/partner-answers": DESK_READ,
        "GET /desk/courses": DESK_READ,
        "GET /desk/courses/{course_code}/sessions": DESK_READ,
        "POST /desk/courses/{course_code}/sessions": DESK_TEAM,
        "PUT /desk/sessions/{session_id}": DESK_TEAM,
        "DELETE /desk/sessions/{session_id}": DESK_TEAM,
        "POST /desk/enrolments/{request_id}/completed": DESK_READ,
        "POST /desk/enrolments/{request_id}/abandoned": DESK_READ,
        "GET /desk/programmes/digital-divide": DESK_TEAM,
        "POST /desk/programmes/digital-divide/suspend": DESK_TEAM,
        "POST /desk/programmes/digital-divide/resume": DESK_TEAM,
        "POST /desk/programmes/digital-divide/members/{person_id}/release": DESK_TEAM,
        "PUT /desk/programmes/digital-divide/quota": DESK_TEAM,
        "PUT /desk/programmes/digital-divide/members/{person_id}/space": DESK_TEAM,
        "GET /desk/programmes/digital-divide/spaces": DESK_READ,
        "POST /desk/programmes/digital-divide/spaces": DESK_TEAM,
        "PUT /desk/programmes/digital-divide/spaces/{space_id}": DESK_TEAM,
        "DELETE /desk/programmes/digital-divide/spaces/{space_id}": DESK_TEAM,
        "POST /desk/programmes/digital-divide/spaces/{space_id}/slots": DESK_TEAM,
        "GET /desk/programmes/digital-divide/slots": DESK_READ,
        "POST /desk/programmes/digital-divide/slots/{slot_id}/bookings": DESK_WORKER,
        "DELETE /desk/programmes/digital-divide/slots/{slot_id}/bookings/{person_id}": DESK_WORKER,
        "GET /config": CONFIGURATION,
        "GET /config/{setting}/history": CONFIGURATION,
        "PUT /config/closures": CONFIGURATION,
        "PUT /config/certifications": CONFIGURATION,
        "PUT /config/quotas": CONFIGURATION,
        "PUT /config/rule-set": CONFIGURATION,
        "PUT /config/roster": CONFIGURATION,
        "GET /console/login": PUBLIC_CONSOLE_SIGN_IN,
        "GET /console/callback": PUBLIC_CONSOLE_SIGN_IN,
        "POST /console/logout": PUBLIC_CONSOLE_SIGN_OUT,
        "GET /console/{lang}/": DESK_OWN_WORK,
        "POST /console/{lang}/requests/{request_id}/accept": DESK_OWN_WORK,
        "POST /console/{lang}/requests/{request_id}/decline": DESK_OWN_WORK,
        "POST /console/{lang}/requests/{request_id}/outcome": DESK_OWN_WORK,
        "POST /console/{lang}/requests/{request_id}/facts": DESK_READ,
        "POST /console/{lang}/requests/{request_id}/contact-confirmations": DESK_READ,
        "POST /console/{lang}/requests/{request_id}/partner-questions": DESK_OWN_WORK,
        "POST /console/{lang}/requests/{request_id}/partner-answers": DESK_READ,
        "GET /console/{lang}/team": DESK_TEAM,
        "POST /console/{lang}/team/requests/{request_id}/reassign": DESK_TEAM,
        "POST /console/{lang}/team/programme/{action}": DESK_TEAM,
        "GET /console/{lang}/sessions": DESK_READ,
        "POST /console/{lang}/sessions": DESK_TEAM,
        "POST /console/{lang}/sessions/{session_id}/change": DESK_TEAM,
        "POST /console/{lang}/sessions/{session_id}/cancel": DESK_TEAM,
        "POST /console/{lang}/enrolments/completed": DESK_READ,
        "POST /console/{lang}/enrolments/abandoned": DESK_READ,
    },
    "notification": {
        **EVERY_SERVICE,
        "POST /people/{person_id}/opt-out": NOTIFICATION_PREFERENCES,
        "POST /people/{person_id}/opt-in": NOTIFICATION_PREFERENCES,
        "GET /people/{person_id}": NOTIFICATION_SUPPORT,
        "GET /deliveries": NOTIFICATION_SUPPORT,
    },
    "certification": {
        **EVERY_SERVICE,
        **CLOCK,
        **dict.fromkeys(
            [
                "GET /certifications",
                "GET /centres",
                "PUT /centres/{centre_id}",
                "POST /sessions",
                "GET /sessions",
                "GET /sessions/{session_id}",
                "POST /sessions/{session_id}/results",
                "GET /waitlist",
                "GET /candidates",
                "GET /candidates/{candidate_id}",
                "PUT /candidates/{candidate_id}/priority",
                "GET /offers/{offer_id}",
                "POST /offers/{offer_id}/accept",
                "POST /offers/{offer_id}/decline",
                "POST /credentials/{credential_id}/revoke",
                "GET /console/{lang}/",
                "POST /console/{lang}/centres",
                "POST /console/{lang}/sessions",
                "GET /console/{lang}/seats",
                "GET /console/{lang}/results",
                "POST /console/{lang}/results",
                "POST /console/{lang}/credentials/revoke",
            ],
            CERTIFICATION_ADMIN,
        ),
        # The staff console's sign-in (staff surface only).
        "GET /console/login": PUBLIC_CONSOLE_SIGN_IN,
        "GET /console/callback": PUBLIC_CONSOLE_SIGN_IN,
        "POST /console/logout": PUBLIC_CONSOLE_SIGN_OUT,
        **dict.fromkeys(
            [
                "GET /credentials/{credential_id}",
                "GET /credentials/{credential_id}/status",
                "GET /revocations",
                "GET /status-lists/revocation",
                "GET /verify/{credential_id}",
                "GET /achievements/{code}",
                "GET /issuer",
            ],
            PUBLIC_VERIFICATION,
        ),
        "GET /seat-offers/respond": PUBLIC_SEAT_OFFER_ANSWER,
        "POST /seat-offers/respond": PUBLIC_SEAT_OFFER_ANSWER,
    },
}


CERTIFICATION_PUBLIC = {
    route for route, policy in EXPECTED["certification"].items() if policy in (PUBLIC_VERIFICATION, PUBLIC_SEAT_OFFER_ANSWER)
} | set(EVERY_SERVICE)


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    return every_app()


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_no_route_of_any_service_is_undeclared(apps: dict[str, FastAPI], service: str) -> None:
    assert undeclared_routes(apps[service]) == []


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_each_route_declares_what_the_role_table_says(apps: dict[str, FastAPI], service: str) -> None:
    declared = declared_policies(apps[service])
    assert sorted(declared) == sorted(EXPECTED[service]), "a route was added or removed: give it its line above"
    for route, policy in declared.items():
        expected = EXPECTED[service][route]
        if expected in ACTIONS:
            assert policy == RolesRequired(ACTIONS[expected]), route
        else:
            assert policy == Public(expected), route


def test_the_role_table_names_exactly_the_realms_roles() -> None:
    assert set(ROLES) == REALM_ROLES
    granted = set().union(*ACTIONS.values())
    assert granted == REALM_ROLES, "every role may do something, and only realm roles are granted"
    assert table.ACTS_FOR_OTHERS <= REALM_ROLES


def test_only_the_issues_public_surface_is_open(apps: dict[str, FastAPI]) -> None:
    open_routes = {
        f"{service} {route}"
        for service, app in apps.items()
        for route, policy in declared_policies(app).items()
        if isinstance(policy, Public)
    }
    assert {route.split(" ", 1)[1] for route in open_routes} == {
        "GET /health/live",
        "GET /health/ready",
        "POST /api/v1/requests",
        "GET,HEAD /",
        "GET,HEAD /{lang}/",
        "POST /{lang}/",
        "POST /webhooks/phone",
        "GET /{lang}/status/{token}",
        "POST /{lang}/status/{token}/slot",
        "GET /{lang}/status/{token}/withdraw",
        "POST /{lang}/status/{token}/withdraw",
        "POST /{lang}/status/{token}/details",
        "POST /{lang}/status/{token}/revoke",
        "POST /webhooks/phone/twilio",
        "GET /credentials/{credential_id}",
        "GET /credentials/{credential_id}/status",
        "GET /revocations",
        "GET /status-lists/revocation",
        "GET /verify/{credential_id}",
        "GET /achievements/{code}",
        "GET /issuer",
        "GET /seat-offers/respond",
        "POST /seat-offers/respond",
        "GET /console/login",
        "GET /console/callback",
        "POST /console/logout",
    }


def test_the_public_intake_app_has_no_privacy_route(apps: dict[str, FastAPI]) -> None:
    assert not [route for route in declared_policies(apps["intake"]) if "/privacy" in route]
    assert IntakeSettings().surfaces == {"public"}, "the public app is what runs by default"


def test_intakes_privacy_surface_listens_on_a_port_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_SURFACES", "privacy")
    assert (IntakeSettings().surfaces, IntakeSettings().http_port) == (frozenset({"privacy"}), 8011)
    monkeypatch.setenv("INTAKE_HTTP_PORT", "9000")
    assert IntakeSettings().http_port == 9000
    monkeypatch.delenv("INTAKE_HTTP_PORT")
    monkeypatch.setenv("INTAKE_SURFACES", " public , privacy ")
    assert (IntakeSettings().surfaces, IntakeSettings().http_port) == (frozenset({"public", "privacy"}), 8001)


@pytest.mark.parametrize(
    ("surfaces", "expected"),
    [
        ("public", CERTIFICATION_PUBLIC),
        ("staff", set(EXPECTED["certification"]) - CERTIFICATION_PUBLIC | set(EVERY_SERVICE)),
        ("public,staff", set(EXPECTED["certification"])),
    ],
)
def test_certification_serves_the_surfaces_it_is_told_to(
    monkeypatch: pytest.MonkeyPatch, surfaces: str, expected: set[str]
) -> None:
    monkeypatch.setenv("CERTIFICATION_SURFACES", surfaces)
    app = create_certification(CertificationSettings(clock="simulated"))
    declared = declared_policies(app)
    assert set(declared) == expected
    assert undeclared_routes(app) == []
    if surfaces == "public":
        assert all(isinstance(policy, Public) for route, policy in declared.items() if route != "GET /metrics")
