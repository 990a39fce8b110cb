"""The edge's abuse limits and flow control over real sockets, each with small values set
through the edge's settings so it shows in seconds (production defaults: README, Limits)."""

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractQueue
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat_bench.sockets import StuckSocket
from chat_core.broker import Broker, Topology
from chat_core.events import ClientEvent, Deliver, NewMessage, TypingIndicator
from tests.e2e.conftest import FAST_PRESENCE, RAISED_LIMITS
from tests.support.clients import WsClient
from tests.support.stack import ServiceProcess, Stack
from tests.support.users import new_user

# The module's fixtures start edges (and a presence) of their own: room for that on a busy CI.
pytestmark = pytest.mark.timeout(120)

STRICT = {
    "FRAME_RATE_PER_SECOND": "5",
    "FRAME_BURST": "10",
    "ABUSE_CLOSE_AFTER_SECONDS": "2",
    "INVALID_FRAMES_MAX": "10",
    "INVALID_FRAMES_WINDOW_SECONDS": "10",
    "ADMISSIONS_PER_SECOND_PER_ADDRESS": "2",
    # Every client here comes "through" a trusted proxy on loopback, with its own address.
    "ADMISSION_EXEMPT": "",
    "TRUSTED_PROXIES": "127.0.0.1",
    "ALLOWED_ORIGINS": "https://chat.example,https://web.chat.example",
    "OUTBOUND_MAX_BYTES": str(256 * 1024),
    "OUTBOUND_MAX_FRAMES": "10000",
    "CLOSE_TIMEOUT_SECONDS": "5",
}
FULL = {
    "MAX_SOCKETS": "2",
    # Loopback stays exempt (the default), so this rate never refuses anyone here.
    "ADMISSIONS_PER_SECOND_PER_ADDRESS": "1",
}
_addresses = itertools.count(1)


def client_address() -> str:
    """A distinct address (RFC 2544 benchmark range) per client, so tests share no bucket."""
    n = next(_addresses)
    return f"198.18.{n // 250}.{n % 250 + 1}"


def strict_client(edge: ServiceProcess, user: str, **headers: str) -> WsClient:
    return WsClient.for_user(
        edge.ws_url, user, headers={"X-Forwarded-For": client_address(), **headers}
    )


@pytest.fixture(scope="module")
def strict_edge(stack: Stack) -> Iterator[ServiceProcess]:
    edge = stack.start("ws-edge", None, EDGE_ID=f"edge-strict-{stack.names[1][-6:]}", **STRICT)
    yield edge
    edge.stop()


@pytest.fixture(scope="module")
def full_edge(stack: Stack) -> Iterator[ServiceProcess]:
    edge = stack.start("ws-edge", None, EDGE_ID=f"edge-full-{stack.names[1][-6:]}", **FULL)
    yield edge
    edge.stop()


@pytest.fixture
async def broker(stack: Stack, strict_edge: ServiceProcess) -> AsyncIterator[Broker]:
    connected = Broker(stack.amqp_url, Topology(stack.broker_prefix), "test-publisher")
    await connected.start()
    yield connected
    await connected.close()


