"""How far each member has read a conversation, by seq; unread counts and readBy follow.

One document per member and conversation (`_id` = "<conversationId>|<userId>") with the
highest seq read (and that message's id). Reading message N means reading everything up to
N, and a position only moves forward. Unread = the conversation's last seq - the read seq.
"""

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from chat_core.db import Collection, Database, Document, DocumentWrites, IdLookups
from chat_core.group_commit import DUPLICATE_KEY
from chat_core.keyed_lock import KeyedLock


@dataclass(frozen=True)
class ReadPosition:
    user_id: str
    read_seq: int
    last_read_message_id: str
    read_at: datetime


def read_by(
    seq: int, sender_id: str, participants: Sequence[str], positions: dict[str, ReadPosition]
) -> list[ReadPosition]:
    """Members other than the sender whose read position is at or past `seq`.

    A member's `readAt` is when their position last moved, which may be later than the
    moment they first saw this particular message.
    """
    return [
        position
        for user_id in participants
        if user_id != sender_id
        and (position := positions.get(user_id)) is not None
        and position.read_seq >= seq
    ]


@dataclass(frozen=True)
class ReadMove:
    """A member has read `conversation_id` up to `seq` (message `message_id`) at `at`."""

    conversation_id: str
    user_id: str
    seq: int
    message_id: str
    at: datetime


def _forward(move: ReadMove) -> tuple[Document, Callable[[Document], bool], Document]:
    """The conditional update that moves a position to `move`, never back."""
    update = {
        "$set": {
            "conversationId": move.conversation_id,
            "userId": move.user_id,
            "readSeq": move.seq,
            "lastReadMessageId": move.message_id,
            "readAt": move.at,
        }
    }
    return {"readSeq": {"$lt": move.seq}}, lambda doc: doc.get("readSeq", 0) < move.seq, update


def unread(last_seq: int, position: ReadPosition | None) -> int:
    return max(0, last_seq - (position.read_seq if position else 0))


def key(conversation_id: str, user_id: str) -> str:
    return f"{conversation_id}|{user_id}"


def _position(doc: Document) -> ReadPosition:
    return ReadPosition(
        doc["userId"], doc.get("readSeq", 0), doc.get("lastReadMessageId", ""), doc["readAt"]
    )


class ReadStates:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db.read_state
        self._writes = DocumentWrites(db.read_state)
        # FerretDB updates are read-then-write: two receipts of one member racing in this
        # process could let the older one land last. Serialised per document.
        self._turns = KeyedLock()
        self._lookups = IdLookups(db.read_state)

    async def advance(
        self, conversation_id: str, user_id: str, seq: int, message_id: str, now: datetime
    ) -> bool:
        """Move the member's position to `seq` unless it is already there or past it: one
        `_id` read and one write. Returns whether it moved."""
        doc_id = key(conversation_id, user_id)
        move = ReadMove(conversation_id, user_id, seq, message_id, now)
        async with self._turns(doc_id):
            return await self._writes.update_if(doc_id, *_forward(move), upsert=True)

    async def advance_many(self, moves: Iterable[ReadMove]) -> None:
        """`advance` for many positions at once (a flush of senders' own reads): one batch
        of `_id` lookups, then one bulk write of the positions that move and one insert of
        those that are new, under the documents' turns (so plain `_id` writes suffice)."""
        furthest: dict[str, ReadMove] = {}
        for move in moves:
            doc_id = key(move.conversation_id, move.user_id)
            known = furthest.get(doc_id)
            if known is None or known.seq < move.seq:
                furthest[doc_id] = move
        async with contextlib.AsyncExitStack() as turns:
            # In one order, so two batches never wait on each other.
            for doc_id in sorted(furthest):
                await turns.enter_async_context(self._turns(doc_id))
            stored = await self._lookups.many(furthest, {"readSeq": 1})
            behind = [
                UpdateOne({"_id": doc_id}, _forward(move)[2])
                for doc_id, move in furthest.items()
                if doc_id in stored and stored[doc_id].get("readSeq", 0) < move.seq
            ]
            new = [
                {"_id": doc_id, **_forward(move)[2]["$set"]}
                for doc_id, move in furthest.items()
                if doc_id not in stored
            ]
            if behind:
                await self._collection.bulk_write(behind, ordered=False)
            if new:
                await self._insert_new(new, furthest)

    async def _insert_new(self, docs: list[Document], moves: dict[str, ReadMove]) -> None:
        try:
            await self._collection.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            failed = error.details.get("writeErrors", [])
            if error.details.get("writeConcernErrors") or any(
                e.get("code") != DUPLICATE_KEY for e in failed
            ):
                raise
            # Created meanwhile by another writer: move those the usual way.
            for detail in failed:
                doc_id = docs[detail["index"]]["_id"]
                await self._writes.update_if(doc_id, *_forward(moves[doc_id]), upsert=True)

    async def get(self, conversation_id: str, user_id: str) -> ReadPosition | None:
        """One `_id` lookup."""
        doc = await self._lookups.one(key(conversation_id, user_id))
        return _position(doc) if doc else None

    async def of_members(
        self, conversation_id: str, user_ids: Iterable[str]
    ) -> dict[str, ReadPosition]:
        """Each member's position that exists: `_id` lookups (IdLookups)."""
        keys = {key(conversation_id, user): user for user in user_ids}
        found = await self._lookups.many(keys)
        return {keys[doc_id]: _position(doc) for doc_id, doc in found.items()}

    async def of_user(
        self, user_id: str, conversation_ids: Iterable[str]
    ) -> dict[str, ReadPosition]:
        """The user's position in each conversation that has one: `_id` lookups (IdLookups)."""
        keys = {key(cid, user_id): cid for cid in conversation_ids}
        found = await self._lookups.many(keys)
        return {keys[doc_id]: _position(doc) for doc_id, doc in found.items()}
