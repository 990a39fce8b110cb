"""The `edges` collection: when each edge process was last heard from (`_id` = edge id)."""

from datetime import datetime, timedelta

from chat_core.db import Database, Document, upsert_by_id
from presence.state import EdgeSeen


def _seen(doc: Document) -> EdgeSeen:
    return EdgeSeen(last_seen_at=doc["lastSeenAt"], empty_at=doc.get("emptyAt"))


class EdgeRepository:
    def __init__(self, db: Database) -> None:
        self._docs = db.edges

    async def record_alive(
        self, edge_id: str, at: datetime, connections: int, now: datetime
    ) -> None:
        # Presence's own clock for liveness, so an edge's clock skew cannot kill it; the
        # edge's clock for `emptyAt`, which is only compared with that edge's timestamps.
        latest: dict[str, datetime] = {"lastSeenAt": now}
        if connections == 0:
            latest["emptyAt"] = at
        # `$max`: announcements consumed out of order never move the times backwards.
        update = {"$max": latest, "$set": {"connections": connections}}
        # Two first announcements may race to create it (upsert_by_id).
        await upsert_by_id(self._docs, edge_id, update)

    async def get(self, edge_id: str) -> EdgeSeen | None:
        doc = await self._docs.find_one({"_id": edge_id})
        return _seen(doc) if doc else None

    async def all(self) -> dict[str, EdgeSeen]:
        return {doc["_id"]: _seen(doc) async for doc in self._docs.find({})}

    async def forget_silent(
        self, edges: dict[str, EdgeSeen], now: datetime, after: timedelta
    ) -> None:
        """Drop edges silent for `after`; their connections then count as never heard from."""
        silent = [edge_id for edge_id, edge in edges.items() if now - edge.last_seen_at > after]
        for edge_id in silent:
            await self._docs.delete_one({"_id": edge_id, "lastSeenAt": edges[edge_id].last_seen_at})
