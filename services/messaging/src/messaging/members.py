"""Who is in a conversation, cached in process: participants never change after creation."""

from collections import OrderedDict
from collections.abc import Awaitable, Callable

from chat_core.store.conversations import Conversation

Loader = Callable[[str], Awaitable[Conversation | None]]


class Members:
    def __init__(self, load: Loader, max_size: int) -> None:
        self._load = load
        self._max_size = max_size
        self._cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    async def of(self, conversation_id: str) -> tuple[str, ...] | None:
        """The participants, or None for an unknown conversation (not cached: it may be
        created a moment later by another process)."""
        participants = self._cache.get(conversation_id)
        if participants is not None:
            self._cache.move_to_end(conversation_id)
            return participants
        conversation = await self._load(conversation_id)
        if conversation is None:
            return None
        self.remember(conversation)
        return conversation.participant_ids

    async def includes(self, conversation_id: str, user_id: str) -> tuple[str, ...] | None:
        """The participants if `user_id` is one of them; None for outsiders and unknown ids
        alike, so callers cannot tell the two apart."""
        participants = await self.of(conversation_id)
        if participants is None or user_id not in participants:
            return None
        return participants

    def remember(self, conversation: Conversation) -> None:
        self._cache[conversation.conversation_id] = conversation.participant_ids
        self._cache.move_to_end(conversation.conversation_id)
        while len(self._cache) > self._max_size:
            self._cache.popitem(last=False)
