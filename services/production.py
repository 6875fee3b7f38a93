"""Production mode's rules: what a service refuses to start without when `ENVIRONMENT=production`.

Pure functions that return the problems they find (sentences naming the environment variable), so
that settings validation can list every problem at once rather than one per restart. Local defaults
(plain Kafka, http URLs, no signing key) are fine for `local` and `test` runs; in production each
one would be a fail-open default, so each is refused at start.
"""

from __future__ import annotations

import base64
import binascii
import math
import sys
from collections import Counter
from collections.abc import Callable
from typing import Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr, ValidationError

Environment = Literal["local", "test", "production"]

PLACEHOLDERS = frozenset({"replaceme", "changeme", "changeit", "placeholder", "secret", "password", "todo", "xxx"})
"""Values of the repository's templates (deploy/secret.template.yaml's `REPLACE_ME`) and their usual cousins,
compared without case or separators: a copied template never yields a working secret, in any environment."""

MIN_SECRET_BYTES = 32
MIN_SECRET_BITS = 128.0
"""An HMAC secret must be 32 bytes or more whose characters carry, by a rough count, at least this many bits:
`aaaa…` or `abab…` are long enough but guessable. 32 random bytes, hex or base64, carry 200 bits or more."""

MIN_DISTINCT_SEED_BYTES = 16
"""A 32-byte random seed has about 30 distinct byte values; fewer than this is a made-up key (all zeros...)."""


def is_placeholder(value: str) -> bool:
    normalized = "".join(ch for ch in value.lower() if ch.isalnum())
    return normalized in PLACEHOLDERS or "replaceme" in normalized or "changeme" in normalized


def estimated_bits(value: str) -> float:
    """The value's length times the Shannon entropy of its characters: a rough upper bound of its randomness."""
    if not value:
        return 0.0
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return per_char * len(value)


def placeholder_problems(name: str, secret: SecretStr | None) -> list[str]:
    """Every environment: a template's placeholder is not a secret."""
    if secret is not None and is_placeholder(secret.get_secret_value()):
        return [f"{name} is a placeholder from a template; set the real secret"]
    return []


def required_secret_problems(name: str, secret: SecretStr | None) -> list[str]:
    """A secret whose format someone else chose (a password, a provider's token): set and not a placeholder."""
    if secret is None or not secret.get_secret_value().strip():
        return [f"{name} is not set"]
    return placeholder_problems(name, secret)


def hmac_secret_problems(name: str, secret: SecretStr | None, *, required: bool = True) -> list[str]:
    """A shared HMAC secret we ask for: at least 32 bytes, random-looking, not a placeholder."""
    if secret is None or not secret.get_secret_value():
        return [f"{name} is not set (at least {MIN_SECRET_BYTES} random bytes)"] if required else []
    value = secret.get_secret_value()
    if is_placeholder(value):
        return [f"{name} is a placeholder from a template; set the real secret"]
    if len(value.encode()) < MIN_SECRET_BYTES:
        return [f"{name} is shorter than {MIN_SECRET_BYTES} bytes"]
    if estimated_bits(value) < MIN_SECRET_BITS:
        return [f"{name} is not random enough (repeated characters); use e.g. `openssl rand -hex 32`"]
    return []


def ed25519_seed_problems(name: str, seed_b64: SecretStr | None) -> list[str]:
    """A signing key: set, a base64 32-byte seed, not a placeholder nor a made-up pattern."""
    if seed_b64 is None or not seed_b64.get_secret_value().strip():
        return [f"{name} is not set (an Ed25519 seed: `openssl rand -base64 32`)"]
    if is_placeholder(seed_b64.get_secret_value()):
        return [f"{name} is a placeholder from a template; set the real key"]
    try:
        seed = base64.b64decode(seed_b64.get_secret_value().strip(), validate=True)
    except (binascii.Error, ValueError):
        return [f"{name} is not base64"]
    if len(seed) != 32:
        return [f"{name} is not a 32-byte Ed25519 seed"]
    if len(set(seed)) < MIN_DISTINCT_SEED_BYTES:
        return [f"{name} is not random (too few distinct bytes)"]
    return []


def https_problems(name: str, url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return [f"{name} must be an https URL"]
    return []


def mongo_uri_problems(name: str, uri: SecretStr) -> list[str]:
    """MongoDB in production: credentials (or certificate authentication) and TLS, named in the URI.

    `mongodb+srv://` turns TLS on by default; otherwise `tls=true` (or its alias `ssl=true`) must be given."""
    value = uri.get_secret_value()
    if is_placeholder(value):
        return [f"{name} is a placeholder from a template; set the real URI"]
    scheme, _, rest = value.partition("://")
    authority, _, query = rest.partition("?")
    authority = authority.split("/", 1)[0]
    options = {key.lower(): item.lower() for key, item in parse_qsl(query)}
    problems = []
    x509 = options.get("authmechanism") == "mongodb-x509"
    if "@" not in authority and not x509:
        problems.append(f"{name} has no credentials (user:password@ or authMechanism=MONGODB-X509)")
    tls = options.get("tls", options.get("ssl"))
    if tls != "true" and not (scheme == "mongodb+srv" and tls is None):
        problems.append(f"{name} does not turn TLS on (tls=true, or mongodb+srv://)")
    return problems


def refusal(service: str, problems: list[str]) -> str:
    """One message listing every problem, so one restart is enough to see them all."""
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"{service} refuses to start in production (ENVIRONMENT=production):\n{lines}"


SettingsT = TypeVar("SettingsT")


def settings_or_exit(load: Callable[[], SettingsT]) -> SettingsT:
    """`python -m <service>`'s settings, or a readable refusal on stderr and exit status 2, before any connection."""
    try:
        return load()
    except ValidationError as error:
        lines = []
        for item in error.errors(include_url=False, include_input=False):
            message = str(item["msg"]).removeprefix("Value error, ")
            where = ".".join(str(part) for part in item["loc"])
            lines.append(f"{where}: {message}" if where else message)
        sys.stderr.write(f"invalid settings ({error.title}):\n" + "\n".join(lines) + "\n")
        raise SystemExit(2) from None
