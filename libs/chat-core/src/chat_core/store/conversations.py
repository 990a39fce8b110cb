"""Conversations: who is in them (fixed at creation) and where their timeline ends.

`conversations`, `_id` = conversation id. `lastSeq`, `lastMessage` and `lastActivityAt` are
written behind the sends (in batches), so a chat list is one batch of `_id` lookups. They
are a hint that may lag (sends in flight or not yet written behind, or one that died before
this write): readers confirm `lastSeq` with one timeline lookup past it (Messages.last_seq).
"""

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pymongo import UpdateOne

from chat_core.contacts import ConversationIndex
from chat_core.db import Collection, Database, Document, IdLookups
from chat_core.store.messages import Message, Messages

_REMEMBERED = 100_000


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    participant_ids: tuple[str, ...]
    name: str | None
    created_at: datetime
    last_seq: int = 0
    last_message: Message | None = None

    @property
    def last_activity_at(self) -> datetime:
        return self.last_message.created_at if self.last_message else self.created_at

    def to_document(self) -> Document:
        return {
            "_id": self.conversation_id,
            "participantIds": list(self.participant_ids),
            "name": self.name,
            "createdAt": self.created_at,
            "lastSeq": self.last_seq,
            "lastMessage": self.last_message.to_document() if self.last_message else None,
            "lastActivityAt": self.last_activity_at,
        }

    @classmethod
    def from_document(cls, doc: Document) -> "Conversation":
        last = doc.get("lastMessage")
        return cls(
            conversation_id=doc["_id"],
            participant_ids=tuple(doc["participantIds"]),
            name=doc.get("name"),
            created_at=doc["createdAt"],
            last_seq=doc.get("lastSeq", 0),
            last_message=Message.from_document(last) if last else None,
        )


class Conversations:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db.conversations
        self.index = ConversationIndex(db)
        self._advancing = asyncio.Lock()
        self._advanced: OrderedDict[str, int] = OrderedDict()
        self._lookups = IdLookups(self._collection)

    async def insert(self, conversation: Conversation) -> None:
        """Raises DuplicateKeyError when the id exists (the one-to-one of a known pair)."""
        await self._collection.insert_one(conversation.to_document())

    async def get(self, conversation_id: str) -> Conversation | None:
        """One `_id` lookup."""
        doc = await self._lookups.one(conversation_id)
        return Conversation.from_document(doc) if doc else None

    async def of_user(self, user_id: str) -> list[Conversation]:
        """One lookup for the user's index, then its conversations by `_id` (IdLookups)."""
        ids = await self.index.conversations_of(user_id)
        found = await self._lookups.many(ids)
        return [Conversation.from_document(found[cid]) for cid in ids if cid in found]

    async def advance(self, message: Message) -> None:
        """`advance_many` of one message."""
        await self.advance_many([message])

    async def advance_many(self, messages: Iterable[Message]) -> None:
        """Record each conversation's latest of `messages` as its last unless a later one
        already is: one bulk write of `_id` updates for all of them, no read.

        This process remembers how far it advanced each conversation and writes one batch at
        a time, so its own sends never move a hint back. Another process may (its write
        landing after a later one), which readers repair with one timeline lookup
        (`all_confirmed`): the hint is never trusted alone.
        """
        latest: dict[str, Message] = {}
        for message in messages:
            known = latest.get(message.conversation_id)
            if known is None or known.seq < message.seq:
                latest[message.conversation_id] = message
        async with self._advancing:
            due = [m for m in latest.values() if self._advanced.get(m.conversation_id, 0) < m.seq]
            if not due:
                return
            await self._collection.bulk_write(
                [
                    UpdateOne(
                        {"_id": m.conversation_id},
                        {
                            "$set": {
                                "lastSeq": m.seq,
                                "lastMessage": m.to_document(),
                                "lastActivityAt": m.created_at,
                            }
                        },
                    )
                    for m in due
                ],
                ordered=False,
            )
            for m in due:
                self._advanced[m.conversation_id] = m.seq
                self._advanced.move_to_end(m.conversation_id)
            while len(self._advanced) > _REMEMBERED:
                self._advanced.popitem(last=False)

    async def all_confirmed(
        self, conversations: Sequence[Conversation], messages: Messages
    ) -> list[Conversation]:
        """`confirmed` for many: one batch of lookups for all of them when their hints are
        current (a chat list page, a sync)."""
        last_seqs = await messages.last_seqs({c.conversation_id: c.last_seq for c in conversations})
        return list(
            await asyncio.gather(
                *(_caught_up(c, last_seqs[c.conversation_id], messages) for c in conversations)
            )
        )


async def _caught_up(conversation: Conversation, last_seq: int, messages: Messages) -> Conversation:
    """The conversation with the timeline's `last_seq`, and its last message if it moved."""
    if last_seq == conversation.last_seq:
        return conversation
    last = conversation.last_message
    for seq in range(last_seq, conversation.last_seq, -1):
        entry = await messages.at(conversation.conversation_id, seq)
        if isinstance(entry, Message):
            last = entry
            break
    return replace(conversation, last_seq=last_seq, last_message=last)
