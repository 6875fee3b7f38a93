"""Re-wrap every per-person data key under the current key-encryption key: `python -m services.rekey`.

For a KEK rotation (add the new KEK, make it current, run this, then retire the old one) and to move
raw keys of the old format into the keys database. Only the wrappings change: the data keys stay the
same, so no event, on Kafka or anywhere, is touched. Idempotent and resumable: it only selects keys
not yet under the current KEK. Exits 1 if some keys are wrapped by a KEK the keyring lacks.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from services.keyring import PrivacySettings, load_key_encryption_keys
from services.mongo import create_mongo_client
from services.privacy import PersonKeys, RewrapCounts
from services.settings import MongoSettings

app = typer.Typer(add_completion=False, help=__doc__)


async def rewrap_all(mongo: MongoSettings, privacy: PrivacySettings, *, batch_size: int) -> RewrapCounts:
    client = create_mongo_client(mongo, app_name="formation-events-rekey")
    try:
        keys = PersonKeys(client[mongo.database], settings=privacy, keks=load_key_encryption_keys(privacy))
        return await keys.rewrap(batch_size=batch_size)
    finally:
        await client.close()


@app.command()
def rewrap(batch_size: Annotated[int, typer.Option(min=1, help="Keys read per query.")] = 500) -> None:
    """Re-wrap every data key under the current KEK and print the counts."""
    privacy = PrivacySettings()
    counts = asyncio.run(rewrap_all(MongoSettings(), privacy, batch_size=batch_size))
    typer.echo(
        f"{counts.migrated} migrated from the old format, {counts.rewrapped} re-wrapped, "
        f"{counts.changed_meanwhile} erased or changed meanwhile, {counts.unknown_kek} under an unknown KEK, "
        f"{counts.current} now under the current KEK"
    )
    if counts.unknown_kek:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
