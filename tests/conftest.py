"""Session-wide real infrastructure: RabbitMQ and a MongoDB wire-protocol server."""

from collections.abc import AsyncIterator, Iterator

import pytest

from chat_core.broker import Broker, Topology, delete_topology
from chat_core.db import Database, connect, ensure_indexes
from tests.support import infra
from tests.support.stack import run_names


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with infra.broker_url() as url:
        yield url


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    with infra.mongo_url() as url:
        yield url


@pytest.fixture
async def db(mongo_url: str) -> AsyncIterator[Database]:
    """A fresh, indexed database for one test, dropped afterwards."""
    db_name, _ = run_names()
    client = connect(mongo_url)
    database = client[db_name]
    await ensure_indexes(database)
    yield database
    await client.drop_database(db_name)
    await client.close()


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    """A broker connection on fresh exchange and queue names for one test."""
    _, prefix = run_names()
    connected = Broker(amqp_url, Topology(prefix), "test")
    await connected.start()
    yield connected
    await delete_topology(await connected.connection.channel(), connected.topology)
    await connected.close()
