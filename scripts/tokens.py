"""Access tokens of the realm's demo users, by the password grant of the `formation-demo` client: how
`make demo` and the end-to-end tests sign their actors in through the real Keycloak.

The password grant is for this local realm only (its users' password is `local-only`); people sign
in through the browser (authorization code with PKCE) everywhere else."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from scripts.launch import oidc_issuer

DEMO_CLIENT = "formation-demo"
DEMO_PASSWORD = "local-only"  # noqa: S105 - the local realm's demo users (deploy/keycloak/formation-realm.json)


@dataclass
class Tokens:
    """Signs demo users in and keeps each one's access token until shortly before it expires."""

    issuer: str = field(default_factory=oidc_issuer)
    client_id: str = DEMO_CLIENT
    password: str = DEMO_PASSWORD
    timeout_s: float = 30.0
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _token_endpoint: str | None = None

    def token(self, username: str) -> str:
        """`username`'s access token; raises `httpx.HTTPStatusError` when the provider refuses the sign-in."""
        cached = self._tokens.get(username)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        response = httpx.post(
            self.token_endpoint(),
            data={"grant_type": "password", "client_id": self.client_id, "username": username, "password": self.password},
            timeout=self.timeout_s,
        )
        response.raise_for_status()
        body = response.json()
        token: str = body["access_token"]
        # Renewed 30 s before it expires, so a request never leaves with a token about to lapse.
        self._tokens[username] = (token, time.monotonic() + float(body.get("expires_in", 60)) - 30.0)
        return token

    def headers(self, username: str) -> dict[str, str]:
        """The `Authorization` header of a request made as `username`."""
        return {"Authorization": f"Bearer {self.token(username)}"}

    def token_endpoint(self) -> str:
        if self._token_endpoint is None:
            discovery = httpx.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration", timeout=self.timeout_s)
            discovery.raise_for_status()
            self._token_endpoint = str(discovery.json()["token_endpoint"])
        return self._token_endpoint
