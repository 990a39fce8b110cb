"""Broker.deliver on real RabbitMQ: one publish names every recipient, each queue gets one copy."""

import asyncio
from collections import Counter

from aio_pika.abc import AbstractIncomingMessage, DeliveryMode

from chat_core.broker import Broker, recipients, user_key
from chat_core.events import Disconnect

USERS = [f"+849{n:08d}" for n in range(1_201)]


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
    alice, bob, carol = USERS[:3]
    holds_alice_and_bob = await edge_queue(broker, alice, bob)
    holds_carol = await edge_queue(broker, carol)
    holds_nobody = await edge_queue(broker, USERS[3])

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
    alice, bob = USERS[:2]
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
    alice, bob = USERS[:2]
    queue = await edge_queue(broker, alice, bob)

    # Published on the unconfirmed channel, without waiting for the broker.
    await broker.deliver([alice, bob], Disconnect(code=4003, reason="fleeting"), ttl=5)

    [message] = await drain(queue)
    assert recipients(message) == [alice, bob]
    assert message.expiration == 5
    assert message.delivery_mode == DeliveryMode.NOT_PERSISTENT
