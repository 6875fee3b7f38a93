"""An OpenID Connect provider in memory, for unit tests of token verification: it signs tokens with
keys made by the test (cryptography), serves its discovery document and key set over httpx's
in-process transport, rotates keys, goes down, and counts what it was asked; `SignIn` wires it into
the apps under test in place of Keycloak."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from services.auth import TokenVerifier, get_token_verifier
from services.settings import AuthSettings
from tests.realm import DEMO_USERS

ISSUER = "http://idp.test/realms/formation"
AUDIENCE = "formation-events"


def rsa_key(kid: str) -> RSAKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return RSAKey.import_key(pem, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def ec_key(kid: str) -> ECKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ECKey.import_key(pem, parameters={"kid": kid, "use": "sig", "alg": "ES256"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeIdentityProvider:
    """Serves `<issuer>/.well-known/openid-configuration` and `<issuer>/certs` to an httpx client."""

    def __init__(self, *keys: Key, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.keys: list[Key] = list(keys)
        self.down = False
        self.requests: Counter[str] = Counter()
        self.advertised_issuer = issuer

    @property
    def jwks_fetches(self) -> int:
        return self.requests["/certs"]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(httpx.URL(self.issuer).path)
        self.requests[path] += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.advertised_issuer, "jwks_uri": f"{self.issuer}/certs"})
        if path == "/certs":
            # Keycloak also publishes an encryption key; the verifier must ignore it.
            encryption = {**self.keys[0].as_dict(private=False), "kid": "enc-key", "use": "enc", "alg": "RSA-OAEP"}
            return httpx.Response(200, json={"keys": [key.as_dict(private=False) for key in self.keys] + [encryption]})
        return httpx.Response(404)

    def claims(self, now: datetime, *, roles: tuple[str, ...] = ("advisor",), **overrides: Any) -> dict[str, Any]:
        issued = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": [AUDIENCE, "account"],
            "sub": "adv-1",
            "preferred_username": "adv-1",
            "email": "someone@example.org",
            "azp": "formation-demo",
            "iat": issued,
            "exp": issued + 300,
            "jti": str(uuid.uuid4()),
            "realm_access": {"roles": [*roles, "default-roles-formation"]},
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, now: datetime, *, key: Key | None = None, roles: tuple[str, ...] = ("advisor",), **overrides: Any) -> str:
        signer = key or self.keys[0]
        header = {"alg": signer.get("alg") or "RS256", "kid": signer.kid}
        return jwt.encode(header, self.claims(now, roles=roles, **overrides), signer)


def unsigned_token(claims: dict[str, Any]) -> str:
    """`alg: none`: no library will make one, so the test writes it out."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def hmac_with_public_key(claims: dict[str, Any], key: RSAKey | ECKey) -> str:
    """The algorithm-confusion attack: HS256 with the provider's public key (PEM) as the shared secret.

    joserfc refuses to make one (an asymmetric key as an HMAC secret), so the test forges it."""
    signing_input = ".".join(
        (_b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode()), _b64(json.dumps(claims).encode()))
    )
    signature = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def later(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


_SHARED_KEY: RSAKey | None = None


def _shared_key() -> RSAKey:
    # One RSA key for every test that only needs to sign in: making one takes tens of milliseconds.
    global _SHARED_KEY
    if _SHARED_KEY is None:
        _SHARED_KEY = rsa_key("shared")
    return _SHARED_KEY


class SignIn:
    """The in-memory provider wired into apps under test, in place of the realm's Keycloak: `install(app)`
    makes the app's `requires(...)` verify tokens of this provider; `as_user("adv-1")` gives the bearer
    header of a realm user (roles as in `tests.realm.DEMO_USERS`), `as_roles(...)` of anyone."""

    def __init__(self) -> None:
        self.provider = FakeIdentityProvider(_shared_key())
        self.verifier = TokenVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE), http=self.provider.client())

    def install(self, app: FastAPI) -> FastAPI:
        app.dependency_overrides[get_token_verifier] = lambda: self.verifier
        return app

    def as_roles(self, *roles: str, subject: str = "someone") -> dict[str, str]:
        token = self.provider.token(datetime.now(UTC), roles=roles, sub=subject, preferred_username=subject)
        return {"Authorization": f"Bearer {token}"}

    def as_user(self, username: str) -> dict[str, str]:
        return self.as_roles(*sorted(DEMO_USERS[username]), subject=username)
