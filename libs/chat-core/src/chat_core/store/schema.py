"""Which shape of data a database holds, so a service never runs on data it misreads.

`meta`, `_id` "schema": {version}. Version 2 is the seq-ordered store (timeline, messages by
id, read positions by seq); version 3 derives a message's id from its idempotency key, so
the key's claim and the by-id copy are one document (aliases keep version 2's keys). An
empty database is stamped current at start; one written by an earlier version (version 1:
no stamp, but conversations) must be migrated first: `chat-admin migrate`.
"""

from chat_core.clock import utcnow
from chat_core.db import Database, upsert_by_id

CURRENT_VERSION = 3
_SCHEMA = "schema"


class SchemaMismatch(RuntimeError):
    pass


async def stored_version(db: Database) -> int | None:
    """The stamped version; 1 for an unstamped database with data; None when empty."""
    doc = await db.meta.find_one({"_id": _SCHEMA})
    if doc is not None:
        version: int = doc["version"]
        return version
    if await db.conversations.find_one({}, {"_id": 1}) is not None:
        return 1
    return None


async def stamp(db: Database, version: int = CURRENT_VERSION) -> None:
    # Services starting together on an empty database race to create it.
    await upsert_by_id(db.meta, _SCHEMA, {"$set": {"version": version, "stampedAt": utcnow()}})


async def ensure_current(db: Database) -> None:
    """Stamp an empty database; refuse one in another shape, saying what to do."""
    version = await stored_version(db)
    if version is None:
        await stamp(db)
    elif version < CURRENT_VERSION:
        raise SchemaMismatch(
            f"database {db.name!r} holds data of store version {version}; this release needs "
            f"version {CURRENT_VERSION}: run `uv run chat-admin migrate` first "
            "(docs/message-store.md, 'Upgrading')"
        )
    elif version > CURRENT_VERSION:
        raise SchemaMismatch(
            f"database {db.name!r} was written by a newer release (store version {version}); "
            f"this one understands version {CURRENT_VERSION}"
        )
