"""Every app, protected routes included, fuzzed by schemathesis with a signed-in caller: whatever is
sent, no 5xx, and the token is always accepted (never a 401).

Each app is built by its own `create_app` and served by uvicorn on a free port, with its lifespan (real
Kafka and MongoDB, topics and a database of this run). Tokens come from the in-memory identity provider
(`tests.identity_provider.SignIn`, installed in place of Keycloak): it makes every run the same, whatever
the time and whether or not Keycloak is up, and the access matrix already walks the real Keycloak's.
The caller holds every realm role, so each operation is reached past the door.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from services.kafka import use_topic_prefix
from services.settings import KafkaSettings, MongoSettings
from tests.conftest import KAFKA_BOOTSTRAP, MONGODB_URI, drop_database
from tests.identity_provider import SignIn
from tests.realm import ROLES
from tests.service_apps import every_app

pytestmark = [
    pytest.mark.integration,
    # The served apps' threads (Kafka clients, retries with jitter) use `random` while Hypothesis draws a
    # case; Hypothesis takes that for a strategy using `random`. The cases themselves use none.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

SIGN_IN = SignIn()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Served:
    """An app served by uvicorn in a thread of its own (its own event loop, its lifespan run)."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 180
        while not self.server.started:
            assert self.thread.is_alive(), "the app did not start"
            assert time.monotonic() < deadline, "the app did not start in time"
            time.sleep(0.1)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, Served]]:
    database = f"test_fuzz_{uuid.uuid4().hex[:10]}"
    kafka = KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP, topic_prefix=f"{database}.")
    mongo = MongoSettings(uri=SecretStr(MONGODB_URI), database=database)
    apps = every_app(kafka=kafka, mongo=mongo, instance_id=database)
    running: dict[str, Served] = {}
    try:
        for name, app in apps.items():
            # A verifier per app: each is served on an event loop of its own. The tokens of SIGN_IN are
            # signed with the same key, so every app accepts them.
            running[name] = Served(SignIn().install(app)).__enter__()
        yield running
    finally:
        for server in running.values():
            server.__exit__()
        use_topic_prefix("")
        drop_database(database)  # and the topics named after it


# The documents are read from apps built without I/O (as `create_app` promises); the same apps, built again
# with this run's database and topics, are the ones served.
SCHEMAS = {name: schemathesis.openapi.from_dict(app.openapi()) for name, app in every_app().items()}


def signed_in(subject: str = "adv-1") -> dict[str, str]:
    return SIGN_IN.as_roles(*sorted(ROLES), subject=subject)


def fuzz(name: str, case: schemathesis.Case[Any], served: dict[str, Served]) -> None:
    response = case.call(base_url=served[name].url, headers=signed_in(), timeout=60)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    # A 401 of the phone webhooks is their HMAC signature's; a token's refusal says `WWW-Authenticate: Bearer`.
    refused = response.status_code == 401 and "bearer" in response.headers.get("www-authenticate", [""])[0].lower()
    assert not refused, f"{case.method} {case.formatted_path}: a valid token was refused"


FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


@SCHEMAS["intake"].parametrize()
@FUZZ
def test_intake_public_app_answers_no_5xx(case: schemathesis.Case[Any], served: dict[str, Served]) -> None:
    fuzz("intake", case, served)


@SCHEMAS["intake-privacy"].parametrize()
@FUZZ
def test_intake_privacy_surface_answers_no_5xx_to_a_dpo(case: schemathesis.Case[Any], served: dict[str, Served]) -> None:
    fuzz("intake-privacy", case, served)


@SCHEMAS["routing"].parametrize()
@FUZZ
def test_routing_answers_no_5xx_signed_in(case: schemathesis.Case[Any], served: dict[str, Served]) -> None:
    fuzz("routing", case, served)


@SCHEMAS["notification"].parametrize()
@FUZZ
def test_notification_answers_no_5xx_signed_in(case: schemathesis.Case[Any], served: dict[str, Served]) -> None:
    fuzz("notification", case, served)


@SCHEMAS["certification"].parametrize()
@FUZZ
def test_certification_answers_no_5xx_signed_in(case: schemathesis.Case[Any], served: dict[str, Served]) -> None:
    fuzz("certification", case, served)
