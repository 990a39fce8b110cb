"""A publish the broker does not take in time fails like a refused one instead of hanging.

RabbitMQ under a memory alarm stops reading from publishers and answers nothing; a proxy in
front of the real broker that holds back everything the broker says gives the same.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable

import pytest
from yarl import URL

from chat_core.broker import Broker, PublishTimeout, Topology, delete_topology, is_transient
from chat_core.clock import utcnow
from chat_core.events import Disconnect, EdgeAlive
from tests.support.stack import run_names
from tests.support.stall_proxy import StallProxy, stall_proxy

TIMEOUT = 0.5


@pytest.fixture
async def proxied(amqp_url: str) -> AsyncIterator[tuple[Broker, StallProxy]]:
    url = URL(amqp_url)
    async with stall_proxy(url.host or "127.0.0.1", url.port or 5672) as proxy:
        _, prefix = run_names()
        broker = Broker(
            str(url.with_host("127.0.0.1").with_port(proxy.port)),
            Topology(prefix),
            "test-publish-timeout",
            publish_timeout=TIMEOUT,
        )
        await broker.start()
        yield broker, proxy
        proxy.resume()
        await delete_topology(await broker.connection.channel(), broker.topology)
        await broker.close()


async def timed(publish: Awaitable[None]) -> float:
    started = time.monotonic()
    with pytest.raises(PublishTimeout):
        await publish
    return time.monotonic() - started


async def test_confirmed_publishes_time_out_when_the_broker_stops_answering(
    proxied: tuple[Broker, StallProxy],
) -> None:
    broker, proxy = proxied
    alive = EdgeAlive(edge_id="e", at=utcnow(), connections=0)
    await broker.publish_event(alive, alive.event)  # flowing: confirmed at once

    proxy.stall()

    waited = await timed(broker.publish_event(alive, alive.event))
    assert TIMEOUT <= waited < TIMEOUT + 2
    waited = await timed(broker.deliver(["+84912345678"], Disconnect(code=4003, reason="r")))
    assert TIMEOUT <= waited < TIMEOUT + 2
    # Consumers retry it like any broker outage.
    assert is_transient(PublishTimeout("x"))


async def test_a_publish_that_is_answered_in_time_succeeds(
    proxied: tuple[Broker, StallProxy],
) -> None:
    broker, proxy = proxied
    proxy.stall()
    alive = EdgeAlive(edge_id="e", at=utcnow(), connections=0)
    publishing = asyncio.create_task(broker.publish_event(alive, alive.event))
    await asyncio.sleep(TIMEOUT / 5)
    proxy.resume()
    await publishing
