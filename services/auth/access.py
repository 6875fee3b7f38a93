"""Who may call which HTTP route: security dependencies that also declare the route's policy.

A route declares its policy with one dependency, on the route or on its router:

    @router.get("/cases/{case_id}", responses=error_responses(401, 403, 404))
    async def case(principal: Annotated[Principal, requires("advisor", "supervisor")]) -> Case: ...

    router = APIRouter(dependencies=[public("partner sites post requests without an account")])

`requires(*roles)` answers 401 (with `WWW-Authenticate: Bearer`) without a valid token, 403 when the
token carries none of the roles, 503 when the identity provider cannot be reached, and gives the
handler the `Principal`. `public(reason)` lets everyone in and says why. Both carry their `Policy`, so
`route_policy(route)` reads it back from the app's route table and `undeclared_routes(app)` lists the
routes that have none: a test over every app keeps any route from being born open.

The verifier is found on `app.state.token_verifier` (set by the service's lifespan) through the
`get_token_verifier` dependency, which tests replace with `app.dependency_overrides`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security import OpenIdConnect
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Mount

from schemas.envelope import ACTOR
from services.auth.errors import IdentityProviderUnavailable, InvalidToken
from services.auth.tokens import Principal, TokenVerifier
from services.settings import AuthSettings, local_issuer

log = structlog.get_logger(__name__)

SCHEME_NAME = "oidc"


# -- the policies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Public:
    """Everyone may call the route, on purpose."""

    reason: str


@dataclass(frozen=True, slots=True)
class RolesRequired:
    """A valid token carrying at least one of `roles`."""

    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class AllOf:
    """Several requirements declared on one route (say its router's and its own): each must hold."""

    requirements: tuple[RolesRequired, ...]


Policy = Public | RolesRequired | AllOf


class ConflictingPolicies(ValueError):
    """A route declared both public and protected: which one was meant cannot be guessed."""


# -- the security scheme -----------------------------------------------------------------------


class BearerOpenIdConnect(OpenIdConnect):
    """The OpenID Connect scheme of the OpenAPI document, reading `Authorization: Bearer <token>`.

    FastAPI's `OpenIdConnect` only documents the scheme and hands over the raw header; this one
    returns the token itself, or None, and leaves the answer (401) to `requires`."""

    async def __call__(self, request: HTTPConnection) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None


# The discovery URL documented here is the default issuer's; `describe_identity_provider` puts the
# configured one in each app's document (the routers are module-level, built before any settings).
bearer_token = BearerOpenIdConnect(
    openIdConnectUrl=local_issuer() + "/.well-known/openid-configuration",
    scheme_name=SCHEME_NAME,
    description="An access token of the realm's identity provider, sent as `Authorization: Bearer <token>`.",
    auto_error=False,
)


def describe_identity_provider(app: FastAPI, settings: AuthSettings) -> None:
    """Make the app's OpenAPI document point at the configured provider's discovery URL."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        for scheme in schema.get("components", {}).get("securitySchemes", {}).values():
            if scheme.get("type") == "openIdConnect":
                scheme["openIdConnectUrl"] = settings.discovery_url
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document


def get_token_verifier(request: Request) -> TokenVerifier | None:
    """The verifier the service's lifespan built, if any."""
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    return verifier


# -- the dependencies --------------------------------------------------------------------------


def _unauthorized(detail: str, *, invalid: bool) -> HTTPException:
    # RFC 6750 §3: no token at all gets the bare challenge; a bad one says `invalid_token`.
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def _admit(policy: RolesRequired, principal: Principal, request: Request) -> None:
    """403 unless the principal holds one of the policy's roles."""
    if not principal.has_any(policy.roles):
        log.info("auth.role_refused", path=request.url.path, subject=principal.subject, roles=sorted(principal.roles))
        raise HTTPException(403, f"this needs one of the roles: {', '.join(sorted(policy.roles))}")


@contextmanager
def _acting_as(principal: Principal) -> Iterator[None]:
    """The events made meanwhile record who acted (`Event.actor`), however deep they are made; reset
    afterwards, for a caller that runs the app in its own task (httpx's ASGITransport in tests)."""
    token = ACTOR.set(principal.subject)
    try:
        yield
    finally:
        ACTOR.reset(token)


class _Authorize:
    """The dependency behind `requires`: its instance carries the policy the route table is read for."""

    def __init__(self, policy: RolesRequired) -> None:
        self.policy = policy

    async def __call__(
        self,
        request: Request,
        token: Annotated[str | None, Security(bearer_token)],
        verifier: Annotated[TokenVerifier | None, Depends(get_token_verifier)],
    ) -> AsyncIterator[Principal]:
        if token is None:
            raise _unauthorized("a bearer token is required", invalid=False)
        if verifier is None:
            # Fail closed: a protected route in an app that verifies nothing serves nobody.
            log.error("auth.not_configured", path=request.url.path)
            raise HTTPException(503, "token verification is not configured")
        try:
            principal = await verifier.verify(token)
        except InvalidToken as error:
            log.info("auth.token_refused", path=request.url.path, reason=str(error))
            raise _unauthorized("the token is not valid", invalid=True) from error
        except IdentityProviderUnavailable as error:
            log.warning("auth.provider_unavailable", path=request.url.path, error=str(error))
            raise HTTPException(503, "the identity provider cannot be reached", headers={"Retry-After": "5"}) from error
        _admit(self.policy, principal, request)
        with _acting_as(principal):
            yield principal


PrincipalOf = Callable[[Request], Awaitable[Principal]]
"""How a console finds who is signed in from the request (its session cookie): the `Principal`, or an
`HTTPException` of its own choosing (a browser is sent to sign in rather than answered 401)."""


class _AuthorizeSession:
    """The dependency behind `requires_signed_in`: a browser session instead of a bearer token."""

    def __init__(self, policy: RolesRequired, principal_of: PrincipalOf) -> None:
        self.policy = policy
        self.principal_of = principal_of

    async def __call__(self, request: Request) -> AsyncIterator[Principal]:
        principal = await self.principal_of(request)
        _admit(self.policy, principal, request)
        with _acting_as(principal):
            yield principal


class _Public:
    def __init__(self, policy: Public) -> None:
        self.policy = policy

    async def __call__(self) -> None:
        return None


def requires(*roles: str) -> Any:
    """A dependency giving the `Principal` whose token carries one of `roles` (401/403/503 otherwise).

    Use it as a parameter's `Annotated[Principal, requires(...)]`, or in `dependencies=[...]` of a
    route or router."""
    if not roles or not all(isinstance(role, str) and role for role in roles):
        raise ValueError("requires() needs at least one role name")
    return Depends(_Authorize(RolesRequired(frozenset(roles))))


def requires_signed_in(principal_of: PrincipalOf, *roles: str) -> Any:
    """As `requires`, for pages a browser reaches with a session cookie: `principal_of` finds who is
    signed in (or raises, say a redirect to the sign-in page); 403 when they have none of `roles`.
    The route's policy reads back as the same `RolesRequired` as a bearer-token route's."""
    if not roles or not all(isinstance(role, str) and role for role in roles):
        raise ValueError("requires_signed_in() needs at least one role name")
    return Depends(_AuthorizeSession(RolesRequired(frozenset(roles)), principal_of))


def public(reason: str) -> Any:
    """A dependency that lets everyone in, and records why the route is meant to be open."""
    if not reason.strip():
        raise ValueError("public() needs the reason the route is open")
    return Depends(_Public(Public(reason.strip())))


def declare_policy(route: BaseRoute, policy: Policy) -> BaseRoute:
    """Declare the policy of a route that takes no dependencies (a mount, a plain Starlette route)."""
    route.access_policy = policy  # type: ignore[attr-defined]  # read back by route_policy
    return route


# -- reading the route table -------------------------------------------------------------------


def _declared(dependant: Dependant) -> Iterator[Public | RolesRequired]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, _Authorize | _AuthorizeSession | _Public):
            yield dependency.call.policy
        yield from _declared(dependency)


