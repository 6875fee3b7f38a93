"""The MongoDB side of the service defaults: one `AsyncMongoClient` per process (PyMongo's async API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from services.settings import MongoSettings


def create_mongo_client(
    settings: MongoSettings, *, app_name: str, event_listeners: Sequence[monitoring.CommandListener] = ()
) -> AsyncMongoClient[dict[str, Any]]:
    """Build the client; PyMongo connects lazily, so this does no I/O."""
    return AsyncMongoClient(
        settings.uri.get_secret_value(),
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
        # Majority writes and reads: an acknowledged effect survives a primary change.
        w="majority",
        retryWrites=True,
        event_listeners=list(event_listeners),
    )


async def ping(client: AsyncMongoClient[Any]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    return True


MongoDatabase = AsyncDatabase[dict[str, Any]]
