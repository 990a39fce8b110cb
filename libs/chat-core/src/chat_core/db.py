"""MongoDB access through PyMongo's async client, and the indexes every service relies on.

Only the subset MongoDB and FerretDB share is used: see docs/mongodb-compatibility.md.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure, PyMongoError

from chat_core.metrics import timed_db

log = structlog.get_logger(__name__)

Document = dict[str, Any]
NAMESPACE_EXISTS = 48
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]


def connect(url: str, *, max_pool_size: int = 32) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        url,
        tz_aware=True,
        maxPoolSize=max_pool_size,
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
        appname="chat",
    )


async def is_reachable(db: Database) -> bool:
    try:
        await db.command("ping")
    except PyMongoError:
        return False
    return True


INDEXES: dict[str, list[IndexModel]] = {
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


async def upsert_by_id(collection: Collection, doc_id: str, update: Document) -> None:
    """`update` the document, creating it if missing. Writers racing to create it (FerretDB's
    upsert is a read, then an insert) lose with a duplicate key: it exists now, so update it."""
    try:
        await collection.update_one({"_id": doc_id}, update, upsert=True)
    except DuplicateKeyError:
        await collection.update_one({"_id": doc_id}, update)


async def is_ferretdb(db: Database) -> bool:
    """FerretDB answers buildInfo as MongoDB 7 does, plus its own `ferretdbVersion`."""
    info = await db.command("buildInfo")
    return "ferretdbVersion" in info


async def scans_conditions(collection: Collection) -> bool:
    """Whether a filter of `_id` and another condition makes the server scan `collection`.

    MongoDB: never (the `_id` index). FerretDB v1.24 pushes `_id` down to SQLite only when it
    is the filter's one key; devdb (tools/devdb/build.sh) pushes it down from any filter, and
    says so in its explain output (`filterPushdown`), which is what is asked here.
    """
    if not await is_ferretdb(collection.database):
        return False
    return not await _pushed_down(collection, {"_id": "probe", "probe": 1})


async def _pushed_down(collection: Collection, query: Document) -> bool:
    """FerretDB's explain: whether `query` reaches SQLite as a WHERE clause."""
    try:
        # Explain answers nothing useful about a collection that does not exist yet.
        await collection.database.create_collection(collection.name)
    except CollectionInvalid:
        pass
    except OperationFailure as error:
        if error.code != NAMESPACE_EXISTS:  # created by someone else since the check
            raise
    plan = await collection.database.command("explain", {"find": collection.name, "filter": query})
    return bool(plan.get("filterPushdown", False))


async def pushes_down_id_in(collection: Collection) -> bool:
    """Whether `{_id: {$in: [...]}}` finds its documents through the `_id` index.

    MongoDB: always. Stock FerretDB v1 scans the collection for `$in`; devdb pushes it down
    as `_id IN (...)` (tools/devdb/build.sh's third fix) and says so in explain.
    """
    if not await is_ferretdb(collection.database):
        return True
    return await _pushed_down(collection, {"_id": {"$in": ["probe-a", "probe-b"]}})


async def pushes_down_id_prefix(collection: Collection) -> bool:
    """Whether `{_id: {$gte: "o:", $lt: "o;"}}` (every `_id` starting "o:") is a range of
    the `_id` index. MongoDB: always. devdb pushes it down (tools/devdb/build.sh's fourth fix)
    and says so in explain; a stock FerretDB scans the collection."""
    if not await is_ferretdb(collection.database):
        return True
    return await _pushed_down(collection, {"_id": {"$gte": "o:", "$lt": "o;"}})


class ServerTrait:
    """A yes/no about the server, asked on first use (once, for all callers) and remembered.

    A failed ask answers `fallback`, the choice that is correct on any server, and is asked
    again next time.
    """

    def __init__(
        self, ask: Callable[[], Awaitable[bool]], *, known: bool | None, fallback: bool
    ) -> None:
        self._ask = ask
        self._value = known
        self._fallback = fallback
        self._asking = asyncio.Lock()

    async def __call__(self) -> bool:
        if self._value is not None:
            return self._value
        async with self._asking:
            if self._value is None:
                try:
                    self._value = await self._ask()
                except PyMongoError:
                    log.warning("could not ask the server how it filters", fallback=self._fallback)
                    return self._fallback
            return self._value


