"""Broker.deliver on real RabbitMQ: one publish names every recipient, each queue bound to any
of their delivery shards gets one copy, and the body is the client's frame itself."""

import asyncio
from collections import Counter
from datetime import UTC, datetime

from aio_pika.abc import AbstractIncomingMessage, DeliveryMode

from chat_core.broker import Broker, recipients, user_key
from chat_core.delivery_wire import decode, decode_envelope
from chat_core.events import Deliver, Disconnect, NewMessage, TypingIndicator

USERS = [f"+849{n:08d}" for n in range(1_201)]


def in_distinct_shards(count: int) -> list[str]:
    """Users no two of whom share a delivery shard (so queues bound for them are distinct)."""
    chosen: dict[str, str] = {}
    for user in USERS:
        chosen.setdefault(user_key(user), user)
        if len(chosen) == count:
            return list(chosen.values())
    raise AssertionError("not enough shards")


async def edge_queue(broker: Broker, *user_ids: str) -> asyncio.Queue[AbstractIncomingMessage]:
    """What a queue bound as an edge holding these users binds it receives."""
    channel = await broker.connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for user_id in user_ids:
        await queue.bind(broker.deliver_exchange, user_key(user_id))
    arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def on_message(message: AbstractIncomingMessage) -> None:
        arrived.put_nowait(message)

    await queue.consume(on_message, no_ack=True)
    return arrived


async def drain(
    arrived: asyncio.Queue[AbstractIncomingMessage], within: float = 1.0
) -> list[AbstractIncomingMessage]:
    """Every message that arrives until `within` seconds pass without one."""
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(arrived.get(), within))
        except TimeoutError:
            return messages


async def test_one_copy_per_queue_naming_every_recipient(broker: Broker) -> None:
    alice, bob, carol, dave = in_distinct_shards(4)
    holds_alice_and_bob = await edge_queue(broker, alice, bob)
    holds_carol = await edge_queue(broker, carol)
    holds_nobody = await edge_queue(broker, dave)

    await broker.deliver([alice, bob, carol], Disconnect(code=4003, reason="r"))

    [first] = await drain(holds_alice_and_bob)
    assert recipients(first) == [alice, bob, carol]
    [second] = await drain(holds_carol)
    assert recipients(second) == [alice, bob, carol]
    assert await drain(holds_nobody, within=0.3) == []


async def test_a_large_group_is_split_and_still_reaches_each_user_once(broker: Broker) -> None:
    watched = {USERS[0], USERS[499], USERS[500], USERS[1_200]}
    queue = await edge_queue(broker, *watched)

    await broker.deliver(USERS, Disconnect(code=4003, reason="r"))

    messages = await drain(queue)
    # Three publishes of at most 500 names; this queue matches the first, second and third.
    assert len(messages) == 3
    named = Counter(user for m in messages for user in recipients(m) if user in watched)
    assert named == dict.fromkeys(watched, 1)


async def test_a_repeated_recipient_is_named_once(broker: Broker) -> None:
    alice, bob = in_distinct_shards(2)
    queue = await edge_queue(broker, alice, bob)

    await broker.deliver([alice, bob, alice], Disconnect(code=4003, reason="r"))

    [message] = await drain(queue)
    assert recipients(message) == [alice, bob]


async def test_a_single_recipient_has_no_cc(broker: Broker) -> None:
    alice = USERS[0]
    queue = await edge_queue(broker, alice)

    await broker.deliver([alice], Disconnect(code=4003, reason="r"))

    [message] = await drain(queue)
    assert "CC" not in (message.headers or {})
    assert recipients(message) == [alice]


async def test_an_expiring_delivery_goes_unconfirmed_and_still_arrives(broker: Broker) -> None:
    alice, bob = in_distinct_shards(2)
    queue = await edge_queue(broker, alice, bob)

    # Published on the unconfirmed channel, without waiting for the broker.
    await broker.deliver([alice, bob], Disconnect(code=4003, reason="fleeting"), ttl=5)

    [message] = await drain(queue)
    assert recipients(message) == [alice, bob]
    assert message.expiration == 5
    assert message.delivery_mode == DeliveryMode.NOT_PERSISTENT


async def test_users_of_one_shard_travel_as_one_copy_under_one_key(broker: Broker) -> None:
    alice = USERS[0]
    shard_mates = [u for u in USERS if user_key(u) == user_key(alice)][:3]
    queue = await edge_queue(broker, alice)

    await broker.deliver(shard_mates, Disconnect(code=4003, reason="r"))

    [message] = await drain(queue)
    assert recipients(message) == shard_mates
    assert "CC" not in (message.headers or {})


async def test_the_body_is_the_clients_frame_and_the_routing_rides_in_headers(
    broker: Broker,
) -> None:
    alice, bob = in_distinct_shards(2)
    queue = await edge_queue(broker, alice)
    frame = NewMessage(
        conversation_id="c-1",
        message_id="0" * 24,
        sender_id=bob,
        content="hello ünïcode",
        message_type="text",
        timestamp="2026-01-01T00:00:00.000+00:00",
        seq=7,
    )
    at = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    envelope = Deliver(frame=frame, skip_connection_id="c-bob", at=at, request_id="req-1")

    await broker.deliver([alice, bob], envelope)

    [message] = await drain(queue)
    # Exactly what the socket gets: the edge passes it through without parsing it.
    assert message.body == frame.to_text().encode()
    assert message.type == "deliver"
    routed = decode(message)
    assert (routed.conversation_id, routed.seq, routed.message_id) == ("c-1", 7, "0" * 24)
    assert routed.is_for("c-alice")
    assert not routed.is_for("c-bob")
    assert decode_envelope(message) == envelope


async def test_a_delivery_for_one_connection_and_a_disconnect_round_trip(broker: Broker) -> None:
    (alice,) = in_distinct_shards(1)
    queue = await edge_queue(broker, alice)
    ack = Deliver(frame=TypingIndicator(conversation_id="c", user_id="x"), connection_id="c1")
    close = Disconnect(code=4029, reason="too many", connection_id="c2")

    await broker.deliver([alice], ack)
    await broker.deliver([alice], close)

    first, second = await drain(queue)
    assert decode_envelope(first) == ack
    assert decode(first).is_for("c1")
    assert not decode(first).is_for("c2")
    assert second.body == b""
    assert decode_envelope(second) == close
