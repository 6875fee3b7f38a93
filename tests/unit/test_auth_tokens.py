"""TokenVerifier against a provider in memory (tests.identity_provider): keys made by the test, the
discovery document and key set over httpx's in-process transport, time from clocks the test holds."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey
from pydantic import ValidationError

from services.auth import IdentityProviderUnavailable, InvalidToken, Principal, TokenVerifier
from services.clock import FixedClock
from services.settings import AuthSettings
from tests.identity_provider import AUDIENCE, ISSUER, FakeIdentityProvider, ec_key, hmac_with_public_key, rsa_key, unsigned_token

pytestmark = pytest.mark.unit

SETTINGS = AuthSettings(issuer=ISSUER, audience=AUDIENCE, leeway_s=30, jwks_cache_ttl_s=900, jwks_min_refetch_interval_s=10)


class Monotonic:
    """The clock the key cache ages by; moves only when the test says."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return rsa_key("key-1")


@pytest.fixture(scope="module")
def rotated_key() -> RSAKey:
    return rsa_key("key-2")


@pytest.fixture(scope="module")
def ec_signing_key() -> ECKey:
    return ec_key("ec-1")


@pytest.fixture
def clock() -> FixedClock:
    # Today, whatever day the tests run: tokens are made relative to this clock, never to a calendar date.
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
def idp(signing_key: RSAKey) -> FakeIdentityProvider:
    return FakeIdentityProvider(signing_key)


@pytest.fixture
async def verifier(idp: FakeIdentityProvider, clock: FixedClock, monotonic: Monotonic) -> AsyncIterator[TokenVerifier]:
    async with idp.client() as http:
        yield TokenVerifier(SETTINGS, http=http, clock=clock, monotonic=monotonic)


async def test_a_valid_token_gives_the_principal_with_its_roles(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock
) -> None:
    principal = await verifier.verify(idp.token(clock.now(), roles=("advisor", "supervisor")))

    assert principal == Principal(
        subject="adv-1",
        username="adv-1",
        roles=frozenset({"advisor", "supervisor", "default-roles-formation"}),
        client_id="formation-demo",
        claims=principal.claims,
    )
    assert principal.claims["iss"] == ISSUER
    assert "email" not in principal.claims, "a principal keeps registered claims only, nothing personal"
    with pytest.raises(TypeError):
        principal.claims["sub"] = "someone-else"  # type: ignore[index]  # read-only, which is the point


async def test_an_es256_token_is_accepted(idp: FakeIdentityProvider, ec_signing_key: ECKey, clock: FixedClock) -> None:
    idp.keys.append(ec_signing_key)
    async with idp.client() as http:
        verifier = TokenVerifier(SETTINGS, http=http, clock=clock)
        principal = await verifier.verify(idp.token(clock.now(), key=ec_signing_key, roles=("dpo",)))
    assert "dpo" in principal.roles


async def test_the_username_falls_back_to_the_subject(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock
) -> None:
    principal = await verifier.verify(idp.token(clock.now(), preferred_username=None, realm_access=None))
    assert (principal.username, principal.roles) == ("adv-1", frozenset())


async def test_expiry_is_checked_against_the_clock_with_leeway(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock
) -> None:
    token = idp.token(clock.now())  # valid for 300 s

    clock.advance(timedelta(seconds=300 + 29))
    assert (await verifier.verify(token)).subject == "adv-1", "29 s past exp is within the 30 s leeway"

    clock.advance(timedelta(seconds=2))
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)


async def test_a_token_not_valid_yet_is_refused_beyond_the_leeway(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock
) -> None:
    now = int(clock.now().timestamp())
    assert await verifier.verify(idp.token(clock.now(), nbf=now + 25))
    with pytest.raises(InvalidToken, match="not yet valid"):
        await verifier.verify(idp.token(clock.now(), nbf=now + 60))
    with pytest.raises(InvalidToken, match="issued in the future"):
        await verifier.verify(idp.token(clock.now(), iat=now + 60, exp=now + 400))


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iss": "http://idp.test/realms/other"}, "iss"),
        ({"aud": "another-api"}, "aud"),
        ({"aud": ["account"]}, "aud"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"iat": None}, "iat"),
    ],
)
async def test_claims_that_do_not_match_are_refused(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock, claims: dict[str, Any], why: str
) -> None:
    with pytest.raises(InvalidToken, match=why):
        await verifier.verify(idp.token(clock.now(), **claims))


async def test_an_unsigned_token_is_refused_without_asking_the_provider(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock
) -> None:
    with pytest.raises(InvalidToken, match="algorithm"):
        await verifier.verify(unsigned_token(idp.claims(clock.now())))
    assert idp.jwks_fetches == 0


async def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock, signing_key: RSAKey
) -> None:
    with pytest.raises(InvalidToken, match="algorithm"):
        await verifier.verify(hmac_with_public_key(idp.claims(clock.now()), signing_key))


