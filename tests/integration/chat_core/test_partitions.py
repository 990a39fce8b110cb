"""Partitioned consumers on real RabbitMQ: each user's events reach one instance at a time.

Presence and read positions are read-then-write on the embedded database, so two instances
must never handle one user's events side by side. Two "instances" here are two Broker
connections consuming the same partitioned queues, as two presence processes do.
"""

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from chat_core.broker import PRESENCE, SLOTS, Broker, Topology, slot_of
from chat_core.clock import utcnow
from chat_core.events import ConnectionOpened, InboundEvent, inbound_event_adapter
from tests.support.cleanup import remove_topology
from tests.support.stack import run_names
from tests.support.users import new_user

PARTITIONS = 4


@pytest.fixture
async def topology(amqp_url: str) -> AsyncIterator[Topology]:
    _, prefix = run_names()
    partitioned = Topology(prefix, partitions=PARTITIONS)
    yield partitioned
    await remove_topology(amqp_url, partitioned)


class Count:
    def __init__(self) -> None:
        self.value = 0
        self._changed = asyncio.Event()

    def add(self) -> None:
        self.value += 1
        self._changed.set()

    async def reach(self, expected: int) -> None:
        async with asyncio.timeout(10):
            while self.value < expected:
                self._changed.clear()
                await self._changed.wait()


class Instance:
    def __init__(self, name: str, handled: dict[str, set[str]], count: Count) -> None:
        self.name = name
        self.handled = handled
        self.count = count

    async def handle(self, envelope: InboundEvent) -> None:
        assert isinstance(envelope, ConnectionOpened)
        self.handled[envelope.user_id].add(self.name)
        self.count.add()


async def publish_for(publisher: Broker, users: list[str]) -> None:
    for user in users:
        opened = ConnectionOpened(user_id=user, connection_id="c", edge_id="e", at=utcnow())
        await publisher.publish_event(opened, opened.event)


async def test_every_user_has_one_consumer_and_a_standby_takes_over(
    amqp_url: str, topology: Topology
) -> None:
    users = [new_user() for _ in range(40)]
    assert len({slot_of(user) % PARTITIONS for user in users}) == PARTITIONS
    handled: dict[str, set[str]] = defaultdict(set)
    count = Count()
    first, second = Broker(amqp_url, topology, "first"), Broker(amqp_url, topology, "second")
    publisher = Broker(amqp_url, topology, "publisher")
    for broker in (first, second, publisher):
        await broker.start()
    try:
        await first.consume(
            PRESENCE, inbound_event_adapter, Instance("first", handled, count).handle, prefetch=8
        )
        await second.consume(
            PRESENCE, inbound_event_adapter, Instance("second", handled, count).handle, prefetch=8
        )

        await publish_for(publisher, users * 3)
        await count.reach(len(users) * 3)
        # Single active consumer: the first subscriber of each partition gets all of it.
        assert all(owners == {"first"} for owners in handled.values())

        await first.close()
        handled.clear()
        await publish_for(publisher, users)
        await count.reach(len(users) * 4)
        assert all(owners == {"second"} for owners in handled.values())
        assert set(handled) == set(users)
    finally:
        for broker in (second, publisher):
            await broker.close()


def test_a_users_events_have_one_slot_and_slots_cover_every_partition() -> None:
    topology = Topology("t", partitions=PARTITIONS)
    user = new_user()
    assert topology.partition_of(user) == slot_of(user) % PARTITIONS
    assert {slot % PARTITIONS for slot in range(SLOTS)} == set(range(PARTITIONS))
