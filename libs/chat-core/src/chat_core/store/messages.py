"""Messages in per-conversation order, found by position or by id.

timeline  `_id` "<conversationId>:<seq>"  the message at that position, or a tombstone
timeline  `_id` messageId                 the same message, for the ids clients hold

Both live in one collection, so that a send's writes are one command (`reserve_and_position`;
the outbox keeps its entries there too, under `o:`-prefixed ids).

Taking a seq means inserting its timeline document. `_id` uniqueness is the one write that
MongoDB and FerretDB both make atomic (FerretDB's updates are read-then-write, even
`$inc`), so two processes can never take the same seq, and a position is only tried once
every lower one is known to be taken: no holes. A position whose message lost a race for
its id (the relay and a slow request storing the same message) becomes a tombstone, which
readers return as such, so a client that sees N+2 after N knows N+1 is not lost.

A send inserts its by-id document first, with the seq it expects to take (the reservation):
a messageId derived from the sender's idempotency key makes that insert the key's claim too.
Then, in the same ordered command, the position; only if the position was taken meanwhile
(another process appended) does it take the next free one and settle the reservation to it.
So a by-id document is authoritative once its position holds it (`is_positioned`); until
then it is a reservation that only its sender's retries and the relay look at.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from chat_core.clock import isoformat, to_milliseconds
from chat_core.db import Collection, Database, Document, DocumentWrites, IdLookups
from chat_core.events import MessageType, NewMessage
from chat_core.group_commit import GroupCommit
from chat_core.keyed_lock import KeyedLock

_KNOWN_LAST_SEQS = 100_000
# A by-id document of store version 3 standing for a message stored before it, under the id
# that message's idempotency key derives to now (migrate.py): `{_id, aliasOf: messageId}`.
ALIAS_OF = "aliasOf"
# Set on a by-id document by `settle`: its seq is final, whoever else positioned the message.
SETTLED = "settled"
# The collection's third kind of `_id`: messaging's outbox entries, "o:<messageId>" (no
# position or message id starts so), all of them one `_id` range.
OUTBOX_PREFIX = "o:"
OUTBOX_ENTRIES = {"_id": {"$gte": OUTBOX_PREFIX, "$lt": "o;"}}


def outbox_entry_id(message_id: str) -> str:
    return OUTBOX_PREFIX + message_id


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


class Reserved(Exception):
    """The message id is reserved already: the same idempotency key sent again."""


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
        self._by_id: Collection = self._timeline
        self._timeline_inserts = GroupCommit(self._timeline)
        # Claims in one conversation go one at a time within a process (a seq is only tried
        # once the one below it is taken); other processes are kept apart by `_id` itself.
        self._claims = KeyedLock()
        self._last_seqs: OrderedDict[str, int] = OrderedDict()
        self._positions = IdLookups(self._timeline)
        self._by_id_writes = DocumentWrites(self._by_id)

    async def get(self, message_id: str) -> Message | None:
        """One `_id` lookup (two for a message stored before store version 3 and found by
        the id its idempotency key now derives: an alias)."""
        doc = await self._by_id.find_one({"_id": message_id})
        if doc is not None and ALIAS_OF in doc:
            doc = await self._by_id.find_one({"_id": doc[ALIAS_OF]})
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

    def turn(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        """Appends to one conversation go one at a time within a process (a seq is only
        tried once the one below it is taken); other processes are kept apart by `_id`."""
        return self._claims(conversation_id)

    def expected_seq(self, conversation_id: str, hint: int) -> int:
        """The position the next append here should take, as far as this process knows;
        call inside the conversation's `turn`."""
        return max(hint, self._last_seqs.get(conversation_id, 0)) + 1

    async def reserve(self, message: Message) -> None:
        """Insert the by-id document of a message about to take `message.seq`: the claim of
        its messageId. One insert (batched with concurrent ones); raises DuplicateKeyError
        when the id is claimed already (a repeat of the same idempotency key)."""
        await self._timeline_inserts.insert(message.to_document())

    async def take_position(self, message: Message) -> Message:
        """Insert the timeline document at `message.seq`, or at the next free position past
        it when another writer got there first; returns the message with the seq it got.
        Call inside the conversation's `turn`. Cost: one insert, more only on contention."""
        conversation_id = message.conversation_id
        seq = message.seq
        while True:
            positioned = replace(message, seq=seq)
            try:
                await self._timeline_inserts.insert(positioned.timeline_document())
                break
            except DuplicateKeyError:
                holder = await self.at(conversation_id, seq)
                # An earlier attempt of this very insert may have committed before its reply
                # was lost: that position is already ours.
                if isinstance(holder, Message) and holder.message_id == message.message_id:
                    break
                seq = await self.last_seq(conversation_id, seq) + 1
        self._remember(conversation_id, seq)
        return positioned

    async def reserve_and_position(
        self, message: Message, alongside: Sequence[Document] = ()
    ) -> Message:
        """Reserve `message` (by-id), insert `alongside` (the outbox entry), and take the
        position `message.seq`, in that order, as one command batched with other sends'
        (GroupCommit.insert_in_order). Returns the message as positioned: at the next free
        seq, settled, when its own was taken meanwhile. Raises `Reserved` when the id is
        reserved already (nothing else written), or the DuplicateKeyError of a document
        `alongside` (the reservation written, nothing after it). Call inside the turn."""
        documents = [message.to_document(), *alongside, message.timeline_document()]
        inserted, failure = await self._timeline_inserts.insert_in_order(documents)
        if failure is None:
            self._remember(message.conversation_id, message.seq)
            return message
        if inserted == 0 and isinstance(failure, DuplicateKeyError):
            raise Reserved(message.message_id)
        if inserted < len(documents) - 1 or not isinstance(failure, DuplicateKeyError):
            raise failure
        # Only the position failed: another writer holds it (or this very insert, retried).
        positioned = await self.take_position(message)
        if positioned.seq == message.seq:
            return positioned
        return await self.settle(message, positioned)

    async def settle(self, reserved: Message, positioned: Message) -> Message:
        """Make the by-id document of `reserved` name the position taken for it, once: the
        first writer to settle a reservation wins, and a later one's position becomes a
        tombstone. Returns the message as stored. One conditional `_id` write, and a
        replace and a lookup for the loser.

        Needed whenever a position may not be the one reserved, or another writer may have
        positioned the message too: a send that moved past its expected seq or ran past its
        claim deadline, the relay, a takeover. A send positioned at its reserved seq within
        the deadline needs none (nobody else positions a message before that deadline).
        """
        won = await self._by_id_writes.update_if(
            reserved.message_id,
            {"seq": reserved.seq, SETTLED: {"$exists": False}},
            lambda doc: doc.get("seq") == reserved.seq and SETTLED not in doc,
            {"$set": {"seq": positioned.seq, "createdAt": positioned.created_at, SETTLED: True}},
        )
        if won:
            return positioned
        first = await self.get(reserved.message_id)
        if first is not None and first.seq == positioned.seq:
            return positioned  # settled here already (a retried write whose reply was lost)
        await self._timeline.replace_one(
            {"_id": timeline_id(positioned.conversation_id, positioned.seq)},
            Tombstone(
                positioned.conversation_id, positioned.seq, positioned.created_at
            ).to_document(),
        )
        return first or positioned

    async def is_positioned(self, message: Message) -> bool:
        """Whether the position the by-id document names holds this message: one lookup."""
        entry = await self.at(message.conversation_id, message.seq)
        return isinstance(entry, Message) and entry.message_id == message.message_id

    async def locate(self, reserved: Message, hint: int, not_before: datetime) -> Message | None:
        """Where a reserved message was positioned, if anywhere: at its reserved seq (one
        lookup), or, for a send that died before settling, back from the timeline's end (found
        from `hint`, a taken position) to positions stamped before `not_before` (a few
        lookups). Relay and takeover only."""
        if await self.is_positioned(reserved):
            return reserved
        last = await self.last_seq(reserved.conversation_id, hint)
        found = await self.find_claim(
            reserved.conversation_id, reserved.message_id, last, not_before
        )
        return await self.settle(reserved, found) if found is not None else None

    def known_last_seq(self, conversation_id: str) -> int | None:
        """The highest position this process has seen taken, if it has seen one."""
        return self._last_seqs.get(conversation_id)

    async def append(self, message: Message, hint: int) -> tuple[Message, bool]:
        """Store `message` (its id reserved, positioned at the next free seq, settled): the
        message as stored, and whether it is this one (False: its id was stored already)."""
        conversation_id = message.conversation_id
        async with self.turn(conversation_id):
            expected = replace(
                message,
                seq=self.expected_seq(conversation_id, hint),
                created_at=to_milliseconds(message.created_at),
            )
            try:
                await self.reserve(expected)
            except DuplicateKeyError:
                first = await self.get(message.message_id)
                if first is None:  # pragma: no cover - reservations are never deleted
                    raise
                return first, False
            positioned = await self.take_position(expected)
            if positioned.seq == expected.seq:
                return positioned, True
            stored = await self.settle(expected, positioned)
            return stored, stored.seq == positioned.seq

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
