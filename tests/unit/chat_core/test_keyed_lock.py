"""The per-key lock every service serialises a user's or a conversation's work with."""

import asyncio

from chat_core.keyed_lock import KeyedLock


async def test_a_key_lock_keeps_arrival_order_and_forgets_idle_keys() -> None:
    locks = KeyedLock()
    applied: list[int] = []
    gate = asyncio.Event()

    async def apply(number: int) -> None:
        async with locks("user-1"):
            if number == 0:
                # The first holder yields, so the rest queue up behind it.
                await gate.wait()
            applied.append(number)

    tasks = [asyncio.create_task(apply(number)) for number in range(5)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)

    assert applied == [0, 1, 2, 3, 4]
    assert len(locks) == 0
