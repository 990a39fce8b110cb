"""Messages in per-conversation order, found by position or by id.

timeline  `_id` "<conversationId>:<seq>"  the message at that position, or a tombstone
messages  `_id` messageId                 the same message, for the ids clients hold

Taking a seq means inserting its timeline document. `_id` uniqueness is the one write that
MongoDB and FerretDB both make atomic (FerretDB's updates are read-then-write, even
`$inc`), so two processes can never take the same seq, and a position is only tried once
every lower one is known to be taken: no holes. A position whose message lost a race for
its id (the relay and a slow request storing the same message) becomes a tombstone, which
readers return as such, so a client that sees N+2 after N knows N+1 is not lost.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from chat_core.clock import isoformat, to_milliseconds
from chat_core.db import Collection, Database, Document, IdLookups
from chat_core.events import MessageType, NewMessage
from chat_core.group_commit import GroupCommit
from chat_core.keyed_lock import KeyedLock

_KNOWN_LAST_SEQS = 100_000


@dataclass(frozen=True)
class Message:
    message_id: str
    conversation_id: str
    seq: int
    sender_id: str
    content: str
    message_type: MessageType
    created_at: datetime
    client_message_id: str | None = None

    def to_document(self) -> Document:
        doc: Document = {
            "_id": self.message_id,
            "conversationId": self.conversation_id,
            "seq": self.seq,
            "senderId": self.sender_id,
            "content": self.content,
            "messageType": self.message_type,
            "createdAt": self.created_at,
        }
        if self.client_message_id is not None:
            doc["clientMessageId"] = self.client_message_id
        return doc

    def timeline_document(self) -> Document:
        return {
            **self.to_document(),
            "_id": timeline_id(self.conversation_id, self.seq),
            "messageId": self.message_id,
        }

    @classmethod
    def from_document(cls, doc: Document) -> "Message":
        return cls(
            message_id=doc.get("messageId") or doc["_id"],
            conversation_id=doc["conversationId"],
            seq=doc.get("seq", 0),
            sender_id=doc["senderId"],
            content=doc["content"],
            message_type=doc["messageType"],
            created_at=doc["createdAt"],
            client_message_id=doc.get("clientMessageId"),
        )


@dataclass(frozen=True)
class Tombstone:
    """A position whose message was never stored there; nothing is missing."""

    conversation_id: str
    seq: int
    created_at: datetime

    def to_document(self) -> Document:
        return {
            "_id": timeline_id(self.conversation_id, self.seq),
            "conversationId": self.conversation_id,
            "seq": self.seq,
            "tombstone": True,
            "createdAt": self.created_at,
        }


Entry = Message | Tombstone


def entry_from_document(doc: Document) -> Entry:
    if doc.get("tombstone"):
        return Tombstone(doc["conversationId"], doc["seq"], doc["createdAt"])
    return Message.from_document(doc)


def timeline_id(conversation_id: str, seq: int) -> str:
    return f"{conversation_id}:{seq}"


def message_fields(message: Message) -> dict[str, str | int]:
    """The fields a message has everywhere: REST responses, history and `new_message`."""
    return {
        "messageId": message.message_id,
        "conversationId": message.conversation_id,
        "senderId": message.sender_id,
        "content": message.content,
        "messageType": message.message_type,
        "timestamp": isoformat(message.created_at),
        "seq": message.seq,
    }


def new_message_frame(message: Message) -> NewMessage:
    return NewMessage.model_validate(message_fields(message))


class Messages:
    def __init__(self, db: Database) -> None:
        self._timeline: Collection = db.timeline
        self._by_id: Collection = db.messages
        self._timeline_inserts = GroupCommit(self._timeline)
        self._by_id_inserts = GroupCommit(self._by_id)
        # Claims in one conversation go one at a time within a process (a seq is only tried
        # once the one below it is taken); other processes are kept apart by `_id` itself.
        self._claims = KeyedLock()
        self._last_seqs: OrderedDict[str, int] = OrderedDict()
        self._positions = IdLookups(self._timeline)

    async def get(self, message_id: str) -> Message | None:
        """One `_id` lookup."""
        doc = await self._by_id.find_one({"_id": message_id})
        return Message.from_document(doc) if doc else None

    async def at(self, conversation_id: str, seq: int) -> Entry | None:
        """One `_id` lookup."""
        doc = await self._positions.one(timeline_id(conversation_id, seq))
        return entry_from_document(doc) if doc else None

    async def span(self, conversation_id: str, first: int, last: int) -> list[Entry]:
        """Positions first..last (inclusive), oldest first: `_id` lookups, batched where the
        server allows (IdLookups)."""
        ids = [timeline_id(conversation_id, seq) for seq in range(max(first, 1), last + 1)]
        found = await self._positions.many(ids)
        return [entry_from_document(found[doc_id]) for doc_id in ids if doc_id in found]

    async def span_and_beyond(
        self, conversation_id: str, first: int, last: int
    ) -> tuple[list[Entry], bool]:
        """`span(first, last)` and whether position `last + 1` is taken, in one batch: taken
        positions are always 1..N, so a page needs no separate look at where the timeline ends."""
        ids = [timeline_id(conversation_id, seq) for seq in range(max(first, 1), last + 2)]
        found = await self._positions.many(ids)
        entries = [entry_from_document(found[doc_id]) for doc_id in ids[:-1] if doc_id in found]
        beyond = ids[-1] in found
        if beyond:
            self._remember(conversation_id, last + 1)
        elif entries:
            self._remember(conversation_id, entries[-1].seq)
        return entries, beyond

    async def last_seq(self, conversation_id: str, hint: int) -> int:
        """The highest taken position, from a hint that may lag (a send still in flight, or
        one that died before updating its conversation): one lookup past it, usually a miss."""
        seq = max(hint, self._last_seqs.get(conversation_id, 0))
        while await self.at(conversation_id, seq + 1) is not None:
            seq += 1
        self._remember(conversation_id, seq)
        return seq

    async def last_seqs(self, hints: Mapping[str, int]) -> dict[str, int]:
        """`last_seq` of many conversations: one batch of lookups just past every hint
        (usually all misses), then the usual walk for the few that moved on."""
        start = {cid: max(hint, self._last_seqs.get(cid, 0)) for cid, hint in hints.items()}
        past = await self._positions.many(timeline_id(cid, seq + 1) for cid, seq in start.items())
        moved = [cid for cid, seq in start.items() if timeline_id(cid, seq + 1) in past]
        walked = await asyncio.gather(*(self.last_seq(cid, start[cid] + 1) for cid in moved))
        found = {**start, **dict(zip(moved, walked, strict=True))}
        for cid in start.keys() - set(moved):
            self._remember(cid, found[cid])
        return found

    def known_last_seq(self, conversation_id: str) -> int | None:
        """The highest position this process has seen taken, if it has seen one."""
        return self._last_seqs.get(conversation_id)

    async def append(self, message: Message, hint: int) -> tuple[Message, bool]:
        """`claim` then `index`: the message as stored, and whether it is this one."""
        return await self.index(await self.claim(message, hint))

    async def claim(self, message: Message, hint: int) -> Message:
        """Store `message` at the next free position of its conversation (`message.seq` is
        ignored) and return it with its seq. Cost: one insert per position tried, usually one.
        """
        conversation_id = message.conversation_id
        async with self._claims(conversation_id):
            seq = max(hint, self._last_seqs.get(conversation_id, 0)) + 1
            stamp = to_milliseconds(message.created_at)
            while True:
                claimed = replace(message, seq=seq, created_at=stamp)
                try:
                    await self._timeline_inserts.insert(claimed.timeline_document())
                    break
                except DuplicateKeyError:
                    holder = await self.at(conversation_id, seq)
                    # An earlier attempt of this very insert may have committed before its
                    # reply was lost: that position is already ours.
                    if isinstance(holder, Message) and holder.message_id == message.message_id:
                        break
                    seq += 1
            self._remember(conversation_id, seq)
        return claimed

    async def index(self, claimed: Message) -> tuple[Message, bool]:
        """Make a claimed message findable by id. Returns it and True, or, when another
        writer stored the same message id first (at another position), that one and False,
        leaving a tombstone at this position. One insert (and a lookup on a race)."""
        try:
            await self._by_id_inserts.insert(claimed.to_document())
        except DuplicateKeyError:
            first = await self.get(claimed.message_id)
            if first is None or first.seq == claimed.seq:
                return first or claimed, True
            await self._timeline.replace_one(
                {"_id": timeline_id(claimed.conversation_id, claimed.seq)},
                Tombstone(claimed.conversation_id, claimed.seq, claimed.created_at).to_document(),
            )
            return first, False
        return claimed, True

    async def find_claim(
        self, conversation_id: str, message_id: str, last: int, not_before: datetime
    ) -> Message | None:
        """The position a dead send took for `message_id`, searching back from `last` to
        positions stamped before `not_before`. Relay only: a few lookups per dead send."""
        seq = last
        while seq > 0:
            entry = await self.at(conversation_id, seq)
            if entry is None or entry.created_at < not_before:
                return None
            if isinstance(entry, Message) and entry.message_id == message_id:
                return entry
            seq -= 1
        return None

    def _remember(self, conversation_id: str, seq: int) -> None:
        if seq <= 0:
            return
        if self._last_seqs.get(conversation_id, 0) < seq:
            self._last_seqs[conversation_id] = seq
        self._last_seqs.move_to_end(conversation_id)
        while len(self._last_seqs) > _KNOWN_LAST_SEQS:
            self._last_seqs.popitem(last=False)


def only_messages(entries: Iterable[Entry]) -> list[Message]:
    return [entry for entry in entries if isinstance(entry, Message)]
