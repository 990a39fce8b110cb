"""Which sockets this edge holds, per user; binds a user's delivery key while they have one."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from starlette.websockets import WebSocket, WebSocketState

from chat_core.events import ServerFrame

log = structlog.get_logger(__name__)


@dataclass(eq=False, slots=True)
class Connection:
    """One socket. Kept small on purpose: an edge holds tens of thousands of these."""

    user_id: str
    connection_id: str
    socket: WebSocket
    # Monotonic time of the last heartbeat forwarded to presence.
    heartbeat_forwarded_at: float = float("-inf")
    # While not None, live deliveries wait here (frame, payload): the socket is still
    # getting its presence snapshot and replay (resume.py).
    held: list[tuple[ServerFrame, str]] | None = None

    async def send(self, payload: str) -> bool:
        """Send a text frame; False when the socket is already gone.

        No lock: uvicorn writes each frame whole, so concurrent senders cannot interleave.
        """
        if self.socket.application_state is not WebSocketState.CONNECTED:
            return False
        try:
            await self.socket.send_text(payload)
        except (RuntimeError, OSError):
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        if self.socket.application_state is WebSocketState.CONNECTED:
            try:
                await self.socket.close(code, reason)
            except (RuntimeError, OSError):
                pass


KeyChange = Callable[[str], Awaitable[None]]


class ConnectionRegistry:
    def __init__(self, bind: KeyChange, unbind: KeyChange) -> None:
        self._by_user: dict[str, dict[str, Connection]] = {}
        self._bind = bind
        self._unbind = unbind
        # Binding is per user and must not interleave with an unbind for the same user.
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return sum(len(connections) for connections in self._by_user.values())

    @property
    def user_count(self) -> int:
        return len(self._by_user)

    def of_user(self, user_id: str) -> list[Connection]:
        return list(self._by_user.get(user_id, {}).values())

    def all(self) -> list[Connection]:
        return [c for connections in self._by_user.values() for c in connections.values()]

    async def add(self, connection: Connection) -> None:
        user_id = connection.user_id
        async with self._lock(user_id):
            connections = self._by_user.get(user_id)
            if connections is None:
                await self._bind(user_id)
                connections = self._by_user[user_id] = {}
            connections[connection.connection_id] = connection

    async def remove(self, connection: Connection) -> None:
        user_id = connection.user_id
        async with self._lock(user_id):
            connections = self._by_user.get(user_id)
            if connections is None or connections.pop(connection.connection_id, None) is None:
                return
            if not connections:
                del self._by_user[user_id]
                try:
                    await self._unbind(user_id)
                except Exception:
                    # A binding left behind only delivers to a user we drop on arrival.
                    log.warning("unbind failed", user_id=user_id, exc_info=True)
        if user_id not in self._by_user and not self._locks[user_id].locked():
            self._locks.pop(user_id, None)

    def _lock(self, user_id: str) -> asyncio.Lock:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        return lock
