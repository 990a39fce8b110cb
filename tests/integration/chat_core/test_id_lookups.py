"""Many documents by `_id`: batched with `$in` where the server pushes it down, one lookup per
id elsewhere, with the same answer either way."""

from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, monitoring

from chat_core.db import Database, Document, IdLookups, pushes_down_id_in, pushes_down_id_prefix


@pytest.fixture(params=[True, False], ids=["in", "one-per-id"])
def batched(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


async def test_many_returns_the_existing_documents_by_id(db: Database, batched: bool) -> None:
    await db.things.insert_many([{"_id": f"t{i}", "n": i, "other": "x"} for i in range(10)])
    lookups = IdLookups(db.things, batch=3, in_pushed_down=batched)

    found = await lookups.many(["t7", "t1", "missing", "t7", "t4", "t9", "t0"])

    assert found == {f"t{i}": {"_id": f"t{i}", "n": i, "other": "x"} for i in (0, 1, 4, 7, 9)}
    assert await lookups.many([]) == {}
    assert await lookups.many(["t2"], {"n": 1}) == {"t2": {"_id": "t2", "n": 2}}
    projected = await lookups.many([f"t{i}" for i in range(10)], {"n": 1})
    assert projected == {f"t{i}": {"_id": f"t{i}", "n": i} for i in range(10)}
    assert await lookups.one("t3") == {"_id": "t3", "n": 3, "other": "x"}
    assert await lookups.one("missing") is None


class _Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.filters: list[Document] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.filters.append(event.command["filter"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def watched(db: Database, mongo_url: str) -> AsyncIterator[tuple[Database, _Finds]]:
    finds = _Finds()
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, event_listeners=[finds])
    yield client[db.name], finds
    await client.close()


async def test_a_page_of_ids_is_one_command_where_the_server_allows(
    watched: tuple[Database, _Finds],
) -> None:
    # MongoDB finds `$in` on `_id` through its index; so does devdb, the FerretDB build the
    # tests run on (tools/devdb/build.sh's third fix). A stock FerretDB would scan the
    # collection for it, and IdLookups would fall back to one lookup per id.
    db, finds = watched
    await db.things.insert_many([{"_id": f"t{i}"} for i in range(50)])
    assert await pushes_down_id_in(db.things)
    lookups = IdLookups(db.things)
    finds.filters.clear()

    found = await lookups.many(f"t{i}" for i in range(20, 40))

    assert sorted(found) == sorted(f"t{i}" for i in range(20, 40))
    assert finds.filters == [{"_id": {"$in": [f"t{i}" for i in range(20, 40)]}}]


async def test_the_outbox_range_of_ids_is_one_index_range_where_the_server_allows(
    db: Database,
) -> None:
    # The outbox relay finds its entries as every `_id` starting "o:"; MongoDB reads that
    # from the `_id` index, and so does devdb (tools/devdb/build.sh's fourth fix). A stock
    # FerretDB (or an older devdb still answering here) would scan the whole collection.
    await db.things.insert_many(
        [{"_id": i} for i in ("o:1", "o:2", 'o:a"b', "o", "o;", "n:1", "6b")]
    )
    assert await pushes_down_id_prefix(db.things)
    found = [doc["_id"] async for doc in db.things.find({"_id": {"$gte": "o:", "$lt": "o;"}})]
    assert sorted(found) == ["o:1", "o:2", 'o:a"b']
