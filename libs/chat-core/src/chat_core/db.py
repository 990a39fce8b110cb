"""MongoDB access through PyMongo's async client, and the indexes every service relies on.

Only the subset MongoDB and FerretDB share is used: see docs/mongodb-compatibility.md.
"""

from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

Document = dict[str, Any]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]


def connect(url: str) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5_000, connectTimeoutMS=5_000, appname="chat"
    )


async def is_reachable(db: Database) -> bool:
    try:
        await db.command("ping")
    except PyMongoError:
        return False
    return True


# Full (not partial) unique index: FerretDB has no partial indexes, so every message carries a
# clientMessageId, generated when the client sends none.
INDEXES: dict[str, list[IndexModel]] = {
    "messages": [
        IndexModel(
            [
                ("conversationId", ASCENDING),
                ("senderId", ASCENDING),
                ("clientMessageId", ASCENDING),
            ],
            unique=True,
            name="idempotent_send",
        ),
        IndexModel([("conversationId", ASCENDING), ("_id", DESCENDING)], name="history"),
    ],
    "memberships": [IndexModel([("userId", ASCENDING)], name="by_user")],
    "presence": [IndexModel([("online", ASCENDING)], name="online")],
}


async def ensure_indexes(db: Database) -> None:
    for collection, models in INDEXES.items():
        existing = {index["name"] async for index in await db[collection].list_indexes()}
        for model in models:
            # One index per command, and only missing ones: FerretDB v1.24 drops the connection
            # (a server-side panic) on a createIndexes naming several indexes that exist.
            if model.document["name"] not in existing:
                await db[collection].create_indexes([model])
