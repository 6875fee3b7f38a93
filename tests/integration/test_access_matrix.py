"""The enforcement matrix against the real Keycloak: every route of every service, walked from the apps'
own route tables, called without a token and as each demo user of the realm.

Each app runs in-process with its lifespan (real Kafka and MongoDB, topics and a database of its own),
so its `TokenVerifier` fetches the realm's keys like a deployed service. A route declared for some roles
must answer 401 without a token, 403 to a user with none of them, and neither (nor a 5xx) to a user with
one: past the door the request may still be a 404 or a 422, which is the handler's business. The browser
console's pages (`/console/...`) carry the user's token in a server-side session instead of a header: a
user gets one made with the same token (and its forms the session's CSRF token), and without one the
answer is a redirect to sign in (303), not 401. The matrix is printed, route by route, with the status
each user got."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from scripts.tokens import Tokens
from services.auth import Public, RolesRequired, declared_policies
from services.console import ConsoleSession
from services.console.sessions import new_secret
from services.kafka import delete_topics_with_prefix, use_topic_prefix
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import require_identity_provider
from tests.realm import DEMO_USERS
from tests.service_apps import every_app

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(os.environ.get("OIDC_ISSUER")), reason="OIDC_ISSUER names a provider without the demo users"),
]

USERS = sorted(DEMO_USERS)
ANONYMOUS = "-"


@pytest.fixture(scope="module")
def tokens() -> Tokens:
    require_identity_provider()
    return Tokens()


@pytest.fixture
async def apps(
    unique: str, kafka_settings: KafkaSettings, mongo_settings: MongoSettings, mongo_db: Any
) -> AsyncIterator[dict[str, FastAPI]]:
    prefix = f"test_access_{unique}."
    built = every_app(
        kafka=kafka_settings.model_copy(update={"topic_prefix": prefix}), mongo=mongo_settings, instance_id=f"access-{unique}"
    )
    try:
        async with AsyncExitStack() as stack:
            for app in built.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield built
    finally:
        use_topic_prefix("")
        await delete_topics_with_prefix(kafka_settings, prefix)


def concrete(path: str, user: str) -> str:
    """A path to call: a worker is the caller themself (so an advisor reaches their own queue), a
    language is `fr`, anything else an id nobody has."""
    path = path.replace("{worker_id}", user if user != ANONYMOUS else "adv-1").replace("{lang}", "fr")
    return re.sub(r"\{[^}]+\}", "matrix-none", path)


def console_page(route: str, policy: Any) -> bool:
    """A console page, entered with a session cookie rather than a bearer token."""
    return route.split(" ", 1)[1].startswith("/console/") and isinstance(policy, RolesRequired)


async def console_session(app: FastAPI, user: str, tokens: Tokens) -> tuple[str, str]:
    """A signed-in console session of `user` holding their access token, as the sign-in would make it:
    (the cookie's session id, its CSRF token)."""
    console = app.state.runtime.app_state["console"]
    session_id = new_secret()
    session = ConsoleSession(csrf=new_secret(), expires_at=datetime.now(UTC) + timedelta(minutes=5))
    await console.sessions.save(session_id, session.signed_in_with(tokens.token(user), None, session.expires_at))
    signed_in = await console.sessions.find(session_id, datetime.now(UTC))
    return session_id, signed_in.csrf


async def call(http: httpx.AsyncClient, route: str, user: str, tokens: Tokens, *, app: FastAPI, session: bool) -> int:
    methods, path = route.split(" ", 1)
    method = "GET" if "GET" in methods.split(",") else methods.split(",")[0]
    with_body = method in {"POST", "PUT", "PATCH"}
    if session:
        cookie, csrf = await console_session(app, user, tokens) if user != ANONYMOUS else ("none", "none")
        # Each service's console names its own cookie (routing's, certification's).
        named = app.state.runtime.app_state["console"].cookie
        response = await http.request(
            method, concrete(path, user), headers={"Cookie": f"{named}={cookie}"}, data={"csrf": csrf} if with_body else None
        )
        return response.status_code
    headers = tokens.headers(user) if user != ANONYMOUS else {}
    body: dict[str, Any] | None = {} if with_body else None
    response = await http.request(method, concrete(path, user), headers=headers, json=body)
    return response.status_code


def expected(policy: Any, user: str, *, session: bool = False) -> str:
    """What the policy promises `user`: 401 (303 to sign in for a console page), 403, `in` (past the door) or `open`."""
    if isinstance(policy, Public):
        return "open"
    assert isinstance(policy, RolesRequired), policy
    if user == ANONYMOUS:
        return "303" if session else "401"
    return "in" if DEMO_USERS[user] & policy.roles else "403"


def holds(promise: str, status: int) -> bool:
    if promise == "open":
        return status != 403
    if promise == "in":
        # A console page that sends the user to sign in did not let them past the door either.
        return status not in {303, 401, 403} and status < 500
    return status == int(promise)


async def test_every_route_answers_each_user_as_declared(apps: dict[str, FastAPI], tokens: Tokens) -> None:
    lines = [f"{'service':<15} {'route':<52} {'policy':<34} " + " ".join(f"{u:>7}" for u in [ANONYMOUS, *USERS])]
    broken: list[str] = []
    tried = 0
    for service, app in apps.items():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}.test", timeout=30) as http:
            for route, policy in sorted(declared_policies(app).items(), key=lambda item: item[0].split(" ", 1)[1]):
                assert policy is not None, f"{service} {route} declares no policy"
                assert isinstance(policy, Public | RolesRequired), f"{service} {route}: {policy}"
                label = f"public: {policy.reason[:26]}" if isinstance(policy, Public) else ",".join(sorted(policy.roles))
                cells = []
                session = console_page(route, policy)
                for user in [ANONYMOUS, *USERS]:
                    status = await call(http, route, user, tokens, app=app, session=session)
                    tried += 1
                    promise = expected(policy, user, session=session)
                    ok = holds(promise, status)
                    cells.append(f"{status:>6}{' ' if ok else '!'}")
                    if not ok:
                        broken.append(f"{service} {route} as {user}: {status}, declared {promise}")
                lines.append(f"{service:<15} {route:<52} {label[:34]:<34} " + " ".join(cells))
    print("\n\nAccess enforcement matrix (status per user; ! = not as declared)\n" + "\n".join(lines))
    print(f"{tried} requests, {len(lines) - 1} routes, {len(broken)} not as declared")
    assert broken == []


async def test_a_worker_sees_only_their_own_queue_and_a_supervisor_any(apps: dict[str, FastAPI], tokens: Tokens) -> None:
    transport = httpx.ASGITransport(app=apps["routing"])
    async with httpx.AsyncClient(transport=transport, base_url="http://routing.test", timeout=30) as http:
        own = await http.get("/desk/workers/adv-1/queue", headers=tokens.headers("adv-1"))
        other = await http.get("/desk/workers/adv-2/queue", headers=tokens.headers("adv-1"))
        supervised = await http.get("/desk/workers/adv-2/queue", headers=tokens.headers("adv-sup"))
    assert (own.status_code, other.status_code, supervised.status_code) == (200, 403, 200)
