"""REST request and response bodies: camelCase JSON, like the WebSocket events."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from chat_core.events import MessageType, isoformat
from messaging.conversations import Conversation
from messaging.inbox import InboxEntry
from messaging.messages import Message, message_fields
from messaging.read_state import ReadPosition

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
    client_message_id: str

    @classmethod
    def of(cls, message: Message) -> "MessageOut":
        return cls.model_validate(
            {**message_fields(message), "clientMessageId": message.client_message_id}
        )


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
    items: list[MessageOut] = Field(description="Newest first.")
    has_more: bool = Field(
        description="Older messages exist: pass the last item's messageId as `before`."
    )


class ConversationSummary(ConversationOut):
    last_message: MessageOut | None
    last_activity_at: str = Field(json_schema_extra=_TIMESTAMP)
    unread_count: int = Field(
        ge=0, description="Messages from others after the caller's last read message."
    )

    @classmethod
    def of_entry(cls, entry: InboxEntry) -> "ConversationSummary":
        last = entry.last_message
        return cls(
            **ConversationOut.of(entry.conversation).model_dump(),
            last_message=MessageOut.of(last) if last else None,
            last_activity_at=isoformat(entry.last_activity_at),
            unread_count=entry.unread_count,
        )


class ConversationList(ApiModel):
    items: list[ConversationSummary] = Field(description="Most recent activity first.")
