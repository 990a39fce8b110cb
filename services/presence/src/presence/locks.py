"""One asyncio lock per user, so one process applies a user's events in arrival order."""

import asyncio
import contextlib
from collections.abc import AsyncIterator


class UserLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[None]:
        # No await before `acquire`: callers enter in delivery order and asyncio.Lock queues
        # waiters first in, first out, so that order is the order events are applied in.
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        self._holders[user_id] = self._holders.get(user_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._holders[user_id] -= 1
            if self._holders[user_id] == 0:
                del self._holders[user_id]
                del self._locks[user_id]

    def __len__(self) -> int:
        return len(self._locks)
