"""Conditional single-document writes, in both the filter and the read-and-check form."""

import asyncio

import pytest

from chat_core.db import Database, Document, DocumentWrites, is_ferretdb, scans_conditions
from tests.support import infra


@pytest.fixture(params=[False, True], ids=["filtered", "read-and-check"])
def strategy(request: pytest.FixtureRequest) -> bool:
    ferretdb: bool = request.param
    return ferretdb


async def test_replace_if_only_at_the_expected_revision(db: Database, strategy: bool) -> None:
    writes = DocumentWrites(db.things, read_first=strategy)
    await db.things.insert_one({"_id": "a", "rev": 1, "v": "first"})

    assert not await writes.replace_if("a", {"rev": 0}, lambda d: d["rev"] == 0, {"rev": 1})
    assert await writes.replace_if("a", {"rev": 1}, lambda d: d["rev"] == 1, {"rev": 2, "v": "x"})
    assert not await writes.replace_if("missing", {"rev": 1}, lambda d: True, {"rev": 2})

    assert await db.things.find_one({"_id": "a"}) == {"_id": "a", "rev": 2, "v": "x"}
    assert await db.things.find_one({"_id": "missing"}) is None


async def test_update_if_moves_forward_only_and_upserts(db: Database, strategy: bool) -> None:
    writes = DocumentWrites(db.positions, read_first=strategy)

    async def advance(to: str) -> bool:
        return await writes.update_if(
            "p",
            {"last": {"$lt": to}},
            lambda doc: doc["last"] < to,
            {"$set": {"last": to}},
            upsert=True,
        )

    assert await advance("m2")
    assert not await advance("m1")
    assert not await advance("m2")
    assert await advance("m3")
    doc: Document | None = await db.positions.find_one({"_id": "p"})
    assert doc == {"_id": "p", "last": "m3"}


async def test_update_if_without_upsert_leaves_missing_documents_alone(
    db: Database, strategy: bool
) -> None:
    writes = DocumentWrites(db.positions, read_first=strategy)
    applied = await writes.update_if("q", {"x": 1}, lambda d: True, {"$set": {"x": 2}})
    assert not applied
    assert await db.positions.count_documents({}) == 0


async def test_concurrent_upserts_create_one_document(db: Database, strategy: bool) -> None:
    writes = DocumentWrites(db.positions, read_first=strategy)
    results = await asyncio.gather(
        *(
            writes.update_if(
                "r",
                {"last": {"$lt": "m5"}},
                lambda doc: doc["last"] < "m5",
                {"$set": {"last": "m5"}},
                upsert=True,
            )
            for _ in range(5)
        )
    )
    assert any(results)
    assert await db.positions.count_documents({}) == 1


async def test_ferretdb_is_told_apart_from_mongodb(db: Database) -> None:
    # The test servers are known: FerretDB here, MongoDB 7 in containers (Docker).
    expected = not infra.docker_available()
    assert await is_ferretdb(db) is expected


async def test_conditional_writes_are_one_command_where_the_server_allows(db: Database) -> None:
    # MongoDB uses its `_id` index for any filter with `_id`; devdb, the FerretDB build the
    # tests run on (tools/devdb/build.sh), pushes `_id` down from such filters too. Only a
    # stock FerretDB would scan, and so be written to by read-then-check.
    assert not await scans_conditions(db.things)


async def test_first_writes_racing_on_a_new_collection_all_succeed(db: Database) -> None:
    # Each asks the server how it filters before its first write, creating the collection
    # to ask about it: fifty at once (as the first requests of fresh processes) must not fail.
    writers = [DocumentWrites(db.fresh) for _ in range(50)]
    results = await asyncio.gather(
        *(
            w.update_if(f"d{i}", {"n": {"$lt": 1}}, lambda d: True, {"$set": {"n": 1}}, upsert=True)
            for i, w in enumerate(writers)
        )
    )
    assert all(results)
    assert await db.fresh.count_documents({}) == 50
