"""Open-loop load: actions start on a fixed schedule, whether or not earlier ones finished.

A closed loop (send, wait for the answer, send again) slows down with the system under test
and hides exactly the latency a benchmark is for. Here each action is its own task, started at
its scheduled moment; only a cap on actions in flight keeps a stalled stack from piling up
unbounded tasks, and every late start is recorded as lag.
"""

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

# How often the scheduler wakes up; events due within one tick start together.
TICK_SECONDS = 0.002


@dataclass
class PacedRun:
    launched: int = 0
    # Scheduled but never started: the schedule ran past its deadline (stack saturated).
    skipped: int = 0
    failed: int = 0
    # Seconds each action started after its scheduled moment.
    lags: list[float] = field(default_factory=list)
    started_at: float = 0.0
    finished_launching_at: float = 0.0

    @property
    def launch_seconds(self) -> float:
        return self.finished_launching_at - self.started_at

    @property
    def achieved_rate(self) -> float:
        """Starts per second over the launch window (n starts span n - 1 intervals)."""
        if self.launched < 2 or self.launch_seconds <= 0:
            return 0.0
        return round((self.launched - 1) / self.launch_seconds, 1)


def schedule_offset(index: int, rate: float | None) -> float:
    """When action `index` is due, in seconds after the start (all at once without a rate)."""
    return 0.0 if rate is None or math.isinf(rate) else index / rate


async def paced(
    count: int,
    action: Callable[[int], Coroutine[Any, Any, None]],
    *,
    rate: float | None,
    max_in_flight: int,
    settle_timeout: float,
    overrun: float | None = None,
) -> PacedRun:
    """Start `action(0..count-1)` at `rate` per second (None: as fast as the cap allows),
    then wait at most `settle_timeout` for the last ones to finish.

    With `overrun`, launching stops that many seconds after the schedule's end: when the
    cap holds the schedule back that far, the rest is skipped rather than offered late."""
    if count < 0 or max_in_flight < 1:
        raise ValueError("count must be >= 0 and max_in_flight >= 1")
    run = PacedRun(started_at=time.monotonic())
    in_flight: set[asyncio.Task[None]] = set()
    room = asyncio.Event()
    room.set()

    def finished(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        if task.cancelled() or task.exception() is not None:
            run.failed += 1
        room.set()

    stop_at = (
        run.started_at + schedule_offset(count, rate) + overrun if overrun is not None else None
    )
    index = 0
    while index < count:
        now = time.monotonic()
        if stop_at is not None and now > stop_at:
            run.skipped = count - index
            break
        due = run.started_at + schedule_offset(index, rate)
        if due > now:
            await asyncio.sleep(min(due - now, TICK_SECONDS))
            continue
        if len(in_flight) >= max_in_flight:
            room.clear()
            if stop_at is None:
                await room.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(room.wait(), max(stop_at - now, 0.0))
            continue
        run.lags.append(now - due)
        task = asyncio.create_task(action(index))
        in_flight.add(task)
        task.add_done_callback(finished)
        run.launched += 1
        index += 1
    run.finished_launching_at = time.monotonic()
    if in_flight:
        _, pending = await asyncio.wait(set(in_flight), timeout=settle_timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
    return run
