"""Access tokens of the OpenID Connect provider turned into a `Principal`, or refused.

`TokenVerifier` finds the provider's keys by OIDC discovery, caches them, and refetches them when a
token names a key it does not know (the provider rotated its keys), at most once per
`jwks_min_refetch_interval_s` so that a flood of made-up `kid`s cannot make us hammer the provider.
The JOSE work itself (signature, algorithm allow-list, claims) is joserfc's; nothing here parses
or checks a signature by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx
import structlog
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from services.auth.errors import IdentityProviderUnavailable, InvalidToken
from services.clock import Clock, SystemClock
from services.settings import AuthSettings

log = structlog.get_logger(__name__)

# A Keycloak access token is 1-2 KiB; anything far larger is not one, and is refused unread.
MAX_TOKEN_LENGTH = 16 * 1024

# The registered claims a principal keeps: enough to audit a decision, nothing personal (no name, no e-mail).
_KEPT_CLAIMS = ("iss", "sub", "aud", "azp", "exp", "iat", "nbf", "jti", "sid")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request, as the identity provider vouched for it."""

    subject: str
    """The token's `sub`: stable for the user at this provider."""
    username: str
    """`preferred_username` when the provider gives one, else the subject."""
    roles: frozenset[str]
    """Realm roles (`realm_access.roles`)."""
    client_id: str | None
    """The client the token was issued to (`azp`)."""
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The registered claims only (iss, sub, aud, exp, ...), read-only."""

    def has_any(self, roles: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles)


@dataclass
class _KeyCache:
    keys: dict[str | None, Key]
    fetched_at: float
    """monotonic() when fetched."""


class TokenVerifier:
    """Verifies bearer tokens of one issuer. Builds without I/O; talks to the provider on first use.

    `http` is the client to reach the provider with (tests pass one over an in-process transport);
    without one the verifier opens its own, and `aclose()` closes it. `clock` gives the time the
    token's `exp`/`nbf`/`iat` are checked against, `monotonic` the time the cache ages by.
    """

    def __init__(
        self,
        settings: AuthSettings,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._http = http
        self._owns_http = http is None
        self._clock: Clock = clock or SystemClock()
        self._monotonic = monotonic
        self._issuer = settings.issuer.rstrip("/")
        self._jwks_uri: str | None = None
        self._cache: _KeyCache | None = None
        self._last_fetch: float | None = None
        self._fetch_lock = asyncio.Lock()
        self.fetches = 0
        """How many times the keys were fetched (observable for tests and metrics)."""

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def verify(self, token: str) -> Principal:
        """The principal the token stands for.

        Raises `InvalidToken` (answer 401) or `IdentityProviderUnavailable` (answer 503)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("not a token")
        header = _unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            # Before any key lookup: `none`, HS256 with the public key as secret, or anything else
            # outside the allow-list never reaches a verifier, nor makes us fetch keys.
            raise InvalidToken(f"algorithm not accepted: {algorithm!r}")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("kid is not a string")
        key = await self._key_for(kid)
        try:
            decoded = jwt.decode(token, key, algorithms=list(self.settings.algorithms))
            self._claims_registry().validate(decoded.claims)
        except JoseError as error:
            raise InvalidToken(str(error)) from error
        except (ValueError, TypeError) as error:  # malformed base64 or JSON that slipped past the header check
            raise InvalidToken("malformed token") from error
        return _principal(decoded.claims)

    def _claims_registry(self) -> jwt.JWTClaimsRegistry:
        return jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock.now().timestamp()),
            leeway=self.settings.leeway_s,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self.settings.audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )

    # -- keys ---------------------------------------------------------------------------------

    async def _key_for(self, kid: str | None) -> Key:
        cache = self._cache
        if cache is None or self._monotonic() - cache.fetched_at >= self.settings.jwks_cache_ttl_s:
            cache = await self._refresh(seen=cache, keep_on_failure=True)
        key = _find(cache.keys, kid)
        if key is None and self._may_refetch():
            # Unknown kid: the provider may have rotated its keys since we fetched them. If it cannot
            # be asked, nobody can tell whether the token is good: 503, not 401.
            log.info("auth.jwks_unknown_kid", kid=kid)
            cache = await self._refresh(seen=cache, keep_on_failure=False)
            key = _find(cache.keys, kid)
        if key is None:
            raise InvalidToken(f"no key of the provider has kid {kid!r}")
        return key

    def _may_refetch(self) -> bool:
        return self._last_fetch is None or self._monotonic() - self._last_fetch >= self.settings.jwks_min_refetch_interval_s

    async def _refresh(self, *, seen: _KeyCache | None, keep_on_failure: bool) -> _KeyCache:
        """Fetch the keys once, however many requests are waiting for them, and at most once per interval.

        `seen` is the cache the caller found wanting. With keys in hand, `keep_on_failure` keeps using
        them when the provider cannot be reached (it may be restarting)."""
        async with self._fetch_lock:
            current = self._cache
            if current is not None and current is not seen:
                return current  # another request fetched while this one waited for the lock
            if not self._may_refetch():
                if current is None:
                    raise IdentityProviderUnavailable("the provider's keys could not be fetched a moment ago")
                return current
            self._last_fetch = self._monotonic()
            try:
                keys = await self._fetch_keys()
            except IdentityProviderUnavailable as error:
                if current is None or not keep_on_failure:
                    log.warning("auth.jwks_fetch_failed", error=str(error))
                    raise
                log.warning("auth.jwks_refresh_failed", error=str(error), keeping=len(current.keys))
                return current
            self._cache = _KeyCache(keys, fetched_at=self._monotonic())
            return self._cache

    async def _fetch_keys(self) -> dict[str | None, Key]:
        self.fetches += 1
        if self._jwks_uri is None:
            discovery = await self._get_json(self.settings.discovery_url)
            if str(discovery.get("issuer", "")).rstrip("/") != self._issuer:
                # OIDC Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
                raise IdentityProviderUnavailable(f"discovery names issuer {discovery.get('issuer')!r}")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise IdentityProviderUnavailable("discovery document has no jwks_uri")
            self._jwks_uri = jwks_uri
        document = await self._get_json(self._jwks_uri)
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise IdentityProviderUnavailable("key set has no keys")
        keys: dict[str | None, Key] = {}
        for entry in entries:
            # Keycloak publishes an encryption key beside the signing ones; it never verifies anything.
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in {"RSA", "EC", "OKP"}:
                continue
            try:
                keys[entry.get("kid")] = JWKRegistry.import_key(entry)
            except (JoseError, ValueError, TypeError) as error:
                log.warning("auth.jwks_key_skipped", kid=entry.get("kid"), error=str(error))
        log.info("auth.jwks_fetched", kids=sorted(str(kid) for kid in keys))
        return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._http is None:
            self._http = httpx.AsyncClient()
        try:
            response = await self._http.get(url, timeout=self.settings.http_timeout_s, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise IdentityProviderUnavailable(f"{url}: {type(error).__name__}: {error}") from error
        if not isinstance(document, dict):
            raise IdentityProviderUnavailable(f"{url}: not a JSON object")
        return document


def _unverified_header(token: str) -> Mapping[str, Any]:
    """The JOSE header, read before any key is chosen: only to pick the key and refuse an algorithm."""
    try:
        return jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, TypeError, UnicodeError) as error:
        raise InvalidToken("malformed token") from error


def _find(keys: Mapping[str | None, Key], kid: str | None) -> Key | None:
    if kid is None:
        # A token without kid is only unambiguous when the provider has exactly one signing key.
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


def _principal(claims: Mapping[str, Any]) -> Principal:
    subject = claims["sub"]
    username = claims.get("preferred_username")
    realm_access = claims.get("realm_access")
    roles = realm_access.get("roles") if isinstance(realm_access, dict) else None
    client_id = claims.get("azp")
    return Principal(
        subject=subject,
        username=username if isinstance(username, str) and username else subject,
        roles=frozenset(role for role in roles if isinstance(role, str)) if isinstance(roles, list) else frozenset(),
        client_id=client_id if isinstance(client_id, str) else None,
        claims=MappingProxyType({name: claims[name] for name in _KEPT_CLAIMS if name in claims}),
    )
