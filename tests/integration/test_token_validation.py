"""TokenVerifier against the real Keycloak of `make up` (realm `formation`, `OIDC_ISSUER`).

Skipped, saying why, only when the issuer's discovery document cannot be fetched and
`KEYCLOAK_REQUIRED` is not set; CI sets it, so there an absent Keycloak fails the run."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.auth import InvalidToken, TokenVerifier
from services.settings import AuthSettings
from tests.conftest import require_identity_provider

pytestmark = pytest.mark.integration

DEMO_CLIENT = "formation-demo"
DEMO_PASSWORD = "local-only"  # the local realm's demo users; nothing outside a developer's machine


@pytest.fixture(scope="module")
def oidc_issuer() -> str:
    return AuthSettings().issuer


@pytest.fixture(scope="module")
def discovery(oidc_issuer: str) -> dict[str, Any]:
    return require_identity_provider(oidc_issuer)


@pytest.fixture
async def verifier(oidc_issuer: str, discovery: dict[str, Any]) -> AsyncIterator[TokenVerifier]:
    verifier = TokenVerifier(AuthSettings(issuer=oidc_issuer))
    yield verifier
    await verifier.aclose()


async def access_token(discovery: dict[str, Any], username: str) -> str:
    """A token of the demo client by the password grant, as the demo's scripts get one."""
    form = {"grant_type": "password", "client_id": DEMO_CLIENT, "username": username, "password": DEMO_PASSWORD}
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(discovery["token_endpoint"], data=form)
    assert response.status_code == 200, f"password grant for {username} refused: {response.status_code} {response.text}"
    token: str = response.json()["access_token"]
    return token


async def test_a_real_token_verifies_and_carries_its_role(verifier: TokenVerifier, discovery: dict[str, Any]) -> None:
    principal = await verifier.verify(await access_token(discovery, "adv-1"))

    assert principal.username == "adv-1"
    assert "advisor" in principal.roles
    assert principal.client_id == DEMO_CLIENT
    assert principal.claims["iss"] == discovery["issuer"]


async def test_a_tampered_token_is_refused(verifier: TokenVerifier, discovery: dict[str, Any]) -> None:
    header, payload, signature = (await access_token(discovery, "adv-1")).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["realm_access"] = {"roles": ["advisor", "dpo", "ops"]}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    with pytest.raises(InvalidToken, match="signature"):
        await verifier.verify(f"{header}.{forged}.{signature}")
