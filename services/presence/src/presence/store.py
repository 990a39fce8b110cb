"""The presence of the users this process owns, held in memory and written behind in batches.

One process applies a user's events at a time (the partition's single active consumer, or
the one instance without partitions), so its memory is the truth about its users and the
database is the copy other readers use and a successor starts from. Reads cost nothing
once a user is held; a user not held yet is loaded by `_id`, many at once (`$in` where the
server pushes it down).

Writes are group commits: a change marks the user dirty, and while a write is in flight the
next changes wait and go together as the next bulk write, each user's latest state once
(so an idle process writes at once and a busy one writes in batches; a user changed three
times in one batch is written once). Every write is conditional on the revision it was
computed from (`_id` plus `rev`), so a write based on a state another process has since
moved fails instead of overwriting it; that user is dropped from memory and the events
whose changes were in the failed write raise `Requeue`, so they are applied again from the
database.

The caller learns when a change is stored: `put` returns a future that completes once the
write holding it has succeeded. The presence consumer acknowledges an event only then, so
a crash loses no acknowledged event: the new owner loads the last stored state and the
broker redelivers every unacknowledged event to it. What a takeover can lose is what is
written behind without an event waiting on it: the `announced` mark after a broadcast (the
new owner sees the change as pending and broadcasts it again, a duplicate) and a sweep's
expiry (the next sweep expires the connection again).

The lag of the stored copy behind memory is one write: at most the time of the write in
flight plus the one that follows it (milliseconds on an idle database; docs/presence.md has
the figures under a connect storm).
"""

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from pymongo import InsertOne, ReplaceOne
from pymongo.errors import BulkWriteError

from chat_core import metrics
from chat_core.broker import Requeue
from chat_core.clock import utcnow
from chat_core.db import Database, IdLookups, ServerTrait, scans_conditions
from chat_core.ids import new_id
from presence.repository import from_document, to_document
from presence.state import Presence

log = structlog.get_logger(__name__)

MAX_BATCH = 500
# A user held with no connection, nothing pending and nothing unwritten is dropped from
# memory after this long without a change (they are loaded again by `_id` when they return).
IDLE_EVICTION_SECONDS = 60.0


class LostWrite(Requeue):
    """The write holding this change did not land; the change must be applied again."""


@dataclass(eq=False)
class _Held:
    presence: Presence
    # The stored document's revision as this process last wrote or read it; 0: none yet.
    rev: int
    changed_at: float
    # Completes when `presence` (as it is now) is stored; None when nothing is unwritten.
    stored: asyncio.Future[None] | None = None


@dataclass
class _Write:
    user_id: str
    held: _Held
    presence: Presence
    base: int
    stored: asyncio.Future[None]


@dataclass
class _Loads:
    """Users wanted from the database, fetched together while a fetch is in flight."""

    wanted: dict[str, asyncio.Future[Presence]] = field(default_factory=dict)
    running: bool = False


