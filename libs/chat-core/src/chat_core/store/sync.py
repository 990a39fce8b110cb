"""Catching up after a disconnect: every message of the caller's conversations the client may
not have seen, oldest first within each conversation. Duplicates are allowed (clients
de-duplicate by messageId); gaps never.

A cursor is a time floor plus exact positions for some conversations. A conversation with a
position continues right after it. Any other conversation is read back from its end while
messages are stamped at or after `floor - margin`: a message is stamped before it takes its
seq, and a send that cannot take one within `CLAIM_DEADLINE` gives up, so anything stored
after the previous answer was read carries a stamp within the margin. Cost: one lookup per
conversation of the caller, one per item returned, one more per conversation with activity.
"""

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ValidationError

from chat_core.ids import is_document_id
from chat_core.store.conversations import Conversation, Conversations
from chat_core.store.messages import Entry, Message, Messages

# A send stamps its message, then must take a seq within this long or give up (sending.py).
CLAIM_DEADLINE = timedelta(seconds=30)
# How far before a cursor's time conversations without a position are read again. Larger
# than CLAIM_DEADLINE plus the database's lock wait, so no late writer slips under it.
DEFAULT_MARGIN = timedelta(seconds=120)
_PREFIX = "s1."


class BadCursor(ValueError):
    pass


class _CursorWire(BaseModel):
    t: int  # epoch milliseconds
    s: dict[str, int]


@dataclass(frozen=True)
class SyncCursor:
    at: datetime
    seqs: dict[str, int] = field(default_factory=dict)

    def encode(self) -> str:
        wire = _CursorWire(t=int(self.at.timestamp() * 1000), s=self.seqs)
        raw = wire.model_dump_json().encode()
        return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "SyncCursor":
        if not text.startswith(_PREFIX):
            raise BadCursor("not a messageId or a nextSince cursor")
        body = text[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            wire = _CursorWire.model_validate_json(raw)
            at = datetime.fromtimestamp(wire.t / 1000, UTC)
        except (binascii.Error, ValidationError, ValueError, OverflowError, OSError) as error:
            raise BadCursor("malformed nextSince cursor") from error
        if any(seq < 0 or not is_document_id(cid) for cid, seq in wire.s.items()):
            raise BadCursor("malformed nextSince cursor")
        return cls(at=at, seqs=dict(wire.s))


@dataclass(frozen=True)
class SyncPage:
    entries: list[Entry]
    # Conversations the cursor did not know and created at or after its floor.
    new_conversations: list[Conversation]
    next: SyncCursor
    has_more: bool

    @property
    def messages(self) -> list[Message]:
        return [entry for entry in self.entries if isinstance(entry, Message)]


async def resolve(since: str | None, messages: Messages) -> SyncCursor | None:
    """The cursor for `since`: a messageId the client has seen, or an earlier `nextSince`."""
    if since is None:
        return None
    if is_document_id(since):
        seen = await messages.get(since)
        if seen is None:
            raise BadCursor(f"unknown messageId {since}")
        return SyncCursor(at=seen.created_at, seqs={seen.conversation_id: seen.seq})
    return SyncCursor.decode(since)


@dataclass
class _Plan:
    conversation: Conversation
    after: int  # the client has everything up to this seq

    @property
    def pending(self) -> int:
        return self.conversation.last_seq - self.after


async def sync(
    user_id: str,
    cursor: SyncCursor | None,
    *,
    conversations: Conversations,
    messages: Messages,
    limit: int,
    now: datetime,
    margin: timedelta = DEFAULT_MARGIN,
) -> SyncPage:
    """Up to `limit` entries the holder of `cursor` may not have seen (without a cursor: the
    latest message of each conversation, most recent first)."""
    mine = await conversations.of_user(user_id)
    confirmed = await conversations.all_confirmed(mine, messages)
    if cursor is None:
        return _latest(confirmed, limit, now)
    floor = cursor.at - margin
    plans = await asyncio.gather(
        *(_plan(conversation, cursor, floor, messages) for conversation in confirmed)
    )
    new = [c for c in confirmed if c.conversation_id not in cursor.seqs and c.created_at >= floor]
    entries: list[Entry] = []
    progress = dict(cursor.seqs)
    has_more = False
    for plan in sorted(
        (p for p in plans if p.pending > 0), key=lambda p: p.conversation.last_activity_at
    ):
        room = limit - len(entries)
        if room <= 0:
            has_more = True
            break
        last = min(plan.conversation.last_seq, plan.after + room)
        entries.extend(await messages.span(plan.conversation.conversation_id, plan.after + 1, last))
        progress[plan.conversation.conversation_id] = last
        if last < plan.conversation.last_seq:
            has_more = True
    if has_more:
        # Conversations not reached keep the old floor; the ones reached continue exactly.
        next_cursor = SyncCursor(at=cursor.at, seqs=progress)
    else:
        reached = {e.conversation_id: e.seq for e in entries}
        next_cursor = SyncCursor(at=now, seqs=reached)
    return SyncPage(entries, new, next_cursor, has_more)


def _latest(confirmed: list[Conversation], limit: int, now: datetime) -> SyncPage:
    recent = sorted(confirmed, key=lambda c: c.last_activity_at, reverse=True)
    page = recent[:limit]
    entries: list[Entry] = [c.last_message for c in page if c.last_message is not None]
    seqs = {c.conversation_id: c.last_seq for c in page}
    return SyncPage(entries, [], SyncCursor(at=now, seqs=seqs), len(recent) > limit)


async def _plan(
    conversation: Conversation, cursor: SyncCursor, floor: datetime, messages: Messages
) -> _Plan:
    known = cursor.seqs.get(conversation.conversation_id)
    if known is not None:
        return _Plan(conversation, min(known, conversation.last_seq))
    last = conversation.last_message
    if conversation.last_seq == 0 or (last is not None and last.created_at < floor):
        # Confirmed last message predates the floor: nothing of it can be unseen.
        if last is not None and last.seq == conversation.last_seq:
            return _Plan(conversation, conversation.last_seq)
    seq = conversation.last_seq
    while seq > 0:
        entry = await messages.at(conversation.conversation_id, seq)
        if entry is not None and entry.created_at < floor:
            break
        seq -= 1
    return _Plan(conversation, seq)
