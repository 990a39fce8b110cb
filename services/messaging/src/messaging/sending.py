"""Sending a message: stored once per clientMessageId, then announced to every participant."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from pymongo.errors import DuplicateKeyError

from chat_core.events import MessageType
from chat_core.ids import new_id
from messaging.delivery import Deliverer, Delivery, publish
from messaging.errors import NotFound
from messaging.members import Members
from messaging.messages import Message, Messages, new_message_frame
from messaging.outbox import Outbox
from messaging.timestamps import to_milliseconds

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Draft:
    conversation_id: str
    sender_id: str
    content: str
    message_type: MessageType
    client_message_id: str | None = None


def content_problem(content: str, max_chars: int) -> str | None:
    """Why the content cannot be sent, or None."""
    if not content.strip():
        return "content must not be empty or only whitespace"
    if len(content) > max_chars:
        return f"content is longer than {max_chars} characters"
    return None


async def announce(deliverer: Deliverer, message: Message, participants: tuple[str, ...]) -> None:
    """`new_message` to every device of every participant, the sender's included."""
    await publish(deliverer, [Delivery(participants, new_message_frame(message))])


def _carry_on() -> None:
    return None


async def send_message(
    draft: Draft,
    *,
    members: Members,
    messages: Messages,
    outbox: Outbox,
    deliverer: Deliverer,
    now: datetime,
    after_write: Callable[[], None] = _carry_on,
) -> tuple[Message, bool]:
    """The message and whether it is new; a repeated clientMessageId returns the first one.

    Order matters for crash safety: outbox entry, then message, then publish, then the
    outbox entry goes. A crash anywhere leaves either nothing or an entry the relay finishes.
    """
    participants = await members.includes(draft.conversation_id, draft.sender_id)
    if participants is None:
        raise NotFound("conversation")
    message_id = new_id()
    message = Message(
        message_id=message_id,
        conversation_id=draft.conversation_id,
        sender_id=draft.sender_id,
        content=draft.content,
        message_type=draft.message_type,
        created_at=to_milliseconds(now),
        # The unique index covers every message, so one is generated when the client has none.
        client_message_id=draft.client_message_id or message_id,
    )
    await outbox.add(message, participants, now)
    try:
        await messages.insert(message)
    except DuplicateKeyError:
        await outbox.remove(message_id)
        first = await messages.by_client_message_id(
            draft.conversation_id, draft.sender_id, message.client_message_id
        )
        if first is None:
            raise
        return first, False
    after_write()
    try:
        await announce(deliverer, message, participants)
        outbox.published(message_id)
    except Exception:
        # Stored and still pending in the outbox: the relay publishes it. The sender's
        # request succeeded, so it must not be told otherwise (and retry a stored message).
        log.warning("new_message left to the relay", message_id=message_id, exc_info=True)
    return message, True
