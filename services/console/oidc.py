"""The console's side of OpenID Connect: the authorization code flow with PKCE (S256) of a public client.

`OidcClient` builds the URL of the provider's own login page and exchanges the code it sends back
for tokens. It does not judge the tokens: the access token is verified by the service's
`TokenVerifier` (signature, issuer, audience, expiry), the same one every API route uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from services.console.sessions import pkce_challenge
from services.settings import AuthSettings

__all__ = ["OidcClient", "SignInFailed", "Tokens"]


class SignInFailed(Exception):
    """The provider refused the code, or could not be reached."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    id_token: str | None
    expires_in: int
    """Seconds the access token lives."""
    refresh_token: str | None = None
    refresh_expires_in: int | None = None
    """Seconds the refresh token lives (Keycloak: the SSO session's idle timeout); None if unsaid."""

    def session_lifetime(self) -> int:
        """How long a console session on these tokens lasts: as long as it can be refreshed."""
        if self.refresh_token and self.refresh_expires_in:
            return max(self.refresh_expires_in, self.expires_in)
        return self.expires_in


class OidcClient:
    """One public client of one issuer. Reads the provider's discovery document once, on first use."""

    def __init__(self, settings: AuthSettings, client_id: str, *, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.client_id = client_id
        self._http = http
        self._discovery: dict[str, Any] | None = None

    async def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.http_timeout_s)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            try:
                response = await (await self._client()).get(self.settings.discovery_url)
                response.raise_for_status()
            except httpx.HTTPError as error:
                raise SignInFailed(f"discovery failed: {error}") from error
            document: dict[str, Any] = response.json()
            if str(document.get("issuer", "")).rstrip("/") != self.settings.issuer.rstrip("/"):
                raise SignInFailed(f"discovery names issuer {document.get('issuer')!r}")
            self._discovery = document
        return self._discovery

    async def authorization_url(self, *, redirect_uri: str, state: str, verifier: str, language: str) -> str:
        """The provider's login page, asking for a code bound to `verifier` (S256), in the page's language.

        No `nonce`: the ID token is not used to sign in (the access token is, verified by the service),
        and PKCE already binds the code to this browser's session (OAuth 2.1 §7.5.3)."""
        endpoint = (await self.discovery())["authorization_endpoint"]
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid",
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            "ui_locales": language,
        }
        return f"{endpoint}?{urlencode(query)}"

    async def exchange(self, *, code: str, verifier: str, redirect_uri: str) -> Tokens:
        """The tokens for `code` (RFC 6749 §4.1.3 with the PKCE `code_verifier`)."""
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": self.client_id,
                "code_verifier": verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for a refresh token (RFC 6749 §6): a console stays signed in past the access
        token's few minutes, and picks up role changes each time it refreshes."""
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id})

    async def _token(self, form: dict[str, str]) -> Tokens:
        endpoint = (await self.discovery())["token_endpoint"]
        try:
            response = await (await self._client()).post(endpoint, data=form)
        except httpx.HTTPError as error:
            raise SignInFailed(f"token endpoint unreachable: {error}") from error
        if response.status_code != 200:
            raise SignInFailed(f"token endpoint answered {response.status_code} to {form['grant_type']}")
        body = response.json()
        if body.get("token_type", "").lower() != "bearer" or not body.get("access_token"):
            raise SignInFailed("no bearer access token in the answer")
        refresh_expires_in = body.get("refresh_expires_in")
        return Tokens(
            access_token=body["access_token"],
            id_token=body.get("id_token"),
            expires_in=int(body.get("expires_in", 300)),
            refresh_token=body.get("refresh_token"),
            # Keycloak says 0 for an offline token that never idles out; treat that as "unsaid".
            refresh_expires_in=int(refresh_expires_in) if refresh_expires_in else None,
        )

    async def logout_url(self, *, id_token: str | None, post_logout_redirect_uri: str) -> str | None:
        """The provider's end-session page, which ends its own session too (or None if it has none)."""
        endpoint = (await self.discovery()).get("end_session_endpoint")
        if not endpoint:
            return None
        query = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token:
            query["id_token_hint"] = id_token
        return f"{endpoint}?{urlencode(query)}"
