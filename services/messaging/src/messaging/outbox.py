"""Pending `new_message` publications, so a crash between write and publish loses nothing.

An entry (`_id` = message id) is written before the message itself and deleted once the
event is confirmed by the broker; whatever is left behind, the relay publishes. Entries live
for milliseconds, so the collection stays tiny and scanning it by age is cheap.
"""

from dataclasses import dataclass
from datetime import datetime

from chat_core.db import Collection, Database
from messaging.messages import Message


@dataclass(frozen=True)
class PendingMessage:
    message: Message
    participant_ids: tuple[str, ...]


class Outbox:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db.outbox

    async def add(self, message: Message, participant_ids: tuple[str, ...], now: datetime) -> None:
        await self._collection.insert_one(
            {
                "_id": message.message_id,
                "message": message.to_document(),
                "participantIds": list(participant_ids),
                "createdAt": now,
            }
        )

    async def remove(self, message_id: str) -> None:
        await self._collection.delete_one({"_id": message_id})

    async def written_before(self, moment: datetime) -> list[PendingMessage]:
        cursor = self._collection.find({"createdAt": {"$lt": moment}}).sort("_id", 1)
        return [
            PendingMessage(Message.from_document(doc["message"]), tuple(doc["participantIds"]))
            async for doc in cursor
        ]

    async def count(self) -> int:
        return await self._collection.count_documents({})
