"""Who may do what: the realm's roles, and the one table that maps each kind of action to the roles
allowed to take it. Routers declare their policy from here (`requires(*may(DESK_OWN_WORK))`), the
README's "Access" section prints the same table, and a test reads every app's route table back
against it, so a role is granted in one place only.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

ADVISOR = "advisor"
EN_TEAM = "en-team"
SUPERVISOR = "supervisor"
CERTIFICATION_STAFF = "certification-staff"
DPO = "dpo"
OPS = "ops"
CHANNEL_ADAPTER = "channel-adapter"

ROLES: Mapping[str, str] = MappingProxyType(
    {
        ADVISOR: "their own queue and availability; accept, decline and record outcomes only for requests "
        "reserved to them (the worker is the token's subject, mapped to the roster, never a body field)",
        EN_TEAM: "the same as an advisor, for BF espaces numériques",
        SUPERVISOR: "the team's queues and workers, breaches, reassignment, the digital-divide programme "
        "(suspend, resume, quota), a person's notification preferences, the configuration run by staff "
        "(closure days, open certifications, quotas, active rule set, roster)",
        CERTIFICATION_STAFF: "centres, sessions, seat offers, results, candidates, credential revocation",
        DPO: "erasure of a person's data",
        OPS: "metrics, dead-letter redrive, the simulated clock, delivery logs",
        CHANNEL_ADAPTER: "a third-party channel's adapter (a service account, client credentials): submits "
        "training requests through intake's adapter API, which links and seals them like any channel's; never Kafka",
    }
)
"""Each realm role and what it may do, in words (the README's table)."""

# -- actions: each names the roles that may take it ----------------------------------------------

DESK_OWN_WORK = "desk.own_work"
DESK_READ = "desk.read"
DESK_WORKER = "desk.worker"
DESK_TEAM = "desk.team"
CERTIFICATION_ADMIN = "certification.staff"
PRIVACY_ERASURE = "privacy.erasure"
IDENTITY_CONFIRMATION = "identity.confirmation"
NOTIFICATION_PREFERENCES = "notification.preferences"
NOTIFICATION_SUPPORT = "notification.support"
OPERATIONS = "operations"
CONFIGURATION = "configuration"
INTAKE_ADAPTER = "intake.adapter"

ACTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        # Accept, decline, record an outcome: only the worker the request is reserved to, as themself.
        DESK_OWN_WORK: frozenset({ADVISOR, EN_TEAM}),
        # A worker's queue and availability: the worker themself, or a supervisor for anyone on the team.
        DESK_WORKER: frozenset({ADVISOR, EN_TEAM, SUPERVISOR}),
        # A request's decision and history, the catalogue: everyone on the desk.
        DESK_READ: frozenset({ADVISOR, EN_TEAM, SUPERVISOR}),
        # The team's load, the programme's quota, suspend and resume.
        DESK_TEAM: frozenset({SUPERVISOR}),
        CERTIFICATION_ADMIN: frozenset({CERTIFICATION_STAFF}),
        PRIVACY_ERASURE: frozenset({DPO}),
        # Saying two sets of contact details are one person: whoever spoke with them on the desk.
        IDENTITY_CONFIRMATION: frozenset({ADVISOR, EN_TEAM, SUPERVISOR}),
        # Changing what a person is sent is a decision about the person: the desk's supervisor, who
        # takes it when the person asks on the phone. Ops may read the log to chase a failed delivery.
        NOTIFICATION_PREFERENCES: frozenset({SUPERVISOR}),
        NOTIFICATION_SUPPORT: frozenset({SUPERVISOR, OPS}),
        OPERATIONS: frozenset({OPS}),
        # Closure days, open certifications, quotas, the rule set, the roster: every replica applies
        # them, so whoever runs the desk's team changes them, with their name in the history.
        CONFIGURATION: frozenset({SUPERVISOR}),
        # A partner's channel hands requests to intake over HTTP, as a client of its own: the request
        # goes through the same linking, sealing and outbox as every channel's (docs/adapters).
        INTAKE_ADAPTER: frozenset({CHANNEL_ADAPTER}),
    }
)
"""Each kind of action and the roles that may take it: the only place a role is granted."""

ACTS_FOR_OTHERS = frozenset({SUPERVISOR})
"""Roles that may act on another worker's queue or availability (path `worker_id` not their own)."""


def may(action: str) -> tuple[str, ...]:
    """The roles that may take `action`, sorted, for `requires(*may(action))`."""
    return tuple(sorted(ACTIONS[action]))


# -- public on purpose -------------------------------------------------------------------------

PUBLIC_INTAKE = "job seekers and partner sites send requests without an account"
PUBLIC_PHONE_WEBHOOK = "the telephony platform cannot sign in; every call is checked against its HMAC signature"
PUBLIC_VERIFICATION = (
    "anyone shown a credential must be able to verify it (Open Badges 3.0, issuer key, status list, verification page)"
)
PUBLIC_SEAT_OFFER_ANSWER = (
    "candidates have no account: a seat offer is answered through its signed, expiring, single-use link; GET changes nothing"
)
PUBLIC_STATUS_PAGE = (
    "job seekers have no account: their request's status page is reached through its signed, expiring, "
    "revocable link, which is the capability; GET changes nothing"
)
PUBLIC_CONSOLE_SIGN_IN = "a browser without a session must be able to start signing in and come back from the provider"
PUBLIC_CONSOLE_SIGN_OUT = "signing out must work once the session's token expired; the form's CSRF token is checked"
PUBLIC_LIVENESS = "the orchestrator's liveness probe cannot present a token; the answer says nothing"
PUBLIC_READINESS = "the orchestrator's readiness probe and load balancers cannot present a token; the answer is up/down only"
