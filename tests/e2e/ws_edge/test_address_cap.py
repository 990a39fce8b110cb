"""Open sockets per client address are capped with HTTP 429 before the upgrade; exempt
addresses (loopback by default) are not counted."""

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import AsyncExitStack

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.clients import WsClient
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CAPPED = {
    "MAX_SOCKETS_PER_ADDRESS": "2",
    # Every client with an X-Forwarded-For comes "through" a trusted proxy on loopback with
    # its own address; one without is loopback itself, exempt as by default.
    "TRUSTED_PROXIES": "127.0.0.1",
    "ADMISSION_EXEMPT": "127.0.0.0/8",
    "ADMISSIONS_PER_SECOND_PER_ADDRESS": "10000",
}
_addresses = itertools.count(1)


def address() -> str:
    n = next(_addresses)
    return f"198.18.{100 + n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module")
def capped_edge(stack: Stack) -> Iterator[ServiceProcess]:
    edge = stack.start("ws-edge", None, EDGE_ID=f"edge-capped-{stack.names[1][-6:]}", **CAPPED)
    yield edge
    edge.stop()


def client(edge: ServiceProcess, ip: str | None = None) -> WsClient:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return WsClient.for_user(edge.ws_url, new_user(), headers=headers)


async def test_an_address_at_its_cap_gets_429_and_others_do_not(
    capped_edge: ServiceProcess,
) -> None:
    crowded = address()
    async with AsyncExitStack() as sockets:
        for _ in range(2):
            await (await sockets.enter_async_context(client(capped_edge, crowded))).heartbeat()
        with pytest.raises(InvalidStatus) as refused:
            async with client(capped_edge, crowded):
                pass
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["Retry-After"]) >= 1
        assert b"2 connections" in refused.value.response.body
        # Another address, and loopback (exempt) well past the cap, get in.
        async with client(capped_edge, address()) as other:
            await other.heartbeat()
        for _ in range(3):
            await (await sockets.enter_async_context(client(capped_edge))).heartbeat()


async def test_a_closed_socket_gives_its_address_the_slot_back(
    capped_edge: ServiceProcess,
) -> None:
    crowded = address()
    async with client(capped_edge, crowded) as first, client(capped_edge, crowded):
        await first.heartbeat()
        await first.close()
        # The edge counts the close once its session has ended: moments after the client's.
        async with asyncio.timeout(10):
            while True:
                try:
                    async with client(capped_edge, crowded) as again:
                        await again.heartbeat()
                        return
                except InvalidStatus as error:
                    status = error.response.status_code
                if status != 429:
                    pytest.fail(f"refused with {status}, not the cap's 429")
                await asyncio.sleep(0.1)
