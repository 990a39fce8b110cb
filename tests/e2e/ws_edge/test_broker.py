"""What the edge puts on the broker, and what it delivers from it, observed on real RabbitMQ."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractQueue
from yarl import URL

from chat_core.broker import Broker, Topology
from chat_core.delivery_wire import DEFAULT_SHARDS, shard_of
from chat_core.events import (
    ClientEvent,
    ConnectionClosed,
    ConnectionOpened,
    Deliver,
    EdgeAlive,
    InboundEvent,
    TypingIndicator,
    inbound_event_adapter,
)
from tests.support.clients import WsClient
from tests.support.stack import ServiceProcess, Stack
from tests.support.stall_proxy import StallProxy, stall_proxy
from tests.support.users import new_user


class Tap:
    """A private queue bound to the events exchange: sees every envelope the edges publish."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue

    async def next_matching(self, user_id: str, kind: str, timeout: float = 5.0) -> InboundEvent:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.queue.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                    continue
                await message.ack()
                envelope = inbound_event_adapter.validate_json(message.body)
                if envelope.event == kind and getattr(envelope, "user_id", None) == user_id:
                    return envelope

    async def assert_none(self, user_id: str, kind: str, within: float = 0.5) -> None:
        try:
            found = await self.next_matching(user_id, kind, within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {kind}: {found}")


@pytest.fixture
async def tap(stack: Stack, edge: ServiceProcess) -> AsyncIterator[Tap]:
    connection = await aio_pika.connect_robust(stack.amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(Topology(stack.broker_prefix).events_exchange, "#")
    yield Tap(queue)
    await connection.close()


@pytest.fixture
async def broker(stack: Stack, edge: ServiceProcess) -> AsyncIterator[Broker]:
    connected = Broker(stack.amqp_url, Topology(stack.broker_prefix), "test-publisher")
    await connected.start()
    yield connected
    await connected.close()


async def test_open_and_close_are_published_with_edge_and_connection_ids(
    edge: ServiceProcess, tap: Tap
) -> None:
    user = new_user()
    async with WsClient.for_user(edge.ws_url, user) as client:
        opened = await tap.next_matching(user, "conn.opened")
        await client.heartbeat()
    closed = await tap.next_matching(user, "conn.closed")

    assert isinstance(opened, ConnectionOpened)
    assert isinstance(closed, ConnectionClosed)
    assert opened.edge_id == closed.edge_id == "edge-a"
    assert opened.connection_id == closed.connection_id


async def test_each_connection_of_a_user_has_its_own_id(edge: ServiceProcess, tap: Tap) -> None:
    user = new_user()
    async with WsClient.for_user(edge.ws_url, user), WsClient.for_user(edge.ws_url, user):
        first = await tap.next_matching(user, "conn.opened")
        second = await tap.next_matching(user, "conn.opened")
    assert isinstance(first, ConnectionOpened)
    assert isinstance(second, ConnectionOpened)
    assert first.connection_id != second.connection_id


async def test_client_events_are_forwarded_with_who_sent_them(
    edge: ServiceProcess, tap: Tap
) -> None:
    user = new_user()
    async with WsClient.for_user(edge.ws_url, user) as client:
        await client.heartbeat()
        heartbeat = await tap.next_matching(user, "client.heartbeat")
        await client.send({"event": "status_change", "status": "busy"})
        status = await tap.next_matching(user, "client.status_change")
        await client.send({"event": "typing", "conversationId": "c-1"})
        typing = await tap.next_matching(user, "client.typing")

    assert isinstance(heartbeat, ClientEvent)
    assert isinstance(status, ClientEvent)
    assert isinstance(typing, ClientEvent)
    assert status.frame.model_dump() == {"event": "status_change", "status": "busy"}
    assert typing.frame.model_dump() == {"event": "typing", "conversation_id": "c-1"}
    assert heartbeat.connection_id == status.connection_id == typing.connection_id


@pytest.fixture(scope="module")
def beating_edge(stack: Stack) -> Iterator[ServiceProcess]:
    """An edge forwarding heartbeats as in production (the suite's edges forward every one)."""
    edge = stack.start(
        "ws-edge",
        EDGE_ID=f"edge-beat-{stack.names[1][-6:]}",
        HEARTBEAT_FORWARD_INTERVAL_SECONDS="45",
    )
    yield edge
    edge.stop()


async def test_the_first_heartbeat_is_answered_but_not_forwarded(
    beating_edge: ServiceProcess, tap: Tap
) -> None:
    # conn.opened already told presence the socket is live: forwarding the first heartbeat of
    # every socket was a presence write per connect for nothing.
    user = new_user()
    async with WsClient.for_user(beating_edge.ws_url, user) as client:
        await tap.next_matching(user, "conn.opened")
        await client.heartbeat()
        await client.heartbeat()
        await tap.assert_none(user, "client.heartbeat")


async def test_the_edge_announces_itself(edge: ServiceProcess, tap: Tap) -> None:
    async with asyncio.timeout(5):
        while True:
            message = await tap.queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            envelope = inbound_event_adapter.validate_json(message.body)
            if isinstance(envelope, EdgeAlive) and envelope.edge_id == "edge-a":
                break


async def test_deliveries_reach_every_socket_of_the_user_and_nobody_else(
    edge: ServiceProcess, second_edge: ServiceProcess, broker: Broker
) -> None:
    user, other = new_user(), new_user()
    async with (
        WsClient.for_user(edge.ws_url, user) as phone,
        WsClient.for_user(second_edge.ws_url, user) as laptop,
        WsClient.for_user(edge.ws_url, other) as bystander,
    ):
        await asyncio.gather(phone.heartbeat(), laptop.heartbeat(), bystander.heartbeat())
        frame = TypingIndicator(conversation_id="c-9", user_id=other)

        await broker.deliver([user], Deliver(frame=frame))

        expected = {"event": "typing", "conversationId": "c-9", "userId": other}
        assert await phone.wait_event("typing") == expected
        assert await laptop.wait_event("typing") == expected
        await bystander.assert_nothing(lambda e: e["event"] == "typing", within=0.5)


async def test_a_delivery_for_one_connection_reaches_only_that_socket(
    edge: ServiceProcess, broker: Broker, tap: Tap
) -> None:
    user = new_user()
    async with WsClient.for_user(edge.ws_url, user) as phone:
        opened = await tap.next_matching(user, "conn.opened")
        async with WsClient.for_user(edge.ws_url, user) as laptop:
            await laptop.heartbeat()
            assert isinstance(opened, ConnectionOpened)
            frame = TypingIndicator(conversation_id="c-1", user_id="x")

            await broker.deliver([user], Deliver(frame=frame, connection_id=opened.connection_id))

            await phone.wait_event("typing", conversationId="c-1")
            await laptop.assert_nothing(lambda e: e["event"] == "typing", within=0.5)


def users_in_shards(*shards: int) -> list[str]:
    """A fresh user for each wanted shard (several for a repeated shard)."""
    found: list[str] = []
    for shard in shards:
        while True:
            user = new_user()
            if shard_of(user, DEFAULT_SHARDS) == shard and user not in found:
                found.append(user)
                break
    return found


async def bound_shards(edge: ServiceProcess) -> int:
    async with httpx.AsyncClient(base_url=edge.http_url, trust_env=False) as http:
        stats = (await http.get("/stats")).json()
    bound: int = stats["deliveryShardsBound"]
    return bound


@pytest.fixture(scope="module")
def lingering_edge(stack: Stack) -> Iterator[ServiceProcess]:
    edge = stack.start(
        "ws-edge", EDGE_ID=f"edge-shards-{stack.names[1][-6:]}", DELIVERY_SHARD_LINGER_SECONDS="1"
    )
    yield edge
    edge.stop()


async def test_users_of_one_shard_share_a_binding_that_lingers_after_them(
    lingering_edge: ServiceProcess, broker: Broker
) -> None:
    # Binding changes are what RabbitMQ does slowest (a cluster-wide transaction each): a
    # connect binds only a shard not bound yet, and a disconnect unbinds it only after a
    # linger with nobody of it here.
    edge = lingering_edge
    alice, bob, carol = users_in_shards(7, 7, 9)
    async with WsClient.for_user(edge.ws_url, alice) as alice_ws:
        await alice_ws.heartbeat()
        async with (
            WsClient.for_user(edge.ws_url, bob) as bob_ws,
            WsClient.for_user(edge.ws_url, carol) as carol_ws,
        ):
            await asyncio.gather(bob_ws.heartbeat(), carol_ws.heartbeat())
            assert await bound_shards(edge) == 2

            # Routed by shard, handed only to the user named.
            frame = TypingIndicator(conversation_id="c-s", user_id=carol)
            await broker.deliver([bob], Deliver(frame=frame))
            assert (await bob_ws.wait_event("typing"))["conversationId"] == "c-s"
            await alice_ws.assert_nothing(lambda e: e["event"] == "typing", within=0.3)
        # Bob and carol gone: shard 7 still has alice, shard 9 lingers.
        assert await bound_shards(edge) == 2
        await asyncio.sleep(1.5)
        assert await bound_shards(edge) == 1
    await asyncio.sleep(1.5)
    assert await bound_shards(edge) == 0


@pytest.fixture
async def edge_behind_proxy(stack: Stack) -> AsyncIterator[tuple[ServiceProcess, StallProxy]]:
    """An edge whose broker connection goes through a proxy the test can cut."""
    url = URL(stack.amqp_url)
    async with stall_proxy(url.host or "127.0.0.1", url.port or 5672) as proxy:
        proxied = str(url.with_host("127.0.0.1").with_port(proxy.port))
        # In a thread: the proxy serves from this event loop while the edge starts.
        edge = await asyncio.to_thread(
            stack.start,
            "ws-edge",
            EDGE_ID=f"edge-cut-{stack.names[1][-6:]}",
            AMQP_URL=proxied,
            AMQP_URLS="",
            BROKER_RECONNECT_INTERVAL_SECONDS="0.5",
        )
        yield edge, proxy
        await asyncio.to_thread(edge.stop)


async def test_deliveries_flow_again_after_the_edge_loses_its_broker_connection(
    edge_behind_proxy: tuple[ServiceProcess, StallProxy], broker: Broker
) -> None:
    # The edge consumes its queue through aiormq directly: the consumer must come back with
    # the restored channel, or a reconnected client would silently get nothing.
    edge, proxy = edge_behind_proxy
    user = new_user()
    frame = TypingIndicator(conversation_id="c-cut", user_id="x")
    async with WsClient.for_user(edge.ws_url, user) as before:
        await before.heartbeat()
        await broker.deliver([user], Deliver(frame=frame))
        await before.wait_event("typing", conversationId="c-cut")

        proxy.cut()

        # Whatever was routed while it was away is gone: told to resume.
        code, _reason = await before.wait_closed(timeout=15)
        assert code == 1012
    async with WsClient.for_user(edge.ws_url, user) as after:
        await after.heartbeat()
        await broker.deliver([user], Deliver(frame=frame))
        await after.wait_event("typing", conversationId="c-cut")
