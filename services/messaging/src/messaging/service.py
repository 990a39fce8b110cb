"""What one messaging process holds: settings, connections, repositories and caches."""

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from chat_core.auth import Authenticator
from chat_core.events import ConversationCreated
from chat_core.runtime import Runtime
from chat_core.testing import TestSettings
from messaging.config import MessagingSettings
from messaging.conversations import Conversation, Conversations
from messaging.faults import after_write_hook
from messaging.members import Members
from messaging.messages import Messages
from messaging.outbox import Outbox
from messaging.read_state import ReadStates
from messaging.throttle import Throttle
from messaging.worker import Worker

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
    after_write: Callable[[], None]

    @classmethod
    def assemble(
        cls, settings: MessagingSettings, runtime: Runtime, authenticator: Authenticator
    ) -> "Messaging":
        db = runtime.db
        conversations = Conversations(db)
        messages = Messages(db)
        read_states = ReadStates(db)
        members = Members(conversations.get, settings.members_cache_size)
        worker = Worker(
            deliverer=runtime.broker,
            members=members,
            messages=messages,
            read_states=read_states,
            throttle=Throttle(settings.typing_throttle_seconds),
        )
        return cls(
            settings=settings,
            runtime=runtime,
            authenticator=authenticator,
            conversations=conversations,
            messages=messages,
            outbox=Outbox(db),
            read_states=read_states,
            members=members,
            worker=worker,
            after_write=after_write_hook(TestSettings()),
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
