"""Sending a message: stored once per clientMessageId at the next seq, then announced.

A send waits on one database command and one confirmed publish:
1. one ordered insert of three documents (batched with concurrent sends'): the message's
   by-id document, under the messageId its idempotency key derives to (`message_id_for`)
   and with the seq it expects to take, which is the key's claim; the outbox entry
   (outbox.py); and its timeline position (the seq), usually the one expected;
2. the `new_message` publish, confirmed by the broker.
The conversation's last-message hint and the sender's own read position follow in batches
(write_behind.py), and the outbox entry is removed after them. A crash anywhere leaves a
reservation that a retry of the same key takes over, or an outbox entry that the relay
finishes (relay.py); a position once taken always holds the message or a tombstone.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog
from pymongo.errors import DuplicateKeyError

from chat_core.clock import to_milliseconds, utcnow
from chat_core.events import MessageType
from chat_core.ids import message_id_for, new_id
from chat_core.store.conversations import Conversations
from chat_core.store.messages import Message, Messages, Reserved, new_message_frame
from chat_core.store.sync import CLAIM_DEADLINE, DEFAULT_MARGIN
from messaging.delivery import Deliverer, Delivery, publish
from messaging.errors import NotFound
from messaging.faults import Faults
from messaging.members import Members
from messaging.outbox import Outbox
from messaging.write_behind import WriteBehind

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
    """What a send writes to. One per process: group commit batches only within one."""

    members: Members
    conversations: Conversations
    messages: Messages
    outbox: Outbox
    write_behind: WriteBehind


def content_problem(content: str, max_chars: int) -> str | None:
    """Why the content cannot be sent, or None."""
    if not content.strip():
        return "content must not be empty or only whitespace"
    if len(content) > max_chars:
        return f"content is longer than {max_chars} characters"
    return None


async def announce(
    deliverer: Deliverer,
    message: Message,
    participants: tuple[str, ...],
    first: Sequence[Delivery] = (),
) -> None:
    """`new_message` to every device of every participant, the sender's included, after
    `first` (a socket send's `message_ack`, so that the sending socket gets it before)."""
    await publish(deliverer, [*first, Delivery(participants, new_message_frame(message))])


async def send_message(
    draft: Draft,
    *,
    store: Store,
    deliverer: Deliverer,
    now: datetime,
    faults: Faults,
    takeover_after: float,
    acknowledge: Callable[[Message], Delivery] | None = None,
) -> tuple[Message, bool]:
    """The message and whether it is new; a repeated clientMessageId returns the first one.

    `acknowledge`: what to deliver to the sender before `new_message` (a socket send)."""
    conversation_id = draft.conversation_id
    participants = await store.members.includes(conversation_id, draft.sender_id)
    if participants is None:
        raise NotFound("conversation")
    message = Message(
        message_id=(
            message_id_for(conversation_id, draft.sender_id, draft.client_message_id)
            if draft.client_message_id is not None
            else new_id()
        ),
        conversation_id=conversation_id,
        seq=0,
        sender_id=draft.sender_id,
        content=draft.content,
        message_type=draft.message_type,
        created_at=to_milliseconds(now),
        client_message_id=draft.client_message_id,
    )
    hint = await _hint(store, conversation_id)
    messages = store.messages
    async with messages.turn(conversation_id):
        if utcnow() - now > CLAIM_DEADLINE:
            # Too late to take a seq under this stamp (sync's margin relies on it); nothing
            # is written yet, so the client's retry starts afresh.
            raise SendInProgress
        message = replace(message, seq=messages.expected_seq(conversation_id, hint))
        entry = store.outbox.entry(message, participants, now)
        try:
            stored = await messages.reserve_and_position(message, [entry])
        except Reserved:
            outcome = await _repeat(store, message, participants, now, takeover_after)
            if not isinstance(outcome, Takeover):
                return outcome, False
            stored = outcome.message
        except DuplicateKeyError:
            # An outbox entry without a reservation: left by a send that died before its
            # reservation landed. The relay finishes it, this reservation included.
            raise SendInProgress from None
        else:
            store.outbox.entered(message.message_id)
            try:
                faults.after_claim()
                if utcnow() - now > CLAIM_DEADLINE:
                    # So late that the relay may have positioned it too: one of the two wins.
                    stored = await messages.settle(message, stored)
            except BaseException:
                store.outbox.settled(message.message_id)  # the relay's now
                raise
    first = [acknowledge(stored)] if acknowledge is not None else []
    await _publish(store, deliverer, stored, participants, now, faults, first)
    return stored, True


async def _publish(
    store: Store,
    deliverer: Deliverer,
    stored: Message,
    participants: tuple[str, ...],
    now: datetime,
    faults: Faults,
    first: Sequence[Delivery],
) -> None:
    try:
        faults.after_write()
    except BaseException:
        store.outbox.settled(stored.message_id)
        raise
    try:
        await announce(deliverer, stored, participants, first)
    except Exception:
        # Stored and still pending in the outbox: the relay publishes it. The sender's
        # request succeeded, so it must not be told otherwise (and retry a stored message).
        store.outbox.settled(stored.message_id)
        log.warning("new_message left to the relay", message_id=stored.message_id, exc_info=True)
        return
    store.write_behind.record(stored, now)


@dataclass(frozen=True)
class Takeover:
    """A repeat that finished a first attempt which died before its outbox entry."""

    message: Message


async def _repeat(
    store: Store,
    attempt: Message,
    participants: tuple[str, ...],
    now: datetime,
    takeover_after: float,
) -> Message | Takeover:
    """A send whose messageId is reserved already: the same idempotency key again. The
    first message, stored; or a Takeover to announce; or SendInProgress."""
    first = await store.messages.get(attempt.message_id)
    if first is None:  # pragma: no cover - reservations are never deleted
        raise SendInProgress
    if first.message_id != attempt.message_id or await store.messages.is_positioned(first):
        # Stored (an alias is a message stored before store version 3).
        return first
    if await store.outbox.get(first.message_id) is not None:
        # The first send's outbox entry is there: it is in flight, or the relay's.
        raise SendInProgress
    if (now - first.created_at).total_seconds() < takeover_after:
        raise SendInProgress
    # The first attempt reserved the id and wrote nothing else (its command failed after the
    # reservation), so the relay never hears of it: this retry finishes it, with the first
    # attempt's content, under an outbox entry of its own.
    try:
        await store.outbox.add(first, participants, now)
    except DuplicateKeyError:
        raise SendInProgress from None
    try:
        stored = await finish_reservation(store, first, now)
    except BaseException:
        store.outbox.settled(first.message_id)
        raise
    if stored is None:
        store.outbox.settled(first.message_id)
        raise SendInProgress
    log.info("repeat took over a reservation left behind", message_id=stored.message_id)
    return Takeover(stored)


async def finish_reservation(store: Store, reserved: Message, now: datetime) -> Message | None:
    """The reserved message at its position: where its own send put it, or, once that send
    can no longer take one (its claim deadline is past), at a new position under a fresh
    stamp. None while that send may still take one. Call inside the conversation's turn."""
    messages = store.messages
    conversation_id = reserved.conversation_id
    hint = await _hint(store, conversation_id)
    found = await messages.locate(reserved, hint, reserved.created_at - DEFAULT_MARGIN)
    if found is not None:
        return found
    if now - reserved.created_at <= CLAIM_DEADLINE:
        return None
    fresh = replace(
        reserved,
        seq=messages.expected_seq(conversation_id, await messages.last_seq(conversation_id, hint)),
        created_at=to_milliseconds(now),
    )
    return await messages.settle(reserved, await messages.take_position(fresh))


async def _hint(store: Store, conversation_id: str) -> int:
    """Where the conversation's timeline ends, as far as is cheaply known."""
    hint = store.messages.known_last_seq(conversation_id)
    if hint is None:
        conversation = await store.conversations.get(conversation_id)
        hint = conversation.last_seq if conversation else 0
    return hint
