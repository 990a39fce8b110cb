import asyncio

import pytest

from messaging.overload import Admission, Overloaded


async def test_a_send_waits_for_a_slot_within_the_bound() -> None:
    admission = Admission(limit=1, max_wait=1.0)
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_later(0.05, release.set)
    async with admission.slot():
        pass
    await holder
    assert admission.shed == 0


async def test_a_send_that_cannot_start_in_time_is_shed_without_running() -> None:
    admission = Admission(limit=1, max_wait=0.05)
    ran = []
    async with admission.slot():
        with pytest.raises(Overloaded):
            async with admission.slot():
                ran.append(True)
    assert ran == []
    assert admission.shed == 1
    # The slot is free again afterwards.
    async with admission.slot():
        ran.append(True)
    assert ran == [True]
