"""One asyncio lock per key, kept only while someone holds or waits for it."""

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyedLock:
    """`async with locks(key):` serialises callers of one key within this process.

    Memory stays proportional to the keys in use: a key's lock goes when its last waiter
    leaves, so a lock per conversation or per user costs nothing while idle.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
