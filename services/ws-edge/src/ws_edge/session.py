"""One client socket from accept to close: admission, frame handling, presence lifecycle.

An edge holds tens of thousands of idle sockets, so what one keeps for its whole life is
kept small (docs/edge.md, "Memory per socket"): admission and the catch-up after it run in
a task of their own, so what they leave behind (the Starlette WebSocket with its parsed
headers and query, pymongo's context variables, the admission's locals) goes when they are
done; the socket then lives on as its `Connection` and a receive loop reading the ASGI
messages directly.
"""

import asyncio
import time

import structlog
from starlette.types import Message, Receive, Scope, Send
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
from ws_edge.upgrade import Upgrade, admit_upgrade, release

log = structlog.get_logger(__name__)

_HEARTBEAT_ACK = HeartbeatAck().to_text()
_BINARY_REFUSED = "binary frames are not supported; send JSON text"
_RATE_LIMITED = ErrorFrame(
    message="rate limited: frames dropped; slow down (at most one such error per second)"
).to_text()
_OVER_RATE_REASON = "sustained abuse: over the frame rate limit"
_INVALID_REASON = "sustained abuse: too many invalid frames"
_UNAVAILABLE_REASON = "service unavailable; try again later"


async def run_session(edge: Edge, scope: Scope, receive: Receive, send: Send, user_id: str) -> None:
    """Serve one `/ws/{userId}` socket until it closes."""
    # In a task of its own: the context variables admission sets (pymongo's) and its locals
    # end with it instead of living as long as the socket.
    admitted = await asyncio.create_task(_open(edge, scope, receive, send, user_id))
    if admitted is None:
        return
    connection, since, upgrade = admitted
    try:
        await asyncio.create_task(_catch_up(edge, connection, since))
        await _receive_frames(edge, connection, receive)
    finally:
        connection.discard()
        edge.registry.remove(connection)
        await _closed(edge, connection)
        edge.sockets -= 1
        release(edge.open_sockets, upgrade)


async def _open(
    edge: Edge, scope: Scope, receive: Receive, send: Send, path_user_id: str
) -> tuple[Connection, str | None, Upgrade] | None:
    """Refuse before the upgrade, or accept, admit and register: the connection, its `since`
    and the address slot it holds; None once refused."""
    socket = WebSocket(scope, receive, send)
    upgrade = await admit_upgrade(edge, socket, edge.open_sockets)
    if upgrade is None:
        return None
    admitted = None
    try:
        admitted = await _admit(edge, socket, scope, send, path_user_id)
    finally:
        if admitted is None:
            release(edge.open_sockets, upgrade)
    if admitted is None:
        return None
    return (*admitted, upgrade)


async def _admit(
    edge: Edge, socket: WebSocket, scope: Scope, send: Send, path_user_id: str
) -> tuple[Connection, str | None] | None:
    # Accept first: a close before accept becomes an HTTP 403 and the client never sees
    # the 4001/4002/4003 close code.
    await socket.accept()
    edge.sockets += 1
    opened = False
    try:
        if edge.sockets > edge.settings.max_sockets:
            log.warning("edge full, socket refused", sockets=edge.sockets - 1)
            metrics.admission(CloseCode.TRY_AGAIN_LATER)
            await socket.close(CloseCode.TRY_AGAIN_LATER, "edge full; try again later")
            return None
        token, since = socket.query_params.get("token"), socket.query_params.get("since")
        # Nothing reads the handshake's headers from here on; they are a kilobyte a socket.
        scope["headers"] = []
        try:
            user_id = await admit(
                edge.authenticator,
                edge.runtime.accounts,
                token,
                path_user_id,
                fetch_disabled=edge.fetch_disabled,
            )
        except Refusal as refusal:
            log.info("connection refused", code=refusal.close_code, reason=refusal.reason)
            metrics.admission(refusal.close_code)
            await socket.close(refusal.close_code, refusal.reason)
            return None
        connection = await _register(edge, user_id, send)
        opened = connection is not None
        if connection is None:
            metrics.admission(CloseCode.TRY_AGAIN_LATER)
            await socket.close(CloseCode.TRY_AGAIN_LATER, _UNAVAILABLE_REASON)
            return None
        metrics.admission("accepted")
        log.info("connected", user_id=user_id, connection_id=connection.connection_id)
        return connection, since
    finally:
        if not opened:
            edge.sockets -= 1


