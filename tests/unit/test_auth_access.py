"""Route policies on a sample FastAPI app: 401/403/503 from `requires`, the OpenAPI document, and
`undeclared_routes` reading every route's policy from the app's route table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

import services.auth
from services.auth import (
    AllOf,
    ConflictingPolicies,
    Principal,
    Public,
    RolesRequired,
    TokenVerifier,
    declare_policy,
    declared_policies,
    describe_identity_provider,
    error_responses,
    get_token_verifier,
    public,
    requires,
    route_policy,
    undeclared_routes,
)
from services.clock import FixedClock
from services.settings import AuthSettings
from tests.identity_provider import AUDIENCE, ISSUER, FakeIdentityProvider, rsa_key

pytestmark = pytest.mark.unit

SETTINGS = AuthSettings(issuer=ISSUER, audience=AUDIENCE)


def sample_app() -> FastAPI:
    router = APIRouter(prefix="/cases", dependencies=[requires("advisor", "supervisor")])

    @router.get("/{case_id}", responses=error_responses(401, 403, 404, 503))
    async def case(case_id: str) -> dict[str, str]:
        return {"case": case_id}

    @router.post("/{case_id}/close", responses=error_responses(401, 403, 404, 409, 503))
    async def close(case_id: str, who: Annotated[Principal, requires("supervisor")]) -> dict[str, str]:
        return {"closed_by": who.username}

    app = FastAPI()
    app.include_router(router)

    @app.get("/me")
    async def me(who: Annotated[Principal, requires("advisor")]) -> dict[str, object]:
        return {"username": who.username, "roles": sorted(who.roles)}

    @app.get("/health/live", dependencies=[public("orchestrators probe it without an account")])
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    describe_identity_provider(app, SETTINGS)
    return app


@pytest.fixture(scope="module")
def idp() -> FakeIdentityProvider:
    return FakeIdentityProvider(rsa_key("key-1"))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def client(idp: FakeIdentityProvider, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    idp.down = False
    app = sample_app()
    async with idp.client() as to_idp:
        verifier = TokenVerifier(SETTINGS, http=to_idp, clock=clock)
        app.dependency_overrides[get_token_verifier] = lambda: verifier
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service.test") as http:
            yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_principal_reaches_the_handler(client: httpx.AsyncClient, idp: FakeIdentityProvider, clock: FixedClock) -> None:
    response = await client.get("/me", headers=bearer(idp.token(clock.now(), roles=("advisor",))))
    assert response.status_code == 200
    assert response.json() == {"username": "adv-1", "roles": ["advisor", "default-roles-formation"]}


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer  ", "Basic YWR2LTE6bG9jYWwtb25seQ=="])
async def test_no_bearer_token_is_401_with_a_challenge(client: httpx.AsyncClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_an_invalid_token_is_401_invalid_token(
    client: httpx.AsyncClient, idp: FakeIdentityProvider, clock: FixedClock
) -> None:
    response = await client.get("/me", headers=bearer(idp.token(clock.now(), aud="another-api")))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {"detail": "the token is not valid"}, "why it was refused is logged, not told"


async def test_a_token_without_the_role_is_403(client: httpx.AsyncClient, idp: FakeIdentityProvider, clock: FixedClock) -> None:
    response = await client.get("/me", headers=bearer(idp.token(clock.now(), roles=("dpo",))))
    assert response.status_code == 403
    assert "advisor" in response.json()["detail"]


async def test_router_and_route_requirements_must_both_hold(
    client: httpx.AsyncClient, idp: FakeIdentityProvider, clock: FixedClock
) -> None:
    advisor = bearer(idp.token(clock.now(), roles=("advisor",)))
    supervisor = bearer(idp.token(clock.now(), roles=("supervisor",), preferred_username="adv-sup"))
    assert (await client.get("/cases/c1", headers=advisor)).status_code == 200
    assert (await client.post("/cases/c1/close", headers=advisor)).status_code == 403
    closed = await client.post("/cases/c1/close", headers=supervisor)
    assert (closed.status_code, closed.json()) == (200, {"closed_by": "adv-sup"})


async def test_a_provider_down_is_503_not_401(client: httpx.AsyncClient, idp: FakeIdentityProvider, clock: FixedClock) -> None:
    idp.down = True
    response = await client.get("/me", headers=bearer(idp.token(clock.now())))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


async def test_a_public_route_needs_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).status_code == 200


async def test_a_protected_route_without_a_verifier_fails_closed(idp: FakeIdentityProvider, clock: FixedClock) -> None:
    app = sample_app()  # no verifier on app.state: auth not wired
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service.test") as http:
        assert (await http.get("/me")).status_code == 401
        assert (await http.get("/me", headers=bearer(idp.token(clock.now())))).status_code == 503


# -- the OpenAPI document ----------------------------------------------------------------------


def test_openapi_shows_the_scheme_and_each_operations_requirement() -> None:
    document = sample_app().openapi()

    assert document["components"]["securitySchemes"] == {
        "oidc": {
            "type": "openIdConnect",
            "openIdConnectUrl": f"{ISSUER}/.well-known/openid-configuration",
            "description": "An access token of the realm's identity provider, sent as `Authorization: Bearer <token>`.",
        }
    }
    paths = document["paths"]
    assert paths["/me"]["get"]["security"] == [{"oidc": []}]
    assert paths["/cases/{case_id}/close"]["post"]["security"] == [{"oidc": []}]
    assert "security" not in paths["/health/live"]["get"]

    responses = paths["/cases/{case_id}/close"]["post"]["responses"]
    assert set(responses) == {"200", "401", "403", "404", "409", "422", "503"}
    assert responses["401"]["headers"]["WWW-Authenticate"]
    assert responses["403"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}


def test_error_responses_knows_the_standard_answers_only() -> None:
    assert error_responses(404, described={404: "No case with this id."})[404]["description"] == "No case with this id."
    with pytest.raises(ValueError, match="418"):
        error_responses(418)


# -- policies read from the route table --------------------------------------------------------


def test_each_route_policy_is_read_from_the_route_table() -> None:
    assert declared_policies(sample_app()) == {
        "GET /me": RolesRequired(frozenset({"advisor"})),
        "GET /cases/{case_id}": RolesRequired(frozenset({"advisor", "supervisor"})),
        "POST /cases/{case_id}/close": AllOf(
            (RolesRequired(frozenset({"advisor", "supervisor"})), RolesRequired(frozenset({"supervisor"})))
        ),
        "GET /health/live": Public("orchestrators probe it without an account"),
    }
    plain = APIRoute("/plain", lambda: None, dependencies=[public("a plain route, outside any app")])
    assert route_policy(plain) == Public("a plain route, outside any app")


def test_a_fully_declared_app_has_no_undeclared_route() -> None:
    assert undeclared_routes(sample_app()) == []


def test_undeclared_routes_catches_a_route_born_open(tmp_path: object) -> None:
    app = sample_app()

    @app.get("/forgotten")
    async def forgotten() -> None: ...

    assert undeclared_routes(app) == ["GET /forgotten"]


def test_undeclared_routes_sees_routers_mounts_and_conflicts(tmp_path: object) -> None:
    app = sample_app()
    inner = FastAPI()

    @inner.delete("/things/{thing_id}")
    async def delete_thing(thing_id: str) -> None: ...

    app.mount("/admin", inner)
    app.mount("/static", StaticFiles(directory=str(tmp_path)), name="static")
    app.router.routes.append(declare_policy(Mount("/assets", StaticFiles(directory=str(tmp_path))), Public("the form's CSS")))

    @app.get("/both", dependencies=[public("oops")])
    async def both(who: Annotated[Principal, requires("ops")]) -> None: ...

    found = undeclared_routes(app)

    assert found == [
        "DELETE /admin/things/{thing_id}",
        "Mount /static",
        "GET /both (declared public (oops) and protected at once)",
    ]
    with pytest.raises(ConflictingPolicies, match="GET /both"):
        declared_policies(app)


def test_requires_and_public_refuse_empty_declarations() -> None:
    with pytest.raises(ValueError, match="role"):
        requires()
    with pytest.raises(ValueError, match="reason"):
        public("  ")


def test_the_public_surface_is_what_all_says() -> None:
    assert sorted(services.auth.__all__) == sorted(
        name for name in vars(services.auth) if not name.startswith("_") and name not in {"access", "errors", "roles", "tokens"}
    )
