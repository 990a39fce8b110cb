"""The caller's conversations, most recent activity first, with unread counts.

Last message and unread count are read from the messages themselves (the history index
serves both on MongoDB) rather than kept on the conversation, so the send path never
rewrites a shared conversation document and the two can never disagree with history.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

from messaging.conversations import Conversation, Conversations
from messaging.messages import Message, Messages
from messaging.read_state import ReadStates

_CONCURRENT_QUERIES = 16


@dataclass(frozen=True)
class InboxEntry:
    conversation: Conversation
    last_message: Message | None
    unread_count: int

    @property
    def last_activity_at(self) -> datetime:
        if self.last_message is None:
            return self.conversation.created_at
        return self.last_message.created_at


async def inbox(
    user_id: str, conversations: Conversations, messages: Messages, read_states: ReadStates
) -> list[InboxEntry]:
    mine = await conversations.of_user(user_id)
    positions = await read_states.of_user(user_id, [c.conversation_id for c in mine])
    gate = asyncio.Semaphore(_CONCURRENT_QUERIES)

    async def summarise(conversation: Conversation) -> InboxEntry:
        position = positions.get(conversation.conversation_id)
        async with gate:
            last = await messages.last(conversation.conversation_id)
            unread = await messages.count_unread(
                conversation.conversation_id,
                user_id,
                position.last_read_message_id if position else None,
            )
        return InboxEntry(conversation, last, unread)

    entries = await asyncio.gather(*(summarise(c) for c in mine))
    return sorted(
        entries,
        key=lambda e: (e.last_activity_at, e.conversation.conversation_id),
        reverse=True,
    )
