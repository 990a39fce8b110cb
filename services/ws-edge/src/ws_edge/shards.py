"""Which delivery shards this edge's queue is bound to.

Deliveries are routed by the recipient's shard (chat_core.delivery_wire), so the edge binds a
shard while it holds any user of it, and for `linger` seconds after the last one left: a
shard's binding is made once and then serves every later user of it, instead of a bind and
an unbind per connecting user (the binding churn that is a cluster-wide transaction in
RabbitMQ). With 1,024 shards an edge holding a few thousand users has nearly all of them
bound, and a connect binds nothing.
"""

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from chat_core.keyed_lock import KeyedLock

log = structlog.get_logger(__name__)

KeyChange = Callable[[int], Awaitable[None]]


class ShardBindings:
    def __init__(self, bind: KeyChange, unbind: KeyChange, linger_seconds: float) -> None:
        self._bind = bind
        self._unbind = unbind
        self._linger = linger_seconds
        # Users held per shard; a shard with none is absent.
        self._users: dict[int, int] = {}
        self._bound: set[int] = set()
        self._unbinding: dict[int, asyncio.TimerHandle] = {}
        # A shard's bind and unbind never interleave.
        self._locks = KeyedLock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bound(self) -> int:
        return len(self._bound)

    def is_bound(self, shard: int) -> bool:
        return shard in self._bound

    async def hold(self, shard: int) -> None:
        """One more user of `shard` is here; returns once its deliveries reach this edge."""
        self._users[shard] = self._users.get(shard, 0) + 1
        timer = self._unbinding.pop(shard, None)
        if timer is not None:
            timer.cancel()
        if shard in self._bound:
            return
        try:
            async with self._locks(str(shard)):
                if shard not in self._bound:
                    await self._bind(shard)
                    self._bound.add(shard)
        except BaseException:
            self.release(shard)
            raise

    def release(self, shard: int) -> None:
        """A user of `shard` left; the last one starts the linger before the unbind."""
        left = self._users.get(shard, 0) - 1
        if left > 0:
            self._users[shard] = left
            return
        self._users.pop(shard, None)
        if shard in self._bound and shard not in self._unbinding:
            loop = asyncio.get_running_loop()
            self._unbinding[shard] = loop.call_later(self._linger, self._start_unbind, shard)

    def _start_unbind(self, shard: int) -> None:
        self._unbinding.pop(shard, None)
        task = asyncio.create_task(self._unbind_if_unused(shard))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unbind_if_unused(self, shard: int) -> None:
        async with self._locks(str(shard)):
            if shard in self._users or shard not in self._bound:
                return
            # Dropped first: a user arriving meanwhile waits for this lock and binds again.
            self._bound.discard(shard)
            try:
                await self._unbind(shard)
            except Exception:
                # A binding left behind only delivers what nobody here is waiting for.
                log.warning("unbind failed", shard=shard, exc_info=True)

    async def close(self) -> None:
        for timer in self._unbinding.values():
            timer.cancel()
        self._unbinding.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
