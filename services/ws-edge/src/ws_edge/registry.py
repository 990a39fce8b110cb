"""Which sockets this edge holds, per user; holds a user's delivery shard while they have one."""

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from starlette.types import Send

from chat_core import metrics
from chat_core.close_codes import CloseCode
from chat_core.keyed_lock import KeyedLock
from ws_edge.flow import FrameGate, OutboundLimits
from ws_edge.shards import ShardBindings

log = structlog.get_logger(__name__)


# A delivery held during the snapshot and replay: the frame, and a new_message's
# conversation and seq (None otherwise).
Held = tuple[str, str | None, int | None]


@dataclass(eq=False, slots=True)
class Connection:
    """One socket. Kept small on purpose: an edge holds tens of thousands of these.

    Outbound frames wait in a bounded queue drained by a writer task that exists only while
    there is something to write, so delivery never waits on a socket and an idle socket holds
    no task and no queue. Over the bound the socket is a slow consumer: its queue is dropped
    and it is closed with 3008 (its client reconnects and resumes).
    """

    user_id: str
    connection_id: str
    # The socket's ASGI `send` (uvicorn's protocol): frames and the close go straight to it.
    asgi: Send
    outbound: OutboundLimits
    gate: FrameGate
    # Monotonic time of the last sign of life presence heard of: admission (`conn.opened`
    # stamps the connection active), then each forwarded heartbeat.
    heartbeat_forwarded_at: float = float("-inf")
    # While not None, live deliveries wait here (payload, and a new_message's conversation
    # and seq): the socket is still getting its presence snapshot and replay (resume.py).
    held: list[Held] | None = None
    # After a resume, for a while: per conversation, the highest seq the replay sent.
    replayed: dict[str, int] | None = None
    _queue: deque[str] | None = field(default=None, init=False)
    _queued_bytes: int = field(default=0, init=False)
    # The writer while open; the closer once closing.
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _closing: bool = field(default=False, init=False)
    # Set (and dropped) by the writer when a paced sender may go on; see send_paced.
    _room: asyncio.Event | None = field(default=None, init=False)

    def heartbeat_due(self, now: float, interval: float) -> bool:
        """Whether this heartbeat goes on to presence (the client still gets its ack): at
        most one per `interval` seconds per socket, counted from admission, since
        `conn.opened` already told presence the socket is live."""
        if now - self.heartbeat_forwarded_at < interval:
            return False
        self.heartbeat_forwarded_at = now
        return True

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    async def send(self, payload: str) -> bool:
        """Queue a text frame; never waits on the socket (`offer`, for coroutines)."""
        return self.offer(payload)

    def offer(self, payload: str) -> bool:
        """Queue a text frame; never waits on the socket.

        False when the socket is closing or gone, or when this frame overflowed its buffer
        (the socket is then being closed with 3008).
        """
        if self._closing:
            return False
        queue = self._queue
        if queue is None:
            # Nothing waiting for this socket: straight to its transport when it takes it,
            # without a writer task (a fan-out to thousands of sockets costs a task each).
            if self._task is None and _write_now(self.asgi, payload):
                return True
            queue = self._queue = deque()
        size = _size(payload)
        limits = self.outbound
        if len(queue) >= limits.max_frames or self._queued_bytes + size > limits.max_bytes:
            self._overflow(len(queue))
            return False
        queue.append(payload)
        self._queued_bytes += size
        if self._task is None:
            self._task = asyncio.create_task(self._write())
        return True

    async def send_paced(self, payload: str) -> bool:
        """`send` for one sender writing many frames in a row (snapshot, replay): waits while
        the queue is half full, so it slows down with its socket instead of overflowing."""
        while not self._closing and self._half_full():
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()
        return await self.send(payload)

    def repeats_replay(self, conversation_id: str | None, seq: int | None) -> bool:
        """A live `new_message` (of that conversation and seq) the resume's replay already
        carried. The replay sends every seq of a conversation up to its highest, so any live
        copy at or below it is a repeat, whether it arrived during the replay or after (a
        publish slower than the replay's read of the store)."""
        upto = self.replayed
        return (
            upto is not None
            and conversation_id is not None
            and seq is not None
            and seq <= upto.get(conversation_id, 0)
        )

    def hold(self, payload: str, conversation_id: str | None, seq: int | None) -> None:
        """Keep a live delivery until the snapshot and replay are out (resume.py), within
        the same frame bound as the queue."""
        assert self.held is not None
        if len(self.held) >= self.outbound.max_frames:
            self._overflow(len(self.held))
            return
        self.held.append((payload, conversation_id, seq))

    def _half_full(self) -> bool:
        queue = self._queue
        limits = self.outbound
        return queue is not None and (
            2 * len(queue) >= limits.max_frames or 2 * self._queued_bytes >= limits.max_bytes
        )

    def _overflow(self, frames: int) -> None:
        log.warning(
            "slow consumer closed",
            queued_frames=frames,
            queued_bytes=self._queued_bytes,
            user_id=self.user_id,
            connection_id=self.connection_id,
        )
        self.close_soon(CloseCode.SLOW_CONSUMER, "slow consumer: outbound buffer full")

    def close_soon(self, code: int, reason: str) -> None:
        """Drop what is queued and close in the background; a stuck peer cannot block this.
        Every close the edge makes comes through here, so it is counted here, once."""
        if self._closing:
            return
        self._closing = True
        metrics.closed(code)
        self._drop_queue()
        if self._task is not None:
            # The writer waits for the transport to drain: cancelling there loses no frame
            # half-written (uvicorn writes each frame whole after that wait).
            self._task.cancel()
        self._task = asyncio.create_task(self._close(code, reason))

    async def close(self, code: int, reason: str) -> None:
        self.close_soon(code, reason)
        if self._task is not None:
            await asyncio.shield(self._task)

    def discard(self) -> None:
        """The socket is gone: stop writing to it (a close under way finishes on its own)."""
        if not self._closing:
            self._closing = True
            self._drop_queue()
            if self._task is not None:
                self._task.cancel()
                self._task = None

    async def _write(self) -> None:
        queue = self._queue
        try:
            while queue:
                payload = queue.popleft()
                self._queued_bytes -= _size(payload)
                if self._room is not None and not self._half_full():
                    self._room.set()
                    self._room = None
                await self.asgi({"type": "websocket.send", "text": payload})
        except asyncio.CancelledError:
            raise
        except Exception:
            # The peer is gone; the session's receive loop sees the disconnect and cleans up.
            self._closing = True
            self._drop_queue()
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                if self._queue is queue and not queue:
                    self._queue = None

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self.outbound.close_timeout_seconds):
                await self.asgi({"type": "websocket.close", "code": code, "reason": reason})
        except TimeoutError:
            log.info(
                "peer did not take the close frame; dropping it",
                code=code,
                user_id=self.user_id,
                connection_id=self.connection_id,
            )
            _abort(self.asgi)
        except Exception:
            # Already gone: nothing left to close.
            pass

    def _drop_queue(self) -> None:
        self._queue = None
        self._queued_bytes = 0
        self.held = None
        if self._room is not None:
            # A paced sender waiting for room wakes up to find the socket closing.
            self._room.set()
            self._room = None