class IdLookups:
    """Many documents of one collection by `_id`, in as few commands as the server allows.

    A page of history, the chat list and a resume each need tens of documents whose ids are
    known. Where `$in` on `_id` uses the index they come in one command per `batch` ids (a
    page of 20 messages: 2 ms instead of 9-14 ms for 20 concurrent lookups, measured on
    devdb); elsewhere each id is its own lookup, at most `concurrency` in flight.
    """

    def __init__(
        self,
        collection: Collection,
        *,
        batch: int = 500,
        concurrency: int = 32,
        in_pushed_down: bool | None = None,
    ) -> None:
        self._collection = collection
        self._batch = batch
        self._gate = asyncio.Semaphore(concurrency)
        # None: ask the server. Unknown, one lookup per id: cheap on every server.
        self._uses_in = ServerTrait(
            lambda: pushes_down_id_in(collection), known=in_pushed_down, fallback=False
        )

    async def one(self, doc_id: str, projection: Document | None = None) -> Document | None:
        async with self._gate:
            with timed_db("find"):
                return await self._collection.find_one({"_id": doc_id}, projection)

    async def many(
        self, ids: Iterable[str], projection: Document | None = None
    ) -> dict[str, Document]:
        """The documents that exist, by `_id` (missing ids are absent from the answer)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        if len(wanted) == 1:
            doc = await self.one(wanted[0], projection)
            return {doc["_id"]: doc} if doc else {}
        if await self._uses_in():
            chunks = [wanted[i : i + self._batch] for i in range(0, len(wanted), self._batch)]
            found = await asyncio.gather(*(self._in(chunk, projection) for chunk in chunks))
            return {doc["_id"]: doc for docs in found for doc in docs}
        singles = await asyncio.gather(*(self.one(doc_id, projection) for doc_id in wanted))
        return {doc["_id"]: doc for doc in singles if doc is not None}

    async def _in(self, ids: list[str], projection: Document | None) -> list[Document]:
        async with self._gate:
            with timed_db("find"):
                cursor = self._collection.find({"_id": {"$in": ids}}, projection)
                return await cursor.to_list(None)


class DocumentWrites:
    """Conditional writes to one document that stay `_id` lookups on every server.

    MongoDB checks `{_id, <condition>}` atomically through the `_id` index, and so does devdb
    with one command. Stock FerretDB v1 pushes only a lone `_id` equality down to SQLite and
    scans the whole collection for any other filter, and its conditional writes are
    read-then-write anyway. There the document is read by `_id` and the condition checked
    here: O(1) in two commands, and no less atomic than FerretDB's own. Callers serialise
    writes to one document within a process either way.
    """

    def __init__(self, collection: Collection, *, read_first: bool | None = None) -> None:
        self._collection = collection
        # None: ask the server. Unknown, read first: correct on every server.
        self._reads_first = ServerTrait(
            lambda: scans_conditions(collection), known=read_first, fallback=True
        )

    async def replace_if(
        self,
        doc_id: str,
        condition: Document,
        holds: Callable[[Document], bool],
        replacement: Document,
    ) -> bool:
        """Replace the document if it exists and `condition` (as a filter, and as `holds`)
        matches it; False otherwise."""
        if await self._reads_first():
            current = await self._collection.find_one({"_id": doc_id})
            if current is None or not holds(current):
                return False
            result = await self._collection.replace_one({"_id": doc_id}, replacement)
        else:
            result = await self._collection.replace_one({"_id": doc_id, **condition}, replacement)
        return result.matched_count == 1

    async def update_if(
        self,
        doc_id: str,
        condition: Document,
        holds: Callable[[Document], bool],
        update: Document,
        *,
        upsert: bool = False,
    ) -> bool:
        """Apply `update` if the document matches `condition` (or, with `upsert`, does not
        exist yet); whether it was applied."""
        if await self._reads_first():
            current = await self._collection.find_one({"_id": doc_id})
            if current is None:
                if not upsert:
                    return False
                try:
                    await self._collection.update_one({"_id": doc_id}, update, upsert=True)
                except DuplicateKeyError:
                    return False
                return True
            if not holds(current):
                return False
            result = await self._collection.update_one({"_id": doc_id}, update)
            return result.matched_count == 1
        try:
            result = await self._collection.update_one(
                {"_id": doc_id, **condition}, update, upsert=upsert
            )
        except DuplicateKeyError:
            # The document exists and the condition missed it (or another writer created it
            # a moment ago): check the condition once more without creating anything.
            result = await self._collection.update_one({"_id": doc_id, **condition}, update)
            return result.matched_count == 1
        return result.matched_count == 1 or result.upserted_id is not None
