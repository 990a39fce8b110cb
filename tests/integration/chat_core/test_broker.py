"""The acking consumer on real RabbitMQ: ack after the handler, retry, dead-letter poison."""

import asyncio

import aio_pika
from pymongo.errors import AutoReconnect

from chat_core.broker import MESSAGING, Broker
from chat_core.events import (
    ClientEvent,
    ClientMessageRead,
    ConnectionRef,
    InboundEvent,
    inbound_event_adapter,
)

REF = ConnectionRef(user_id="+84912345678", connection_id="c1", edge_id="e1")


def read_event(message_id: str) -> ClientEvent:
    frame = ClientMessageRead(event="message_read", conversation_id="c", message_id=message_id)
    return ClientEvent.wrap(REF, frame)


async def dead_letters(broker: Broker, consumer: str, count: int) -> list[bytes]:
    channel = await broker.connection.channel()
    queue = await channel.get_queue(broker.topology.dead_queue(consumer))
    bodies: list[bytes] = []
    async with asyncio.timeout(10):
        while len(bodies) < count:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            bodies.append(message.body)
    await channel.close()
    return bodies


async def test_handled_envelopes_arrive_decoded_and_in_order(broker: Broker) -> None:
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(envelope: InboundEvent) -> None:
        assert isinstance(envelope, ClientEvent)
        assert isinstance(envelope.frame, ClientMessageRead)
        seen.append(envelope.frame.message_id)
        if len(seen) == 3:
            done.set()

    await broker.consume(MESSAGING, inbound_event_adapter, handler, prefetch=1)
    for message_id in ("m1", "m2", "m3"):
        await broker.publish_event(read_event(message_id), "client.message_read")
    await asyncio.wait_for(done.wait(), 10)
    assert seen == ["m1", "m2", "m3"]


async def test_undecodable_messages_are_dead_lettered_not_retried(broker: Broker) -> None:
    calls = 0

    async def handler(_: InboundEvent) -> None:
        nonlocal calls
        calls += 1

    await broker.consume(MESSAGING, inbound_event_adapter, handler, prefetch=4)
    channel = await broker.connection.channel()
    events = await channel.get_exchange(broker.topology.events_exchange)
    await events.publish(aio_pika.Message(b"{not json"), "client.message_read")

    assert await dead_letters(broker, MESSAGING, 1) == [b"{not json"]
    assert calls == 0


async def test_a_handler_that_keeps_failing_is_retried_once_then_dead_lettered(
    broker: Broker,
) -> None:
    attempts: list[bool] = []

    async def handler(_: InboundEvent) -> None:
        attempts.append(True)
        raise ValueError("a bug, not a blip")

    await broker.consume(MESSAGING, inbound_event_adapter, handler, prefetch=4)
    await broker.publish_event(read_event("poison"), "client.message_read")

    [body] = await dead_letters(broker, MESSAGING, 1)
    envelope = inbound_event_adapter.validate_json(body)
    assert isinstance(envelope, ClientEvent)
    assert isinstance(envelope.frame, ClientMessageRead)
    assert envelope.frame.message_id == "poison"
    assert len(attempts) == 2


async def test_transient_failures_are_retried_until_the_handler_succeeds(broker: Broker) -> None:
    attempts = 0
    done = asyncio.Event()

    async def handler(_: InboundEvent) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise AutoReconnect("database briefly away")
        done.set()

    await broker.consume(MESSAGING, inbound_event_adapter, handler, prefetch=4)
    await broker.publish_event(read_event("m"), "client.message_read")

    await asyncio.wait_for(done.wait(), 15)
    assert attempts == 4
    channel = await broker.connection.channel()
    dead = await channel.get_queue(broker.topology.dead_queue(MESSAGING))
    assert await dead.get(fail=False) is None
