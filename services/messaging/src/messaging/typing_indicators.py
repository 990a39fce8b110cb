"""`typing` from a client: checked for membership, throttled, relayed to the others only."""

from chat_core.broker import TYPING_TTL_SECONDS
from chat_core.events import TypingIndicator
from messaging.delivery import Delivery, refusal, to_others
from messaging.members import Members
from messaging.throttle import Throttle


async def on_typing(
    user_id: str,
    connection_id: str,
    conversation_id: str,
    *,
    members: Members,
    throttle: Throttle,
) -> list[Delivery]:
    participants = await members.includes(conversation_id, user_id)
    if participants is None:
        message = f"typing refused: conversation {conversation_id} not found"
        return [refusal(user_id, connection_id, message)]
    if not throttle.allow((user_id, conversation_id)):
        return []
    frame = TypingIndicator(conversation_id=conversation_id, user_id=user_id)
    # Stale typing is worse than none: expire it in the broker if no edge takes it soon.
    return [to_others(participants, user_id, frame, ttl=TYPING_TTL_SECONDS)]
