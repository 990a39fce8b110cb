"""Group commit against the real database: batching, and each caller's own outcome."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError, PyMongoError

from chat_core.db import Database, Document
from chat_core.group_commit import GroupCommit


class Commands(monitoring.CommandListener):
    """How many documents or statements each write command carried."""

    def __init__(self) -> None:
        self.sizes: dict[str, list[int]] = {"insert": [], "update": []}
        self.insert_sent = asyncio.Event()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.sizes["insert"].append(len(event.command["documents"]))
            self.insert_sent.set()
        elif event.command_name == "update":
            self.sizes["update"].append(len(event.command["updates"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def watched(mongo_url: str, db: Database) -> AsyncIterator[tuple[Database, Commands]]:
    """The test's database through a client that records its write commands."""
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, event_listeners=[commands])
    try:
        yield client[db.name], commands
    finally:
        await client.close()


async def test_concurrent_inserts_share_commands(watched: tuple[Database, Commands]) -> None:
    db, commands = watched
    writes = GroupCommit(db.things)

    first = asyncio.create_task(writes.insert({"_id": "d0", "n": 0}))
    await commands.insert_sent.wait()
    await asyncio.gather(*(writes.insert({"_id": f"d{i}", "n": i}) for i in range(1, 50)))
    await first

    assert await db.things.count_documents({}) == 50
    # The first went alone at once; the rest waited for it and went together.
    assert commands.sizes["insert"] == [1, 49]


async def test_callers_of_one_moment_share_one_command(
    watched: tuple[Database, Commands],
) -> None:
    db, commands = watched
    writes = GroupCommit(db.things, max_batch=20)

    await asyncio.gather(*(writes.insert({"_id": f"d{i}"}) for i in range(50)))

    assert commands.sizes["insert"] == [20, 20, 10]
    assert await db.things.count_documents({}) == 50


async def test_an_idle_insert_goes_at_once_and_alone(watched: tuple[Database, Commands]) -> None:
    db, commands = watched
    writes = GroupCommit(db.things)

    await writes.insert({"_id": "a"})
    await writes.insert({"_id": "b"})

    assert commands.sizes["insert"] == [1, 1]


async def test_a_duplicate_fails_only_its_own_caller(watched: tuple[Database, Commands]) -> None:
    db, commands = watched
    await db.things.insert_one({"_id": "taken"})
    writes = GroupCommit(db.things)

    results = await asyncio.gather(
        writes.insert({"_id": "first"}),
        writes.insert({"_id": "x1"}),
        writes.insert({"_id": "taken", "v": "second"}),
        writes.insert({"_id": "x2"}),
        writes.insert({"_id": "x1", "v": "again"}),
        return_exceptions=True,
    )

    assert [type(r) for r in results] == [
        type(None),
        type(None),
        DuplicateKeyError,
        type(None),
        DuplicateKeyError,
    ]
    assert commands.sizes["insert"] == [1, 5]  # the setup's, then the five together
    assert await db.things.find_one({"_id": "taken"}) == {"_id": "taken"}
    assert await db.things.find_one({"_id": "x1"}) == {"_id": "x1"}
    assert await db.things.count_documents({}) == 4


async def test_a_failed_command_reaches_every_caller_in_it(mongo_url: str, db: Database) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
    writes = GroupCommit(client[db.name].things)
    await writes.insert({"_id": "warm"})
    await client.close()

    results = await asyncio.gather(
        writes.insert({"_id": "a"}), writes.insert({"_id": "b"}), return_exceptions=True
    )

    assert all(isinstance(r, PyMongoError) for r in results), results


async def test_a_cancelled_caller_leaves_the_others_alone(db: Database) -> None:
    writes = GroupCommit(db.things)
    first = asyncio.create_task(writes.insert({"_id": "first"}))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(writes.insert({"_id": f"w{i}"})) for i in range(3)]
    await asyncio.sleep(0)
    waiting[1].cancel()

    await first
    done = await asyncio.gather(*waiting, return_exceptions=True)

    assert done[0] is None
    assert done[2] is None
    assert isinstance(done[1], asyncio.CancelledError)
    assert {d["_id"] async for d in db.things.find({})} >= {"first", "w0", "w2"}


async def test_concurrent_updates_share_commands_and_upsert(
    watched: tuple[Database, Commands],
) -> None:
    db, commands = watched
    await db.things.insert_many([{"_id": f"d{i}", "v": 0} for i in range(20)])
    writes = GroupCommit(db.things)

    await asyncio.gather(
        *(writes.update({"_id": f"d{i}"}, {"$set": {"v": i}}) for i in range(20)),
        writes.update({"_id": "new"}, {"$set": {"v": -1}}, upsert=True),
    )

    assert {d["_id"]: d["v"] async for d in db.things.find({})} == {
        **{f"d{i}": i for i in range(20)},
        "new": -1,
    }
    assert sum(commands.sizes["update"]) == 21
    assert len(commands.sizes["update"]) < 21
