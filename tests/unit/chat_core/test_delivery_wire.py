"""The wire form of deliveries: what an edge refuses, and the shard a user travels under."""

from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractIncomingMessage

from chat_core.delivery_wire import BadDelivery, decode, encode, shard_of
from chat_core.events import Deliver, Disconnect, UserStatusChange


@dataclass
class Message:
    """The three fields `decode` reads of an incoming AMQP message."""

    body: bytes = b""
    type: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)


def decoded(message: Message) -> Any:
    return decode(cast(AbstractIncomingMessage, message))


def test_a_deliver_round_trips_through_body_and_headers() -> None:
    frame = UserStatusChange(user_id="u", status="busy")
    body, headers, kind = encode(Deliver(frame=frame, connection_id="c1"))
    routed = decoded(Message(body, kind, {**headers, "users": [b"alice", "bob"]}))
    assert routed.payload == '{"event":"user_status_change","userId":"u","status":"busy"}'
    assert routed.users == ["alice", "bob"]
    assert routed.event == "user_status_change"
    assert routed.is_for("c1")
    assert not routed.is_for("c2")


def test_a_disconnect_carries_its_code_and_no_body() -> None:
    body, headers, kind = encode(Disconnect(code=4003, reason="account disabled"))
    assert body == b""
    routed = decoded(Message(body, kind, {**headers, "users": ["alice"]}))
    assert (routed.kind, routed.code, routed.reason) == ("disconnect", 4003, "account disabled")


@pytest.mark.parametrize(
    "message",
    [
        Message(b"{}", None),
        Message(b"{}", "something-else"),
        Message(b"", "disconnect", {"users": ["a"]}),
        Message(b"\xff\xfe", "deliver", {"users": ["a"]}),
        Message(b"{}", "deliver", {"users": ["a"], "at": "yesterday"}),
    ],
)
def test_what_is_not_one_of_ours_is_refused(message: Message) -> None:
    with pytest.raises(BadDelivery):
        decoded(message)


def test_shards_spread_users_and_agree_everywhere() -> None:
    users = [f"+849{n:08d}" for n in range(10_000)]
    shards = {shard_of(user, 1024) for user in users}
    assert len(shards) == 1024
    assert shard_of(users[0], 1024) == shard_of(users[0], 1024)
    assert all(0 <= s < 1024 for s in shards)
