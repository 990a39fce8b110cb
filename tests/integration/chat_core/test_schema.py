"""The store's version stamp, as services starting together see it."""

import asyncio

from chat_core.db import Database, connect
from chat_core.store.schema import CURRENT_VERSION, ensure_current, stored_version


async def test_services_starting_together_on_an_empty_database_all_start(
    db: Database, mongo_url: str
) -> None:
    # Every service stamps an empty database at start, each over its own connection, and a
    # cluster starts several at once.
    clients = [connect(mongo_url) for _ in range(8)]
    try:
        for attempt in range(5):
            await db.meta.delete_many({})
            await asyncio.gather(*(ensure_current(c[db.name]) for c in clients))
            assert await stored_version(db) == CURRENT_VERSION, attempt
            assert await db.meta.count_documents({}) == 1
    finally:
        await asyncio.gather(*(c.close() for c in clients))
