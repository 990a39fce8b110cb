"""The outbox relay: publishes what a request wrote but did not get to publish."""

import asyncio
from datetime import datetime, timedelta

import structlog
from pymongo.errors import DuplicateKeyError

from chat_core.events import utcnow
from messaging.delivery import Deliverer
from messaging.messages import Messages
from messaging.outbox import Outbox, PendingMessage
from messaging.sending import announce

log = structlog.get_logger(__name__)


async def relay_pending(
    outbox: Outbox, messages: Messages, deliverer: Deliverer, written_before: datetime
) -> int:
    """Finish every outbox entry older than `written_before`; returns how many it published.

    At-least-once: a request still publishing (or another relay) may publish it too, and
    clients de-duplicate by messageId.
    """
    published = 0
    for pending in await outbox.written_before(written_before):
        try:
            published += await _finish(outbox, messages, deliverer, pending)
        except Exception:
            log.warning(
                "outbox entry not relayed, will retry",
                message_id=pending.message.message_id,
                exc_info=True,
            )
    return published


async def _finish(
    outbox: Outbox, messages: Messages, deliverer: Deliverer, pending: PendingMessage
) -> int:
    message = pending.message
    try:
        # The request may have died before its insert: the message is written here then.
        await messages.insert(message)
    except DuplicateKeyError:
        if await messages.get(message.message_id) is None:
            # A retry of the same send (same clientMessageId) stored its own message first:
            # this one never existed for anybody, so there is nothing to announce.
            await outbox.remove(message.message_id)
            log.info("outbox entry superseded", message_id=message.message_id)
            return 0
    await announce(deliverer, message, pending.participant_ids)
    await outbox.remove(message.message_id)
    log.info(
        "outbox entry relayed",
        message_id=message.message_id,
        conversation_id=message.conversation_id,
    )
    return 1


async def relay_forever(
    outbox: Outbox,
    messages: Messages,
    deliverer: Deliverer,
    *,
    interval: float,
    min_age: float,
) -> None:
    while True:
        try:
            await relay_pending(outbox, messages, deliverer, utcnow() - timedelta(seconds=min_age))
        except Exception:
            log.warning("outbox relay round failed", exc_info=True)
        await asyncio.sleep(interval)
