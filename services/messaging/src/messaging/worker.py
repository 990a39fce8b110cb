"""The broker consumers: client typing, message_read and send_message events from the
edges, and the read-position moves of senders (SendersRead).

Handlers stay thin: decode (done by the acking consumer), domain function, publish. The
consumer acks after the handler returns, so after any database write; a handler that raises
is retried once and then dead-lettered (typing, being ephemeral, has no dead-letter queue).
"""

from dataclasses import dataclass
from typing import TypeVar

import structlog

from chat_core.broker import MESSAGING, SENDS, TYPING, Broker
from chat_core.clock import utcnow
from chat_core.events import (
    ClientEvent,
    ClientMessageRead,
    ClientSendMessage,
    ClientTyping,
    InboundEvent,
    SenderRead,
    SendersRead,
    inbound_event_adapter,
)
from chat_core.store.messages import Messages
from chat_core.store.read_state import ReadMove, ReadStates
from messaging.delivery import Deliverer, publish
from messaging.members import Members
from messaging.receipts import on_message_read
from messaging.socket_sends import SocketSends
from messaging.throttle import Throttle
from messaging.typing_indicators import on_typing

log = structlog.get_logger(__name__)

F = TypeVar("F", ClientTyping, ClientMessageRead, ClientSendMessage)


class UnexpectedEnvelope(ValueError):
    """An envelope this queue is not bound for: a topology bug, so it is dead-lettered."""


def _client_frame(envelope: InboundEvent, kind: type[F]) -> tuple[ClientEvent, F]:
    if isinstance(envelope, ClientEvent) and isinstance(envelope.frame, kind):
        return envelope, envelope.frame
    raise UnexpectedEnvelope(f"expected a client {kind.__name__}, got {envelope.event}")


@dataclass
class Worker:
    deliverer: Deliverer
    members: Members
    messages: Messages
    read_states: ReadStates
    throttle: Throttle
    sends: SocketSends

    async def start(self, broker: Broker, prefetch: int) -> None:
        await broker.consume(TYPING, inbound_event_adapter, self.handle_typing, prefetch=prefetch)
        await broker.consume(MESSAGING, inbound_event_adapter, self.handle_read, prefetch=prefetch)
        await broker.consume(SENDS, inbound_event_adapter, self.handle_send, prefetch=prefetch)

    async def handle_send(self, envelope: InboundEvent) -> None:
        event, frame = _client_frame(envelope, ClientSendMessage)
        await self.sends.handle(event, frame)

    async def handle_typing(self, envelope: InboundEvent) -> None:
        event, frame = _client_frame(envelope, ClientTyping)
        deliveries = await on_typing(
            event.user_id,
            event.connection_id,
            frame.conversation_id,
            members=self.members,
            throttle=self.throttle,
        )
        await publish(self.deliverer, deliveries)

    async def handle_read(self, envelope: InboundEvent) -> None:
        """The read positions of the users whose events this queue (or partition) carries:
        their `message_read`s, and the moves their own sends make (SenderRead)."""
        if isinstance(envelope, SendersRead):
            # Forward only, and no receipt relayed: the senders' devices have their messages.
            await self.read_states.advance_many(
                ReadMove(m.conversation_id, m.user_id, m.seq, m.message_id, m.at)
                for m in envelope.moves
            )
            return
        if isinstance(envelope, SenderRead):  # a single move, from a release before batches
            await self.read_states.advance(
                envelope.conversation_id,
                envelope.user_id,
                envelope.seq,
                envelope.message_id,
                envelope.at,
            )
            return
        event, frame = _client_frame(envelope, ClientMessageRead)
        deliveries = await on_message_read(
            event.user_id,
            event.connection_id,
            frame.conversation_id,
            frame.message_id,
            members=self.members,
            messages=self.messages,
            read_states=self.read_states,
            now=utcnow(),
        )
        await publish(self.deliverer, deliveries)
        log.info(
            "message_read handled",
            user_id=event.user_id,
            conversation_id=frame.conversation_id,
            message_id=frame.message_id,
            refused=any(d.connection_id is not None for d in deliveries),
        )
