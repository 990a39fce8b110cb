"""A run on a throwaway prefix leaves no queue or exchange behind on the shared broker."""

import aio_pika
import pytest
from aio_pika.exceptions import ChannelClosed

from chat_core.broker import PARTITIONED, QUEUE_BINDINGS, Topology, declare_topology
from tests.support.cleanup import remove_topology
from tests.support.stack import run_names


def declared_names(topology: Topology) -> tuple[list[str], list[str]]:
    queues: list[str] = []
    for consumer in QUEUE_BINDINGS:
        queues.extend(topology.queues_of(consumer))
        if consumer in PARTITIONED:
            queues.append(topology.dead_queue(consumer))
    exchanges = [
        topology.events_exchange,
        topology.deliver_exchange,
        topology.dead_letter_exchange,
    ]
    return queues, exchanges


async def exists(
    connection: aio_pika.abc.AbstractConnection, queue: str = "", exchange: str = ""
) -> bool:
    channel = await connection.channel()
    try:
        if queue:
            await channel.declare_queue(queue, passive=True)
        else:
            await channel.declare_exchange(exchange, passive=True)
    except ChannelClosed:
        return False
    await channel.close()
    return True


@pytest.mark.parametrize("partitions", [0, 3])
async def test_removing_a_topology_deletes_every_queue_and_exchange_it_declared(
    amqp_url: str, partitions: int
) -> None:
    _, prefix = run_names()
    topology = Topology(prefix, partitions=partitions)
    connection = await aio_pika.connect(amqp_url)
    try:
        await declare_topology(await connection.channel(), topology)
        queues, exchanges = declared_names(topology)
        assert all([await exists(connection, queue=q) for q in queues])
        assert all([await exists(connection, exchange=e) for e in exchanges])

        await remove_topology(amqp_url, topology)

        assert [q for q in queues if await exists(connection, queue=q)] == []
        assert [e for e in exchanges if await exists(connection, exchange=e)] == []
    finally:
        await connection.close()
