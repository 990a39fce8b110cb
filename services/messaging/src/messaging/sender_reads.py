"""Moving a sender's read position to their own new message, by the one writer of it.

Read positions are written under a per-document turn (ReadStates), which keeps writes apart
within one process only; on FerretDB a conditional write is a read and a separate write, so
two processes writing one member's position could leave the lower one. So each position has
one writer: the messaging instance applying that member's `message_read` events.
"""

from dataclasses import dataclass
from datetime import datetime

from chat_core.broker import Broker
from chat_core.events import SenderRead
from chat_core.store.messages import Message
from chat_core.store.read_state import ReadStates


@dataclass(frozen=True)
class SenderReads:
    """With partitioned queues (several messaging instances) the owner is whoever consumes
    the sender's partition, and the move is published to it; without partitions the one
    instance consumes everything, and writes here."""

    read_states: ReadStates
    owner: Broker | None

    @classmethod
    def for_broker(cls, read_states: ReadStates, broker: Broker) -> "SenderReads":
        return cls(read_states, broker if broker.topology.partitions > 0 else None)

    async def advance(self, message: Message, now: datetime) -> None:
        if self.owner is None:
            await self.read_states.advance(
                message.conversation_id, message.sender_id, message.seq, message.message_id, now
            )
            return
        event = SenderRead(
            user_id=message.sender_id,
            conversation_id=message.conversation_id,
            seq=message.seq,
            message_id=message.message_id,
            at=now,
        )
        await self.owner.publish_event(event, event.event)