@pytest.fixture
async def typing_tap(stack: Stack, strict_edge: ServiceProcess) -> AsyncIterator[AbstractQueue]:
    connection = await aio_pika.connect_robust(stack.amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(Topology(stack.broker_prefix).events_exchange, "client.typing.#")
    yield queue
    await connection.close()


async def collect(client: WsClient, seconds: float) -> list[dict[str, object]]:
    events = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            events.append(await client.next_event(left))
        except TimeoutError:
            break
    return events


async def flood_until_closed(client: WsClient, seconds: float) -> None:
    """Heartbeats at 50/s until the edge closes the socket (or `seconds` pass)."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            await client.send({"event": "heartbeat"})
            await asyncio.sleep(0.02)
    except ConnectionClosed:
        return


# --- inbound frame rate -------------------------------------------------------------------


async def test_frames_over_the_rate_are_dropped_with_one_error_per_second(
    strict_edge: ServiceProcess,
) -> None:
    async with strict_client(strict_edge, new_user()) as client:
        for _ in range(30):
            await client.send({"event": "heartbeat"})
        events = await collect(client, 0.6)
        kinds = [e["event"] for e in events]
        # A burst of 10 passes (plus what refilled meanwhile); the rest are dropped, and
        # the client is told once, not once per frame.
        assert 10 <= kinds.count("heartbeat_ack") <= 13
        assert kinds.count("error") == 1
        error = next(e for e in events if e["event"] == "error")
        assert "rate limited" in str(error["message"])
        # Tokens refill at 5/s: the socket is usable again.
        await asyncio.sleep(0.5)
        await client.heartbeat()


async def test_dropped_frames_never_reach_the_broker(
    strict_edge: ServiceProcess, typing_tap: AbstractQueue
) -> None:
    user = new_user()
    async with strict_client(strict_edge, user) as client:
        for _ in range(40):
            await client.send({"event": "typing", "conversationId": "c-flood"})
        await client.wait_event("error")
        await asyncio.sleep(0.5)
    forwarded = 0
    while (message := await typing_tap.get(fail=False)) is not None:
        await message.ack()
        envelope = ClientEvent.model_validate_json(message.body)
        forwarded += envelope.user_id == user
    assert 10 <= forwarded <= 13


async def test_a_sustained_flood_is_closed_with_1008(strict_edge: ServiceProcess) -> None:
    async with strict_client(strict_edge, new_user()) as client:
        started = time.monotonic()
        await flood_until_closed(client, seconds=6)
        code, reason = await client.wait_closed()
        assert code == 1008
        assert reason is not None
        assert "frame rate" in reason
        # Closed once over the limit for ABUSE_CLOSE_AFTER_SECONDS (2), not at the first drop.
        assert time.monotonic() - started >= 2


async def test_bursts_now_and_then_are_throttled_but_not_closed(
    strict_edge: ServiceProcess,
) -> None:
    async with strict_client(strict_edge, new_user()) as client:
        for _ in range(3):
            for _ in range(15):
                await client.send({"event": "heartbeat"})
            await asyncio.sleep(1.6)
        await client.heartbeat()
        assert client.close_code is None


async def test_too_many_invalid_frames_close_with_1008(strict_edge: ServiceProcess) -> None:
    async with strict_client(strict_edge, new_user()) as client:
        for _ in range(10):
            await client.send("not json")
        errors = [e for e in await collect(client, 0.5) if e["event"] == "error"]
        assert len(errors) == 10
        assert client.close_code is None
        # Within the rate, but the eleventh bad frame inside the window is one too many.
        await asyncio.sleep(0.3)
        await client.send("{still not json")
        code, reason = await client.wait_closed()
        assert code == 1008
        assert reason is not None
        assert "invalid frames" in reason


# --- admission before the upgrade: Origin and per-address rate ------------------------------


async def test_a_disallowed_origin_is_refused_before_the_upgrade(
    strict_edge: ServiceProcess,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with strict_client(strict_edge, new_user(), Origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_allowed_origins_and_clients_without_an_origin_get_in(
    strict_edge: ServiceProcess,
) -> None:
    async with (
        strict_client(strict_edge, new_user(), Origin="https://chat.example") as page,
        strict_client(strict_edge, new_user(), Origin="https://WEB.chat.example/") as other,
        strict_client(strict_edge, new_user()) as app,
    ):
        await asyncio.gather(page.heartbeat(), other.heartbeat(), app.heartbeat())


async def test_an_address_opening_sockets_too_fast_gets_429(strict_edge: ServiceProcess) -> None:
    address = client_address()

    def from_address(ip: str) -> WsClient:
        return WsClient.for_user(strict_edge.ws_url, new_user(), headers={"X-Forwarded-For": ip})

    # The proxy appends the peer it saw: the client is the rightmost untrusted hop.
    async with from_address(address), from_address(f"10.9.9.9, {address}"):
        with pytest.raises(InvalidStatus) as refused:
            async with from_address(address):
                pass
        response = refused.value.response
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        # Another address is not held up by this one.
        async with from_address(client_address()) as other:
            await other.heartbeat()


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    full_edge: ServiceProcess,
) -> None:
    # full_edge trusts no proxy and exempts loopback: a forged header changes nothing.
    for _ in range(3):
        async with WsClient.for_user(
            full_edge.ws_url, new_user(), headers={"X-Forwarded-For": "198.51.100.7"}
        ) as client:
            await client.heartbeat()


# --- sockets per edge -------------------------------------------------------------------


async def until_no_sockets(edge: ServiceProcess) -> None:
    """The edge serves a socket's close after the client has left: an earlier test's sockets
    may still count against a full edge's limit for a moment."""
    async with httpx.AsyncClient(trust_env=False) as http, asyncio.timeout(10):
        while True:
            if not (await http.get(f"{edge.http_url}/stats")).json()["connections"]:
                return
            await asyncio.sleep(0.05)


async def test_a_full_edge_closes_the_next_socket_with_1013(full_edge: ServiceProcess) -> None:
    await until_no_sockets(full_edge)
    async with (
        WsClient.for_user(full_edge.ws_url, new_user()) as first,
        WsClient.for_user(full_edge.ws_url, new_user()) as second,
    ):
        await asyncio.gather(first.heartbeat(), second.heartbeat())
        async with WsClient.for_user(full_edge.ws_url, new_user()) as third:
            code, reason = await third.wait_closed()
        assert code == 1013
        assert reason is not None
        assert "full" in reason
        await first.heartbeat()
    # Room again once sockets have gone.
    async with asyncio.timeout(5):
        while True:
            async with WsClient.for_user(full_edge.ws_url, new_user()) as later:
                try:
                    await later.heartbeat(timeout=1)
                    break
                except (TimeoutError, ConnectionClosed):
                    await asyncio.sleep(0.1)


# --- slow consumers -----------------------------------------------------------------------

FRAME_CONTENT = "x" * 4000
STUCK_TRAFFIC_FRAMES = 2000  # about 8 MiB, against a bound of 256 KiB
MIB = 1024 * 1024


async def edge_rss(edge: ServiceProcess) -> int:
    async with httpx.AsyncClient(base_url=edge.http_url) as http:
        rss: int = (await http.get("/stats")).json()["rssBytes"]
        return rss


async def flood_user(broker: Broker, user: str, frames: int) -> None:
    for start in range(0, frames, 100):
        await asyncio.gather(
            *(
                broker.deliver(
                    [user],
                    Deliver(
                        frame=NewMessage(
                            conversation_id="c-slow",
                            message_id=f"m-{n}",
                            seq=n + 1,
                            sender_id="+84900000000",
                            content=FRAME_CONTENT,
                            message_type="text",
                            timestamp="2026-01-01T00:00:00.000+00:00",
                        )
                    ),
                )
                for n in range(start, min(frames, start + 100))
            )
        )


async def wait_for_log(
    edge: ServiceProcess, text: str, after: int = 0, timeout: float = 10.0
) -> None:
    """Until the edge's log (from offset `after`) says `text`."""
    async with asyncio.timeout(timeout):
        while True:
            if text in edge.log_text()[after:]:
                return
            await asyncio.sleep(0.05)


async def test_a_slow_consumer_is_closed_with_3008_and_holds_up_nobody(
    strict_edge: ServiceProcess, broker: Broker
) -> None:
    stuck_user, bystander_user = new_user(), new_user()
    async with (
        StuckSocket(strict_edge.ws_url, stuck_user) as stuck,
        strict_client(strict_edge, bystander_user) as bystander,
    ):
        await bystander.heartbeat()
        await asyncio.sleep(0.3)  # the stuck user's binding is in place once admitted
        rss_before = await edge_rss(strict_edge)

        flooding = asyncio.create_task(flood_user(broker, stuck_user, STUCK_TRAFFIC_FRAMES))
        # While the stuck socket's buffer fills and overflows, others are served at once.
        for n in range(5):
            await broker.deliver(
                [bystander_user],
                Deliver(frame=TypingIndicator(conversation_id=f"c-{n}", user_id=stuck_user)),
            )
            await bystander.wait_event("typing", timeout=2, conversationId=f"c-{n}")
        await wait_for_log(strict_edge, "slow consumer closed", timeout=30)

        # The client reads again (within CLOSE_TIMEOUT_SECONDS): what was already written,
        # then the 3008 close.
        back = await stuck.read_until_closed()
        assert back.code == 3008
        assert back.frames < STUCK_TRAFFIC_FRAMES

        await flooding
        rss_after = await edge_rss(strict_edge)
        # ~8 MiB were sent to the stuck socket; the edge kept at most its 256 KiB bound
        # (plus the transport's 64 KiB and allocator noise), then dropped it.
        assert rss_after - rss_before < 3 * MIB, (rss_before, rss_after)
        await bystander.heartbeat()


async def test_a_consumer_that_never_reads_again_is_dropped(
    strict_edge: ServiceProcess, broker: Broker
) -> None:
    stuck_user = new_user()
    async with StuckSocket(strict_edge.ws_url, stuck_user) as stuck:
        await asyncio.sleep(0.3)
        marker = len(strict_edge.log_text())
        await flood_user(broker, stuck_user, STUCK_TRAFFIC_FRAMES)
        # The close frame cannot be written to a peer that reads nothing: after
        # CLOSE_TIMEOUT_SECONDS the edge drops the connection instead.
        await wait_for_log(strict_edge, "peer did not take the close frame", after=marker)
        back = await stuck.read_until_closed()
        assert back.closed
        assert back.code is None


# --- devices per user, across edges -----------------------------------------------------


@pytest.fixture(scope="module")
def device_edges(
    amqp_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two edges and a presence of their own (MAX_DEVICES_PER_USER=2), on fresh names, so
    the session's presence keeps its own limit."""
    env = {**FAST_PRESENCE, **RAISED_LIMITS, "MAX_DEVICES_PER_USER": "2"}
    own = Stack(amqp_url, mongo_url, tmp_path_factory.mktemp("device-logs"), extra_env=env)
    try:
        own.start("presence")
        yield (
            own.start("ws-edge", None, EDGE_ID="devices-a"),
            own.start("ws-edge", None, EDGE_ID="devices-b"),
        )
    finally:
        own.close()


async def test_one_socket_too_many_closes_the_users_oldest_with_4029(
    device_edges: tuple[ServiceProcess, ServiceProcess],
) -> None:
    edge_a, edge_b = device_edges
    user = new_user()
    # Admission time is stamped by each edge after the handshake, so two sockets opened
    # back to back on different edges may be admitted in either order: a heartbeat's ack
    # (answered only once the socket is admitted) orders them.
    async with AsyncExitStack() as sockets:
        oldest = await sockets.enter_async_context(WsClient.for_user(edge_a.ws_url, user))
        await oldest.heartbeat()
        laptop = await sockets.enter_async_context(WsClient.for_user(edge_b.ws_url, user))
        await laptop.heartbeat()
        async with WsClient.for_user(edge_a.ws_url, user) as phone:
            await phone.heartbeat()
            code, reason = await oldest.wait_closed(timeout=20)
            assert code == 4029
            assert reason is not None
            assert "oldest" in reason
            # The others stay, on both edges; another user is not counted with this one.
            async with WsClient.for_user(edge_b.ws_url, new_user()) as stranger:
                await asyncio.gather(laptop.heartbeat(), phone.heartbeat(), stranger.heartbeat())
            # One more again: now the laptop (on the other edge) is the oldest.
            async with WsClient.for_user(edge_b.ws_url, user) as tablet:
                await tablet.heartbeat()
                code, _reason = await laptop.wait_closed(timeout=20)
                assert code == 4029
                await phone.heartbeat()
