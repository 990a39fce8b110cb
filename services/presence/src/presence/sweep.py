"""The stale-connection sweep: the only thing that notices an edge or a client that died."""

import asyncio

import structlog

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
