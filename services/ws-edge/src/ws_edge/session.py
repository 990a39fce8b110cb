"""One client socket from accept to close: admission, frame handling, presence lifecycle."""

import time

import structlog
from starlette.websockets import WebSocket

from chat_core import metrics
from chat_core.auth import Refusal, admit
from chat_core.broker import TYPING_TTL_SECONDS
from chat_core.clock import utcnow
from chat_core.close_codes import CloseCode
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
    ReplayDone,
)
from chat_core.ids import new_id
from ws_edge.edge import Edge
from ws_edge.flow import FrameGate, Verdict
from ws_edge.frames import BadFrame, decode_client_frame
from ws_edge.registry import Connection
from ws_edge.resume import presence_snapshot, release_held, replay

log = structlog.get_logger(__name__)

_HEARTBEAT_ACK = HeartbeatAck().to_text()
_BINARY_REFUSED = "binary frames are not supported; send JSON text"
_RATE_LIMITED = ErrorFrame(
    message="rate limited: frames dropped; slow down (at most one such error per second)"
).to_text()
_OVER_RATE_REASON = "sustained abuse: over the frame rate limit"
_INVALID_REASON = "sustained abuse: too many invalid frames"


async def run_session(edge: Edge, socket: WebSocket, path_user_id: str) -> None:
    # Accept first: a close before accept becomes an HTTP 403 and the client never sees
    # the 4001/4002/4003 close code.
    await socket.accept()
    edge.sockets += 1
    try:
        if edge.sockets > edge.settings.max_sockets:
            log.warning("edge full, socket refused", sockets=edge.sockets - 1)
            metrics.admission(CloseCode.TRY_AGAIN_LATER)
            await socket.close(CloseCode.TRY_AGAIN_LATER, "edge full; try again later")
            return
        await _admit_and_serve(edge, socket, path_user_id)
    finally:
        edge.sockets -= 1


async def _admit_and_serve(edge: Edge, socket: WebSocket, path_user_id: str) -> None:
    try:
        user_id = await admit(
            edge.authenticator, edge.runtime.db, socket.query_params.get("token"), path_user_id
        )
    except Refusal as refusal:
        log.info("connection refused", code=refusal.close_code, reason=refusal.reason)
        metrics.admission(refusal.close_code)
        await socket.close(refusal.close_code, refusal.reason)
        return
    metrics.admission("accepted")

    now = time.monotonic()
    # Live deliveries are held until the snapshot and any replay are out (resume.py).
    connection = Connection(
        user_id=user_id,
        connection_id=new_id(),
        socket=socket,
        outbound=edge.outbound,
        gate=FrameGate(edge.frame_policy, now),
        heartbeat_forwarded_at=now,
        held=[],
    )
    # Each socket runs in its own task, so this context belongs to this connection alone.
    structlog.contextvars.bind_contextvars(user_id=user_id, connection_id=connection.connection_id)
    await edge.registry.add(connection)
    try:
        opened = ConnectionOpened(**_ref(edge, connection).model_dump(), at=utcnow())
        await edge.runtime.broker.publish_event(opened, opened.event)
        log.info("connected")
        await _catch_up(edge, connection, socket.query_params.get("since"))
        await _receive_frames(edge, connection)
    finally:
        connection.discard()
        edge.registry.remove(connection)
        closed = ConnectionClosed(**_ref(edge, connection).model_dump(), at=utcnow())
        try:
            await edge.runtime.broker.publish_event(closed, closed.event)
        except Exception:
            # Presence still expires it: by idle timeout, or with this edge if it dies.
            log.warning("conn.closed not published", exc_info=True)
        log.info("disconnected")


async def _catch_up(edge: Edge, connection: Connection, since: str | None) -> None:
    replayed: dict[str, int] = {}
    try:
        await presence_snapshot(edge, connection)
        if since is not None:
            replayed = await replay(edge, connection, since)
    except Exception:
        # The socket still goes live; a client that asked to resume pages /sync instead.
        log.warning("snapshot or replay failed", exc_info=True)
        if since is not None:
            await connection.send(ReplayDone(truncated=True, next_since=since).to_text())
    await release_held(connection, replayed)


def _ref(edge: Edge, connection: Connection) -> ConnectionRef:
    # Built per event rather than kept per socket: memory per idle socket is what matters.
    return ConnectionRef(
        user_id=connection.user_id,
        connection_id=connection.connection_id,
        edge_id=edge.settings.edge_id,
    )


async def _receive_frames(edge: Edge, connection: Connection) -> None:
    receive = connection.socket.receive
    policy = edge.frame_policy
    gate = connection.gate
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        now = time.monotonic()
        # Counted before decoding: a flood of garbage costs no parsing.
        verdict = gate.admit(policy, now)
        if verdict is not Verdict.PASS:
            metrics.FRAMES_IN.labels("unknown", "rate_limited").inc()
            if verdict is Verdict.CLOSE:
                log.warning("closed for sustained abuse: over the frame rate limit")
                await connection.close(CloseCode.POLICY_VIOLATION, _OVER_RATE_REASON)
                return
            if verdict is Verdict.WARN:
                await connection.send(_RATE_LIMITED)
            continue
        text = message.get("text")
        try:
            if text is None:
                raise BadFrame(_BINARY_REFUSED)
            frame = decode_client_frame(text)
        except BadFrame as error:
            metrics.FRAMES_IN.labels("binary" if text is None else "unknown", "invalid").inc()
            if gate.invalid_frame(policy, now):
                log.warning("closed for sustained abuse: too many invalid frames")
                await connection.close(CloseCode.POLICY_VIOLATION, _INVALID_REASON)
                return
            await _send_error(connection, ErrorFrame(message=str(error)))
            continue
        await _handle(edge, connection, frame)


async def _send_error(connection: Connection, frame: ErrorFrame) -> None:
    if await connection.send(frame.to_text()):
        metrics.FRAMES_OUT.labels("error").inc()


async def _handle(edge: Edge, connection: Connection, frame: ClientFrame) -> None:
    if isinstance(frame, ClientHeartbeat):
        if await connection.send(_HEARTBEAT_ACK):
            metrics.FRAMES_OUT.labels("heartbeat_ack").inc()
        interval = edge.settings.heartbeat_forward_interval_seconds
        if not connection.heartbeat_due(time.monotonic(), interval):
            metrics.FRAMES_IN.labels(frame.event, "answered").inc()
            return
    envelope = ClientEvent.wrap(_ref(edge, connection), frame)
    ttl = TYPING_TTL_SECONDS if isinstance(frame, ClientTyping) else None
    try:
        await edge.runtime.broker.publish_event(envelope, envelope.event, ttl=ttl)
    except Exception:
        metrics.FRAMES_IN.labels(frame.event, "publish_failed").inc()
        log.warning("publish failed", kind=envelope.event, exc_info=True)
        if not isinstance(frame, ClientHeartbeat):
            refused = ErrorFrame(message=f"{frame.event} not accepted: service unavailable, retry")
            await _send_error(connection, refused)
        return
    metrics.FRAMES_IN.labels(frame.event, "published").inc()