class PresenceStore:
    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = MAX_BATCH,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        conditional: bool | None = None,
    ) -> None:
        self._docs = db.presence
        self._lookups = IdLookups(db.presence)
        self._max_batch = max_batch
        self._clock = clock
        self._now = now
        # Stamped on every document this process writes, to tell its writes from another's.
        self._writer = new_id()
        self._held: dict[str, _Held] = {}
        self._dirty: dict[str, _Held] = {}
        self._writing = False
        self._loads = _Loads()
        self._tasks: set[asyncio.Task[None]] = set()
        # Stock FerretDB scans the collection for any filter but a lone `_id`: there the write
        # is by `_id` alone, which one owner per user makes safe (docs/presence.md).
        self._conditional = ServerTrait(
            lambda: _filters_by_id_and_rev(db), known=conditional, fallback=False
        )
        # Partitions whose users were adopted from the database since memory was last
        # forgotten (None: the whole collection, when there are no partitions).
        self.adopted: set[int | None] = set()
        # Commands sent, and users written: what the tests and /metrics read.
        self.writes = 0
        self.written = 0
        self.loads = 0
        metrics.PRESENCE_HELD.set_function(lambda: len(self._held))

    # --- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._held)

    def peek(self, user_id: str) -> Presence | None:
        held = self._held.get(user_id)
        return held.presence if held is not None else None

    def held(self) -> Iterator[Presence]:
        return (held.presence for held in list(self._held.values()))

    async def get(self, user_id: str) -> Presence:
        """The user's presence: from memory, or loaded (one `_id` lookup, batched with the
        other loads waiting at the time) and held from then on."""
        held = self._held.get(user_id)
        if held is not None:
            return held.presence
        loaded = await self._load(user_id)
        held = self._held.get(user_id)
        if held is None:
            held = self._held[user_id] = _Held(loaded, loaded.rev, self._clock())
        return held.presence

    async def read_many(self, user_ids: Iterable[str]) -> list[Presence]:
        """For readers (HTTP): held users from memory, the others from the database (one
        `$in` on `_id`, or a lookup each), not held afterwards. In the order asked."""
        wanted = list(user_ids)
        missing = [user_id for user_id in wanted if user_id not in self._held]
        docs = await self._lookups.many(missing) if missing else {}
        return [
            self._held[user_id].presence
            if user_id in self._held
            else from_document(user_id, docs.get(user_id))
            for user_id in wanted
        ]

    async def _load(self, user_id: str) -> Presence:
        loads = self._loads
        future = loads.wanted.get(user_id)
        if future is None:
            future = loads.wanted[user_id] = asyncio.get_running_loop().create_future()
            if not loads.running:
                loads.running = True
                self._spawn(self._run_loads())
        return await asyncio.shield(future)

    async def _run_loads(self) -> None:
        loads = self._loads
        try:
            while loads.wanted:
                batch, loads.wanted = loads.wanted, {}
                self.loads += 1
                try:
                    docs = await self._lookups.many(batch)
                except Exception as error:
                    for future in batch.values():
                        if not future.done():
                            future.set_exception(error)
                    continue
                for user_id, future in batch.items():
                    if not future.done():
                        future.set_result(from_document(user_id, docs.get(user_id)))
        finally:
            loads.running = False

    async def adopt_watched(self, partition: int | None, owns: Callable[[str], bool]) -> int:
        """Hold every stored user the sweep must watch (online, or with a broadcast pending)
        that `owns` accepts: what a previous owner left. One scan of the collection, once
        per partition until memory is forgotten; returns how many were new here."""
        cursor = self._docs.find({"$or": [{"online": True}, {"pending": True}]}, {"statusAt": 0})
        adopted = 0
        async for doc in cursor:
            user_id = doc["_id"]
            if user_id in self._held or not owns(user_id):
                continue
            presence = from_document(user_id, doc)
            self._held[user_id] = _Held(presence, presence.rev, self._clock())
            adopted += 1
        self.adopted.add(partition)
        return adopted

    # --- writing -------------------------------------------------------------------------

    def put(self, user_id: str, presence: Presence) -> asyncio.Future[None]:
        """Hold `presence` as the user's state and write it behind; the future completes once
        it is stored (or raises LostWrite, or the database's error). The user must be held
        (`get` first, under the caller's per-user lock)."""
        held = self._held[user_id]
        held.presence = presence
        held.changed_at = self._clock()
        if held.stored is None:
            held.stored = asyncio.get_running_loop().create_future()
        self._dirty[user_id] = held
        if not self._writing:
            self._writing = True
            self._spawn(self._run_writes())
        return held.stored

    def put_if_unchanged(self, user_id: str, expected: Presence, presence: Presence) -> None:
        """`put`, unless the user's state moved from `expected` meanwhile (or was dropped);
        nobody waits for this write (the `announced` mark)."""
        held = self._held.get(user_id)
        if held is not None and held.presence is expected:
            self.put(user_id, presence)

    def unwritten(self, user_id: str) -> asyncio.Future[None] | None:
        """Completes when the user's state as it is now is stored; None if it already is."""
        held = self._held.get(user_id)
        return held.stored if held is not None else None

    async def _run_writes(self) -> None:
        try:
            while self._dirty:
                users = list(self._dirty)[: self._max_batch]
                batch = []
                for user_id in users:
                    held = self._dirty.pop(user_id)
                    assert held.stored is not None
                    batch.append(_Write(user_id, held, held.presence, held.rev, held.stored))
                    held.stored = None
                await self._write(batch)
        finally:
            self._writing = False

    async def _write(self, batch: list[_Write]) -> None:
        now = self._now()
        conditional = await self._conditional()
        operations: list[InsertOne[Any] | ReplaceOne[Any]] = []
        for write in batch:
            doc = to_document(write.presence, write.base + 1, now)
            doc["writer"] = self._writer
            if write.base == 0:
                operations.append(InsertOne(doc))
            else:
                where: dict[str, Any] = {"_id": write.user_id}
                if conditional:
                    where["rev"] = write.base
                operations.append(ReplaceOne(where, doc))
        failed: dict[int, BaseException] = {}
        replaced = sum(write.base > 0 for write in batch)
        started = time.perf_counter()
        try:
            result = await self._docs.bulk_write(operations, ordered=False)
            matched = result.matched_count
        except BulkWriteError as error:
            for detail in error.details.get("writeErrors", []):
                failed[detail["index"]] = LostWrite(detail.get("errmsg", "write refused"))
            matched = error.details.get("nMatched", 0)
        except Exception as error:
            failed = dict.fromkeys(range(len(batch)), error)
            matched = replaced
        if matched < replaced and conditional:
            # Some replacement found another revision: another process wrote that user.
            for index in await self._moved(batch, failed):
                failed[index] = LostWrite("presence was written by another process")
        metrics.PRESENCE_WRITE.observe(time.perf_counter() - started)
        metrics.PRESENCE_WRITE_USERS.observe(len(batch))
        self.writes += 1
        self.written += len(batch) - len(failed)
        for index, write in enumerate(batch):
            failure = failed.get(index)
            if failure is None:
                write.held.rev = write.base + 1
                _settle(write.stored, None)
            else:
                self._drop(write.user_id, write.held, failure)
                _settle(write.stored, failure)

    async def _moved(self, batch: list[_Write], failed: dict[int, BaseException]) -> list[int]:
        candidates = {
            write.user_id: index
            for index, write in enumerate(batch)
            if write.base > 0 and index not in failed
        }
        docs = await self._lookups.many(candidates, {"rev": 1, "writer": 1})
        # Another process may have written the same revision number: the writer tells.
        mine = {"rev": 0, "writer": self._writer}
        return [
            index
            for user_id, index in candidates.items()
            if docs.get(user_id) != {"_id": user_id, **mine, "rev": batch[index].base + 1}
        ]

    def _drop(self, user_id: str, held: _Held, error: BaseException) -> None:
        """Forget a user whose write failed: their next event loads the stored state."""
        if self._held.get(user_id) is held:
            del self._held[user_id]
        if self._dirty.get(user_id) is held:
            del self._dirty[user_id]
        if held.stored is not None:
            _settle(held.stored, error)
            held.stored = None
        log.warning(
            "presence write failed; the user is reloaded", user_id=user_id, error=str(error)
        )

    # --- memory --------------------------------------------------------------------------

    def evict_idle(self, older_than: float = IDLE_EVICTION_SECONDS) -> int:
        """Drop users with no connection, nothing pending, nothing unwritten, unchanged for
        `older_than` seconds: memory stays proportional to who is online."""
        limit = self._clock() - older_than
        idle = [
            user_id
            for user_id, held in self._held.items()
            if held.stored is None
            and held.changed_at < limit
            and not held.presence.connections
            and held.presence.pending is None
        ]
        for user_id in idle:
            del self._held[user_id]
        return len(idle)

    def forget(self) -> None:
        """Ownership may have moved (the broker connection or channel was lost): drop every
        user, so each is loaded again from what the owner since then stored. Writes in
        flight still complete (and fail if someone else wrote the user meanwhile)."""
        self._held = {}
        self.adopted = set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flushed(self) -> None:
        """Until nothing is unwritten (tests, shutdown)."""
        pending = [held.stored for held in self._dirty.values() if held.stored is not None]
        await asyncio.gather(*self._tasks, *pending, return_exceptions=True)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        # Nobody may be waiting (a write behind): do not warn "exception never retrieved".
        future.exception()


async def _filters_by_id_and_rev(db: Database) -> bool:
    return not await scans_conditions(db.presence)
