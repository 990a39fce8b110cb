"""chat-bench's send bookkeeping: what counts as an operation of a phase."""

import asyncio
from typing import Any

import httpx

from chat_bench.rest import RestClient
from chat_bench.scenarios.message_load import MessageLoad, Pair


class StuckRest(RestClient):
    """A messaging API that never answers: every request stays in flight."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", max_connections=2)
        self.started = 0

    async def send_message(self, *args: Any, **kwargs: Any) -> httpx.Response:
        self.started += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_sends_held_back_by_the_in_flight_cap_are_not_operations() -> None:
    rest = StuckRest()
    load = MessageLoad(rest, "t")
    load.pairs = [Pair("+84900000001", "+84900000002", "c1")]
    try:
        run = asyncio.create_task(load.run("measure", rate=1_000, seconds=0.05))
        await asyncio.sleep(1.5)  # past the schedule and its overrun: the rest is skipped
        run.cancel()
    finally:
        await rest.close()

    scheduled = [r for r in load.records if r.phase == "measure"]
    assert len(scheduled) == 50
    assert rest.started == 2
    assert [r.seq for r in load.of_phase("measure")] == [0, 1]
