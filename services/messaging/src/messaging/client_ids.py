"""Idempotent sends: a sender's clientMessageId, per conversation, names one message.

`client_ids`, `_id` = "<conversationId>|<senderId>|<clientMessageId>" -> the messageId the
first send chose. Claimed by insert before anything else is written, so of two concurrent
sends with one key exactly one goes ahead: one `_id` write, or one `_id` read on a repeat.
"""

from dataclasses import dataclass
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from chat_core.db import Collection, Database
from chat_core.group_commit import GroupCommit


@dataclass(frozen=True)
class ClientIdClaim:
    message_id: str
    claimed_at: datetime


def key(conversation_id: str, sender_id: str, client_message_id: str) -> str:
    return f"{conversation_id}|{sender_id}|{client_message_id}"


class ClientIds:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db.client_ids
        self._inserts = GroupCommit(self._collection)

    async def claim(self, key: str, message_id: str, now: datetime) -> ClientIdClaim | None:
        """None when this send now owns the key; the earlier claim when another does."""
        try:
            await self._inserts.insert({"_id": key, "messageId": message_id, "claimedAt": now})
        except DuplicateKeyError:
            doc = await self._collection.find_one({"_id": key})
            if doc is None:  # pragma: no cover - claims are never deleted
                raise
            return ClientIdClaim(doc["messageId"], doc["claimedAt"])
        return None

    async def record(self, key: str, message_id: str, now: datetime) -> None:
        """Idempotent claim for a message already stored (migration)."""
        try:
            await self._collection.insert_one(
                {"_id": key, "messageId": message_id, "claimedAt": now}
            )
        except DuplicateKeyError:
            pass
