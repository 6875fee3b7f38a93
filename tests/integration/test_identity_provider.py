"""The local identity provider is a genuine Keycloak with the realm from deploy/keycloak/formation-realm.json.

These tests assume `scripts/infra.sh up` (or `start-keycloak`) has run, and talk to it over HTTP like
the services and consoles will: the discovery document, the signing keys, tokens for the demo users.
With OIDC_ISSUER set (another provider, without our demo users and clients), they are skipped."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import httpx
import pytest

from scripts.launch import oidc_issuer
from tests.realm import AUDIENCE, CONSOLE_CLIENT, DEMO_CLIENT, DEMO_PASSWORD, DEMO_USERS, ROLES

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(os.environ.get("OIDC_ISSUER")), reason="OIDC_ISSUER names a provider without the local realm"),
]

ISSUER = oidc_issuer()
TIMEOUT = httpx.Timeout(30.0)


@pytest.fixture(scope="module")
def discovery() -> dict[str, Any]:
    response = httpx.get(f"{ISSUER}/.well-known/openid-configuration", timeout=TIMEOUT)
    assert response.status_code == 200, f"no identity provider at {ISSUER}: run `scripts/infra.sh start-keycloak`"
    document: dict[str, Any] = response.json()
    return document


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, not verified (the point here is what Keycloak puts in it)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def password_grant(discovery: dict[str, Any], client_id: str, username: str, password: str) -> httpx.Response:
    return httpx.post(
        discovery["token_endpoint"],
        data={"grant_type": "password", "client_id": client_id, "username": username, "password": password, "scope": "openid"},
        timeout=TIMEOUT,
    )


def test_discovery_document_names_the_issuer_and_the_code_flow_with_pkce(discovery: dict[str, Any]) -> None:
    assert discovery["issuer"] == ISSUER
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "end_session_endpoint"):
        assert discovery[endpoint].startswith(ISSUER + "/"), endpoint
    assert "code" in discovery["response_types_supported"]
    assert "S256" in discovery["code_challenge_methods_supported"]
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]


def test_jwks_has_an_rs256_signing_key(discovery: dict[str, Any]) -> None:
    keys = httpx.get(discovery["jwks_uri"], timeout=TIMEOUT).json()["keys"]
    signing = [k for k in keys if k.get("use") == "sig" and k["kty"] == "RSA" and k.get("alg") == "RS256"]
    assert signing, keys
    assert all(k["kid"] and k["n"] and k["e"] for k in signing)


@pytest.mark.parametrize("username", sorted(DEMO_USERS))
def test_demo_user_gets_a_token_for_the_services_with_their_roles(discovery: dict[str, Any], username: str) -> None:
    response = password_grant(discovery, DEMO_CLIENT, username, DEMO_PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    token = claims(body["access_token"])
    assert token["iss"] == ISSUER == oidc_issuer()
    audience = token["aud"] if isinstance(token["aud"], list) else [token["aud"]]
    assert AUDIENCE in audience
    assert token["azp"] == DEMO_CLIENT
    assert set(token["realm_access"]["roles"]) & ROLES == DEMO_USERS[username]
    # The import file gives each demo user its username as id, and `sub` is the user's id.
    assert token["sub"] == username
    assert token["preferred_username"] == username
    assert token["exp"] > token["iat"]


def test_a_wrong_password_is_refused(discovery: dict[str, Any]) -> None:
    response = password_grant(discovery, DEMO_CLIENT, "adv-1", "not-the-password")
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


def test_an_unknown_user_is_refused(discovery: dict[str, Any]) -> None:
    response = password_grant(discovery, DEMO_CLIENT, "nobody", DEMO_PASSWORD)
    assert response.json()["error"] == "invalid_grant"


def test_the_console_client_has_no_direct_grants(discovery: dict[str, Any]) -> None:
    response = password_grant(discovery, CONSOLE_CLIENT, "adv-1", DEMO_PASSWORD)
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == "unauthorized_client"


def authorize(discovery: dict[str, Any], redirect_uri: str, **extra: str) -> httpx.Response:
    params = {"client_id": CONSOLE_CLIENT, "response_type": "code", "scope": "openid", "redirect_uri": redirect_uri, **extra}
    return httpx.get(discovery["authorization_endpoint"], params=params, timeout=TIMEOUT)


# RFC 7636's example verifier's S256 challenge.
CHALLENGE = {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}


@pytest.mark.parametrize("redirect_uri", ["http://127.0.0.1:8002/desk/callback", "http://127.0.0.1:51234/callback"])
def test_the_console_signs_in_with_pkce_on_a_local_console(discovery: dict[str, Any], redirect_uri: str) -> None:
    response = authorize(discovery, redirect_uri, **CHALLENGE)
    assert response.status_code == 200  # the login page
    assert "kc-form-login" in response.text or "username" in response.text


def test_the_console_refuses_a_request_without_pkce(discovery: dict[str, Any]) -> None:
    response = authorize(discovery, "http://127.0.0.1:8002/desk/callback")
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["location"]
    assert "code_challenge" in response.headers["location"]


def test_the_console_refuses_a_foreign_redirect(discovery: dict[str, Any]) -> None:
    response = authorize(discovery, "https://attacker.example/callback", **CHALLENGE)
    assert response.status_code == 400
