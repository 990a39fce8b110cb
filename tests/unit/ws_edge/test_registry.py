"""The registry holds a user's delivery shard from their first socket to their last; a shard
is bound while it has users here (and for a linger after), not once per user."""

import asyncio
from typing import cast

import pytest
from starlette.types import Send

from chat_core.limits import Rate
from ws_edge.flow import FrameGate, FramePolicy, OutboundLimits
from ws_edge.registry import Connection, ConnectionRegistry
from ws_edge.shards import ShardBindings

POLICY = FramePolicy(rate=Rate(20, 40), invalid=Rate(10, 100), abuse_after_seconds=5)
OUTBOUND = OutboundLimits(max_bytes=1 << 20, max_frames=1000, close_timeout_seconds=5)


class KeyLog:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def bind(self, shard: int) -> None:
        await asyncio.sleep(0)
        self.calls.append(("bind", shard))

    async def unbind(self, shard: int) -> None:
        await asyncio.sleep(0)
        self.calls.append(("unbind", shard))


def registry_with(keys: KeyLog, linger: float = 0.0) -> ConnectionRegistry:
    # Each user is their own shard here ("u7" -> 7), so bindings are easy to read.
    return ConnectionRegistry(
        ShardBindings(keys.bind, keys.unbind, linger), lambda user_id: int(user_id[1:])
    )


async def settled(linger: float = 0.0) -> None:
    await asyncio.sleep(linger + 0.05)


def connection(user_id: str, connection_id: str) -> Connection:
    # The registry never touches the socket; a placeholder keeps this a pure-logic test.
    return Connection(
        user_id, connection_id, cast(Send, object()), OUTBOUND, FrameGate(POLICY, 0.0)
    )


async def test_holds_a_users_shard_once_and_releases_it_after_the_last_socket() -> None:
    keys = KeyLog()
    registry = registry_with(keys)
    phone, laptop = connection("u1", "a"), connection("u1", "b")

    await registry.add(phone)
    await registry.add(laptop)
    assert keys.calls == [("bind", 1)]
    assert len(registry) == 2

    registry.remove(phone)
    await settled()
    assert keys.calls == [("bind", 1)]
    registry.remove(laptop)
    await settled()
    assert keys.calls == [("bind", 1), ("unbind", 1)]
    assert len(registry) == 0
    assert registry.of_user("u1") == []


async def test_users_of_one_shard_share_its_binding() -> None:
    keys = KeyLog()
    # Every user in shard 0.
    registry = ConnectionRegistry(ShardBindings(keys.bind, keys.unbind, 0.0), lambda _u: 0)
    alice, bob = connection("alice", "a"), connection("bob", "b")

    await registry.add(alice)
    await registry.add(bob)
    registry.remove(alice)
    await settled()

    assert keys.calls == [("bind", 0)]
    assert registry.of_user("bob") == [bob]
    registry.remove(bob)
    await settled()
    assert keys.calls == [("bind", 0), ("unbind", 0)]


async def test_a_shard_lingers_so_users_who_come_back_bind_nothing() -> None:
    keys = KeyLog()
    registry = registry_with(keys, linger=0.2)
    for round_ in range(3):
        phone = connection("u1", f"c{round_}")
        await registry.add(phone)
        registry.remove(phone)
        await asyncio.sleep(0.05)

    assert keys.calls == [("bind", 1)]
    await settled(0.2)
    assert keys.calls == [("bind", 1), ("unbind", 1)]


async def test_a_user_arriving_while_their_shard_unbinds_gets_it_bound_again() -> None:
    keys = KeyLog()
    unbinding, finish = asyncio.Event(), asyncio.Event()

    async def slow_unbind(shard: int) -> None:
        unbinding.set()
        await finish.wait()
        await keys.unbind(shard)

    shards = ShardBindings(keys.bind, slow_unbind, 0.0)
    await shards.hold(1)
    shards.release(1)
    await asyncio.wait_for(unbinding.wait(), 1)

    arriving = asyncio.create_task(shards.hold(1))
    await asyncio.sleep(0.01)
    assert not arriving.done(), "must wait for the unbind, then bind again"
    finish.set()
    await asyncio.wait_for(arriving, 1)

    assert shards.is_bound(1)
    assert keys.calls == [("bind", 1), ("unbind", 1), ("bind", 1)]


async def test_a_failed_bind_holds_nothing() -> None:
    async def refuse(_shard: int) -> None:
        raise ConnectionError("broker gone")

    keys = KeyLog()
    shards = ShardBindings(refuse, keys.unbind, 0.0)
    registry = ConnectionRegistry(shards, lambda _u: 3)
    with pytest.raises(ConnectionError):
        await registry.add(connection("u3", "a"))

    assert registry.of_user("u3") == []
    assert not shards.is_bound(3)
    await settled()
    assert keys.calls == []


async def test_removing_twice_or_an_unknown_connection_is_harmless() -> None:
    keys = KeyLog()
    registry = registry_with(keys)
    phone = connection("u1", "a")
    registry.remove(phone)
    await registry.add(phone)
    registry.remove(phone)
    registry.remove(phone)
    await settled()
    assert keys.calls == [("bind", 1), ("unbind", 1)]


async def test_concurrent_connect_and_disconnect_keep_binding_consistent() -> None:
    keys = KeyLog()
    registry = registry_with(keys)
    sockets = [connection("u1", str(i)) for i in range(20)]
    await asyncio.gather(*(registry.add(s) for s in sockets))
    for s in sockets[:10]:
        registry.remove(s)
    await settled()
    assert keys.calls == [("bind", 1)]

    async def remove_later(s: Connection) -> None:
        await asyncio.sleep(0)
        registry.remove(s)

    await asyncio.gather(*(remove_later(s) for s in sockets[10:]), registry.add(sockets[0]))
    await settled()
    binds = [c for c in keys.calls if c[0] == "bind"]
    unbinds = [c for c in keys.calls if c[0] == "unbind"]
    # Whatever the interleaving, the shard is bound exactly while the user has a socket.
    assert len(binds) - len(unbinds) == (1 if registry.of_user("u1") else 0)


def test_after_a_resume_live_copies_of_replayed_messages_are_repeats() -> None:
    resumed = connection("alice", "c1")
    assert not resumed.repeats_replay("a", 1)
    resumed.replayed = {"a": 5}
    assert resumed.repeats_replay("a", 5)
    assert resumed.repeats_replay("a", 2)
    assert not resumed.repeats_replay("a", 6)
    assert not resumed.repeats_replay("b", 1)
    # Anything but a new_message carries no conversation and seq.
    assert not resumed.repeats_replay(None, None)


def test_heartbeats_are_forwarded_at_most_once_per_interval_per_socket() -> None:
    phone, laptop = connection("u1", "a"), connection("u1", "b")

    forwarded = [phone.heartbeat_due(now, 45.0) for now in (100.0, 130.0, 144.9, 145.0, 160.0)]

    assert forwarded == [True, False, False, True, False]
    assert laptop.heartbeat_due(130.0, 45.0)
    assert phone.heartbeat_due(1000.0, 0.0)
    assert phone.heartbeat_due(1000.0, 0.0)


def test_the_first_heartbeat_after_admission_is_not_forwarded() -> None:
    # Admitted at 100 s: conn.opened told presence the socket is live then.
    phone = connection("u1", "a")
    phone.heartbeat_forwarded_at = 100.0

    forwarded = [phone.heartbeat_due(now, 45.0) for now in (130.0, 144.9, 160.0, 190.0)]

    assert forwarded == [False, False, True, False]