def route_policy(route: BaseRoute | RouteContext) -> Policy | None:
    """The policy a route declared, or None. Raises `ConflictingPolicies` for public and protected at once.

    `route` is an entry of a route table as FastAPI resolves it (`fastapi.routing.iter_route_contexts`:
    a router's dependencies are merged into its routes' there), or a plain route."""
    explicit: Policy | None = getattr(route, "access_policy", None)
    if explicit is None and isinstance(route, RouteContext):
        explicit = getattr(route.original_route, "access_policy", None)
    if explicit is not None:
        return explicit
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        return None
    found = list(dict.fromkeys(_declared(dependant)))
    publics = [policy for policy in found if isinstance(policy, Public)]
    required = [policy for policy in found if isinstance(policy, RolesRequired)]
    if publics and required:
        raise ConflictingPolicies(f"declared public ({publics[0].reason}) and protected at once")
    if publics:
        return publics[0]
    if len(required) == 1:
        return required[0]
    return AllOf(tuple(required)) if required else None


def _describe(route: BaseRoute | RouteContext, prefix: str) -> str:
    original = route.original_route if isinstance(route, RouteContext) else route
    methods = ",".join(sorted(getattr(route, "methods", None) or [])) or type(original).__name__
    return f"{methods} {prefix}{getattr(route, 'path', '')}"


