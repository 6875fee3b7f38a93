"""A minimal channel adapter: signs in with client credentials, submits one training request to
intake's adapter API, retries safely, and prints the request id.

    ADAPTER_CLIENT_SECRET=... python docs/adapters/example_adapter.py docs/adapters/examples/requests/phone.json

Environment: INTAKE_URL (http://127.0.0.1:8001), OIDC_ISSUER (http://127.0.0.1:8180/realms/formation),
ADAPTER_CLIENT_ID (example-channel-adapter), ADAPTER_CLIENT_SECRET (required: no default).
Exit status 0 once stored, 1 when refused (fix the request), 2 when intake stayed unavailable.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

import httpx

ATTEMPTS = 6


def token(http: httpx.Client, issuer: str, client_id: str, secret: str) -> str:
    """An access token of the adapter's own client (OAuth 2.0 client credentials grant)."""
    endpoint = http.get(f"{issuer}/.well-known/openid-configuration").raise_for_status().json()["token_endpoint"]
    grant = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return str(http.post(endpoint, data=grant).raise_for_status().json()["access_token"])


def submit(request: dict[str, object]) -> int:
    intake = os.environ.get("INTAKE_URL", "http://127.0.0.1:8001").rstrip("/")
    issuer = os.environ.get("OIDC_ISSUER", "http://127.0.0.1:8180/realms/formation").rstrip("/")
    client_id = os.environ.get("ADAPTER_CLIENT_ID", "example-channel-adapter")
    secret = os.environ["ADAPTER_CLIENT_SECRET"]
    # One key for every attempt at this request: a retry after a lost answer is then stored once.
    key = str(request.get("reference") or uuid.uuid4())
    with httpx.Client(timeout=30) as http:
        bearer = token(http, issuer, client_id, secret)
        for attempt in range(ATTEMPTS):
            try:
                answer = http.post(
                    f"{intake}/adapters/v1/requests",
                    json=request,
                    headers={"Authorization": f"Bearer {bearer}", "Idempotency-Key": key, "Accept-Language": "en"},
                )
            except httpx.TransportError as error:  # no answer: the request may or may not be stored; the key decides
                print(f"attempt {attempt + 1}: {type(error).__name__}, retrying", file=sys.stderr)
                time.sleep(2**attempt)
                continue
            if answer.status_code in (200, 202):
                print(answer.json()["request_id"])
                return 0
            if answer.status_code == 401:  # the token expired: a new one, then the same request again
                bearer = token(http, issuer, client_id, secret)
            elif answer.status_code == 429 or answer.status_code >= 500:
                time.sleep(min(float(answer.headers.get("Retry-After", 2**attempt)), 60))
            else:  # 400, 403, 413, 415, 422: retrying the same request cannot succeed
                print(f"refused ({answer.status_code}): {answer.text}", file=sys.stderr)
                return 1
    print("intake stayed unavailable; try again later with the same Idempotency-Key", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(submit(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
