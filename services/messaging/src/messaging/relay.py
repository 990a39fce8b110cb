"""The outbox relay: finishes what a request wrote but did not get to finish.

An entry older than the relay's minimum age belongs to a request that died or gave up. Its
message is in one of three states, and each is completed, never dropped: positioned (only
the publish and what is written behind are missing), reserved but not positioned, or not
even reserved. A message without a position gets one only once its own send could no longer
take one (its claim deadline is past), under a fresh stamp, as sync's margin requires.
"""

from dataclasses import replace
from datetime import datetime, timedelta

import structlog
from pymongo.errors import DuplicateKeyError

from chat_core.clock import utcnow
from chat_core.store.messages import Message
from messaging.delivery import Deliverer
from messaging.outbox import PendingMessage
from messaging.sending import Store, announce, finish_reservation

log = structlog.get_logger(__name__)


async def relay_pending(
    store: Store, deliverer: Deliverer, written_before: datetime, now: datetime | None = None
) -> int:
    """Finish every outbox entry older than `written_before`; returns how many it published.

    At-least-once: a request still publishing (or another relay) may publish it too, and
    clients de-duplicate by messageId.
    """
    published = 0
    for pending in await store.outbox.written_before(written_before):
        try:
            if await _finish(store, deliverer, pending, now or utcnow()):
                published += 1
        except Exception:
            log.warning(
                "outbox entry not relayed, will retry",
                message_id=pending.message.message_id,
                exc_info=True,
            )
    return published


async def _reservation(store: Store, pending: PendingMessage) -> Message:
    """The by-id document of the entry's message, written now if its send never got to."""
    draft = pending.message
    reserved = await store.messages.get(draft.message_id)
    if reserved is not None:
        return reserved
    # Seq 0 is never a position: settling it elsewhere is always a move.
    reservation = replace(draft, seq=0)
    try:
        await store.messages.reserve(reservation)
    except DuplicateKeyError:
        raced = await store.messages.get(draft.message_id)
        if raced is None:  # pragma: no cover - reservations are never deleted
            raise
        return raced
    return reservation


async def _finish(
    store: Store, deliverer: Deliverer, pending: PendingMessage, now: datetime
) -> bool:
    if await store.outbox.get(pending.message.message_id) is None:
        # Its send finished and removed the entry after this round read the outbox:
        # relaying it now would announce it twice (the duplicate seen once in the happy path).
        return False
    reserved = await _reservation(store, pending)
    async with store.messages.turn(reserved.conversation_id):
        message = await finish_reservation(store, reserved, now)
    if message is None:
        return False  # its own send may still position it; the next round looks again
    write_behind = store.write_behind
    await store.conversations.advance(message)
    await write_behind.sender_reads.advance(message, message.created_at)
    await announce(deliverer, message, pending.participant_ids)
    await store.outbox.remove(message.message_id)
    log.info(
        "outbox entry relayed",
        message_id=message.message_id,
        conversation_id=message.conversation_id,
        seq=message.seq,
    )
    return True


async def relay_round(store: Store, deliverer: Deliverer, min_age: float) -> None:
    await relay_pending(store, deliverer, utcnow() - timedelta(seconds=min_age))
