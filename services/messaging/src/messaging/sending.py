"""Sending a message: stored once per clientMessageId at the next seq, then announced.

Order matters for crash safety. The client id is claimed, then the outbox entry written,
then the message takes its seq (timeline), then its by-id copy, the conversation's last
message and the sender's read position are written (the position by its one writer,
sender_reads.py), then it is published and the outbox entry goes. A crash anywhere leaves
either nothing or an outbox entry the relay finishes (relay.py), and a position once taken
always holds the message or a tombstone.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog
from pymongo.errors import DuplicateKeyError

from chat_core.clock import to_milliseconds, utcnow
from chat_core.events import MessageType
from chat_core.ids import new_id
from chat_core.store.conversations import Conversations
from chat_core.store.messages import Message, Messages, new_message_frame
from chat_core.store.sync import CLAIM_DEADLINE
from messaging import client_ids
from messaging.client_ids import ClientIds
from messaging.delivery import Deliverer, Delivery, publish
from messaging.errors import NotFound
from messaging.faults import Faults
from messaging.members import Members
from messaging.outbox import Outbox
from messaging.sender_reads import SenderReads

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Draft:
    conversation_id: str
    sender_id: str
    content: str
    message_type: MessageType
    client_message_id: str | None = None


class SendInProgress(Exception):
    """An earlier send of the same message is not finished; retrying soon will answer it."""


@dataclass(frozen=True)
class Store:
    """What a send writes to."""

    members: Members
    conversations: Conversations
    messages: Messages
    sender_reads: SenderReads
    outbox: Outbox
    client_ids: ClientIds


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


async def record_stored(store: Store, message: Message, now: datetime) -> None:
    """The conversation's last message and the sender's read position (sending a message
    means having read the conversation up to it), concurrently: an `_id` write, and the
    position's move by its one writer (SenderReads)."""
    await asyncio.gather(
        store.conversations.advance(message), store.sender_reads.advance(message, now)
    )


async def send_message(
    draft: Draft,
    *,
    store: Store,
    deliverer: Deliverer,
    now: datetime,
    faults: Faults,
    takeover_after: float,
) -> tuple[Message, bool]:
    """The message and whether it is new; a repeated clientMessageId returns the first one."""
    participants = await store.members.includes(draft.conversation_id, draft.sender_id)
    if participants is None:
        raise NotFound("conversation")
    message_id = new_id()
    if draft.client_message_id is not None:
        key = client_ids.key(draft.conversation_id, draft.sender_id, draft.client_message_id)
        earlier = await store.client_ids.claim(key, message_id, now)
        if earlier is not None:
            first = await store.messages.get(earlier.message_id)
            if first is not None:
                return first, False
            age = (now - earlier.claimed_at).total_seconds()
            if age < takeover_after or await store.outbox.get(earlier.message_id) is not None:
                raise SendInProgress
            # The first attempt died before writing anything else: finish it under its id.
            message_id = earlier.message_id
    message = Message(
        message_id=message_id,
        conversation_id=draft.conversation_id,
        seq=0,
        sender_id=draft.sender_id,
        content=draft.content,
        message_type=draft.message_type,
        created_at=to_milliseconds(now),
        client_message_id=draft.client_message_id,
    )
    try:
        await store.outbox.add(message, participants, now)
    except DuplicateKeyError:
        store.outbox.settled(message_id)
        raise SendInProgress from None
    try:
        return await _store_and_publish(store, message, participants, deliverer, now, faults)
    finally:
        store.outbox.settled(message_id)


async def _store_and_publish(
    store: Store,
    message: Message,
    participants: tuple[str, ...],
    deliverer: Deliverer,
    now: datetime,
    faults: Faults,
) -> tuple[Message, bool]:
    message_id = message.message_id
    if utcnow() - now > CLAIM_DEADLINE:
        # Too late to take a seq under this stamp (sync's margin relies on it): the relay
        # finishes it with a fresh one.
        log.warning("send left to the relay: claim deadline passed", message_id=message_id)
        raise SendInProgress
    claimed = await store.messages.claim(message, await _hint(store, message))
    faults.after_claim()
    stored, won = await store.messages.index(claimed)
    if not won:
        return stored, False
    await record_stored(store, stored, now)
    faults.after_write()
    try:
        await announce(deliverer, stored, participants)
        store.outbox.published(message_id)
    except Exception:
        # Stored and still pending in the outbox: the relay publishes it. The sender's
        # request succeeded, so it must not be told otherwise (and retry a stored message).
        log.warning("new_message left to the relay", message_id=message_id, exc_info=True)
    return stored, True


async def _hint(store: Store, message: Message) -> int:
    """Where the conversation's timeline ends, as far as is cheaply known."""
    hint = store.messages.known_last_seq(message.conversation_id)
    if hint is None:
        conversation = await store.conversations.get(message.conversation_id)
        hint = conversation.last_seq if conversation else 0
    return hint
