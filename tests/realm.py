"""The local identity provider's realm as the tests expect it: deploy/keycloak/formation-realm.json.

Shared by the unit tests of the file and the integration tests against the Keycloak that
scripts/infra.sh runs with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REALM_FILE = Path(__file__).resolve().parent.parent / "deploy" / "keycloak" / "formation-realm.json"
REALM = "formation"
AUDIENCE = "formation-events"
CONSOLE_CLIENT = "formation-console"
DEMO_CLIENT = "formation-demo"
# The password of every demo user: this realm is for a local machine, CI and the demo only.
DEMO_PASSWORD = "local-only"

ROLES = frozenset({"advisor", "en-team", "supervisor", "certification-staff", "dpo", "ops", "channel-adapter"})

# The example channel adapter of docs/adapters: a confidential client whose service account holds
# `channel-adapter`, signing in with client credentials. Its secret is never in the realm file: the
# file names an environment variable, which scripts/infra.sh sets from .local/secrets/ when it starts
# Keycloak (the import resolves `${...}` placeholders from the environment).
EXAMPLE_ADAPTER_CLIENT = "example-channel-adapter"
EXAMPLE_ADAPTER_SECRET_VARIABLE = "FORMATION_EXAMPLE_ADAPTER_SECRET"
EXAMPLE_ADAPTER_SECRET_FILE = REALM_FILE.parent.parent.parent / ".local" / "secrets" / "keycloak-example-channel-adapter"

DEMO_USERS: dict[str, frozenset[str]] = {
    "adv-1": frozenset({"advisor"}),
    "adv-2": frozenset({"advisor"}),
    "adv-3": frozenset({"advisor"}),
    "adv-sup": frozenset({"supervisor", "advisor"}),
    "en-1": frozenset({"en-team"}),
    "en-sup": frozenset({"en-team", "supervisor"}),
    "cert-1": frozenset({"certification-staff"}),
    "dpo-1": frozenset({"dpo"}),
    "dpo-2": frozenset({"dpo"}),
    "ops-1": frozenset({"ops"}),
}


def load_realm() -> dict[str, Any]:
    realm: dict[str, Any] = json.loads(REALM_FILE.read_text(encoding="utf-8"))
    return realm
