"""Stored messages: the document shape, the one JSON shape, and the repository."""

from dataclasses import dataclass
from datetime import datetime

from pymongo import DESCENDING

from chat_core.db import Collection, Database, Document
from chat_core.events import MessageType, NewMessage, isoformat


@dataclass(frozen=True)
class Message:
    message_id: str
    conversation_id: str
    sender_id: str
    content: str
    message_type: MessageType
    created_at: datetime
    client_message_id: str

    def to_document(self) -> Document:
        return {
            "_id": self.message_id,
            "conversationId": self.conversation_id,
            "senderId": self.sender_id,
            "content": self.content,
            "messageType": self.message_type,
            "createdAt": self.created_at,
            "clientMessageId": self.client_message_id,
        }

    @classmethod
    def from_document(cls, doc: Document) -> "Message":
        return cls(
            message_id=doc["_id"],
            conversation_id=doc["conversationId"],
            sender_id=doc["senderId"],
            content=doc["content"],
            message_type=doc["messageType"],
            created_at=doc["createdAt"],
            client_message_id=doc["clientMessageId"],
        )


def message_fields(message: Message) -> dict[str, str]:
    """The fields a message has everywhere: REST responses, history and `new_message`."""
    return {
        "messageId": message.message_id,
        "conversationId": message.conversation_id,
        "senderId": message.sender_id,
        "content": message.content,
        "messageType": message.message_type,
        "timestamp": isoformat(message.created_at),
    }


def new_message_frame(message: Message) -> NewMessage:
    return NewMessage.model_validate(message_fields(message))


class Messages:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db.messages

    async def insert(self, message: Message) -> None:
        """Raises DuplicateKeyError when the sender already used this clientMessageId."""
        await self._collection.insert_one(message.to_document())

    async def get(self, message_id: str) -> Message | None:
        doc = await self._collection.find_one({"_id": message_id})
        return Message.from_document(doc) if doc else None

    async def by_client_message_id(
        self, conversation_id: str, sender_id: str, client_message_id: str
    ) -> Message | None:
        doc = await self._collection.find_one(
            {
                "conversationId": conversation_id,
                "senderId": sender_id,
                "clientMessageId": client_message_id,
            }
        )
        return Message.from_document(doc) if doc else None

    async def history(
        self, conversation_id: str, *, before: str | None, limit: int
    ) -> list[Message]:
        """Newest first; ids sort by creation time, so `before` is a cursor."""
        query: Document = {"conversationId": conversation_id}
        if before is not None:
            query["_id"] = {"$lt": before}
        cursor = self._collection.find(query).sort("_id", DESCENDING).limit(limit)
        return [Message.from_document(doc) async for doc in cursor]

    async def last(self, conversation_id: str) -> Message | None:
        found = await self.history(conversation_id, before=None, limit=1)
        return found[0] if found else None

    async def count_unread(self, conversation_id: str, reader_id: str, after: str | None) -> int:
        """Messages from others than the reader after the reader's last read one."""
        query: Document = {"conversationId": conversation_id, "senderId": {"$ne": reader_id}}
        if after is not None:
            query["_id"] = {"$gt": after}
        return await self._collection.count_documents(query)
