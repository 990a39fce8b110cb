"""Group commit: concurrent single-document writes to one collection sent as one command.

Every write is a round trip, a command for PyMongo to build and parse, and on the embedded
database a SQLite transaction of its own. Measured on FerretDB here: 746 inserts/s one at a
time, 7,568/s in batches of 20. A send writes four documents, so under load most of its
cost was per-command overhead, not data.

The rule is the classic one: while a write to the collection is in flight, the next ones
wait and go together as the next command. An idle service therefore writes at once (no
timer, no added latency) and a busy one batches as much as is waiting, up to `max_batch`.
Each caller still gets its own outcome: `DuplicateKeyError` for its document alone (the
command is unordered, so one duplicate does not stop the others), and any error of the
whole command (connection lost, timeout) to every caller in it, as `insert_one` would have
raised it, with the same uncertainty about whether the document was written.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from chat_core.db import Collection, Document
from chat_core.metrics import timed_db

DUPLICATE_KEY = 11000


@dataclass
class _Pending:
    operation: Any
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Batches:
    """One kind of write: waits while a command is in flight, then goes as the next one."""

    def __init__(
        self, name: str, command: Callable[[list[Any]], Awaitable[Any]], max_batch: int
    ) -> None:
        self._name = name
        self._command = command
        self._max_batch = max_batch
        self._waiting: list[_Pending] = []
        self._running = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, operation: Any) -> None:
        pending = _Pending(operation)
        self._waiting.append(pending)
        if not self._running:
            self._running = True
            task = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await pending.done

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._write(batch)
        finally:
            self._running = False

    async def _write(self, batch: list[_Pending]) -> None:
        failures: dict[int, Exception] = {}
        try:
            with timed_db(self._name):
                await self._command([p.operation for p in batch])
        except BulkWriteError as error:
            for detail in error.details.get("writeErrors", []):
                kind = DuplicateKeyError if detail.get("code") == DUPLICATE_KEY else WriteError
                failures[detail["index"]] = kind(
                    detail.get("errmsg", ""), detail.get("code"), detail
                )
            if error.details.get("writeConcernErrors"):
                for index in range(len(batch)):
                    failures.setdefault(index, error)
        except Exception as error:  # every caller gets the whole command's failure
            failures = dict.fromkeys(range(len(batch)), error)
        for index, pending in enumerate(batch):
            if pending.done.done():
                continue  # its caller was cancelled
            failure = failures.get(index)
            if failure is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(failure)


class GroupCommit:
    """Inserts and `_id` updates to one collection, batched while a previous one is in flight.

    Updates report no match count (a batch's count is not per statement): use it for writes
    whose caller needs only that the write happened, such as upserts and `$max`-style hints.
    """

    def __init__(self, collection: Collection, *, max_batch: int = 200) -> None:
        self._inserts = _Batches(
            "insert", lambda documents: collection.insert_many(documents, ordered=False), max_batch
        )
        self._updates = _Batches(
            "update", lambda updates: collection.bulk_write(updates, ordered=False), max_batch
        )

    async def insert(self, document: Document) -> None:
        """Insert one document; raises `DuplicateKeyError` if a unique key already exists."""
        await self._inserts.submit(document)

    async def update(self, filter: Document, update: Document, *, upsert: bool = False) -> None:
        """Apply `update` to the document matching `filter` (an `_id` filter: FerretDB looks
        other filters up by scanning)."""
        await self._updates.submit(UpdateOne(filter, update, upsert=upsert))
