"""One client socket from accept to close: admission, frame handling, presence lifecycle."""

import time

import structlog
from starlette.websockets import WebSocket

from chat_core.auth import Refusal, admit
from chat_core.broker import TYPING_TTL_SECONDS
from chat_core.events import (
    ClientEvent,
    ClientFrame,
    ClientHeartbeat,
    ClientTyping,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionRef,
    ErrorFrame,
    HeartbeatAck,
    utcnow,
)
from chat_core.ids import new_id
from ws_edge.edge import Edge
from ws_edge.frames import BadFrame, decode_client_frame
from ws_edge.registry import Connection

log = structlog.get_logger(__name__)

_HEARTBEAT_ACK = HeartbeatAck().model_dump_json(by_alias=True)
_BINARY_REFUSED = ErrorFrame(message="binary frames are not supported; send JSON text")


async def run_session(edge: Edge, socket: WebSocket, path_user_id: str) -> None:
    # Accept first: a close before accept becomes an HTTP 403 and the client never sees
    # the 4001/4002/4003 close code.
    await socket.accept()
    try:
        user_id = await admit(
            edge.authenticator, edge.runtime.db, socket.query_params.get("token"), path_user_id
        )
    except Refusal as refusal:
        log.info("connection refused", code=refusal.close_code, reason=refusal.reason)
        await socket.close(refusal.close_code, refusal.reason)
        return

    connection = Connection(user_id=user_id, connection_id=new_id(), socket=socket)
    ref = ConnectionRef(
        user_id=user_id, connection_id=connection.connection_id, edge_id=edge.settings.edge_id
    )
    bound = log.bind(user_id=user_id, connection_id=connection.connection_id)
    await edge.registry.add(connection)
    try:
        opened = ConnectionOpened(**ref.model_dump(), at=utcnow())
        await edge.runtime.broker.publish_event(opened, opened.event)
        bound.info("connected")
        await _receive_frames(edge, connection, ref)
    finally:
        await edge.registry.remove(connection)
        closed = ConnectionClosed(**ref.model_dump(), at=utcnow())
        try:
            await edge.runtime.broker.publish_event(closed, closed.event)
        except Exception:
            # Presence still expires it: by idle timeout, or with this edge if it dies.
            bound.warning("conn.closed not published", exc_info=True)
        bound.info("disconnected")


async def _receive_frames(edge: Edge, connection: Connection, ref: ConnectionRef) -> None:
    while True:
        message = await connection.socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await connection.send(_BINARY_REFUSED.model_dump_json(by_alias=True))
            continue
        try:
            frame = decode_client_frame(text)
        except BadFrame as error:
            await connection.send(ErrorFrame(message=str(error)).model_dump_json(by_alias=True))
            continue
        await _handle(edge, connection, ref, frame)


async def _handle(
    edge: Edge, connection: Connection, ref: ConnectionRef, frame: ClientFrame
) -> None:
    broker = edge.runtime.broker
    if isinstance(frame, ClientHeartbeat):
        await connection.send(_HEARTBEAT_ACK)
        now = time.monotonic()
        if (
            now - connection.heartbeat_forwarded_at
            < edge.settings.heartbeat_forward_interval_seconds
        ):
            return
        connection.heartbeat_forwarded_at = now
    envelope = ClientEvent.wrap(ref, frame)
    ttl = TYPING_TTL_SECONDS if isinstance(frame, ClientTyping) else None
    try:
        await broker.publish_event(envelope, envelope.event, ttl=ttl)
    except Exception:
        log.warning("publish failed", kind=envelope.event, exc_info=True)
        if not isinstance(frame, ClientHeartbeat):
            unavailable = ErrorFrame(
                message=f"{frame.event} not accepted: service unavailable, retry"
            )
            await connection.send(unavailable.model_dump_json(by_alias=True))
