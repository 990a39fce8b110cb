"""The `presence` collection: one document per user (`_id` = user id).

The document shape, and single-document access by `_id`. The presence consumer reads and
writes through presence.store (held in memory, written behind in batches, each write
conditional on the revision it was computed from); what is here serves the tools and tests
that look at one stored document. FerretDB's conditional writes are read-then-write, so
there one instance per user (partitions) is the supported setup (chat_core.db.DocumentWrites
keeps every write an `_id` lookup on both).
"""

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from chat_core.db import Database, Document, DocumentWrites, IdLookups
from chat_core.events import Status
from presence.state import Link, Presence


def to_document(presence: Presence, rev: int, now: datetime) -> Document:
    return {
        "_id": presence.user_id,
        "status": presence.status,
        "statusAt": presence.status_at,
        "effective": presence.effective,
        "announced": presence.announced,
        "pending": presence.pending is not None,
        "online": bool(presence.connections),
        "connections": {
            connection_id: {
                "edgeId": link.edge_id,
                "openedAt": link.opened_at,
                "lastActiveAt": link.last_active_at,
            }
            for connection_id, link in presence.connections.items()
        },
        "closed": dict(presence.closed),
        "lastActiveAt": presence.last_active_at,
        "shownLastActiveAt": presence.shown_last_active_at,
        "rev": rev,
        "updatedAt": now,
    }


def from_document(user_id: str, doc: Document | None) -> Presence:
    if doc is None:
        return Presence(user_id=user_id)
    connections: dict[str, Any] = doc.get("connections") or {}
    return Presence(
        user_id=user_id,
        status=doc.get("status", "available"),
        status_at=doc.get("statusAt"),
        connections={
            connection_id: Link(
                edge_id=link["edgeId"],
                opened_at=link["openedAt"],
                last_active_at=link["lastActiveAt"],
            )
            for connection_id, link in connections.items()
        },
        closed=doc.get("closed") or {},
        last_active_at=doc.get("lastActiveAt"),
        shown_last_active_at=doc.get("shownLastActiveAt"),
        announced=doc.get("announced", "offline"),
        rev=int(doc.get("rev", 0)),
    )


def _at_rev(rev: int) -> Callable[[Document], bool]:
    return lambda doc: doc.get("rev") == rev


class PresenceRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._docs = db.presence
        self._writes = DocumentWrites(db.presence)
        self._lookups = IdLookups(db.presence)

    async def load(self, user_id: str) -> Presence:
        """One `_id` lookup."""
        return from_document(user_id, await self._docs.find_one({"_id": user_id}))

    async def load_many(self, user_ids: Iterable[str]) -> list[Presence]:
        """In the order asked: one `$in` on `_id` where the server pushes it down, else one
        `_id` lookup each (IdLookups)."""
        wanted = list(user_ids)
        docs = await self._lookups.many(wanted)
        return [from_document(user_id, docs.get(user_id)) for user_id in wanted]

    async def save(self, before: Presence, after: Presence, now: datetime) -> Presence | None:
        """Store `after` if the document is still at `before`'s revision; None if it moved."""
        rev = before.rev + 1
        doc = to_document(after, rev, now)
        if before.rev == 0:
            try:
                await self._docs.insert_one(doc)
            except DuplicateKeyError:
                return None
        else:
            stored = await self._writes.replace_if(
                before.user_id, {"rev": before.rev}, _at_rev(before.rev), doc
            )
            if not stored:
                return None
        return replace(after, rev=rev)

    async def mark_announced(self, presence: Presence, status: Status) -> bool:
        """Record that contacts were told `status`; False if a newer write got there first."""
        return await self._writes.update_if(
            presence.user_id,
            {"rev": presence.rev},
            _at_rev(presence.rev),
            {
                "$set": {
                    "announced": status,
                    "pending": status != presence.effective,
                    "rev": presence.rev + 1,
                }
            },
        )

    async def watched(self) -> list[Presence]:
        """Users the sweep must look at: online, or with contacts not yet told. A scan of the
        collection (the `online` index on MongoDB)."""
        cursor = self._docs.find(
            {"$or": [{"online": True}, {"pending": True}]}, {"closed": 0, "statusAt": 0}
        )
        return [from_document(doc["_id"], doc) async for doc in cursor]
