"""Reading a conversation: pages of history by seq, and one message with who has read it.

Every page is one lookup to confirm where the timeline ends and one per entry, whatever the
size of this or any other conversation.
"""

from dataclasses import dataclass

from chat_core.store.conversations import Conversations
from chat_core.store.messages import Entry, Message, Messages
from chat_core.store.read_state import ReadPosition, ReadStates, read_by
from messaging.errors import NotFound
from messaging.members import Members


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    has_more: bool


@dataclass(frozen=True)
class Reader:
    members: Members
    conversations: Conversations
    messages: Messages
    read_states: ReadStates

    async def _last_seq(self, user_id: str, conversation_id: str) -> int:
        if await self.members.includes(conversation_id, user_id) is None:
            raise NotFound("conversation")
        hint = self.messages.known_last_seq(conversation_id)
        if hint is None:
            # Not seen in this process yet: the conversation document has the hint.
            conversation = await self.conversations.get(conversation_id)
            if conversation is None:
                raise NotFound("conversation")
            hint = conversation.last_seq
        return await self.messages.last_seq(conversation_id, hint)

    async def before(
        self, user_id: str, conversation_id: str, *, before: str | None, limit: int
    ) -> Page:
        """Up to `limit` entries older than message `before` (or the newest), newest first."""
        top = await self._last_seq(user_id, conversation_id)
        if before is not None:
            cursor = await self.messages.get(before)
            if cursor is None or cursor.conversation_id != conversation_id:
                raise NotFound("message")
            top = cursor.seq - 1
        first = max(1, top - limit + 1)
        entries = await self.messages.span(conversation_id, first, top)
        return Page(entries[::-1], first > 1)

    async def after(
        self, user_id: str, conversation_id: str, *, after_seq: int, limit: int
    ) -> Page:
        """Up to `limit` entries with seq > `after_seq`, oldest first."""
        top = await self._last_seq(user_id, conversation_id)
        last = min(top, after_seq + limit)
        entries = await self.messages.span(conversation_id, after_seq + 1, last)
        return Page(entries, last < top)

    async def with_readers(
        self, user_id: str, conversation_id: str, message_id: str
    ) -> tuple[Message, list[ReadPosition]]:
        participants = await self.members.includes(conversation_id, user_id)
        if participants is None:
            raise NotFound("conversation")
        message = await self.messages.get(message_id)
        if message is None or message.conversation_id != conversation_id:
            raise NotFound("message")
        positions = await self.read_states.of_members(conversation_id, participants)
        return message, read_by(message.seq, message.sender_id, participants, positions)
