"""Messages sent over sockets (`send_message`), consumed from the sends queue.

The edge publishes the frame (confirmed) and this consumer stores and announces it exactly
as a REST send does (sending.py: the same idempotency per conversation, sender and
clientMessageId), answers the sending socket with `message_ack` or an `error` naming the
clientMessageId, and only then acks the queue message. Until that ack the broker holds the
send, so a crash anywhere redelivers it, and the redelivered attempt answers with the first
message. The queue is split by conversation (broker.SENDS), so one instance appends to a
conversation at a time; up to the prefetch of sends are in flight at once, and their writes
go out together, one command per collection (group commit).
"""

from dataclasses import dataclass, field

import structlog

from chat_core.clock import isoformat, utcnow
from chat_core.events import ClientEvent, ClientSendMessage, ErrorFrame, MessageAck, ServerFrame
from chat_core.keyed_lock import KeyedLock
from chat_core.limits import KeyedLimiter
from chat_core.store.messages import Message
from messaging.delivery import Deliverer, Delivery, publish
from messaging.errors import NotFound
from messaging.faults import Faults
from messaging.sending import Draft, SendInProgress, Store, content_problem, send_message

log = structlog.get_logger(__name__)


@dataclass
class SocketSends:
    store: Store
    deliverer: Deliverer
    faults: Faults
    limiter: KeyedLimiter
    max_content_chars: int
    takeover_after: float
    # Per conversation, taken before anything else is awaited: a socket's sends to one
    # conversation are stored in the order they arrived.
    _order: KeyedLock = field(default_factory=KeyedLock)

    async def handle(self, event: ClientEvent, frame: ClientSendMessage) -> None:
        async with self._order(frame.conversation_id):
            answer = await self._answer(event, frame)
        if answer is not None:
            await publish(self.deliverer, [_to_socket(event, answer)])

    async def _answer(self, event: ClientEvent, frame: ClientSendMessage) -> ServerFrame | None:
        """What to tell the sending socket, unless the send told it already (a new message
        is acknowledged just before its `new_message`)."""

        def refused(reason: str) -> ErrorFrame:
            return ErrorFrame(
                message=f"send_message refused: {reason}",
                client_message_id=frame.client_message_id,
            )

        problem = content_problem(frame.content, self.max_content_chars)
        if problem:
            return refused(problem)
        wait = self.limiter.acquire(event.user_id)
        if wait is not None:
            return refused(f"rate limited: too many messages sent; retry in {wait:.1f} s")
        draft = Draft(
            conversation_id=frame.conversation_id,
            sender_id=event.user_id,
            content=frame.content,
            message_type=frame.message_type,
            client_message_id=frame.client_message_id,
        )
        try:
            message, created = await send_message(
                draft,
                store=self.store,
                deliverer=self.deliverer,
                now=utcnow(),
                faults=self.faults,
                takeover_after=self.takeover_after,
                acknowledge=lambda stored: _to_socket(event, _ack(frame, stored)),
            )
        except NotFound:
            return refused(f"conversation {frame.conversation_id} not found")
        except SendInProgress:
            return refused("an earlier send of this message is still in progress; retry")
        if created:
            return None
        log.debug("repeated send_message answered with the first message")
        return _ack(frame, message)


def _ack(frame: ClientSendMessage, message: Message) -> MessageAck:
    return MessageAck(
        client_message_id=frame.client_message_id,
        message_id=message.message_id,
        seq=message.seq,
        timestamp=isoformat(message.created_at),
    )


def _to_socket(event: ClientEvent, frame: ServerFrame) -> Delivery:
    return Delivery((event.user_id,), frame, connection_id=event.connection_id)
