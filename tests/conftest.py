"""Fixtures shared by every tier: where the real Kafka broker and mongod are, and fresh names."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from scripts.launch import LOCAL_PRINCIPAL, kafka_bootstrap, kafka_client, kafka_env, mongodb_uri
from scripts.principals import TESTS
from scripts.tokens import Tokens
from services.settings import AuthSettings, KafkaSettings, MongoSettings

# On scripts/infra.sh's servers the suite authenticates as `tests`, their super user: its per-run
# topic prefixes are beyond any service's ACLs. Set in the environment, so that every KafkaSettings
# of this process and the services it starts (scripts.launch) use it.
os.environ.setdefault(LOCAL_PRINCIPAL, TESTS)
os.environ.update(kafka_env())

# KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI if set, else the servers of scripts/infra.sh, whose ports
# KAFKA_PORT / MONGO_PORT move (the fault tests, which stop and start those, then still run).
KAFKA_BOOTSTRAP = kafka_bootstrap()
MONGODB_URI = mongodb_uri(TESTS)
KAFKA_CLIENT = kafka_client(TESTS)
"""Keywords of a raw aiokafka client (bootstrap, SASL) of the suite's broker: `AIOKafkaConsumer(**KAFKA_CLIENT)`."""


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def run(tmp_path: Any) -> Any:
    """Services started as processes in a database and topics of their own (tests.processes.Run)."""
    from tests.processes import Run

    started = Run(tmp_path, ROUTING_DISPATCH_INTERVAL="PT0.2S", ROUTING_TIMER_POLL_INTERVAL="PT0.2S")
    yield started
    started.close()


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    """Access tokens of the local realm's demo users, from the real Keycloak (scripts.tokens.Tokens)."""
    return Tokens()


@pytest.fixture
def kafka_settings() -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP)


@pytest.fixture
def mongo_settings(unique: str) -> MongoSettings:
    """A database of its own for each test, dropped afterwards by `mongo_db`."""
    return MongoSettings(uri=SecretStr(MONGODB_URI), database=f"test_{unique}")


@pytest.fixture
async def mongo_client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URI, tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
async def mongo_db(mongo_client: AsyncMongoClient[dict[str, Any]], mongo_settings: MongoSettings) -> AsyncIterator[Any]:
    db = mongo_client[mongo_settings.database]
    yield db
    await mongo_client.drop_database(mongo_settings.database)
    # The per-person keys live beside it, in `<database>_keys` (services.privacy.PersonKeys).
    await mongo_client.drop_database(f"{mongo_settings.database}_keys")


def drop_database(name: str) -> None:
    """For fixtures that run services in their own database and topics: leave nothing behind.

    The topics are those named `<name>.` + a declared topic (`KAFKA_TOPIC_PREFIX`)."""
    import asyncio
    import threading

    from pymongo import MongoClient

    from services.kafka import delete_topics_with_prefix

    client: MongoClient[dict[str, Any]]
    with MongoClient(MONGODB_URI) as client:
        client.drop_database(name)
        client.drop_database(f"{name}_keys")
    # A thread of its own: this may run while the test session's event loop is alive.
    worker = threading.Thread(
        target=lambda: asyncio.run(delete_topics_with_prefix(KafkaSettings(bootstrap_servers=KAFKA_BOOTSTRAP), f"{name}."))
    )
    worker.start()
    worker.join(timeout=60)


def require_identity_provider(issuer: str | None = None) -> dict[str, Any]:
    """The identity provider's discovery document. Without a provider the test is skipped, unless
    KEYCLOAK_REQUIRED says one must be there (`make test` sets it, since `make up` started Keycloak)."""
    url = AuthSettings(issuer=issuer).discovery_url if issuer else AuthSettings().discovery_url
    try:
        response = httpx.get(url, timeout=5.0)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as error:
        if os.environ.get("KEYCLOAK_REQUIRED"):
            pytest.fail(f"KEYCLOAK_REQUIRED is set but {url} cannot be fetched: {error}")
        pytest.skip(f"Keycloak is not running ({url}: {type(error).__name__}); `scripts/infra.sh start-keycloak` starts it")
    return document


class Figures:
    """What a test measured or told, printed at the end of the run (`make test` shows it without `-s`):
    `figures.record("seat offers", "held+booked never above seats ...")`. Recorded after the test's
    assertions, so a figure shown is one the test checked."""

    recorded: ClassVar[list[tuple[str, str, str]]] = []

    def __init__(self, test: str) -> None:
        self.test = test

    def record(self, title: str, text: str) -> None:
        print(f"{title}: {text}")
        self.recorded.append((self.test, title, text))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.node.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not Figures.recorded:
        return
    terminalreporter.section("figures and stories the tests checked")
    for test, title, text in Figures.recorded:
        terminalreporter.write_line(f"{title} ({test.split('::')[-1]}):")
        for line in text.splitlines():
            terminalreporter.write_line(f"  {line}")
