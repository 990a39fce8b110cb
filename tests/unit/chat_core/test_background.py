"""Periodic jobs survive a failed round and are gone, not merely cancelled, after stop."""

import asyncio

from chat_core.background import BackgroundJobs


async def test_a_failed_round_is_followed_by_the_next_one() -> None:
    jobs = BackgroundJobs()
    rounds: list[int] = []
    third = asyncio.Event()

    async def job() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("the database is away")
        if len(rounds) == 3:
            third.set()

    jobs.every(0.001, job, on_failure="job failed")
    async with asyncio.timeout(5):
        await third.wait()
    await jobs.stop()

    assert rounds[:3] == [0, 1, 2]


async def test_stop_waits_until_a_running_round_has_ended() -> None:
    jobs = BackgroundJobs()
    started = asyncio.Event()
    cleaned_up: list[str] = []

    async def job() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0)
            cleaned_up.append("done")

    task = jobs.every(60, job, on_failure="job failed")
    await started.wait()
    await jobs.stop()

    assert task.done()
    assert cleaned_up == ["done"]


async def test_wait_first_delays_the_first_round() -> None:
    jobs = BackgroundJobs()
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    jobs.every(60, job, on_failure="job failed", wait_first=True)
    await asyncio.sleep(0.05)
    await jobs.stop()

    assert not ran.is_set()
