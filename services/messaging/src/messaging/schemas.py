"""REST request and response bodies: camelCase JSON, like the WebSocket events."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from chat_core.clock import isoformat
from chat_core.events import MessageType
from chat_core.store.conversations import Conversation
from chat_core.store.messages import Entry, Message, Tombstone, message_fields
from chat_core.store.read_state import ReadPosition
from chat_core.store.sync import SyncPage
from messaging.inbox import InboxEntry

DOCUMENT_ID_PATTERN = r"^[0-9a-f]{24}$"
MAX_NAME_CHARS = 200
MAX_CLIENT_MESSAGE_ID_CHARS = 128
_TIMESTAMP: dict[str, Any] = {"format": "date-time", "examples": ["2025-01-31T09:30:00.123+00:00"]}


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )


class RequestModel(ApiModel):
    # A misspelt field is a client bug worth a 422, not a silently ignored value.
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    detail: str


class CreateConversation(RequestModel):
    participant_ids: list[str] = Field(
        min_length=1,
        description="The other users (the caller is added). Each must be a valid user id: "
        "in dev auth mode a Vietnamese mobile number in E.164 (+84...). Duplicates are dropped.",
    )
    name: Annotated[
        str | None,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS),
    ] = Field(
        default=None,
        description="Optional. Two participants without a name make the pair's one-to-one.",
    )


class SendMessage(RequestModel):
    content: str = Field(
        min_length=1,
        description="Not blank; at most MAX_CONTENT_CHARS characters (4000 by default).",
    )
    message_type: MessageType
    client_message_id: Annotated[
        str | None, StringConstraints(min_length=1, max_length=MAX_CLIENT_MESSAGE_ID_CHARS)
    ] = Field(
        default=None,
        description="Idempotency key chosen by the sender: sending again with the same one "
        "returns the first message and delivers nothing twice.",
    )


class ConversationOut(ApiModel):
    id: str
    participant_ids: list[str]
    name: str | None
    created_at: str = Field(json_schema_extra=_TIMESTAMP)

    @classmethod
    def of(cls, conversation: Conversation) -> "ConversationOut":
        return cls(
            id=conversation.conversation_id,
            participant_ids=list(conversation.participant_ids),
            name=conversation.name,
            created_at=isoformat(conversation.created_at),
        )


class MessageOut(ApiModel):
    message_id: str
    conversation_id: str
    sender_id: str
    content: str
    message_type: MessageType
    timestamp: str = Field(json_schema_extra=_TIMESTAMP)
    seq: int = Field(ge=1, description="Position in the conversation: 1, 2, 3 ..., no holes.")
    client_message_id: str = Field(
        description="The sender's idempotency key; the messageId when it sent none."
    )

    @classmethod
    def of(cls, message: Message) -> "MessageOut":
        # A message sent without one shows its own id here, as before store version 2.
        client_message_id = message.client_message_id or message.message_id
        return cls.model_validate({**message_fields(message), "clientMessageId": client_message_id})


class TombstoneOut(ApiModel):
    """A position that holds no message (a send that died and was completed elsewhere):
    nothing is missing there."""

    conversation_id: str
    seq: int
    tombstone: bool = True
    timestamp: str = Field(json_schema_extra=_TIMESTAMP)

    @classmethod
    def of(cls, tombstone: Tombstone) -> "TombstoneOut":
        return cls(
            conversation_id=tombstone.conversation_id,
            seq=tombstone.seq,
            timestamp=isoformat(tombstone.created_at),
        )


def entry_out(entry: Entry) -> "MessageOut | TombstoneOut":
    return MessageOut.of(entry) if isinstance(entry, Message) else TombstoneOut.of(entry)


class ReadMark(ApiModel):
    user_id: str
    read_at: str = Field(json_schema_extra=_TIMESTAMP)

    @classmethod
    def of(cls, position: ReadPosition) -> "ReadMark":
        return cls(user_id=position.user_id, read_at=isoformat(position.read_at))


class MessageDetail(MessageOut):
    read_by: list[ReadMark] = Field(
        description="Members other than the sender who have read this message or a later one."
    )

    @classmethod
    def with_readers(cls, message: Message, readers: list[ReadPosition]) -> "MessageDetail":
        return cls.model_validate(
            {
                **MessageOut.of(message).model_dump(by_alias=True),
                "readBy": [ReadMark.of(position) for position in readers],
            }
        )


class MessagePage(ApiModel):
    items: list[MessageOut | TombstoneOut] = Field(
        description="Newest first with `before` (or no cursor); oldest first with `afterSeq`."
    )
    has_more: bool = Field(
        description="More exist in the same direction: pass the last item's messageId as "
        "`before`, or its seq as `afterSeq`."
    )


class ConversationSummary(ConversationOut):
    last_message: MessageOut | None
    last_activity_at: str = Field(json_schema_extra=_TIMESTAMP)
    last_seq: int = Field(ge=0, description="The seq of the conversation's last message.")
    read_seq: int = Field(ge=0, description="The caller's read position (a seq).")
    unread_count: int = Field(ge=0, description="lastSeq - readSeq.")

    @classmethod
    def of_entry(cls, entry: InboxEntry) -> "ConversationSummary":
        conversation = entry.conversation
        last = conversation.last_message
        return cls(
            **ConversationOut.of(conversation).model_dump(),
            last_message=MessageOut.of(last) if last else None,
            last_activity_at=isoformat(conversation.last_activity_at),
            last_seq=conversation.last_seq,
            read_seq=entry.read_seq,
            unread_count=entry.unread_count,
        )


class ConversationList(ApiModel):
    items: list[ConversationSummary] = Field(description="Most recent activity first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page. A "
        "conversation that moves while a client pages may be seen twice."
    )


class SyncOut(ApiModel):
    items: list[MessageOut | TombstoneOut] = Field(
        description="Messages the client may not have seen, oldest first within each "
        "conversation. May repeat messages the client has (de-duplicate by messageId); never "
        "skips one."
    )
    conversations: list[ConversationOut] = Field(
        description="Conversations created since the cursor (possibly without messages)."
    )
    next_since: str = Field(description="Pass as `since` next time (opaque).")
    has_more: bool = Field(description="Call again at once with `nextSince` for the rest.")

    @classmethod
    def of(cls, page: SyncPage) -> "SyncOut":
        return cls(
            items=[entry_out(entry) for entry in page.entries],
            conversations=[ConversationOut.of(c) for c in page.new_conversations],
            next_since=page.next.encode(),
            has_more=page.has_more,
        )
