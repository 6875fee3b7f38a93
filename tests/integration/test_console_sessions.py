"""The console's session store, real and fake, held to one contract: a session is found by its id until
it expires, never by anything else, and is kept under a hash of its id (a copy of the collection lets no
one ride a session)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.console import ConsoleSession, InMemorySessions, MongoSessions, SessionStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "mongo"])
async def store(request: pytest.FixtureRequest, mongo_db: Any) -> SessionStore:
    if request.param == "memory":
        return InMemorySessions()
    sessions = MongoSessions(mongo_db)
    await sessions.ensure_indexes()
    return sessions


async def test_a_session_is_found_by_its_id_until_it_expires(store: SessionStore) -> None:
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
    pending = ConsoleSession(csrf="c", expires_at=now + timedelta(minutes=10), state="s", verifier="v", return_to="/console/nl/")
    await store.save("id-1", pending)
    assert await store.find("id-1", now) == pending
    assert await store.find("id-2", now) is None
    assert await store.find("id-1", now + timedelta(minutes=11)) is None

    signed_in = pending.signed_in_with("access", "id-token", now + timedelta(minutes=5))
    await store.save("id-1", signed_in)
    found = await store.find("id-1", now)
    assert found == signed_in and found is not None and found.signed_in and found.verifier is None
    assert found.csrf != pending.csrf

    await store.delete("id-1")
    assert await store.find("id-1", now) is None


async def test_mongo_keeps_a_hash_of_the_id_and_lets_the_ttl_index_expire_sessions(mongo_db: Any) -> None:
    sessions = MongoSessions(mongo_db)
    await sessions.ensure_indexes()
    await sessions.save("secret-id", ConsoleSession(csrf="c", expires_at=datetime.now(UTC) + timedelta(minutes=1)))
    stored = await mongo_db["console_sessions"].find_one({})
    assert stored["_id"] == hashlib.sha256(b"secret-id").hexdigest()
    indexes = await mongo_db["console_sessions"].index_information()
    assert any(index.get("expireAfterSeconds") == 0 for index in indexes.values())
