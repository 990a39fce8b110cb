"""The registry binds a user's delivery key on their first socket and unbinds on their last."""

import asyncio
from typing import cast

from starlette.websockets import WebSocket

from chat_core.events import NewMessage, TypingIndicator
from chat_core.limits import Rate
from ws_edge.flow import FrameGate, FramePolicy, OutboundLimits
from ws_edge.registry import Connection, ConnectionRegistry

POLICY = FramePolicy(rate=Rate(20, 40), invalid=Rate(10, 100), abuse_after_seconds=5)
OUTBOUND = OutboundLimits(max_bytes=1 << 20, max_frames=1000, close_timeout_seconds=5)


class KeyLog:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def bind(self, user_id: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("bind", user_id))

    async def unbind(self, user_id: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("unbind", user_id))


def connection(user_id: str, connection_id: str) -> Connection:
    # The registry never touches the socket; a placeholder keeps this a pure-logic test.
    return Connection(
        user_id, connection_id, cast(WebSocket, object()), OUTBOUND, FrameGate(POLICY, 0.0)
    )


async def test_binds_once_per_user_and_unbinds_after_the_last_socket() -> None:
    keys = KeyLog()
    registry = ConnectionRegistry(keys.bind, keys.unbind)
    phone, laptop = connection("u1", "a"), connection("u1", "b")

    await registry.add(phone)
    await registry.add(laptop)
    assert keys.calls == [("bind", "u1")]
    assert len(registry) == 2

    await registry.remove(phone)
    assert keys.calls == [("bind", "u1")]
    await registry.remove(laptop)
    assert keys.calls == [("bind", "u1"), ("unbind", "u1")]
    assert len(registry) == 0
    assert registry.of_user("u1") == []


async def test_removing_twice_or_an_unknown_connection_is_harmless() -> None:
    keys = KeyLog()
    registry = ConnectionRegistry(keys.bind, keys.unbind)
    phone = connection("u1", "a")
    await registry.remove(phone)
    await registry.add(phone)
    await registry.remove(phone)
    await registry.remove(phone)
    assert keys.calls == [("bind", "u1"), ("unbind", "u1")]


async def test_concurrent_connect_and_disconnect_keep_binding_consistent() -> None:
    keys = KeyLog()
    registry = ConnectionRegistry(keys.bind, keys.unbind)
    sockets = [connection("u1", str(i)) for i in range(20)]
    await asyncio.gather(*(registry.add(s) for s in sockets))
    await asyncio.gather(*(registry.remove(s) for s in sockets[:10]))
    assert keys.calls == [("bind", "u1")]
    await asyncio.gather(*(registry.remove(s) for s in sockets[10:]), registry.add(sockets[0]))
    binds = [c for c in keys.calls if c[0] == "bind"]
    unbinds = [c for c in keys.calls if c[0] == "unbind"]
    # Whatever the interleaving, the key is bound exactly while the user has a socket.
    assert len(binds) - len(unbinds) == (1 if registry.of_user("u1") else 0)


def test_after_a_resume_live_copies_of_replayed_messages_are_repeats() -> None:
    def frame(conversation_id: str, seq: int) -> NewMessage:
        return NewMessage(
            conversation_id=conversation_id,
            message_id=f"m{seq}",
            sender_id="s",
            content="x",
            message_type="text",
            timestamp="2026-01-01T00:00:00.000+00:00",
            seq=seq,
        )

    resumed = connection("alice", "c1")
    assert not resumed.repeats_replay(frame("a", 1))
    resumed.replayed = {"a": 5}
    assert resumed.repeats_replay(frame("a", 5))
    assert resumed.repeats_replay(frame("a", 2))
    assert not resumed.repeats_replay(frame("a", 6))
    assert not resumed.repeats_replay(frame("b", 1))
    assert not resumed.repeats_replay(TypingIndicator(conversation_id="a", user_id="bob"))


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
