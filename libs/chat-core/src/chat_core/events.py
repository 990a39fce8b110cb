"""Every frame and envelope that crosses a socket or the broker, in one place.

Field names follow the client contract (camelCase) through aliases; Python code uses
snake_case. Unions are discriminated by `event` and decoded once with a TypeAdapter.
"""

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic.alias_generators import to_camel

from chat_core.clock import utcnow

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Status = Literal["available", "away", "busy", "offline"]
MessageType = Literal["text", "image", "video", "audio"]
STATUSES: tuple[Status, ...] = ("available", "away", "busy", "offline")


class Frame(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, frozen=True
    )

    def dump(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_text(self) -> str:
        """The frame as a client receives it: optional fields that are unset are left out."""
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def to_json(self) -> bytes:
        return self.to_text().encode()


# --- frames a client sends -------------------------------------------------------------


class ClientTyping(Frame):
    event: Literal["typing"]
    conversation_id: Id


class ClientMessageRead(Frame):
    event: Literal["message_read"]
    conversation_id: Id
    message_id: Id


class ClientHeartbeat(Frame):
    event: Literal["heartbeat"]


ClientMessageId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ClientSendMessage(Frame):
    """Send a message over the socket: stored and announced like a REST send (the same
    idempotency per conversation, sender and `clientMessageId`), then acknowledged to this
    socket with `message_ack`, or answered with an `error` naming the `clientMessageId`."""

    event: Literal["send_message"]
    conversation_id: Id
    content: str
    message_type: MessageType
    client_message_id: ClientMessageId


class ClientStatusChange(Frame):
    event: Literal["status_change"]
    status: Status


ClientFrame: TypeAlias = Annotated[
    ClientTyping | ClientMessageRead | ClientHeartbeat | ClientStatusChange | ClientSendMessage,
    Field(discriminator="event"),
]


def members_of(union: Any) -> tuple[type[Frame], ...]:
    """The frame classes of a discriminated union (`Annotated[A | B, Field(...)]`)."""
    members: tuple[type[Frame], ...] = get_args(get_args(union)[0])
    return members


def event_names(frame: type[Frame]) -> tuple[str, ...]:
    """The values a frame class's `event` discriminator may take."""
    names: tuple[str, ...] = get_args(frame.model_fields["event"].annotation)
    return names


CLIENT_FRAMES = members_of(ClientFrame)
CLIENT_EVENTS = tuple(name for frame in CLIENT_FRAMES for name in event_names(frame))
client_frame_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


# --- frames the server sends -----------------------------------------------------------


class NewMessage(Frame):
    event: Literal["new_message"] = "new_message"
    conversation_id: str
    message_id: str
    sender_id: str
    content: str
    message_type: MessageType
    timestamp: str
    # Position in the conversation: 1, 2, 3 ... with no silent holes (docs/message-store.md).
    seq: int


class ReplayDone(Frame):
    """Ends a resume's replay: live events follow. `truncated`: page the rest with /sync."""

    event: Literal["replay_done"] = "replay_done"
    truncated: bool
    next_since: str


class ConversationAnnounced(Frame):
    """A conversation the user was just added to, in its REST shape."""

    event: Literal["conversation_created"] = "conversation_created"
    id: str
    participant_ids: list[str]
    name: str | None = None
    created_at: str

    def to_text(self) -> str:
        # The REST shape has `name: null` for unnamed conversations; keep it.
        return self.model_dump_json(by_alias=True)


class TypingIndicator(Frame):
    event: Literal["typing"] = "typing"
    conversation_id: str
    user_id: str


class MessageReadReceipt(Frame):
    event: Literal["message_read"] = "message_read"
    conversation_id: str
    message_id: str
    user_id: str


class UserStatusChange(Frame):
    event: Literal["user_status_change"] = "user_status_change"
    user_id: str
    status: Status
    conversation_id: str | None = None


class HeartbeatAck(Frame):
    event: Literal["heartbeat_ack"] = "heartbeat_ack"


class StatusChangeAck(Frame):
    event: Literal["status_change_ack"] = "status_change_ack"
    status: Status


class MessageAck(Frame):
    """To the socket that sent `send_message`: the message is stored (at `seq`)."""

    event: Literal["message_ack"] = "message_ack"
    client_message_id: str
    message_id: str
    seq: int
    timestamp: str


class ErrorFrame(Frame):
    event: Literal["error"] = "error"
    message: str
    # Set when the error answers a `send_message`: which one was not sent.
    client_message_id: str | None = None


ServerFrame: TypeAlias = Annotated[
    NewMessage
    | ReplayDone
    | ConversationAnnounced
    | TypingIndicator
    | MessageReadReceipt
    | UserStatusChange
    | HeartbeatAck
    | StatusChangeAck
    | MessageAck
    | ErrorFrame,
    Field(discriminator="event"),
]
server_frame_adapter: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


# --- envelopes on the events exchange (edge -> workers), routed by `event` ---------------


class ConnectionRef(Frame):
    user_id: str
    connection_id: str
    edge_id: str


CLIENT_EVENT_PREFIX = "client."


class ClientEvent(ConnectionRef):
    """A validated client frame, with who sent it and from where.

    Its `event` (the routing kind) is the frame's name after CLIENT_EVENT_PREFIX; the
    literal is spelled out for the type checker and checked against CLIENT_FRAMES.
    """

    event: Literal[
        "client.typing",
        "client.message_read",
        "client.status_change",
        "client.heartbeat",
        "client.send_message",
    ]
    at: datetime
    frame: ClientFrame

    @classmethod
    def wrap(cls, ref: ConnectionRef, frame: ClientFrame) -> "ClientEvent":
        return cls(
            event=CLIENT_EVENT_PREFIX + frame.event,  # type: ignore[arg-type]
            user_id=ref.user_id,
            connection_id=ref.connection_id,
            edge_id=ref.edge_id,
            at=utcnow(),
            frame=frame,
        )


class ConnectionOpened(ConnectionRef):
    event: Literal["conn.opened"] = "conn.opened"
    at: datetime


class ConnectionClosed(ConnectionRef):
    event: Literal["conn.closed"] = "conn.closed"
    at: datetime


class EdgeAlive(Frame):
    """Sent by every edge periodically; an edge that goes silent has died."""

    event: Literal["edge.alive"] = "edge.alive"
    edge_id: str
    at: datetime
    connections: int


class ConversationCreated(Frame):
    event: Literal["conversation.created"] = "conversation.created"
    conversation_id: str
    participant_ids: list[str]


class AccountChanged(Frame):
    """An operator changed a user's account flags: every process forgets what it cached."""

    event: Literal["account.changed"] = "account.changed"
    user_id: str
    disabled: bool


class SweepTick(Frame):
    """Time for presence's stale-connection sweep of one partition.

    Put straight on the partition's queue, so the one instance consuming that partition (and
    so owning its users) runs it; any instance sends them, a spare tick only costs a scan.
    """

    event: Literal["presence.sweep"] = "presence.sweep"
    partition: int


class SenderRead(Frame):
    """A sender has read its conversation up to its own new message.

    Published by whichever messaging instance stored the message, onto the sender's
    partition, so the instance that owns the sender's read positions (the one applying their
    `message_read`s) writes it: one writer per position, also where conditional writes are
    not atomic (FerretDB). No receipt is relayed for it.
    """

    event: Literal["read.sent"] = "read.sent"
    user_id: str
    conversation_id: str
    seq: int
    message_id: str
    at: datetime


class ReadSent(Frame):
    """One sender's read move, in a SendersRead batch."""

    user_id: str
    conversation_id: str
    seq: int
    message_id: str
    at: datetime


class SendersRead(Frame):
    """Senders' read moves written behind their sends (messaging.write_behind), for the
    instance that owns their read positions: one batch per partition and flush.

    Every move's user is in the partition of `user_id` (the first mover's), which is what
    routes the batch; the consumer applies all moves in one bulk write.
    """

    event: Literal["reads.sent"] = "reads.sent"
    user_id: str
    moves: list[ReadSent]


InboundEvent: TypeAlias = Annotated[
    ClientEvent
    | ConnectionOpened
    | ConnectionClosed
    | EdgeAlive
    | ConversationCreated
    | SweepTick
    | SenderRead
    | SendersRead
    | AccountChanged,
    Field(discriminator="event"),
]
inbound_event_adapter: TypeAdapter[InboundEvent] = TypeAdapter(InboundEvent)


def routing_kind(frame: type[Frame]) -> str:
    """The routing kind an envelope travels under: its `event`, or for a client frame the
    kind of the ClientEvent that wraps it."""
    if frame in CLIENT_FRAMES:
        return CLIENT_EVENT_PREFIX + event_names(frame)[0]
    (name,) = event_names(frame)
    return name


# --- envelopes on the delivery exchange (workers -> edges), routed `user.<id>` -----------


class Deliver(Frame):
    """Send `frame` to the routed user's sockets, or only to `connection_id` when set, and
    never to `skip_connection_id` (the socket the event came from)."""

    event: Literal["deliver"] = "deliver"
    frame: ServerFrame
    connection_id: str | None = None
    skip_connection_id: str | None = None
    # When the event happened (new_message: when the message was stored); the edge measures
    # delivery latency from it. Optional: an edge ignores what it does not know.
    at: datetime | None = None
    # The HTTP request that caused it (X-Request-ID), so the edge's delivery log names it.
    request_id: str | None = None


class Disconnect(Frame):
    """Close every socket of the routed user with `code`, or only `connection_id` when set."""

    event: Literal["disconnect"] = "disconnect"
    code: int
    reason: str
    connection_id: str | None = None


OutboundEvent: TypeAlias = Annotated[Deliver | Disconnect, Field(discriminator="event")]
outbound_event_adapter: TypeAdapter[OutboundEvent] = TypeAdapter(OutboundEvent)
