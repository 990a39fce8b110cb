"""The outbox relay: finishes what a request wrote but did not get to finish.

An entry older than the relay's minimum age belongs to a request that died or gave up. Its
message is in one of three states, and each is completed, never dropped: stored (only the
publish is missing), holding a seq but not yet its by-id copy, or not stored at all (the
relay takes the next seq for it under a fresh stamp, as sync's margin requires).
"""

from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from chat_core.clock import to_milliseconds, utcnow
from chat_core.store.messages import Message
from chat_core.store.sync import DEFAULT_MARGIN
from messaging.delivery import Deliverer
from messaging.outbox import PendingMessage
from messaging.sending import Store, announce, record_stored

log = structlog.get_logger(__name__)


async def relay_pending(store: Store, deliverer: Deliverer, written_before: datetime) -> int:
    """Finish every outbox entry older than `written_before`; returns how many it published.

    At-least-once: a request still publishing (or another relay) may publish it too, and
    clients de-duplicate by messageId.
    """
    published = 0
    for pending in await store.outbox.written_before(written_before):
        try:
            await _finish(store, deliverer, pending)
            published += 1
        except Exception:
            log.warning(
                "outbox entry not relayed, will retry",
                message_id=pending.message.message_id,
                exc_info=True,
            )
    return published


async def _stored(store: Store, pending: PendingMessage) -> Message:
    draft = pending.message
    stored = await store.messages.get(draft.message_id)
    if stored is not None:
        return stored
    conversation = await store.conversations.get(draft.conversation_id)
    hint = conversation.last_seq if conversation else 0
    last = await store.messages.last_seq(draft.conversation_id, hint)
    # Positions after the dead send's claim are all stamped later than its own stamp minus
    # the claim deadline, so the search back stops within that window.
    claim = await store.messages.find_claim(
        draft.conversation_id, draft.message_id, last, draft.created_at - DEFAULT_MARGIN
    )
    if claim is not None:
        stored, _ = await store.messages.index(claim)
        return stored
    fresh = replace(draft, created_at=to_milliseconds(utcnow()))
    stored, _ = await store.messages.append(fresh, last)
    return stored


async def _finish(store: Store, deliverer: Deliverer, pending: PendingMessage) -> None:
    message = await _stored(store, pending)
    await record_stored(store, message, message.created_at)
    await announce(deliverer, message, pending.participant_ids)
    await store.outbox.remove(message.message_id)
    log.info(
        "outbox entry relayed",
        message_id=message.message_id,
        conversation_id=message.conversation_id,
        seq=message.seq,
    )


async def relay_round(store: Store, deliverer: Deliverer, min_age: float) -> None:
    await relay_pending(store, deliverer, utcnow() - timedelta(seconds=min_age))
