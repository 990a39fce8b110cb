"""Open-loop pacing on loop.call_at: every action once, on schedule, within the cap."""

import asyncio
import contextlib
import time
from typing import Any

from chat_bench.pacing import paced, schedule_offset


def test_schedule_spreads_actions_evenly() -> None:
    assert [schedule_offset(i, 4.0) for i in range(3)] == [0.0, 0.25, 0.5]
    assert schedule_offset(1000, None) == 0.0


async def test_paced_keeps_the_rate_and_starts_every_action_once() -> None:
    started: list[tuple[int, float]] = []

    async def action(index: int) -> None:
        started.append((index, time.monotonic()))

    run = await paced(20, action, rate=100.0, max_in_flight=5, settle_timeout=1)
    assert sorted(index for index, _ in started) == list(range(20))
    assert (run.scheduled, run.launched, run.failed, run.skipped) == (20, 20, 0, 0)
    # 19 intervals of 10 ms: not faster than the schedule, and not far behind it.
    assert 0.185 <= run.launch_seconds < 0.5
    # Never early: action i starts no sooner than i / rate after the first.
    first = started[0][1]
    assert all(at - first >= index / 100.0 - 0.002 for index, at in started)


async def test_the_loop_sleeps_between_actions_instead_of_polling() -> None:
    """One timer per due action: over a 0.5 s schedule of 5 actions the loop runs a handful
    of callbacks, not one per 2 ms tick (the old scheduler's 250)."""
    loop = asyncio.get_running_loop()
    timers = 0
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal timers
        timers += getattr(callback, "__name__", "") in ("fire", "unblock")
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting_call_at  # type: ignore[method-assign,assignment]
    try:

        async def action(_index: int) -> None:
            pass

        run = await paced(5, action, rate=10.0, max_in_flight=5, settle_timeout=1)
    finally:
        del loop.call_at
    assert run.launched == 5
    # The first starts at once; a timer may fire a hair early and be set again.
    assert 4 <= timers <= 8


async def test_paced_caps_actions_in_flight_and_counts_failures() -> None:
    in_flight = 0
    most = 0
    gate = asyncio.Event()

    async def action(index: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if index == 3:
            gate.set()
        await gate.wait()
        in_flight -= 1
        if index % 2:
            raise RuntimeError("refused")

    run = await paced(8, action, rate=None, max_in_flight=4, settle_timeout=1)
    assert most == 4
    assert run.launched == 8
    assert run.failed == 4


async def test_paced_skips_what_a_saturated_stack_holds_back_past_the_overrun() -> None:
    release = asyncio.Event()

    async def stuck(index: int) -> None:
        await release.wait()

    # Two slots, both stuck: nothing more can start, and 0.1 s after the schedule's end
    # (10 actions at 100/s) the rest is given up instead of offered late.
    started = time.monotonic()
    run = await paced(10, stuck, rate=100.0, max_in_flight=2, settle_timeout=0.05, overrun=0.1)
    assert run.launched == 2
    assert run.skipped == 8
    assert run.failed == 2  # cancelled once the settle timeout passed
    assert time.monotonic() - started < 1.0


async def test_nothing_to_pace_returns_at_once() -> None:
    async def action(_index: int) -> None:
        raise AssertionError("never called")

    run = await paced(0, action, rate=10.0, max_in_flight=1, settle_timeout=1)
    assert (run.launched, run.achieved_rate) == (0, 0.0)


async def test_a_cancelled_run_starts_nothing_more_and_cancels_what_it_started() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def action(index: int) -> None:
        started.append(index)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(index)
            raise

    run = asyncio.create_task(paced(1000, action, rate=100.0, max_in_flight=1000, settle_timeout=1))
    await asyncio.sleep(0.1)
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    after_cancel = len(started)
    await asyncio.sleep(0.1)
    assert 0 < after_cancel < 1000
    assert len(started) == after_cancel
    assert sorted(cancelled) == started
