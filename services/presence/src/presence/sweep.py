"""The stale-connection sweep: the only thing that notices an edge or a client that died."""

import structlog

from chat_core.background import BackgroundJobs
from chat_core.broker import PRESENCE, Broker
from chat_core.events import SweepTick
from presence.tracker import PresenceTracker

log = structlog.get_logger(__name__)


def schedule_sweeps(
    jobs: BackgroundJobs, broker: Broker, tracker: PresenceTracker, interval_seconds: float
) -> None:
    if broker.topology.partitioned(PRESENCE):
        # The sweep writes presence too: it runs where the partition is consumed.
        jobs.every(
            interval_seconds,
            lambda: send_ticks(broker, interval_seconds),
            on_failure="sweep ticks not sent",
        )
    else:
        jobs.every(interval_seconds, tracker.sweep, on_failure="sweep failed")


async def send_ticks(broker: Broker, interval_seconds: float) -> None:
    """Partitioned presence: ask each partition's owner to sweep its users.

    Every instance sends ticks; a tick lives one interval, so a backlog never piles up.
    """
    topology = broker.topology
    for partition in range(topology.partitions):
        tick = SweepTick(partition=partition)
        queue = topology.partition_queue(PRESENCE, partition)
        try:
            await broker.publish_to_queue(queue, tick, ttl=interval_seconds)
        except Exception:
            log.warning("sweep tick not sent", partition=partition, exc_info=True)
