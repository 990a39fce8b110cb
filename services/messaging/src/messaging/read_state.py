"""How far each member has read a conversation; unread counts and readBy follow from it.

One document per member and conversation (`_id` = "<conversationId>|<userId>") holding the
last read message id. Message ids sort by creation time, so "read message M" means "read
everything up to M", and the position only ever moves forward.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from chat_core.db import Collection, Database, Document, DocumentWrites


@dataclass(frozen=True)
class ReadPosition:
    user_id: str
    last_read_message_id: str
    read_at: datetime


def moves_forward(current: str | None, candidate: str) -> bool:
    return current is None or candidate > current


def has_read(position: ReadPosition | None, message_id: str) -> bool:
    return position is not None and position.last_read_message_id >= message_id


def read_by(
    message_id: str,
    sender_id: str,
    participants: Sequence[str],
    positions: dict[str, ReadPosition],
) -> list[ReadPosition]:
    """Members other than the sender whose read position is at or past the message.

    A member's `readAt` is when their position last moved, which may be later than the
    moment they first saw this particular message.
    """
    readers = []
    for user_id in participants:
        position = positions.get(user_id)
        if user_id != sender_id and position is not None and has_read(position, message_id):
            readers.append(position)
    return readers


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


def _key(conversation_id: str, user_id: str) -> str:
    return f"{conversation_id}|{user_id}"


def _position(doc: Document) -> ReadPosition:
    return ReadPosition(doc["userId"], doc["lastReadMessageId"], doc["readAt"])


class ReadStates:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db.read_state
        self._writes = DocumentWrites(db.read_state)
        # FerretDB updates are read-then-write: two receipts of one member racing in this
        # process could let the older one land last. Serialise them per document.
        self._turns: dict[str, _Turn] = {}

    async def advance(
        self, conversation_id: str, user_id: str, message_id: str, now: datetime
    ) -> bool:
        """Move the member's position to `message_id` unless it is already there or past it.

        Returns whether it moved.
        """
        key = _key(conversation_id, user_id)
        async with self._one_at_a_time(key):
            return await self._advance(key, conversation_id, user_id, message_id, now)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key: str) -> AsyncIterator[None]:
        turn = self._turns.setdefault(key, _Turn())
        turn.waiting += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.waiting -= 1
            if not turn.waiting:
                del self._turns[key]

    async def _advance(
        self, key: str, conversation_id: str, user_id: str, message_id: str, now: datetime
    ) -> bool:
        update = {
            "$set": {
                "conversationId": conversation_id,
                "userId": user_id,
                "lastReadMessageId": message_id,
                "readAt": now,
            }
        }
        # No document yet: created. One at or past message_id: nothing moves.
        return await self._writes.update_if(
            key,
            {"lastReadMessageId": {"$lt": message_id}},
            lambda doc: moves_forward(doc.get("lastReadMessageId"), message_id),
            update,
            upsert=True,
        )

    async def get(self, conversation_id: str, user_id: str) -> ReadPosition | None:
        doc = await self._collection.find_one({"_id": _key(conversation_id, user_id)})
        return _position(doc) if doc else None

    async def of_members(
        self, conversation_id: str, user_ids: Iterable[str]
    ) -> dict[str, ReadPosition]:
        keys = [_key(conversation_id, user_id) for user_id in user_ids]
        cursor = self._collection.find({"_id": {"$in": keys}})
        return {doc["userId"]: _position(doc) async for doc in cursor}

    async def of_user(
        self, user_id: str, conversation_ids: Iterable[str]
    ) -> dict[str, ReadPosition]:
        """The user's position in each conversation that has one, by conversation id."""
        keys = [_key(conversation_id, user_id) for conversation_id in conversation_ids]
        cursor = self._collection.find({"_id": {"$in": keys}})
        return {doc["conversationId"]: _position(doc) async for doc in cursor}
