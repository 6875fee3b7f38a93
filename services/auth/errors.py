"""Why a token was not turned into a principal. The tree, and the HTTP answer each one gets:

    AuthError
    ├── InvalidToken                  401: missing parts, bad signature, wrong iss/aud, expired, unknown key...
    └── IdentityProviderUnavailable   503: discovery or keys could not be fetched, so nobody can tell

A refused role is not an error of the token: the access dependency answers 403 itself.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of the errors `TokenVerifier.verify` raises."""


class InvalidToken(AuthError):
    """The token is not one this service accepts. The message is safe to log; it never holds the token."""


class IdentityProviderUnavailable(AuthError):
    """The provider's discovery document or keys could not be fetched or read: not the caller's fault."""
