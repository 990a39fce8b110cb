"""What a send leaves for later: the conversation's last-message hint and the sender's own
read position, written in batches off the request's path, and only then the outbox entry's
removal.

A send answers once its message holds a position and its `new_message` is confirmed. The
two other things it changes follow within one flush interval (`WRITE_BEHIND_SECONDS`), as
one bulk write for all the sends of the interval instead of two or three commands each:
- the hint is one any reader repairs anyway (it may lag: `Messages.last_seq`), so a chat
  list read in between is right, only its confirmation costs one more lookup;
- the sender's read position is moved by its one writer (sender_reads.py); until then the
  sender's chat list may count their own newest message as unread, for at most the interval.
The outbox entry stays until both are written, so a crash in between leaves the entry to the
relay, which writes them again (and announces again: at-least-once after a crash).

Until written, this process's readers see them anyway (`latest`, `sent_by`: the chat list
overlays them), so a client reads its own sends through the process that took them at once;
through another process, within the interval.
"""

from dataclasses import dataclass, field
from datetime import datetime

import structlog

from chat_core.store.conversations import Conversations
from chat_core.store.messages import Message
from messaging.outbox import Outbox
from messaging.sender_reads import SenderReads

log = structlog.get_logger(__name__)


@dataclass
class WriteBehind:
    conversations: Conversations
    sender_reads: SenderReads
    outbox: Outbox
    _messages: list[tuple[Message, datetime]] = field(default_factory=list)
    # Not yet written, by conversation and by (conversation, sender): the newest of each.
    _latest: dict[str, Message] = field(default_factory=dict)
    _reads: dict[tuple[str, str], Message] = field(default_factory=dict)

    def record(self, message: Message, now: datetime) -> None:
        """A stored and announced message whose hint and sender's read are still to write."""
        self._messages.append((message, now))
        cid = message.conversation_id
        if cid not in self._latest or self._latest[cid].seq < message.seq:
            self._latest[cid] = message
        read = (cid, message.sender_id)
        if read not in self._reads or self._reads[read].seq < message.seq:
            self._reads[read] = message

    def latest(self, conversation_id: str) -> Message | None:
        """The conversation's newest message this process stored and has not written behind."""
        return self._latest.get(conversation_id)

    def sent_by(self, conversation_id: str, user_id: str) -> Message | None:
        """The user's newest send here whose move of their read position is not written."""
        return self._reads.get((conversation_id, user_id))

    def __len__(self) -> int:
        return len(self._messages)

    async def flush(self) -> None:
        """Write what the sends since the last flush left, then let their outbox entries go.
        On failure everything stays for the next flush (or, after a crash, for the relay)."""
        if not self._messages:
            return
        batch, self._messages = self._messages, []
        try:
            await self.conversations.advance_many([message for message, _ in batch])
            await self.sender_reads.advance_many(batch)
        except BaseException:
            self._messages[:0] = batch
            raise
        for message, _ in batch:
            self.outbox.published(message.message_id)
            if self._latest.get(message.conversation_id) is message:
                del self._latest[message.conversation_id]
            if self._reads.get((message.conversation_id, message.sender_id)) is message:
                del self._reads[(message.conversation_id, message.sender_id)]
        await self.outbox.flush()
