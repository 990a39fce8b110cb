"""What one messaging process holds: settings, connections, repositories and caches."""

from dataclasses import dataclass

import structlog

from chat_core.auth import Authenticator
from chat_core.clock import isoformat
from chat_core.events import ConversationAnnounced, ConversationCreated
from chat_core.limits import KeyedLimiter, Rate
from chat_core.runtime import Runtime
from chat_core.store.conversations import Conversation, Conversations
from chat_core.store.messages import Messages
from chat_core.store.read_state import ReadStates
from chat_core.testing import TestSettings
from messaging.config import MessagingSettings
from messaging.delivery import Delivery, publish
from messaging.faults import Faults
from messaging.history import Reader
from messaging.members import Members
from messaging.outbox import Outbox
from messaging.overload import Admission
from messaging.sender_reads import SenderReads
from messaging.sending import Store
from messaging.socket_sends import SocketSends
from messaging.throttle import Throttle
from messaging.worker import Worker
from messaging.write_behind import WriteBehind

log = structlog.get_logger(__name__)


@dataclass
class Messaging:
    settings: MessagingSettings
    runtime: Runtime
    authenticator: Authenticator
    conversations: Conversations
    messages: Messages
    outbox: Outbox
    read_states: ReadStates
    members: Members
    worker: Worker
    faults: Faults
    admission: Admission
    # One per process, so that concurrent sends batch (group commit, write-behind).
    store: Store

    @property
    def reader(self) -> Reader:
        return Reader(self.members, self.conversations, self.messages, self.read_states)

    @classmethod
    def assemble(
        cls, settings: MessagingSettings, runtime: Runtime, authenticator: Authenticator
    ) -> "Messaging":
        db = runtime.db
        conversations = Conversations(db)
        messages = Messages(db)
        read_states = ReadStates(db)
        members = Members(conversations.get, settings.members_cache_size)
        outbox = Outbox(db)
        store = Store(
            members=members,
            conversations=conversations,
            messages=messages,
            outbox=outbox,
            write_behind=WriteBehind(
                conversations, SenderReads.for_broker(read_states, runtime.broker), outbox
            ),
        )
        faults = Faults.of(TestSettings())
        worker = Worker(
            deliverer=runtime.broker,
            members=members,
            messages=messages,
            read_states=read_states,
            throttle=Throttle(settings.typing_throttle_seconds),
            sends=SocketSends(
                store=store,
                deliverer=runtime.broker,
                faults=faults,
                limiter=KeyedLimiter(Rate(settings.send_rate_per_second, settings.send_burst)),
                max_content_chars=settings.max_content_chars,
                takeover_after=settings.send_takeover_seconds,
            ),
        )
        return cls(
            settings=settings,
            runtime=runtime,
            authenticator=authenticator,
            conversations=conversations,
            messages=messages,
            outbox=outbox,
            read_states=read_states,
            members=members,
            worker=worker,
            faults=faults,
            admission=Admission(settings.max_concurrent_sends, settings.send_queue_timeout_seconds),
            store=store,
        )

    async def welcome(self, conversation: Conversation) -> None:
        """`conversation_created` to every participant's sockets, so no client has to poll."""
        frame = ConversationAnnounced(
            id=conversation.conversation_id,
            participant_ids=list(conversation.participant_ids),
            name=conversation.name,
            created_at=isoformat(conversation.created_at),
        )
        try:
            await publish(self.runtime.broker, [Delivery(conversation.participant_ids, frame)])
        except Exception:
            # The conversation exists; clients still find it in the chat list and in /sync.
            log.warning(
                "conversation_created not delivered",
                conversation_id=conversation.conversation_id,
                exc_info=True,
            )

    async def announce_conversation(self, conversation: Conversation) -> None:
        """Tell presence who now shares a conversation (it caches users' contacts).

        Also sent when a one-to-one is returned again: harmless, and it repairs a missed one.
        """
        event = ConversationCreated(
            conversation_id=conversation.conversation_id,
            participant_ids=list(conversation.participant_ids),
        )
        try:
            await self.runtime.broker.publish_event(event, event.event)
        except Exception:
            # The conversation exists either way; presence's contacts catch up on its own.
            log.warning(
                "conversation.created not published",
                conversation_id=conversation.conversation_id,
                exc_info=True,
            )
