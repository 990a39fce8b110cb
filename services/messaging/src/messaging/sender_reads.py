"""Moving senders' read positions to their own new messages, by the one writer of each.

Read positions are written under a per-document turn (ReadStates), which keeps writes apart
within one process only; on FerretDB a conditional write is a read and a separate write, so
two processes writing one member's position could leave the lower one. So each position has
one writer: the messaging instance applying that member's `message_read` events.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from chat_core.broker import Broker
from chat_core.events import ReadSent, SendersRead
from chat_core.store.messages import Message
from chat_core.store.read_state import ReadMove, ReadStates


@dataclass(frozen=True)
class SenderReads:
    """With partitioned queues (several messaging instances) the owner is whoever consumes
    the sender's partition, and the moves are published to it, one batch per partition;
    without partitions the one instance consumes everything, and writes here."""

    read_states: ReadStates
    owner: Broker | None

    @classmethod
    def for_broker(cls, read_states: ReadStates, broker: Broker) -> "SenderReads":
        return cls(read_states, broker if broker.topology.partitions > 0 else None)

    async def advance(self, message: Message, now: datetime) -> None:
        await self.advance_many([(message, now)])

    async def advance_many(self, sent: Sequence[tuple[Message, datetime]]) -> None:
        """Each sender's position to their message: one bulk write here, or one confirmed
        publish per partition that has any of the senders."""
        moves = [
            ReadMove(m.conversation_id, m.sender_id, m.seq, m.message_id, at) for m, at in sent
        ]
        if not moves:
            return
        if self.owner is None:
            await self.read_states.advance_many(moves)
            return
        topology = self.owner.topology
        by_partition: dict[int, list[ReadMove]] = defaultdict(list)
        for move in moves:
            by_partition[topology.partition_of(move.user_id)].append(move)
        for batch in by_partition.values():
            event = SendersRead(
                user_id=batch[0].user_id,
                moves=[
                    ReadSent(
                        user_id=m.user_id,
                        conversation_id=m.conversation_id,
                        seq=m.seq,
                        message_id=m.message_id,
                        at=m.at,
                    )
                    for m in batch
                ],
            )
            await self.owner.publish_event(event, event.event)