async def _register(edge: Edge, user_id: str, send: Send) -> Connection | None:
    """Hold the socket in the registry (its deliveries reach this edge from now on, held
    until the catch-up is out) and publish `conn.opened`; None if the broker refused."""
    now = time.monotonic()
    # Live deliveries are held until the snapshot and any replay are out (resume.py).
    connection = Connection(
        user_id=user_id,
        connection_id=new_id(),
        asgi=send,
        outbound=edge.outbound,
        gate=FrameGate(edge.frame_policy, now),
        heartbeat_forwarded_at=now,
        held=[],
    )
    try:
        await edge.registry.add(connection)
        opened = ConnectionOpened(**_ref(edge, connection).model_dump(), at=utcnow())
        await edge.runtime.broker.publish_event(opened, opened.event)
    except Exception:
        # Not admitted without presence hearing of it: the client backs off and retries.
        log.warning("socket refused: broker unavailable", user_id=user_id, exc_info=True)
        connection.discard()
        edge.registry.remove(connection)
        await _closed(edge, connection)
        return None
    return connection


async def _closed(edge: Edge, connection: Connection) -> None:
    closed = ConnectionClosed(**_ref(edge, connection).model_dump(), at=utcnow())
    try:
        await edge.runtime.broker.publish_event(closed, closed.event)
    except Exception:
        # Presence still expires it: by idle timeout, or with this edge if it dies.
        log.warning(
            "conn.closed not published",
            user_id=connection.user_id,
            connection_id=connection.connection_id,
            exc_info=True,
        )
    log.info("disconnected", user_id=connection.user_id, connection_id=connection.connection_id)


async def _catch_up(edge: Edge, connection: Connection, since: str | None) -> None:
    replayed: dict[str, int] = {}
    try:
        await presence_snapshot(edge, connection)
        if since is not None:
            replayed = await replay(edge, connection, since)
    except Exception:
        # The socket still goes live; a client that asked to resume pages /sync instead.
        log.warning("snapshot or replay failed", user_id=connection.user_id, exc_info=True)
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


async def _receive_frames(edge: Edge, connection: Connection, receive: Receive) -> None:
    # Each message is handled in a call of its own, so nothing of the last one (its text,
    # its decoded frame) stays alive while the socket waits for the next.
    while await _on_message(edge, connection, await receive()):
        pass


async def _on_message(edge: Edge, connection: Connection, message: Message) -> bool:
    """Handle one ASGI message; False when the socket is done."""
    if message["type"] != "websocket.receive":
        return False  # websocket.disconnect
    now = time.monotonic()
    policy = edge.frame_policy
    gate = connection.gate
    # Counted before decoding: a flood of garbage costs no parsing.
    verdict = gate.admit(policy, now)
    if verdict is not Verdict.PASS:
        metrics.FRAMES_IN.labels("unknown", "rate_limited").inc()
        if verdict is Verdict.CLOSE:
            log.warning(
                "closed for sustained abuse: over the frame rate limit",
                user_id=connection.user_id,
                connection_id=connection.connection_id,
            )
            await connection.close(CloseCode.POLICY_VIOLATION, _OVER_RATE_REASON)
            return False
        if verdict is Verdict.WARN:
            await connection.send(_RATE_LIMITED)
        return True
    text = message.get("text")
    try:
        if not isinstance(text, str):
            raise BadFrame(_BINARY_REFUSED)
        frame = decode_client_frame(text)
    except BadFrame as error:
        metrics.FRAMES_IN.labels("binary" if text is None else "unknown", "invalid").inc()
        if gate.invalid_frame(policy, now):
            log.warning(
                "closed for sustained abuse: too many invalid frames",
                user_id=connection.user_id,
                connection_id=connection.connection_id,
            )
            await connection.close(CloseCode.POLICY_VIOLATION, _INVALID_REASON)
            return False
        await _send_error(connection, ErrorFrame(message=str(error)))
        return True
    await _handle(edge, connection, frame)
    return True


async def _send_error(connection: Connection, frame: ErrorFrame) -> None:
    if await connection.send(frame.to_text()):
        metrics.FRAMES_OUT.labels("error").inc()


async def _handle(edge: Edge, connection: Connection, frame: ClientFrame) -> None:
    if isinstance(frame, ClientHeartbeat):
        if connection.offer(_HEARTBEAT_ACK):
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
        log.warning(
            "publish failed",
            kind=envelope.event,
            user_id=connection.user_id,
            connection_id=connection.connection_id,
            exc_info=True,
        )
        if not isinstance(frame, ClientHeartbeat):
            refused = ErrorFrame(
                message=f"{frame.event} not accepted: service unavailable, retry",
                client_message_id=getattr(frame, "client_message_id", None),
            )
            await _send_error(connection, refused)
        return
    metrics.FRAMES_IN.labels(frame.event, "published").inc()
