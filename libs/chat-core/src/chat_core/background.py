"""A service's periodic background work, started in its lifespan and stopped with it.

Each job runs, sleeps its interval and runs again; a failed round is logged and the next one
tries again (every job here starts from stored state, so skipping a round loses nothing).
Stopping cancels every job and waits for it, so nothing still runs against a broker or
database connection the lifespan is about to close.
"""

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

Job = Callable[[], Awaitable[object]]


class BackgroundJobs:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def every(
        self, seconds: float, job: Job, *, on_failure: str, wait_first: bool = False
    ) -> asyncio.Task[None]:
        """Runs `job` every `seconds` (after one interval when `wait_first`); `on_failure`
        is the log event of a failed round."""
        task = asyncio.create_task(_repeat(seconds, job, on_failure, wait_first))
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def _repeat(seconds: float, job: Job, on_failure: str, wait_first: bool) -> None:
    if wait_first:
        await asyncio.sleep(seconds)
    while True:
        try:
            await job()
        except Exception:
            log.warning(on_failure, exc_info=True)
        await asyncio.sleep(seconds)
