"""Pending `new_message` publications, so a crash between write and publish loses nothing.

An entry is written in the same command as the message's reservation and position (it is
kept in the store's collection under `_id` "o:<messageId>", so that the three are one
ordered insert: chat_core.store.messages) and deleted once the event is confirmed by the
broker and what the send leaves for later (write_behind.py) is written; whatever is left
behind, the relay finishes. Entries live for a fraction of a second, so there are few, and
the relay finds them with one range of `_id`s ("o:" to "o;"), which MongoDB and devdb serve
from the `_id` index (tools/devdb/build.sh, the fourth fix; a stock FerretDB scans the
collection for it). Message ids are not in time order (they derive from idempotency keys):
age is `createdAt`.
"""

from dataclasses import dataclass
from datetime import datetime

import structlog

from chat_core.db import Collection, Database, Document
from chat_core.group_commit import GroupCommit
from chat_core.store.messages import OUTBOX_ENTRIES, Message, outbox_entry_id

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PendingMessage:
    message: Message
    participant_ids: tuple[str, ...]
    written_at: datetime


class Outbox:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db.timeline
        self._inserts = GroupCommit(self._collection)
        # Published and confirmed, not yet deleted: removed in batches, one write for many
        # sends instead of one each. A crash before the batch goes only means the relay
        # publishes them again, which at-least-once delivery allows.
        self._published: set[str] = set()
        # Sends of this process still between their entry and their publish: under load a
        # request can outlive the relay's minimum age, and this process's relay must not
        # publish (and so duplicate) what its own request is about to.
        self._in_flight: set[str] = set()

    @staticmethod
    def entry(message: Message, participant_ids: tuple[str, ...], now: datetime) -> Document:
        """The entry's document, for a caller that writes it along with others."""
        return {
            "_id": outbox_entry_id(message.message_id),
            "message": message.to_document(),
            "participantIds": list(participant_ids),
            "createdAt": now,
        }

    def entered(self, message_id: str) -> None:
        """This request wrote the entry: it is the request's until `published` or `settled`.
        (Marked once written: a relay reading meanwhile only takes entries older than its
        minimum age.)"""
        self._in_flight.add(message_id)

    async def add(self, message: Message, participant_ids: tuple[str, ...], now: datetime) -> None:
        """Write the entry alone (DuplicateKeyError: one exists); then as `entered`."""
        await self._inserts.insert(self.entry(message, participant_ids, now))
        self.entered(message.message_id)

    async def get(self, message_id: str) -> PendingMessage | None:
        """One `_id` lookup."""
        doc = await self._collection.find_one({"_id": outbox_entry_id(message_id)})
        return _pending(doc) if doc else None

    async def remove(self, message_id: str) -> None:
        self._published.discard(message_id)
        await self._collection.delete_one({"_id": outbox_entry_id(message_id)})

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
        await self._collection.delete_many({"_id": {"$in": [outbox_entry_id(m) for m in batch]}})
        self._published.difference_update(batch)

    async def written_before(self, moment: datetime) -> list[PendingMessage]:
        """Entries older than `moment`, oldest first, but those this process's requests
        still hold or have finished: one range of `_id`s over the few entries there are."""
        pending = [
            _pending(doc)
            async for doc in self._collection.find(OUTBOX_ENTRIES)
            if doc["createdAt"] < moment
        ]
        pending.sort(key=lambda p: p.written_at)
        return [
            p
            for p in pending
            if p.message.message_id not in self._published
            and p.message.message_id not in self._in_flight
        ]

    async def sample(self) -> tuple[int, datetime | None]:
        """How many entries there are and when the oldest was written (for /metrics)."""
        entries = self._collection.find(OUTBOX_ENTRIES, {"createdAt": 1})
        written = [doc["createdAt"] async for doc in entries]
        return len(written), min(written, default=None)


def _pending(doc: Document) -> PendingMessage:
    return PendingMessage(
        Message.from_document(doc["message"]), tuple(doc["participantIds"]), doc["createdAt"]
    )