def _route_table(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, RouteContext]]:
    """Every route as FastAPI serves it, mounted apps included, as ("METHODS /path", route)."""
    for context in iter_route_contexts(routes):
        original = context.original_route
        if isinstance(original, Mount) and route_policy(context) is None:
            # A mounted app without a policy of its own: each of its routes must declare one.
            inner = getattr(original.app, "routes", None)
            if inner is not None:
                yield from _route_table(inner, prefix + original.path)
                continue
        yield _describe(context, prefix), context


def _is_documentation(app: FastAPI, prefix: str, context: RouteContext) -> bool:
    paths = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    return prefix == "" and not isinstance(context.original_route, APIRoute) and context.path in paths


def declared_policies(app: FastAPI) -> dict[str, Policy | None]:
    """The policy of every route of the app, by "METHODS /path" (FastAPI's documentation routes left out).

    Raises `ConflictingPolicies` naming the first route declared public and protected at once."""
    policies: dict[str, Policy | None] = {}
    for name, context in _route_table(app.routes):
        if _is_documentation(app, "", context):
            continue
        try:
            policies[name] = route_policy(context)
        except ConflictingPolicies as error:
            raise ConflictingPolicies(f"{name}: {error}") from error
    return policies


def undeclared_routes(app: FastAPI) -> list[str]:
    """Every route of the app (routers and mounted apps included) that declares no policy, or a
    contradictory one, as "METHODS /path". FastAPI's own documentation routes (/openapi.json,
    /docs, ...) are public by nature and left out."""
    missing: list[str] = []
    for name, context in _route_table(app.routes):
        if _is_documentation(app, "", context):
            continue
        try:
            if route_policy(context) is None:
                missing.append(name)
        except ConflictingPolicies as error:
            missing.append(f"{name} ({error})")
    return missing


# -- error responses in the OpenAPI document ---------------------------------------------------


class ProblemDetails(BaseModel):
    """An error, in the shape of RFC 9457 problem details. `detail` is always there; `type`, `title` and
    `status` when the app renders full problem details."""

    type: str = Field("about:blank", description="A URI reference identifying the kind of problem.")
    title: str | None = Field(None, description="Short summary of the kind of problem.", examples=["Forbidden"])
    status: int | None = Field(None, description="The HTTP status code.", examples=[403])
    detail: str = Field(description="What went wrong with this request.", examples=["this needs one of the roles: advisor"])


class ValidationProblemDetails(BaseModel):
    """Fields that failed validation, as FastAPI reports them."""

    detail: list[dict[str, Any]] = Field(description="One entry per field: its location (`loc`), `msg` and `type`.")


_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": '`Bearer`, or `Bearer error="invalid_token"`.', "schema": {"type": "string"}}
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}

_STANDARD: Mapping[int, dict[str, Any]] = {
    401: {
        "model": ProblemDetails,
        "description": "No bearer token, or one that is not valid (signature, issuer, audience, expiry).",
        "headers": _WWW_AUTHENTICATE,
    },
    403: {"model": ProblemDetails, "description": "The token is valid but carries none of the roles this operation needs."},
    404: {"model": ProblemDetails, "description": "No such resource."},
    409: {"model": ProblemDetails, "description": "The resource's state does not allow this now."},
    422: {"model": ValidationProblemDetails, "description": "The request's fields failed validation."},
    503: {
        "model": ProblemDetails,
        "description": "The identity provider (or another dependency) cannot be reached; try again later.",
        "headers": _RETRY_AFTER,
    },
}

PROTECTED = (401, 403, 503)
"""The answers every protected operation can give, before its own."""


def error_responses(*statuses: int, described: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an operation: the standard error answers `statuses`, with `described` overriding
    the description of some (say 404: "No case with this id.")."""
    unknown = set(statuses) - set(_STANDARD)
    if unknown:
        raise ValueError(f"no standard error response for {sorted(unknown)}; known: {sorted(_STANDARD)}")
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response = dict(_STANDARD[status])
        if described and status in described:
            response["description"] = described[status]
        responses[status] = response
    return responses
