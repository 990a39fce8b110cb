"""`message_read` from a client: validated, persisted (forward only), relayed to the other
members and to the reader's own other devices (reading on a phone clears a laptop's badge)."""

from datetime import datetime

from chat_core.events import MessageReadReceipt
from chat_core.ids import is_document_id
from chat_core.store.messages import Messages
from chat_core.store.read_state import ReadStates
from messaging.delivery import Delivery, refusal
from messaging.members import Members


async def on_message_read(
    user_id: str,
    connection_id: str,
    conversation_id: str,
    message_id: str,
    *,
    members: Members,
    messages: Messages,
    read_states: ReadStates,
    now: datetime,
) -> list[Delivery]:
    participants = await members.includes(conversation_id, user_id)
    if participants is None:
        message = f"message_read refused: conversation {conversation_id} not found"
        return [refusal(user_id, connection_id, message)]
    read = await messages.get(message_id) if is_document_id(message_id) else None
    if read is None or read.conversation_id != conversation_id:
        message = (
            f"message_read refused: message {message_id} not found in conversation "
            f"{conversation_id}"
        )
        return [refusal(user_id, connection_id, message)]
    await read_states.advance(conversation_id, user_id, read.seq, message_id, now)
    # Relayed even when the position did not move (an older message, or a redelivery after
    # a crash between the write and this publish): receipts are idempotent for clients.
    receipt = MessageReadReceipt(
        conversation_id=conversation_id, message_id=message_id, user_id=user_id
    )
    return [Delivery(participants, receipt, skip_connection_id=connection_id)]
