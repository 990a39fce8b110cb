"""Open-loop load: actions start on a fixed schedule, whether or not earlier ones finished.

A closed loop (send, wait for the answer, send again) slows down with the system under test
and hides exactly the latency a benchmark is for. Each action is started by a `loop.call_at`
timer at its due moment (no polling sleeps: the generator wakes once per action, not per
tick), as its own task; only a cap on actions in flight keeps a stalled stack from piling up
unbounded tasks, and every late start is recorded as lag.
"""

import asyncio
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PacedRun:
    scheduled: int = 0
    launched: int = 0
    # Scheduled but never started: the cap held the schedule back past its deadline.
    skipped: int = 0
    failed: int = 0
    # Seconds each action started after its due moment.
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
    return 0.0 if rate is None or math.isinf(rate) or rate <= 0 else index / rate


class _Schedule:
    """The state of one paced run, driven by timer callbacks and task completions."""

    def __init__(
        self,
        count: int,
        action: Callable[[int], Coroutine[Any, Any, None]],
        rate: float | None,
        max_in_flight: int,
        overrun: float | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.count, self.action, self.rate, self.cap = count, action, rate, max_in_flight
        self.run = PacedRun(scheduled=count, started_at=self.loop.time())
        self.stop_at = (
            None
            if overrun is None
            else self.run.started_at + schedule_offset(count, rate) + overrun
        )
        self.index = 0
        self.in_flight: set[asyncio.Task[None]] = set()
        self.launching_done = self.loop.create_future()
        self.blocked = False
        self.stop_timer = False
        self.stopped = False

    def due(self, index: int) -> float:
        return self.run.started_at + schedule_offset(index, self.rate)

    def fire(self) -> None:
        """Start everything due; then set one timer for the next, or wait for room."""
        if self.stopped:
            return
        now = self.loop.time()
        while self.index < self.count:
            if self.stop_at is not None and now > self.stop_at:
                self.run.skipped = self.count - self.index
                break
            due = self.due(self.index)
            if due > now:
                self.loop.call_at(due, self.fire)
                return
            if len(self.in_flight) >= self.cap:
                self.blocked = True
                if self.stop_at is not None and not self.stop_timer:
                    self.stop_timer = True
                    self.loop.call_at(self.stop_at, self.unblock)
                return
            self.run.lags.append(now - due)
            task = self.loop.create_task(self.action(self.index))
            self.in_flight.add(task)
            task.add_done_callback(self.finished)
            self.run.launched += 1
            self.index += 1
        self.run.finished_launching_at = self.loop.time()
        if not self.launching_done.done():
            self.launching_done.set_result(None)

    def unblock(self) -> None:
        if self.blocked:
            self.blocked = False
            self.fire()

    def finished(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        if task.cancelled() or task.exception() is not None:
            self.run.failed += 1
        self.unblock()


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
    then wait at most `settle_timeout` for the last ones to finish (the rest is cancelled).

    With `overrun`, launching stops that many seconds after the schedule's end: when the
    cap holds the schedule back that far, the rest is skipped rather than offered late."""
    if count < 0 or max_in_flight < 1:
        raise ValueError("count must be >= 0 and max_in_flight >= 1")
    schedule = _Schedule(count, action, rate, max_in_flight, overrun)
    try:
        schedule.fire()
        await schedule.launching_done
        pending = set(schedule.in_flight)
        if pending:
            _, late = await asyncio.wait(pending, timeout=settle_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
    except asyncio.CancelledError:
        # A cancelled run starts nothing more (its timer chain would go on otherwise) and
        # takes what it started down with it.
        for task in schedule.in_flight:
            task.cancel()
        raise
    finally:
        schedule.stopped = True
    return schedule.run
