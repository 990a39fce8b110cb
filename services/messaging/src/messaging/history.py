"""Reading a conversation: pages of history and one message with who has read it."""

from messaging.errors import NotFound
from messaging.members import Members
from messaging.messages import Message, Messages
from messaging.read_state import ReadPosition, ReadStates, read_by


async def history_page(
    user_id: str,
    conversation_id: str,
    *,
    before: str | None,
    limit: int,
    members: Members,
    messages: Messages,
) -> tuple[list[Message], bool]:
    """Up to `limit` messages older than `before`, newest first, and whether more exist."""
    if await members.includes(conversation_id, user_id) is None:
        raise NotFound("conversation")
    found = await messages.history(conversation_id, before=before, limit=limit + 1)
    return found[:limit], len(found) > limit


async def message_with_readers(
    user_id: str,
    conversation_id: str,
    message_id: str,
    *,
    members: Members,
    messages: Messages,
    read_states: ReadStates,
) -> tuple[Message, list[ReadPosition]]:
    participants = await members.includes(conversation_id, user_id)
    if participants is None:
        raise NotFound("conversation")
    message = await messages.get(message_id)
    if message is None or message.conversation_id != conversation_id:
        raise NotFound("message")
    positions = await read_states.of_members(conversation_id, participants)
    return message, read_by(message_id, message.sender_id, participants, positions)