async def test_a_tampered_token_is_refused(verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock) -> None:
    header, _, signature = idp.token(clock.now(), roles=("advisor",)).split(".")
    forged_payload = idp.token(clock.now(), roles=("dpo",)).split(".")[1]
    with pytest.raises(InvalidToken, match="signature"):
        await verifier.verify(f"{header}.{forged_payload}.{signature}")


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c", "a.b", "é.é.é", "x" * 20_000])
async def test_garbage_is_an_invalid_token_not_a_crash(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        await verifier.verify(garbage)


def test_settings_accept_asymmetric_algorithms_only() -> None:
    for refused in (("none",), ("HS256",), ("RS256", "HS512")):
        with pytest.raises(ValidationError, match="asymmetric"):
            AuthSettings(algorithms=refused)
    assert AuthSettings().algorithms == ("RS256", "ES256")
    assert (
        AuthSettings(issuer="http://kc:8180/realms/x/").discovery_url
        == "http://kc:8180/realms/x/.well-known/openid-configuration"
    )


async def test_an_algorithm_outside_the_allow_list_is_refused_even_with_a_good_key(
    idp: FakeIdentityProvider, ec_signing_key: ECKey, clock: FixedClock
) -> None:
    idp.keys.append(ec_signing_key)
    async with idp.client() as http:
        verifier = TokenVerifier(SETTINGS.model_copy(update={"algorithms": ("RS256",)}), http=http, clock=clock)
        with pytest.raises(InvalidToken, match="ES256"):
            await verifier.verify(idp.token(clock.now(), key=ec_signing_key))


# -- keys: cache, rotation, flood, outage --------------------------------------------------------


async def test_keys_are_fetched_once_and_cached(verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock) -> None:
    for _ in range(5):
        await verifier.verify(idp.token(clock.now()))
    assert idp.jwks_fetches == 1
    assert idp.requests["/.well-known/openid-configuration"] == 1


async def test_an_unknown_kid_refetches_the_keys_once_after_rotation(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock, monotonic: Monotonic, rotated_key: RSAKey
) -> None:
    await verifier.verify(idp.token(clock.now()))
    idp.keys = [rotated_key]  # the provider rotates
    monotonic.advance(60)

    principal = await verifier.verify(idp.token(clock.now(), key=rotated_key))

    assert principal.subject == "adv-1"
    assert idp.jwks_fetches == 2
    await verifier.verify(idp.token(clock.now(), key=rotated_key))
    assert idp.jwks_fetches == 2, "the rotated key is cached now"


async def test_a_flood_of_unknown_kids_fetches_at_most_once_per_interval(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock, monotonic: Monotonic
) -> None:
    await verifier.verify(idp.token(clock.now()))
    monotonic.advance(60)
    tokens = [_with_kid(idp.token(clock.now()), f"bogus-{n}") for n in range(50)]

    results = await asyncio.gather(*(verifier.verify(token) for token in tokens), return_exceptions=True)

    assert all(isinstance(result, InvalidToken) for result in results)
    assert idp.jwks_fetches == 2, "one refetch for fifty unknown kids"
    monotonic.advance(5)
    with pytest.raises(InvalidToken):
        await verifier.verify(tokens[0])
    assert idp.jwks_fetches == 2, "still within the interval"
    monotonic.advance(10)
    with pytest.raises(InvalidToken):
        await verifier.verify(tokens[0])
    assert idp.jwks_fetches == 3, "one more once the interval has passed"


async def test_keys_older_than_the_ttl_are_refetched_and_kept_if_the_provider_is_down(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock, monotonic: Monotonic
) -> None:
    await verifier.verify(idp.token(clock.now()))
    monotonic.advance(SETTINGS.jwks_cache_ttl_s + 1)
    await verifier.verify(idp.token(clock.now()))
    assert idp.jwks_fetches == 2

    monotonic.advance(SETTINGS.jwks_cache_ttl_s + 1)
    idp.down = True
    assert (await verifier.verify(idp.token(clock.now()))).subject == "adv-1", "stale keys beat no keys"


async def test_a_provider_that_cannot_be_reached_is_unavailable_not_an_invalid_token(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock, monotonic: Monotonic
) -> None:
    idp.down = True
    with pytest.raises(IdentityProviderUnavailable):
        await verifier.verify(idp.token(clock.now()))
    with pytest.raises(IdentityProviderUnavailable):
        await verifier.verify(idp.token(clock.now()))
    assert idp.requests["/.well-known/openid-configuration"] == 1, "a failed fetch is not retried on every request"

    idp.down = False
    monotonic.advance(SETTINGS.jwks_min_refetch_interval_s)
    assert (await verifier.verify(idp.token(clock.now()))).subject == "adv-1"


async def test_an_unknown_kid_while_the_provider_is_down_is_unavailable(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock, monotonic: Monotonic, rotated_key: RSAKey
) -> None:
    await verifier.verify(idp.token(clock.now()))
    monotonic.advance(60)
    idp.down = True
    with pytest.raises(IdentityProviderUnavailable):
        await verifier.verify(idp.token(clock.now(), key=rotated_key))


async def test_a_discovery_document_for_another_issuer_is_not_trusted(
    verifier: TokenVerifier, idp: FakeIdentityProvider, clock: FixedClock
) -> None:
    idp.advertised_issuer = "http://evil.test/realms/formation"
    with pytest.raises(IdentityProviderUnavailable, match="issuer"):
        await verifier.verify(idp.token(clock.now()))
    assert idp.jwks_fetches == 0


def _with_kid(token: str, kid: str) -> str:
    """The same token under another kid in its header (the signature no longer matters: no key is found)."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    decoded["kid"] = kid
    encoded = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{encoded}.{payload}.{signature}"
