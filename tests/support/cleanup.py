"""Removes what a test run left on the shared broker and database.

The local RabbitMQ and the devdb outlive every session: durable queues left behind pile up
(a broker recovering a thousand of them at boot outgrew `make infra`'s wait once), so every
run on a throwaway prefix deletes its topology and database when it ends.
"""

import asyncio
import threading

import aio_pika

from chat_core.broker import Topology, delete_topology
from chat_core.db import connect


async def remove_topology(amqp_url: str, topology: Topology) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        await delete_topology(await connection.channel(), topology)
    finally:
        await connection.close()


async def remove_run(amqp_url: str, mongo_url: str, topology: Topology, db_name: str) -> None:
    await remove_topology(amqp_url, topology)
    client = connect(mongo_url)
    try:
        await client.drop_database(db_name)
    finally:
        await client.close()


def remove_run_blocking(amqp_url: str, mongo_url: str, topology: Topology, db_name: str) -> None:
    """For synchronous teardown, also when the calling thread already runs an event loop."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(remove_run(amqp_url, mongo_url, topology, db_name))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="test-cleanup")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