def _size(payload: str) -> int:
    # UTF-8 length; an ASCII string (most frames) is its own length, with no encoding pass.
    return len(payload) if payload.isascii() else len(payload.encode())


def _write_now(send: Send, payload: str) -> bool:
    """Under the edge's own uvicorn protocol (ws_edge.protocol), write the frame at once."""
    write = getattr(getattr(send, "__self__", None), "write_text_now", None)
    return bool(write(payload)) if write is not None else False


def _abort(send: Send) -> None:
    """Drop a peer that reads nothing, so it cannot even take a close frame.

    ASGI has no message for this; under uvicorn the `send` callable is the protocol's bound
    method, and its transport is the only handle. Elsewhere the server's own ping timeout
    drops the peer instead.
    """
    protocol = getattr(send, "__self__", None)
    abort = getattr(getattr(protocol, "transport", None), "abort", None)
    if callable(abort):
        abort()


class ConnectionRegistry:
    def __init__(self, shards: ShardBindings, shard_of: Callable[[str], int]) -> None:
        self._by_user: dict[str, dict[str, Connection]] = {}
        self.shards = shards
        self._shard_of = shard_of
        # A user's first socket holds their shard once, however many arrive together.
        self._first = KeyedLock()

    def __len__(self) -> int:
        return sum(len(connections) for connections in self._by_user.values())

    @property
    def user_count(self) -> int:
        return len(self._by_user)

    def of_user(self, user_id: str) -> list[Connection]:
        # Asked for every user a delivery names, most of a large group's held elsewhere.
        connections = self._by_user.get(user_id)
        return list(connections.values()) if connections else []

    def all(self) -> list[Connection]:
        return [c for connections in self._by_user.values() for c in connections.values()]

    async def add(self, connection: Connection) -> None:
        """Returns once deliveries to the user reach this edge (their shard is bound)."""
        user_id = connection.user_id
        connections = self._by_user.get(user_id)
        if connections is None:
            async with self._first(user_id):
                connections = self._by_user.get(user_id)
                if connections is None:
                    await self.shards.hold(self._shard_of(user_id))
                    connections = self._by_user[user_id] = {}
        connections[connection.connection_id] = connection

    def remove(self, connection: Connection) -> None:
        user_id = connection.user_id
        connections = self._by_user.get(user_id)
        if connections is None or connections.pop(connection.connection_id, None) is None:
            return
        if not connections:
            del self._by_user[user_id]
            self.shards.release(self._shard_of(user_id))
