"""The caller's chat list: conversations by last activity, newest first, with unread counts.

One lookup for the caller's conversation index and one per conversation for its document
(which carries the last message); then, for the page only, one lookup each to confirm the
last seq and one for the caller's read position. O(the caller's conversations), whatever
other users store.
"""

import asyncio
import base64
import binascii
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from chat_core.store.conversations import Conversation, Conversations
from chat_core.store.messages import Messages
from chat_core.store.read_state import ReadPosition, ReadStates, unread
from messaging.write_behind import WriteBehind


class BadListCursor(ValueError):
    pass


@dataclass(frozen=True)
class InboxEntry:
    conversation: Conversation
    read: ReadPosition | None

    @property
    def unread_count(self) -> int:
        return unread(self.conversation.last_seq, self.read)

    @property
    def read_seq(self) -> int:
        return self.read.read_seq if self.read else 0


def _with_unwritten(conversation: Conversation, unwritten: WriteBehind) -> Conversation:
    latest = unwritten.latest(conversation.conversation_id)
    if latest is None or latest.seq <= conversation.last_seq:
        return conversation
    return replace(conversation, last_seq=latest.seq, last_message=latest)


def _read_position(
    user_id: str,
    conversation: Conversation,
    stored: ReadPosition | None,
    unwritten: WriteBehind,
) -> ReadPosition | None:
    """The stored position, or further: sending moves one's own position, and a move not
    written yet (here, or by another process) is known from the send itself."""
    own = unwritten.sent_by(conversation.conversation_id, user_id)
    last = conversation.last_message
    if last is not None and last.sender_id == user_id and (own is None or own.seq < last.seq):
        own = last
    if own is None or own.seq <= (stored.read_seq if stored else 0):
        return stored
    return ReadPosition(user_id, own.seq, own.message_id, own.created_at)


def _sort_key(conversation: Conversation) -> tuple[datetime, str]:
    return conversation.last_activity_at, conversation.conversation_id


def encode_cursor(conversation: Conversation) -> str:
    at, conversation_id = _sort_key(conversation)
    raw = f"{int(at.timestamp() * 1000)}:{conversation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, conversation_id = raw.split(":", 1)
        return datetime.fromtimestamp(int(millis) / 1000, UTC), conversation_id
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError) as error:
        raise BadListCursor("malformed cursor") from error


async def inbox(
    user_id: str,
    *,
    limit: int,
    cursor: str | None,
    conversations: Conversations,
    messages: Messages,
    read_states: ReadStates,
    unwritten: WriteBehind,
) -> tuple[list[InboxEntry], str | None]:
    """One page of the chat list and the cursor of the next page (None on the last).

    Sends of this process not yet written behind count as written (`unwritten`)."""
    mine = sorted(
        (_with_unwritten(c, unwritten) for c in await conversations.of_user(user_id)),
        key=_sort_key,
        reverse=True,
    )
    if cursor is not None:
        after = decode_cursor(cursor)
        mine = [c for c in mine if _sort_key(c) < after]
    page = mine[:limit]
    confirmed, positions = await asyncio.gather(
        conversations.all_confirmed(page, messages),
        read_states.of_user(user_id, [c.conversation_id for c in page]),
    )
    entries = [
        InboxEntry(c, _read_position(user_id, c, positions.get(c.conversation_id), unwritten))
        for c in confirmed
    ]
    next_cursor = encode_cursor(page[-1]) if len(mine) > limit else None
    return entries, next_cursor
