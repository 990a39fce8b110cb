"""The outbox's backlog and its oldest entry's age, sampled for /metrics.

A healthy outbox holds entries for milliseconds; a growing backlog or an old entry means
publishing is failing (broker down) or the relay is stuck. Both queries scan the outbox
collection, which is why this runs on a timer and not per scrape: it stays tiny.
"""

from pymongo import ASCENDING

from chat_core import metrics
from chat_core.db import Database


async def sample_outbox(db: Database) -> None:
    backlog = await db.outbox.count_documents({})
    oldest = await db.outbox.find_one({}, sort=[("createdAt", ASCENDING)]) if backlog else None
    metrics.outbox_sample(backlog, oldest["createdAt"] if oldest else None)
