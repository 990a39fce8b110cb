"""The stale-connection sweep: the only thing that notices an edge or a client that died."""

import asyncio

import structlog

from chat_core.broker import PRESENCE, Broker
from chat_core.events import SweepTick
from presence.tracker import PresenceTracker

log = structlog.get_logger(__name__)


async def sweep_forever(tracker: PresenceTracker, interval_seconds: float) -> None:
    while True:
        try:
            await tracker.sweep()
        except Exception:
            # The next round starts from the stored state; nothing is lost by skipping one.
            log.warning("sweep failed", exc_info=True)
        await asyncio.sleep(interval_seconds)


async def tick_forever(broker: Broker, interval_seconds: float) -> None:
    """Partitioned presence: ask each partition's owner to sweep its users.

    Every instance sends ticks; a tick lives one interval, so a backlog never piles up.
    """
    topology = broker.topology
    while True:
        for partition in range(topology.partitions):
            tick = SweepTick(partition=partition)
            queue = topology.partition_queue(PRESENCE, partition)
            try:
                await broker.publish_to_queue(queue, tick, ttl=interval_seconds)
            except Exception:
                log.warning("sweep tick not sent", partition=partition, exc_info=True)
        await asyncio.sleep(interval_seconds)
