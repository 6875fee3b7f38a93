"""The realm file that the local Keycloak imports (deploy/keycloak/formation-realm.json).

The same file is what an organisation's administrators read to set up the production realm:
roles, the console's client (authorization code with PKCE), the audience the services check.
The demo client and demo users are for local machines and CI only."""

from __future__ import annotations

import re
from typing import Any

import pytest

from scripts.principals import KEYCLOAK_CLIENTS, secret_path
from services.auth.roles import CHANNEL_ADAPTER
from tests.realm import (
    AUDIENCE,
    CONSOLE_CLIENT,
    DEMO_CLIENT,
    DEMO_PASSWORD,
    DEMO_USERS,
    EXAMPLE_ADAPTER_CLIENT,
    EXAMPLE_ADAPTER_SECRET_FILE,
    EXAMPLE_ADAPTER_SECRET_VARIABLE,
    REALM,
    REALM_FILE,
    ROLES,
    load_realm,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    return load_realm()


def clients_of(realm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {client["clientId"]: client for client in realm["clients"]}


def users_of(realm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The people of the realm (the demo users), not the clients' service accounts."""
    return {user["username"]: user for user in realm["users"] if "serviceAccountClientId" not in user}


def service_accounts_of(realm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {user["serviceAccountClientId"]: user for user in realm["users"] if "serviceAccountClientId" in user}


def audience_mappers(client: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in client.get("protocolMappers", []) if m["protocolMapper"] == "oidc-audience-mapper"]


def test_realm_is_formation_and_enabled(realm: dict[str, Any]) -> None:
    assert realm["realm"] == REALM
    assert realm["enabled"] is True
    assert realm.get("registrationAllowed", False) is False
    # HTTP is allowed from localhost only (Keycloak's "external": TLS for anything else).
    assert realm["sslRequired"] in ("external", "all")


def test_realm_roles_are_the_projects_roles(realm: dict[str, Any]) -> None:
    roles = {role["name"] for role in realm["roles"]["realm"]}
    assert roles == ROLES
    assert all(role.get("description") for role in realm["roles"]["realm"])


def test_only_the_three_clients(realm: dict[str, Any]) -> None:
    assert set(clients_of(realm)) == {CONSOLE_CLIENT, DEMO_CLIENT, EXAMPLE_ADAPTER_CLIENT}


def test_the_example_adapter_is_a_confidential_client_with_client_credentials_only(realm: dict[str, Any]) -> None:
    adapter = clients_of(realm)[EXAMPLE_ADAPTER_CLIENT]
    assert adapter["publicClient"] is False
    assert adapter["clientAuthenticatorType"] == "client-secret"
    assert adapter["serviceAccountsEnabled"] is True
    for flow in ("standardFlowEnabled", "implicitFlowEnabled", "directAccessGrantsEnabled"):
        assert adapter.get(flow, True) is False, flow
    assert adapter["redirectUris"] == []
    assert "local" in adapter["description"].lower() and "test" in adapter["description"].lower()


def test_the_example_adapters_service_account_holds_only_the_adapter_role(realm: dict[str, Any]) -> None:
    account = service_accounts_of(realm)[EXAMPLE_ADAPTER_CLIENT]
    assert account["enabled"] is True
    assert set(account["realmRoles"]) & ROLES == {CHANNEL_ADAPTER}
    assert "credentials" not in account
    assert set(service_accounts_of(realm)) == {EXAMPLE_ADAPTER_CLIENT}


def test_no_client_secret_is_written_in_the_realm_file(realm: dict[str, Any]) -> None:
    # A secret in a versioned file works for whoever reads the repository. The import resolves the
    # placeholder from Keycloak's environment (scripts/infra.sh sets it from .local/secrets/).
    secrets = {client["clientId"]: client.get("secret") for client in realm["clients"] if not client.get("publicClient")}
    assert secrets == {EXAMPLE_ADAPTER_CLIENT: "${" + EXAMPLE_ADAPTER_SECRET_VARIABLE + "}"}
    assert not re.search(r"\$\{[^}]*:", REALM_FILE.read_text()), "no placeholder with a default value"


def test_infra_hands_the_local_secret_to_keycloak_in_the_placeholders_variable() -> None:
    assert KEYCLOAK_CLIENTS == (EXAMPLE_ADAPTER_CLIENT,)
    assert secret_path("keycloak", EXAMPLE_ADAPTER_CLIENT) == EXAMPLE_ADAPTER_SECRET_FILE
    infra = (REALM_FILE.parents[2] / "scripts" / "infra.sh").read_text()
    assert f'{EXAMPLE_ADAPTER_SECRET_VARIABLE}="$adapter_secret"' in infra
    assert f'adapter_secret=$(<"$LOCAL/secrets/keycloak-{EXAMPLE_ADAPTER_CLIENT}")' in infra


def test_console_client_is_public_with_authorization_code_and_pkce_s256(realm: dict[str, Any]) -> None:
    console = clients_of(realm)[CONSOLE_CLIENT]
    assert console["publicClient"] is True
    assert console["standardFlowEnabled"] is True
    assert console["attributes"]["pkce.code.challenge.method"] == "S256"
    assert console.get("implicitFlowEnabled", False) is False
    assert console.get("directAccessGrantsEnabled", False) is False
    assert console.get("serviceAccountsEnabled", False) is False


def test_console_redirects_only_to_local_consoles(realm: dict[str, Any]) -> None:
    uris = clients_of(realm)[CONSOLE_CLIENT]["redirectUris"]
    assert uris
    for uri in uris:
        assert uri.startswith(("http://127.0.0.1", "http://localhost:")), uri
        assert uri != "*"
    # Keycloak lets a loopback IP redirect use any port (RFC 8252, 7.3); `localhost` needs its ports listed.
    assert "http://127.0.0.1/*" in uris


def test_direct_access_grants_only_on_the_demo_client(realm: dict[str, Any]) -> None:
    with_direct_grants = {cid for cid, c in clients_of(realm).items() if c.get("directAccessGrantsEnabled")}
    assert with_direct_grants == {DEMO_CLIENT}
    demo = clients_of(realm)[DEMO_CLIENT]
    assert "local" in demo["description"].lower() and "test" in demo["description"].lower()
    assert demo.get("standardFlowEnabled", True) is False
    assert demo.get("implicitFlowEnabled", False) is False


@pytest.mark.parametrize("client_id", [CONSOLE_CLIENT, DEMO_CLIENT, EXAMPLE_ADAPTER_CLIENT])
def test_access_tokens_carry_the_services_audience(realm: dict[str, Any], client_id: str) -> None:
    (mapper,) = audience_mappers(clients_of(realm)[client_id])
    assert mapper["config"]["included.custom.audience"] == AUDIENCE
    assert mapper["config"]["access.token.claim"] == "true"


def test_realm_roles_reach_the_access_token_by_keycloaks_default(realm: dict[str, Any]) -> None:
    # Keycloak's built-in `roles` scope puts realm roles in realm_access.roles. A realm file that
    # declares its own client scopes, or gives a client its own default scopes, would replace it.
    assert "clientScopes" not in realm
    for client in realm["clients"]:
        assert "defaultClientScopes" not in client, client["clientId"]
        assert client.get("fullScopeAllowed", True) is True, client["clientId"]


def test_demo_users_and_their_roles(realm: dict[str, Any]) -> None:
    users = users_of(realm)
    assert set(users) == set(DEMO_USERS)
    for name, roles in DEMO_USERS.items():
        user = users[name]
        assert user["enabled"] is True
        assert set(user["realmRoles"]) & ROLES == roles, name
        assert set(user["realmRoles"]) - ROLES <= {f"default-roles-{REALM}"}, name


def test_demo_users_ids_are_their_usernames_so_sub_is_the_username(realm: dict[str, Any]) -> None:
    for name, user in users_of(realm).items():
        assert user["id"] == name


def test_demo_users_have_the_local_only_password_and_a_complete_profile(realm: dict[str, Any]) -> None:
    for name, user in users_of(realm).items():
        (credential,) = user["credentials"]
        assert credential == {"type": "password", "value": DEMO_PASSWORD, "temporary": False}, name
        # Keycloak 24+ refuses a token to a user whose profile misses a required attribute.
        assert user["firstName"] and user["lastName"] and user["email"], name
        assert user["email"].endswith("@example.org"), name
        assert not user.get("requiredActions"), name


def test_every_client_description_fits_keycloaks_column(realm: dict[str, Any]) -> None:
    # Keycloak stores a client's description in a VARCHAR(255): a longer one makes the realm's import,
    # and so Keycloak's start, fail ("Value too long for column DESCRIPTION").
    too_long = {c["clientId"]: len(c.get("description", "")) for c in realm["clients"] if len(c.get("description", "")) > 255}
    assert too_long == {}


def test_every_user_id_fits_keycloaks_column(realm: dict[str, Any]) -> None:
    # A user's id is a VARCHAR(36) (a UUID's length): a longer one fails the import as above.
    assert [u["username"] for u in realm["users"] if len(u.get("id", "")) > 36] == []
