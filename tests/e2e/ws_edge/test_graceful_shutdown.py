"""A rolling restart of one edge: SIGTERM, /readyz 503 while it drains (its sockets still
served), then 1012 to every client, which reconnects to the other edge with `since` (resume)
while messages flow, and misses nothing."""

import asyncio
import signal
import time
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.clients import WsClient, rest_client
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DRAIN_SECONDS = 2.0


async def readyz_status(service: ServiceProcess) -> int:
    async with httpx.AsyncClient(timeout=2) as client:
        return (await client.get(f"{service.http_url}/readyz")).status_code


async def collect(
    client: WsClient, seen: list[str], until: set[str] | str, timeout: float = 10.0
) -> None:
    """Record, in order, every new_message id the client receives until `until` is in."""
    wanted = {until} if isinstance(until, str) else until

    def record(event: dict[str, Any]) -> bool:
        if event.get("event") == "new_message":
            seen.append(event["messageId"])
        return wanted <= set(seen)

    if not wanted <= set(seen):
        await client.wait_for(record, timeout)


async def test_sigterm_drains_then_sends_clients_to_another_edge(
    stack: Stack, edge: ServiceProcess, messaging: ServiceProcess
) -> None:
    victim = stack.start(
        "ws-edge", EDGE_ID=f"victim-{stack.names[1][-6:]}", DRAIN_SECONDS=str(DRAIN_SECONDS)
    )
    alice, bob = new_user(), new_user()
    sent: list[str] = []
    first_socket: list[str] = []
    second_socket: list[str] = []
    stop_sending = asyncio.Event()
    progress = asyncio.Condition()

    async def sent_at_least(count: int) -> None:
        async with progress, asyncio.timeout(10):
            await progress.wait_for(lambda: len(sent) >= count)

    async with AsyncExitStack() as stack_:
        rest = await stack_.enter_async_context(rest_client(messaging.http_url, alice))
        created = await rest.post("/conversations", json={"participantIds": [bob]})
        conversation_id = created.json()["id"]
        bob_on_victim = await stack_.enter_async_context(WsClient.for_user(victim.ws_url, bob))
        await bob_on_victim.heartbeat()

        async def keep_sending() -> None:
            n = 0
            while not stop_sending.is_set():
                response = await rest.post(
                    f"/conversations/{conversation_id}/messages",
                    json={"content": f"m{n}", "messageType": "text", "clientMessageId": f"c{n}"},
                )
                assert response.status_code == 201, response.text
                async with progress:
                    sent.append(response.json()["messageId"])
                    progress.notify_all()
                n += 1
                await asyncio.sleep(0.05)

        sender = asyncio.create_task(keep_sending())
        await sent_at_least(1)
        await collect(bob_on_victim, first_socket, sent[0])

        victim.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # Draining: not ready for the load balancer, yet its sockets are still served.
        async with asyncio.timeout(DRAIN_SECONDS):
            while True:
                if await readyz_status(victim) == 503:
                    break
                await asyncio.sleep(0.05)
        during_drain = len(sent)
        await sent_at_least(during_drain + 1)
        await collect(bob_on_victim, first_socket, sent[during_drain])
        assert bob_on_victim.close_code is None

        code, _reason = await bob_on_victim.wait_closed(timeout=DRAIN_SECONDS + 5)
        assert code == 1012, "service restart: reconnect"
        assert time.monotonic() - signalled >= DRAIN_SECONDS * 0.9

        # Messages keep flowing while bob is away; he comes back with the newest id he saw.
        away_from = len(sent)
        await sent_at_least(away_from + 3)
        since = quote(first_socket[-1])
        bob_elsewhere = await stack_.enter_async_context(
            WsClient(f"{edge.ws_url}/ws/{bob}?token={bob}&since={since}")
        )
        # (No heartbeat round trip here: waiting for its ack would drop the replayed frames.)
        await sent_at_least(len(sent) + 5)
        stop_sending.set()
        await sender
        # The replay fills the gap, live delivery does the rest: nothing is missed.
        await collect(bob_elsewhere, second_socket, set(sent) - set(first_socket))
        assert set(first_socket) | set(second_socket) == set(sent)
        assert away_from < len(sent), "messages were sent while bob had no socket"

        history = await rest.get(
            f"/conversations/{conversation_id}/messages", params={"limit": 200}
        )
        assert set(sent) <= {item["messageId"] for item in history.json()["items"]}

    # The edge exits by itself, cleanly, well inside compose's 10 s stop grace period.
    returncode = await asyncio.to_thread(victim.process.wait, 10)
    assert returncode == 0
    log = victim.log_text()
    assert '"event": "draining"' in log
    assert '"event": "drained"' in log
