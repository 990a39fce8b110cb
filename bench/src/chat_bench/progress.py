"""Progress lines on stderr while a scenario runs; stdout stays for the table and the JSON."""

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TextIO


class Progress:
    def __init__(self, interval: float = 2.0, stream: TextIO | None = None) -> None:
        self.interval = interval
        self._stream = stream or sys.stderr
        self._started = time.monotonic()
        self.scenario = "-"

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self._started
        print(f"[chat-bench {elapsed:7.1f}s] {self.scenario}: {message}", file=self._stream)
        self._stream.flush()

    @contextlib.asynccontextmanager
    async def ticking(self, status: Callable[[], str]) -> AsyncIterator[None]:
        """Print `status()` every interval until the block ends."""

        async def tick() -> None:
            while True:
                await asyncio.sleep(self.interval)
                self.say(status())

        ticker = asyncio.create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
