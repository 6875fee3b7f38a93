"""Access control shared by every service: OIDC access tokens verified, and each HTTP route's policy.

`TokenVerifier` turns a bearer token into a `Principal` (or refuses it); `requires(*roles)` and
`public(reason)` are the FastAPI dependencies routes declare their policy with; `undeclared_routes(app)`
lists the routes that declared none.
"""

from services.auth.access import (
    PROTECTED,
    SCHEME_NAME,
    AllOf,
    ConflictingPolicies,
    Policy,
    ProblemDetails,
    Public,
    RolesRequired,
    ValidationProblemDetails,
    bearer_token,
    declare_policy,
    declared_policies,
    describe_identity_provider,
    error_responses,
    get_token_verifier,
    public,
    requires,
    requires_signed_in,
    route_policy,
    undeclared_routes,
)
from services.auth.errors import AuthError, IdentityProviderUnavailable, InvalidToken
from services.auth.tokens import Principal, TokenVerifier

__all__ = [
    # verifying tokens
    "Principal",
    "TokenVerifier",
    "AuthError",
    "InvalidToken",
    "IdentityProviderUnavailable",
    # declaring and reading policies
    "Policy",
    "Public",
    "RolesRequired",
    "AllOf",
    "ConflictingPolicies",
    "requires",
    "requires_signed_in",
    "public",
    "declare_policy",
    "route_policy",
    "declared_policies",
    "undeclared_routes",
    "get_token_verifier",
    "bearer_token",
    "SCHEME_NAME",
    "describe_identity_provider",
    # documenting errors
    "error_responses",
    "PROTECTED",
    "ProblemDetails",
    "ValidationProblemDetails",
]
