"""Pending `new_message` publications, so a crash between write and publish loses nothing.

An entry (`_id` = message id) is written before the message takes its position and
deleted once the event is confirmed by the broker and what the send leaves for later
(write_behind.py) is written; whatever is left behind, the relay finishes. Entries live for
a fraction of a second, so the collection stays tiny and scanning it by age is cheap.
Message ids are not in time order (they derive from idempotency keys): age is `createdAt`.
"""

from dataclasses import dataclass
from datetime import datetime

import structlog

from chat_core.db import Collection, Database, Document
from chat_core.group_commit import GroupCommit
from chat_core.store.messages import Message

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PendingMessage:
    message: Message
    participant_ids: tuple[str, ...]
    written_at: datetime


class Outbox:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db.outbox
        self._inserts = GroupCommit(self._collection)
        # Published and confirmed, not yet deleted: removed in batches, one write for many
        # sends instead of one each. A crash before the batch goes only means the relay
        # publishes them again, which at-least-once delivery allows.
        self._published: set[str] = set()
        # Sends of this process still between their entry and their publish: under load a
        # request can outlive the relay's minimum age, and this process's relay must not
        # publish (and so duplicate) what its own request is about to.
        self._in_flight: set[str] = set()

    async def add(self, message: Message, participant_ids: tuple[str, ...], now: datetime) -> None:
        """Write the entry (DuplicateKeyError: one exists), which is then this request's
        until it calls `published` or `settled`."""
        await self._inserts.insert(
            {
                "_id": message.message_id,
                "message": message.to_document(),
                "participantIds": list(participant_ids),
                "createdAt": now,
            }
        )
        # Only now: an entry this request did not write is not its to keep from the relay.
        # (A relay reading meanwhile only takes entries older than its minimum age.)
        self._in_flight.add(message.message_id)

    async def get(self, message_id: str) -> PendingMessage | None:
        """One `_id` lookup."""
        doc = await self._collection.find_one({"_id": message_id})
        return _pending(doc) if doc else None

    async def remove(self, message_id: str) -> None:
        self._published.discard(message_id)
        await self._collection.delete_one({"_id": message_id})

    def settled(self, message_id: str) -> None:
        """The request that wrote the entry gave up on it: from now on it is the relay's."""
        self._in_flight.discard(message_id)

    def published(self, message_id: str) -> None:
        """The entry's send is complete (event confirmed, its write-behind written): the
        next `flush` deletes it, and the relay never takes it."""
        self._published.add(message_id)
        self._in_flight.discard(message_id)

    async def flush(self) -> None:
        if not self._published:
            return
        batch = list(self._published)
        # They leave `_published` only once deleted: until then this process's relay must
        # keep skipping them.
        await self._collection.delete_many({"_id": {"$in": batch}})
        self._published.difference_update(batch)

    async def written_before(self, moment: datetime) -> list[PendingMessage]:
        cursor = self._collection.find({"createdAt": {"$lt": moment}}).sort("createdAt", 1)
        return [
            _pending(doc)
            async for doc in cursor
            if doc["_id"] not in self._published and doc["_id"] not in self._in_flight
        ]


def _pending(doc: Document) -> PendingMessage:
    return PendingMessage(
        Message.from_document(doc["message"]), tuple(doc["participantIds"]), doc["createdAt"]
    )
