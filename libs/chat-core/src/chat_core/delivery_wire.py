"""How a delivery travels from a worker to the edges: the frame's own bytes, routing beside it.

The body of a `deliver` is exactly the text frame the client receives, encoded once by the
publisher; everything the edge needs to route or hold it rides in AMQP headers, so an edge
hands the body to sockets without decoding or re-encoding it (the decode and re-encode were
most of an edge's cost per delivery). A `disconnect` has an empty body.

| AMQP field | meaning |
| --- | --- |
| `type` | `deliver` or `disconnect` |
| header `users` | the recipients this publish names (the edge serves those it holds) |
| header `conn` | only this connection (a `status_change_ack`, an `error`, a 4029 close) |
| header `skip` | never this connection (the socket the event came from) |
| header `event` | the frame's `event` (the edge's metrics) |
| header `at` | ISO-8601: when what the frame reports happened (delivery latency) |
| header `req` | the HTTP request that caused it (X-Request-ID) |
| `conv`, `seq`, `msg` | a `new_message`'s conversation, seq and id (resume repeats, logs) |
| headers `code`, `reason` | a `disconnect`'s close code and reason |

Routing keys are delivery shards, not users: `d.<crc32(userId) mod shards>`. An edge binds
the shards of the users it holds (`ws_edge.shards`), so a connect binds nothing when its
shard is already bound, which after the first few hundred users is nearly always.
"""

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aio_pika.abc import AbstractIncomingMessage, FieldValue

from chat_core.events import Deliver, Disconnect, NewMessage, OutboundEvent, server_frame_adapter

# Shards of the delivery exchange; every service of a stack must agree (BROKER_DELIVERY_SHARDS).
DEFAULT_SHARDS = 1024
_SHARD_PREFIX = "d."

Kind = Literal["deliver", "disconnect"]
DELIVER: Kind = "deliver"
DISCONNECT: Kind = "disconnect"


class BadDelivery(ValueError):
    """A message on the delivery exchange that is not one of ours."""


def shard_of(user_id: str, shards: int) -> int:
    return zlib.crc32(user_id.encode()) % shards


def shard_key(shard: int) -> str:
    return f"{_SHARD_PREFIX}{shard}"


def encode(envelope: Deliver | Disconnect) -> tuple[bytes, dict[str, FieldValue], Kind]:
    """The body, headers (without `users`) and type of one delivery."""
    headers: dict[str, FieldValue] = {}
    if envelope.connection_id is not None:
        headers["conn"] = envelope.connection_id
    if isinstance(envelope, Disconnect):
        headers["code"] = envelope.code
        headers["reason"] = envelope.reason
        return b"", headers, DISCONNECT
    frame = envelope.frame
    headers["event"] = frame.event
    if envelope.skip_connection_id is not None:
        headers["skip"] = envelope.skip_connection_id
    if envelope.at is not None:
        headers["at"] = envelope.at.isoformat()
    if envelope.request_id is not None:
        headers["req"] = envelope.request_id
    if isinstance(frame, NewMessage):
        headers["conv"] = frame.conversation_id
        headers["seq"] = frame.seq
        headers["msg"] = frame.message_id
    return frame.to_json(), headers, DELIVER


@dataclass(frozen=True, slots=True)
class Routed:
    """One delivery as an edge reads it: headers decoded, the frame left as its text."""

    kind: Kind
    users: list[str]
    # The text frame for the client (a `deliver`); "" for a `disconnect`.
    payload: str
    event: str
    connection_id: str | None = None
    skip_connection_id: str | None = None
    at: datetime | None = None
    request_id: str | None = None
    conversation_id: str | None = None
    seq: int | None = None
    message_id: str | None = None
    code: int = 0
    reason: str = ""

    def is_for(self, connection_id: str) -> bool:
        return self.connection_id in (None, connection_id) and self.skip_connection_id != (
            connection_id
        )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


def recipients(headers: Mapping[str, Any]) -> list[str]:
    users = headers.get("users")
    if not isinstance(users, list | tuple):
        return []
    return [text for text in map(_text, users) if text is not None]


def decode(message: AbstractIncomingMessage) -> Routed:
    """The routing of one delivery; the body is not parsed. Raises BadDelivery."""
    return decode_parts(message.body, message.headers, message.type)


def decode_parts(body: bytes, headers: Mapping[str, Any] | None, kind: str | None) -> Routed:
    """`decode` from the message's parts (an edge reads them off aiormq's frames)."""
    headers = headers or {}
    users = recipients(headers)
    connection_id = _text(headers.get("conn"))
    if kind == DISCONNECT:
        code = headers.get("code")
        if not isinstance(code, int):
            raise BadDelivery("disconnect without a close code")
        return Routed(
            DISCONNECT,
            users,
            "",
            DISCONNECT,
            connection_id=connection_id,
            code=code,
            reason=_text(headers.get("reason")) or "",
        )
    if kind != DELIVER:
        raise BadDelivery(f"unknown delivery type {kind!r}")
    try:
        payload = body.decode()
    except UnicodeDecodeError as error:
        raise BadDelivery("frame is not UTF-8") from error
    at = _text(headers.get("at"))
    seq = headers.get("seq")
    try:
        stamp = datetime.fromisoformat(at) if at else None
    except ValueError as error:
        raise BadDelivery(f"bad 'at' header {at!r}") from error
    return Routed(
        DELIVER,
        users,
        payload,
        _text(headers.get("event")) or "unknown",
        connection_id=connection_id,
        skip_connection_id=_text(headers.get("skip")),
        at=stamp,
        request_id=_text(headers.get("req")),
        conversation_id=_text(headers.get("conv")),
        seq=seq if isinstance(seq, int) else None,
        message_id=_text(headers.get("msg")),
    )


def decode_envelope(message: AbstractIncomingMessage) -> OutboundEvent:
    """The envelope a delivery was published from, frame parsed (for tests and tools; an
    edge never parses the frame)."""
    routed = decode(message)
    if routed.kind == DISCONNECT:
        return Disconnect(
            code=routed.code, reason=routed.reason, connection_id=routed.connection_id
        )
    return Deliver(
        frame=server_frame_adapter.validate_json(routed.payload),
        connection_id=routed.connection_id,
        skip_connection_id=routed.skip_connection_id,
        at=routed.at,
        request_id=routed.request_id,
    )
