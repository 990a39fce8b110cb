"""Reading a conversation: pages of history by seq, and one message with who has read it.

Every page is one batch of `_id` lookups (its positions and the one past them, which says
whether the timeline goes on), whatever the size of this or any other conversation.
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

    async def _member(self, user_id: str, conversation_id: str) -> None:
        if await self.members.includes(conversation_id, user_id) is None:
            raise NotFound("conversation")

    async def _hint(self, conversation_id: str) -> int:
        """Where the timeline ended when last seen: this process's memory, else the
        conversation document's hint. Either may lag; callers look one position past it."""
        hint = self.messages.known_last_seq(conversation_id)
        if hint is None:
            conversation = await self.conversations.get(conversation_id)
            if conversation is None:
                raise NotFound("conversation")
            hint = conversation.last_seq
        return hint

    async def before(
        self, user_id: str, conversation_id: str, *, before: str | None, limit: int
    ) -> Page:
        """Up to `limit` entries older than message `before` (or the newest), newest first."""
        await self._member(user_id, conversation_id)
        if before is not None:
            cursor = await self.messages.get(before)
            if cursor is None or cursor.conversation_id != conversation_id:
                raise NotFound("message")
            top = cursor.seq - 1
            first = max(1, top - limit + 1)
            entries = await self.messages.span(conversation_id, first, top)
            return Page(entries[::-1], first > 1)
        hint = await self._hint(conversation_id)
        # Usually one batch: the page below the hint and the position past it (a miss).
        entries, beyond = await self.messages.span_and_beyond(
            conversation_id, hint - limit + 1, hint
        )
        top = hint
        if beyond:  # sends landed since the hint
            top = await self.messages.last_seq(conversation_id, hint + 1)
            entries = await self.messages.span(conversation_id, top - limit + 1, top)
        return Page(entries[::-1], top - limit + 1 > 1)

    async def after(
        self, user_id: str, conversation_id: str, *, after_seq: int, limit: int
    ) -> Page:
        """Up to `limit` entries with seq > `after_seq`, oldest first: one batch, whose look
        one position further says whether there is more."""
        await self._member(user_id, conversation_id)
        entries, beyond = await self.messages.span_and_beyond(
            conversation_id, after_seq + 1, after_seq + limit
        )
        return Page(entries, beyond)

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
